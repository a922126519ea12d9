"""The HTML pages: how long the status board and a model page take to render, how large
they are, and what the model page's per-bucket chart points cost in memory.

Setup: `_harness.build_tree` (M models x V versions, baseline and ACTIVE per model), read
by a `ModelRegistry` as the daemon reads it; each active version gets live views as the
ingester publishes them: a window summary with 20 features (drift statistics, half of
them flagged, quality ratios), every live metric, a full 60-bucket series of chart
points, and a health view. Timed in-process, REPEATS times, median reported: the whole
board (`/`), its refreshed part (`/?part=live`, what the page fetches every 10 s), and
one model page (`/models/<name>`). Then the board's refresh as the page's script makes it,
through the daemon's HTTP server (`make_app` and `WebServer` over the same views): the
bytes on the wire of a 200, of the same gzip-compressed (browsers ask for it) and of a 304
(asked with the part's ETag), and what the compression and the ETag cost on top of the
render.

Memory of the chart points: a real `LiveWindow` (the daemon's 60 one-minute buckets) fed
100 predictions with feedback per bucket for 60 minutes; the bytes its summary's series
holds (the packed points and the tuple of them), per version.

    .venv/bin/python bench/pages.py [--models 200 --versions 3 --repeats 5]
"""

from __future__ import annotations

import argparse
import gzip
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from prometheus_client import CollectorRegistry

from _harness import build_tree, machine, source_state, table, write_results
from model_health_exporter.exposition.html import live_etag
from model_health_exporter.exposition.pages import Live, landing_page, model_page_response
from model_health_exporter.exposition.server import WebServer, make_app
from model_health_exporter.records import Feedback, Prediction
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.health import HealthView
from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import (
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    Snapshot,
    initial_error_keys,
)
from model_health_exporter.state.series import BucketPoint, Series, pack
from model_health_exporter.state.windows import LiveWindow, WindowConfig, WindowSummary

NAME = "pages"
NOW = 1_800_000_000.0
FEATURES = 20
BUCKETS = 60


def _views(model: str, version: str) -> tuple[TalliesView, HealthView]:
    features = {
        f"feature_{i:02d}": MappingProxyType(
            {
                "psi": 0.01 * i,
                "js_distance": 0.02 * i,
                "kl_divergence": 0.005 * i,
                "ks_statistic": 0.01 * i,
                "drift_p_value": 1.0 / (1 + i),
                "wasserstein": 0.03 * i,
                "drift_detected": float(i % 2),
                "missing_ratio": 0.001 * i,
                "out_of_range_ratio": 0.002 * i,
            }
        )
        for i in range(FEATURES)
    }
    metrics = {
        "accuracy": 0.84,
        "estimated_accuracy": 0.91,
        "f1_score": 0.83,
        "precision_weighted": 0.82,
        "recall_weighted": 0.84,
        "error_ratio": 0.012,
        "latency_mean_seconds": 0.021,
        "data_drift_share": 0.5,
    }
    points = tuple(
        pack(BucketPoint(NOW - 60.0 * (BUCKETS - i), 1200, 12, 0.021, 600, 0.84, None, 1188, 0.91))
        for i in range(BUCKETS)
    )
    summary = WindowSummary(
        MappingProxyType(metrics),
        MappingProxyType({"predictions": 72_000, "labelled": 36_000, "features": 71_000}),
        MappingProxyType(features),
        "jsonl",
        series=Series(60.0, BUCKETS, points, NOW - 2.0),
    )
    tallies = TalliesView(
        model, version, 72_000, (("Timeout", 700), ("ValueError", 164)), 36_000,
        ((0.01, 9000), (0.025, 50_000), (0.05, 70_000), (float("inf"), 72_000)), 1512.0,
        ((0.5, 1000), (1.0, 71_136)), 60_000.0, summary, 36_000, 0, 1000, 200,
    )  # fmt: skip
    health = HealthView(
        model, version, 62.0, "fair",
        (("performance", 39.0), ("data_drift", 28.0), ("prediction_drift", 100.0),
         ("latency", 96.0), ("error_rate", 94.0), ("data_quality", 97.0)),
        (("performance", 0.3), ("data_drift", 0.25), ("prediction_drift", 0.2),
         ("latency", 0.1), ("error_rate", 0.1), ("data_quality", 0.05)),
        "live", frozenset({"data_drift", "performance_drop", "new_data"}), True,
    )  # fmt: skip
    return tallies, health


def _median_ms(render: Callable[[], bytes], repeats: int) -> tuple[float, int]:
    """Median time of `render` after one untimed call, and the size of its output."""
    render()
    times, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        body = render()
        times.append(time.perf_counter() - start)
        size = len(body)
    return statistics.median(times) * 1000, size


def _wire_bytes(port: int, request: bytes) -> tuple[str, int]:
    """The status line of the response to `request` and its size on the wire."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(1 << 20):
            data += chunk
    return data.split(b"\r\n", 1)[0].decode(), len(data)


def refresh_bytes(snapshot: Snapshot, live: Live) -> tuple[int, int, int]:
    """Bytes on the wire of the board's refresh: a 200, the same gzip-compressed (as
    browsers ask), then a 304 with its ETag."""
    app = make_app(CollectorRegistry(), [], lambda: snapshot, "bench", lambda: live)
    server = WebServer("127.0.0.1:0", app)
    server.start()
    try:
        ask = "GET /?part=live HTTP/1.0\r\nHost: bench\r\n"
        status, full = _wire_bytes(server.port, (ask + "\r\n").encode())
        assert status.endswith("200 OK"), status
        status, packed = _wire_bytes(server.port, f"{ask}Accept-Encoding: gzip\r\n\r\n".encode())
        assert status.endswith("200 OK"), status
        etag = live_etag(landing_page(snapshot, "bench", live, part=True))
        status, unchanged = _wire_bytes(server.port, f"{ask}If-None-Match: {etag}\r\n\r\n".encode())
        assert status.endswith("304 Not Modified"), status
    finally:
        server.stop()
    return full, packed, unchanged


def series_bytes() -> int:
    """The bytes a full window's chart points hold (packed points and their tuple)."""
    window = LiveWindow(WindowConfig(bucket_seconds=60, buckets=BUCKETS, min_samples=100))
    for minute in range(BUCKETS):
        at = NOW + 60.0 * minute
        predictions = [
            Prediction(f"{minute}-{i}", "a" if i % 3 else "b", None, None, 0.9, 0.02, None)
            for i in range(100)
        ]
        window.observe_predictions(predictions, now=at)
        window.observe_feedbacks([Feedback(p.id or "", "a") for p in predictions], now=at + 1)
    series = window.summary(NOW + 60.0 * BUCKETS - 1).series
    assert series is not None
    assert len(series.packed) == BUCKETS
    return sys.getsizeof(series.packed) + sum(sys.getsizeof(p) for p in series.packed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    source = source_state()
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        root = Path(tmp) / "models"
        build_tree(root, args.models, args.versions, args.seed)
        registry = ModelRegistry(
            RegistryConfig(roots=(RootConfig(root),)),
            LabelledCounter(initial_error_keys()),
            LabelledCounter([("max_models",), ("max_columns",)]),
        )
        registry.full_scan()
        snapshot = registry.snapshot
    tallies, health = {}, {}
    for model in snapshot.models.values():
        key = (model.name, model.active_version or "")
        tallies[key], health[key] = _views(*key)
    live = Live(MappingProxyType(tallies), MappingProxyType(health))
    first = next(iter(snapshot.models))
    board_ms, board_size = _median_ms(
        lambda: landing_page(snapshot, "bench", live, now=NOW), args.repeats
    )
    part_ms, part_size = _median_ms(
        lambda: landing_page(snapshot, "bench", live, now=NOW, part=True), args.repeats
    )
    part = landing_page(snapshot, "bench", live, now=NOW, part=True)
    etag_ms, _ = _median_ms(lambda: live_etag(part).encode(), args.repeats)
    full_bytes, gzip_bytes, unchanged_bytes = refresh_bytes(snapshot, live)
    gzip_ms, _ = _median_ms(lambda: gzip.compress(part, compresslevel=1), args.repeats)
    model_ms, model_size = _median_ms(
        lambda: model_page_response(snapshot, "bench", live, f"/models/{first}", now=NOW)[1],
        args.repeats,
    )
    per_version = series_bytes()
    result = {
        "models": args.models,
        "versions": args.models * args.versions,
        "board_ms": board_ms,
        "board_kib": board_size / 1024,
        "part_ms": part_ms,
        "part_kib": part_size / 1024,
        "etag_ms": etag_ms,
        "refresh_200_bytes": full_bytes,
        "refresh_gzip_bytes": gzip_bytes,
        "gzip_ms": gzip_ms,
        "refresh_304_bytes": unchanged_bytes,
        "model_page_ms": model_ms,
        "model_page_kib": model_size / 1024,
        "series_bytes_per_version": per_version,
        "machine": machine(source),
        "params": {k: str(v) for k, v in vars(args).items()},
    }
    write_results(NAME, result, args.output)
    rows = [
        ("/", board_ms, board_size),
        ("/?part=live", part_ms, part_size),
        ("/models/<name>", model_ms, model_size),
    ]
    print(
        table(
            ["models", "versions", "page", "render ms", "KiB"],
            [
                [args.models, result["versions"], page, f"{ms:.1f}", f"{size / 1024:.0f}"]
                for page, ms, size in rows
            ],
        )
    )
    print(
        f"  board refresh on the wire: {full_bytes} bytes as a 200, {gzip_bytes} as a gzip "
        f"200 (compressed in {gzip_ms:.1f} ms), {unchanged_bytes} as a 304; its ETag takes "
        f"{etag_ms:.1f} ms on top of the render"
    )
    print(f"  chart points of a full {BUCKETS}-bucket window: {per_version} bytes per version")
    return 0


if __name__ == "__main__":
    sys.exit(main())

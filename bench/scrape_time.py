"""Scrape time: how long a full /metrics scrape takes, and how much memory the daemon
holds, at 1,000 and 10,000 model versions.

For each size a deterministic tree (MODELS x VERSIONS, metrics.json shaped like
examples/models/routing/production-v3/metrics.json, a baseline and an ACTIVE file per
model) is generated and the daemon started on it as a subprocess on a free
127.0.0.1 port. After WARMUP scrapes, SCRAPES full scrapes of /metrics are timed
over HTTP (request sent -> body read), then a few with the headers Prometheus 3
sends (OpenMetrics preferred, gzip). Reported: median/p99, response size, samples, the daemon's
CPU time per scrape and its VmRSS/VmHWM from /proc/PID/status.

Reference, in the same run: prometheus_client.generate_latest on a plain
CollectorRegistry holding one labelled Gauge with the same number of samples
(in this process), and the same registry served by prometheus_client's own HTTP
server in a subprocess, scraped like the daemon. Ratios are ours / reference.

    .venv/bin/python bench/scrape_time.py [--sizes 1000 10000 --scrapes 50]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _harness import (
    HOST,
    Daemon,
    SourceGuard,
    build_tree,
    free_port,
    http_get,
    machine,
    summary_ms,
    table,
    timed_get,
    wait_until,
    write_results,
)

NAME = "scrape_time"
TARGET_MS = 50.0
TARGET_VERSIONS = 1000
# What Prometheus 3 sends by default (scrape_protocols): OpenMetrics preferred, gzip.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
REFERENCE_METRICS = (
    "accuracy",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "auc_roc",
    "log_loss",
    "training_samples",
    "dataset_samples",
    "missing_item",
    "missing_proc",
    "missing_duration",
    "missing_machine",
    "missing_shift",
    "missing_qty",
    "missing_material",
    "missing_priority",
    "active",
    "valid",
    "loaded",
    "generated",
    "degradation_accuracy",
    "degradation_precision",
    "degradation_recall",
    "degradation_f1",
    "duration",
    "unique_items",
    "unique_processes",
    "unique_candidates",
    "columns",
    "info",
    "threshold",
    "baseline",
)


def reference_registry(samples: int) -> Any:
    """One Gauge with labels (model, version, metric) and exactly `samples` children."""
    from prometheus_client import CollectorRegistry, Gauge  # noqa: PLC0415 - light --help

    registry = CollectorRegistry()
    gauge = Gauge(
        "reference_model_value",
        "Reference gauge.",
        ["model", "version", "metric"],
        registry=registry,
    )
    per_version = len(REFERENCE_METRICS)
    for i in range(samples):
        model, rest = divmod(i, per_version * 10)
        version, metric = divmod(rest, per_version)
        gauge.labels(f"model-{model:04d}", f"v{version + 1:02d}", REFERENCE_METRICS[metric]).set(
            0.5 + (i % 1000) / 2000
        )
    return registry


def serve_reference(samples: int, port: int) -> int:
    """Hidden mode: serve the reference registry until SIGTERM."""
    from prometheus_client import start_http_server  # noqa: PLC0415

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server, thread = start_http_server(port, addr=HOST, registry=reference_registry(samples))
    stop.wait()
    server.shutdown()
    thread.join(5)
    return 0


def time_generate_latest(samples: int, repeats: int) -> dict[str, Any]:
    from prometheus_client import generate_latest  # noqa: PLC0415

    registry = reference_registry(samples)
    body = generate_latest(registry)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - start)
    return {"bytes": len(body), **summary_ms(times)}


def time_reference_http(samples: int, scrapes: int, warmup: int, work: Path) -> dict[str, Any]:
    port = free_port()
    log_path = work / "reference.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-reference", str(samples), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"reference server exited: {log_path.read_text()}")
            return http_get(port, "/metrics")[0] == 200

        wait_until(up, 60 + samples / 2000, "reference server", interval=0.05)
        for _ in range(warmup):
            timed_get(port, "/metrics")
        times = [timed_get(port, "/metrics")[0] for _ in range(scrapes)]
        return summary_ms(times)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def count_samples(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def measure_size(versions_total: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    models = max(1, versions_total // args.versions_per_model)
    root = work / f"models-{versions_total}"
    start = time.perf_counter()
    versions = build_tree(root, models, args.versions_per_model, args.seed)
    build_s = time.perf_counter() - start
    extra = [
        f"--models.max-models={max(1000, models)}",
        "--models.resync-interval=86400",  # no full rescan during the measurement
    ]
    with Daemon(root, work / f"daemon-{versions_total}.log", extra) as daemon:
        try:
            ready_s = daemon.wait_ready(timeout=60 + len(versions) / 20)
            idle_memory = daemon.proc_status()
            for _ in range(args.warmup):
                _, body = timed_get(daemon.port, "/metrics")
            cpu_before = daemon.cpu_seconds()
            plain = []
            for _ in range(args.scrapes):
                elapsed, body = timed_get(daemon.port, "/metrics")
                plain.append(elapsed)
            cpu_per_scrape_ms = (daemon.cpu_seconds() - cpu_before) / args.scrapes * 1000
            prom, prom_body = [], b""
            for _ in range(args.prometheus_scrapes):
                elapsed, prom_body = timed_get(daemon.port, "/metrics", PROMETHEUS_HEADERS)
                prom.append(elapsed)
            memory = daemon.proc_status()
        except Exception:
            print(daemon.log_tail(), file=sys.stderr)
            raise
    samples = count_samples(body)
    reference = time_generate_latest(samples, args.reference_repeats)
    reference_http = time_reference_http(samples, args.scrapes, args.warmup, work)
    ours = summary_ms(plain)
    return {
        "models": models,
        "versions": len(versions),
        "build_s": build_s,
        "daemon_ready_s": ready_s,
        "response_bytes": len(body),
        "response_prometheus_gzip_bytes": len(prom_body),
        "samples": samples,
        "scrape": ours,
        "scrape_prometheus_headers": summary_ms(prom) if prom else None,
        "daemon_cpu_ms_per_scrape": cpu_per_scrape_ms,
        "daemon_memory_after_ready_bytes": idle_memory,
        "daemon_memory_after_scrapes_bytes": memory,
        "reference_generate_latest": reference,
        "reference_http": reference_http,
        "ratio_median_vs_generate_latest": ours["median_ms"] / reference["median_ms"],
        "ratio_median_vs_reference_http": ours["median_ms"] / reference_http["median_ms"],
    }


def report(results: dict[str, Any], out: Path) -> None:
    m = results["machine"]
    print(f"scrape time: full /metrics over HTTP; nproc={m['nproc']}, Python {m['python']}")
    rows = []
    for r in results["runs"]:
        mem = r["daemon_memory_after_scrapes_bytes"]
        rows.append(
            [
                r["versions"],
                r["samples"],
                f"{r['response_bytes'] / 1e6:.2f}",
                r["scrape"]["median_ms"],
                r["scrape"]["p99_ms"],
                r["scrape_prometheus_headers"]["median_ms"]
                if r["scrape_prometheus_headers"]
                else "-",
                r["daemon_cpu_ms_per_scrape"],
                r["reference_generate_latest"]["median_ms"],
                r["reference_http"]["median_ms"],
                f"{r['ratio_median_vs_generate_latest']:.2f}",
                f"{r['ratio_median_vs_reference_http']:.2f}",
                f"{mem['VmRSS'] / 2**20:.0f}",
            ]
        )
    print(
        table(
            [
                "versions",
                "samples",
                "MB",
                "median ms",
                "p99 ms",
                "OM+gzip ms",
                "cpu ms",
                "ref gen ms",
                "ref http ms",
                "x gen",
                "x http",
                "RSS MiB",
            ],
            rows,
        )
    )
    met_median, met = results["target_met_median"], results["target_met"]
    if met is not None:
        verdicts = ["met" if ok else "MISSED" for ok in (met_median, met)]
        print(
            f"target < {TARGET_MS:.0f} ms at {TARGET_VERSIONS} versions: median {verdicts[0]}, "
            f"p99 {verdicts[1]}"
        )
    print(f"results: {out}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-reference"]:
        return serve_reference(int(argv[1]), int(argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 10000], help="total model versions per tree"
    )
    parser.add_argument("--versions-per-model", type=int, default=10)
    parser.add_argument("--scrapes", type=int, default=50, help="timed plain scrapes")
    parser.add_argument(
        "--prometheus-scrapes",
        type=int,
        default=10,
        help="timed scrapes with Prometheus' headers (OpenMetrics, gzip)",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--workdir", type=Path, help="where to build the trees (default: tmp)")
    parser.add_argument("--output", type=Path, help=f"default: bench/results/{NAME}.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    guard = SourceGuard()

    runs = []
    with tempfile.TemporaryDirectory(prefix="mhe-bench-", dir=args.workdir) as work:
        for size in args.sizes:
            runs.append(measure_size(size, args, Path(work)))
            print(f"  measured {size} versions", file=sys.stderr)

    at_target = [r for r in runs if r["versions"] == TARGET_VERSIONS]
    met_median = all(r["scrape"]["median_ms"] < TARGET_MS for r in at_target) if at_target else None
    met = all(r["scrape"]["p99_ms"] < TARGET_MS for r in at_target) if at_target else None
    results = {
        "benchmark": NAME,
        "machine": machine(guard.after()),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
        "target_ms": TARGET_MS,
        "target_versions": TARGET_VERSIONS,
        "target_met_median": met_median,
        "target_met": met,  # the stricter reading: p99 under the target
    }
    out = write_results(NAME, results, args.output)

    report(results, out)
    return 1 if args.check and met is False else 0


if __name__ == "__main__":
    sys.exit(main())

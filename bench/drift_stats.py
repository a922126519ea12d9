"""Drift and health statistics: recomputing every statistic of 1,000 model versions x 20
features from their windows (issue 4's target: under 1 s), and the memory a version's
window state takes, measured and against the formula in docs/benchmarks.md.

Setup, deterministic from --seed: --distinct streams, each a reference of REFERENCE rows
with 15 numeric features (normal) and 5 categorical ones (Zipf over 30 categories), 3
classes with probabilities, built with `stats.reference.build_reference` (labelled, so
CBPE calibration is fitted), and BUCKETS buckets x PER_BUCKET predictions parsed by the
real record parser, half of them shifted by 0.3 std, with feedback for half the records.
Every version gets its own copy of one stream's reference (a `ModelReference` of its
own, as the daemon holds one per version) and its own `LiveWindow` (by default the
daemon's: 60 buckets of 1 min, a short horizon of the newest 5; --buckets,
--bucket-seconds and --short-buckets as the --logs.window-* flags), fed bucket by
bucket through `observe_predictions` / `observe_feedbacks`, as the ingester does with
each chunk it reads.

Timed, REPEATS times, median reported, after one untimed pass (which flushes the
batched rows into the bucket arrays):
- `state.windows.summaries(windows, now)`: what the ingester's periodic refresh of every
  version calls; merges each window's buckets and computes all drift, quality,
  estimation and live metrics, the drift of all versions in one batch;
- then a `TalliesView` and `state.health.health_view` (health score, checks, retraining
  reasons) for every version.
Each call recomputes every statistic (the last summary a window keeps for a refresh with
nothing new is dropped before each call). Each repeat is one bucket period later than the
last:
- "boundary": every window opens a bucket (one record at the new time: the newest bucket
  closes into the window's kept merge of its closed buckets, the oldest expires out of
  it, as the ingester does while reading), timed, then `summaries`, timed apart;
- the new bucket is filled with a bucket of records (untimed), and `summaries` plus the
  health views are timed: the refresh under traffic, which the target is about;
- "from scratch": `summaries` once more after dropping every window's kept merges, as
  after a checkpoint load or a new reference.

Memory: tracemalloc's traced bytes of --memory-versions windows built from records of
their own (no object shared between versions), divided by their number: with every
bucket of the window holding data (a full window, as after an hour of traffic at the
defaults) and with the same records all in one bucket. The pending feedback store is
reported apart, since it is bounded by --logs.max-pending rather than by the bins.

    .venv/bin/python bench/drift_stats.py [--versions 1000 --features 20 --repeats 5]
        [--per-bucket 20] [--buckets 12 --bucket-seconds 300 --short-buckets 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import SourceGuard, machine, table, write_results
from model_health_exporter.baselines import BaselineOverrides, merge_baseline
from model_health_exporter.config import LogsSettings
from model_health_exporter.records import Feedback, Prediction, parse_line
from model_health_exporter.schema import Levels
from model_health_exporter.state.health import HealthConfig, health_view
from model_health_exporter.state.live import TalliesView, VersionTallies
from model_health_exporter.state.registry import ModelView, VersionView
from model_health_exporter.state.windows import LiveWindow, WindowConfig, WindowSummary, summaries
from model_health_exporter.stats.reference import ModelReference, build_reference

NAME = "drift_stats"
TARGET_S = 1.0
CLASSES = ("a", "b", "c")
CATEGORIES = tuple(f"k{i:02d}" for i in range(30))
WEIGHTS = tuple(1 / (k + 1) for k in range(len(CATEGORIES)))
# The daemon's window defaults (--logs.window-*), unless the options say otherwise.
_LOGS = LogsSettings()
START = 1_800_000_000.0


def feature_names(n: int) -> tuple[list[str], list[str]]:
    numeric = [f"num{i:02d}" for i in range(n * 3 // 4)]
    return numeric, [f"cat{i:02d}" for i in range(n - len(numeric))]


def record(
    rng: random.Random, i: int, numeric: list[str], categorical: list[str], shift: float
) -> Prediction:
    """One prediction, written as JSON and read back by the real parser."""
    features: dict[str, Any] = {name: round(rng.gauss(shift, 1.0), 3) for name in numeric}
    features |= dict(
        zip(categorical, rng.choices(CATEGORIES, WEIGHTS, k=len(categorical)), strict=True)
    )
    raw = [rng.random() for _ in CLASSES]
    total = sum(raw)
    probabilities = {c: round(p / total, 3) for c, p in zip(CLASSES, raw, strict=True)}
    line = {
        "id": f"r{i}",
        "features": features,
        "prediction": max(probabilities, key=probabilities.__getitem__),
        "probabilities": probabilities,
        "latency_ms": round(rng.uniform(5, 50), 1),
    }
    parsed = parse_line(json.dumps(line).encode())
    assert isinstance(parsed, Prediction)
    return parsed


def reference(
    rng: random.Random, rows: int, numeric: list[str], categorical: list[str]
) -> ModelReference:
    predictions = [record(rng, i, numeric, categorical, 0.0) for i in range(rows)]
    return build_reference(
        "jsonl",
        [p.features or {} for p in predictions],
        labels=[p.label for p in predictions],
        probabilities=[p.probabilities for p in predictions],
        confidences=[p.confidence for p in predictions],
        actuals=[rng.choice(CLASSES) for _ in predictions],
        latencies=[p.latency_seconds for p in predictions],
    )


class Stream:
    """One version's data: its reference and its records, bucket by bucket."""

    def __init__(self, rng: random.Random, args: argparse.Namespace, shift: float) -> None:
        self.config: WindowConfig = args.config
        numeric, categorical = feature_names(args.features)
        self.reference = reference(rng, args.reference, numeric, categorical)
        self.buckets: list[tuple[list[Prediction], list[Feedback]]] = []
        n = 0
        for _ in range(self.config.buckets):
            predictions = [
                record(rng, n + i, numeric, categorical, shift) for i in range(args.per_bucket)
            ]
            feedback = [Feedback(p.id or "", rng.choice(CLASSES)) for p in predictions[::2]]
            self.buckets.append((predictions, feedback))
            n += args.per_bucket

    def window(self, *, one_bucket: bool = False) -> LiveWindow:
        """A window fed bucket by bucket (with `one_bucket`, all in the newest bucket)."""
        window = LiveWindow(self.config)
        # a reference object of its own, as the daemon loads one per version
        window.set_reference(ModelReference.from_dict(self.reference.to_dict(), "jsonl"))
        last = START + (len(self.buckets) - 1) * self.config.bucket_seconds
        for b, (predictions, feedback) in enumerate(self.buckets):
            now = last if one_bucket else START + b * self.config.bucket_seconds
            window.observe_predictions(predictions, now)
            window.observe_feedbacks(feedback, now)
        return window


def streams(rng: random.Random, args: argparse.Namespace, n: int) -> list[Stream]:
    return [Stream(rng, args, 0.3 if i % 2 else 0.0) for i in range(n)]


def views(n: int) -> list[tuple[ModelView, VersionView]]:
    """A model view with an accuracy target per version, as the registry builds them."""
    baseline = merge_baseline(BaselineOverrides(levels={"accuracy": Levels(target=0.5)}))
    out = []
    for v in range(n):
        version = VersionView(f"model{v:04d}", "v1", Path(), None, True, None, None, True, {}, {})
        model = ModelView(version.model, Path(), "flat", (version,), "v1", "ACTIVE", baseline, None)
        out.append((model, version))
    return out


def measure_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Windows whose records and references are all their own, under tracemalloc."""
    out: dict[str, Any] = {"memory_versions": args.memory_versions}
    for case, one_bucket in (("", False), ("one_bucket_", True)):
        rng = random.Random(args.seed + 1)  # seeded benchmark data
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        windows = []
        for stream in streams(rng, args, args.memory_versions):
            windows.append(stream.window(one_bucket=one_bucket))
            del stream  # the window keeps what it keeps, nothing else
        now = START + args.config.buckets * args.config.bucket_seconds - 1
        for w in windows:
            w.summary(now)  # flushes the batched rows into the bucket arrays
        gc.collect()
        total = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        out |= {
            f"{case}bytes_total": total,
            f"{case}bytes_per_version": total / args.memory_versions,
            f"{case}pending_items": sum(len(w._pending) for w in windows),
            # the pending store's own table: what waits is bounded by max_pending
            f"{case}pending_dict_bytes": sum(sys.getsizeof(w._pending) for w in windows),
        }
        del windows
    return out


def measure_time(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)  # seeded benchmark data
    build_start = time.perf_counter()
    pool = streams(rng, args, args.distinct)
    windows = [pool[v % len(pool)].window() for v in range(args.versions)]
    tallies = [VersionTallies.create() for _ in windows]
    for v, t in enumerate(tallies):
        for predictions, _ in pool[v % len(pool)].buckets:
            t.observe_predictions(predictions)
    build_s = time.perf_counter() - build_start
    model_views = views(args.versions)
    health = HealthConfig()
    now = START + args.config.buckets * args.config.bucket_seconds - 1
    summaries(windows, now)  # the untimed pass: flushes the batched rows
    runs: dict[str, list[float]] = {}  # wall and CPU seconds of each timed step, per repeat

    def timed(name: str, step: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = step()
        runs.setdefault(f"{name}_s_runs", []).append(time.perf_counter() - wall)
        runs.setdefault(f"{name}_cpu_s_runs", []).append(time.process_time() - cpu)
        return out

    def refresh() -> list[WindowSummary]:
        return summaries(windows, now)

    def healths() -> list[Any]:
        return [
            health_view(
                model,
                version,
                TalliesView.of((model.name, "v1"), t, w, now, summary),
                now,
                health,
            )
            for (model, version), t, w, summary in zip(
                model_views, tallies, windows, computed, strict=True
            )
        ]

    def rotate() -> None:
        for w in windows:
            w.observe_invalid(now)

    for repeat in range(args.repeats):
        # A bucket boundary, as the daemon meets one every bucket period: the first record
        # of the next period opens a bucket in every window (the newest closes, the oldest
        # expires; the ingester does this as it reads), then the refresh.
        now += args.config.bucket_seconds
        gc.collect()
        timed("boundary_rotate", rotate)
        timed("boundary_summary", refresh)
        # The new bucket fills (untimed: ingestion), then a refresh under traffic: every
        # window has something new, so every summary is computed.
        for v, w in enumerate(windows):
            predictions, feedback = pool[v % len(pool)].buckets[repeat % args.config.buckets]
            w.observe_predictions(predictions, now)
            w.observe_feedbacks(feedback, now)
            w.flush_rows()
        for w in windows:
            w._last_summary = None  # type: ignore[attr-defined]  # kept since the incremental refresh
        gc.collect()
        computed = timed("summary", refresh)
        last_healths = timed("health", healths)
        # Merged afresh, as after a checkpoint load or a new reference.
        for w in windows:
            w._closed = w._short_closed = None  # type: ignore[attr-defined]
            w._last_summary = None  # type: ignore[attr-defined]
        gc.collect()
        timed("cold_summary", refresh)
    for kind in ("", "_cpu"):
        runs[f"total{kind}_s_runs"] = [
            a + b
            for a, b in zip(
                runs[f"summary{kind}_s_runs"], runs[f"health{kind}_s_runs"], strict=True
            )
        ]
    medians = {k.removesuffix("_runs"): statistics.median(v) for k, v in runs.items()}
    features = computed[0].features
    return (
        {
            "versions": args.versions,
            "distinct_streams": args.distinct,
            "features": args.features,
            "per_bucket": args.per_bucket,
            "buckets": args.config.buckets,
            "bucket_seconds": args.config.bucket_seconds,
            "short_buckets": args.config.short_buckets,
            "build_s": build_s,
            "per_version_ms": medians["total_s"] / args.versions * 1000,
            "statistics_per_version": sum(len(s) for s in features.values())
            + len(computed[0].metrics)
            + len(last_healths[0].checks)
            + 2,  # score and retraining recommendation
            "drifted_versions": sum(
                1 for s in computed if s.metrics.get("data_drift_share", 0) > 0
            ),
            "scored_versions": sum(1 for h in last_healths if h.score is not None),
            "target_s": TARGET_S,
            "target_met": medians["total_s"] < TARGET_S,
        }
        | runs
        | medians
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--reference", type=int, default=1000, help="reference rows")
    parser.add_argument("--per-bucket", type=int, default=100, help="predictions per bucket")
    parser.add_argument(
        "--distinct", type=int, default=20, help="streams the timed versions are fed from"
    )
    parser.add_argument(
        "--memory-versions", type=int, default=50, help="versions of their own, for memory"
    )
    parser.add_argument("--buckets", type=int, default=_LOGS.window_buckets)
    parser.add_argument("--bucket-seconds", type=float, default=_LOGS.window_bucket_seconds)
    parser.add_argument(
        "--short-buckets",
        type=int,
        default=_LOGS.window_short_buckets,
        help="buckets of the short horizon; 0: none",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    args.config = WindowConfig(
        bucket_seconds=args.bucket_seconds,
        buckets=args.buckets,
        short_buckets=args.short_buckets,
        min_samples=100,
    )
    guard = SourceGuard()
    result = measure_time(args) | measure_memory(args)
    result["machine"] = machine(guard.after())
    result["params"] = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "config"
    }
    out = write_results(NAME, result, args.output)
    print(
        table(
            [
                "versions",
                "features",
                "summaries s",
                "boundary s",
                "from scratch s",
                "health s",
                "total s",
                "total CPU s",
                "per version ms",
                "statistics/version",
                "KiB/version full",
                "KiB/version 1 bucket",
                "target < 1 s",
            ],
            [
                [
                    result["versions"],
                    result["features"],
                    f"{result['summary_s']:.3f}",
                    f"{result['boundary_rotate_s']:.3f} + {result['boundary_summary_s']:.3f}",
                    f"{result['cold_summary_s']:.3f}",
                    f"{result['health_s']:.3f}",
                    f"{result['total_s']:.3f}",
                    f"{result['total_cpu_s']:.3f}",
                    f"{result['per_version_ms']:.3f}",
                    result["statistics_per_version"],
                    f"{result['bytes_per_version'] / 1024:.1f}",
                    f"{result['one_bucket_bytes_per_version'] / 1024:.1f}",
                    "met" if result["target_met"] else "MISSED",
                ]
            ],
        )
    )
    print(
        f"  total runs: {', '.join(f'{s:.3f}' for s in result['total_s_runs'])} s; "
        f"{result['drifted_versions']} of {result['versions']} versions flagged drift "
        f"(half were shifted by 0.3 std); {result['scored_versions']} scored; "
        f"built in {result['build_s']:.0f} s; memory from {result['memory_versions']} "
        f"versions, pending feedback {result['pending_items']} items"
    )
    print(f"results: {out}")
    return 1 if args.check and not result["target_met"] else 0


if __name__ == "__main__":
    sys.exit(main())

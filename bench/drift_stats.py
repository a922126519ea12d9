"""Drift and health statistics: recomputing every statistic of 1,000 model versions x 20
features from their windows (issue 4's target: under 1 s), and the memory a version's
window state takes, measured and against the formula in docs/benchmarks.md.

Setup, deterministic from --seed: per version a reference of REFERENCE rows with 15
numeric features (normal, some shifted per version) and 5 categorical ones (Zipf over 30
categories), 3 classes with probabilities, built with `stats.reference.build_reference`
(labelled, so CBPE calibration is fitted); then a `LiveWindow` (12 buckets of 5 min)
receives PER_BUCKET predictions in every bucket, through the real record parser, with
feedback for half of them. Timed: `LiveWindow.summary(now)` for every version (which
merges the buckets' counts and computes all drift, quality, estimation and live metrics),
plus `state.health.health_view` for every version, REPEATS times; the median is reported.

Memory: tracemalloc's traced bytes of the windows (all buckets, reference, pending
feedback) divided by the number of versions, with the pending feedback store reported
apart, since it is bounded by --logs.max-pending rather than by the bins.

    .venv/bin/python bench/drift_stats.py [--versions 1000 --features 20 --repeats 5]
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
from pathlib import Path
from typing import Any

from _harness import SourceGuard, machine, table, write_results
from model_health_exporter.records import Feedback, Prediction, parse_line
from model_health_exporter.state.windows import LiveWindow, WindowConfig
from model_health_exporter.stats.reference import ModelReference, build_reference

NAME = "drift_stats"
TARGET_S = 1.0
CLASSES = ("a", "b", "c")
CATEGORIES = tuple(f"k{i:02d}" for i in range(30))


def feature_names(n: int) -> tuple[list[str], list[str]]:
    numeric = [f"num{i:02d}" for i in range(n * 3 // 4)]
    return numeric, [f"cat{i:02d}" for i in range(n - len(numeric))]


def record(
    rng: random.Random, i: int, numeric: list[str], categorical: list[str], shift: float
) -> dict[str, Any]:
    features: dict[str, Any] = {name: round(rng.gauss(shift, 1.0), 3) for name in numeric}
    weights = [1 / (k + 1) for k in range(len(CATEGORIES))]
    features |= {name: rng.choices(CATEGORIES, weights)[0] for name in categorical}
    raw = [rng.random() for _ in CLASSES]
    total = sum(raw)
    probabilities = {c: round(p / total, 3) for c, p in zip(CLASSES, raw, strict=True)}
    predicted = max(probabilities, key=probabilities.__getitem__)
    return {
        "id": f"r{i}",
        "features": features,
        "prediction": predicted,
        "probabilities": probabilities,
        "latency_ms": round(rng.uniform(5, 50), 1),
    }


def reference(
    rng: random.Random, rows: int, numeric: list[str], categorical: list[str]
) -> ModelReference:
    parsed = [
        parse_line(json.dumps(record(rng, i, numeric, categorical, 0.0)).encode())
        for i in range(rows)
    ]
    predictions = [p for p in parsed if isinstance(p, Prediction)]
    return build_reference(
        "jsonl",
        [p.features or {} for p in predictions],
        labels=[p.label for p in predictions],
        probabilities=[p.probabilities for p in predictions],
        confidences=[p.confidence for p in predictions],
        actuals=[rng.choice(CLASSES) for _ in predictions],
        latencies=[p.latency_seconds for p in predictions],
    )


def build_windows(args: argparse.Namespace) -> tuple[list[LiveWindow], float]:
    rng = random.Random(args.seed)  # seeded benchmark data
    numeric, categorical = feature_names(args.features)
    config = WindowConfig(bucket_seconds=300.0, buckets=12, min_samples=100)
    # One reference object per version, as the daemon holds one per version.
    windows = []
    start = 1_800_000_000.0
    for v in range(args.versions):
        window = LiveWindow(config)
        window.set_reference(reference(rng, args.reference, numeric, categorical))
        shift = 0.3 if v % 2 else 0.0
        n = 0
        for bucket in range(config.buckets):
            now = start + bucket * config.bucket_seconds
            for _ in range(args.per_bucket):
                parsed = parse_line(
                    json.dumps(record(rng, n, numeric, categorical, shift)).encode()
                )
                assert isinstance(parsed, Prediction)
                window.observe_prediction(parsed, now)
                if n % 2 == 0:
                    window.observe_feedback(Feedback(f"r{n}", rng.choice(CLASSES)), now)
                n += 1
        windows.append(window)
    return windows, start + (config.buckets - 1) * config.bucket_seconds + 1


def measure(args: argparse.Namespace) -> dict[str, Any]:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    build_start = time.perf_counter()
    windows, now = build_windows(args)
    build_s = time.perf_counter() - build_start
    for w in windows:
        w.summary(now)  # flushes the batched rows into the bucket arrays
    gc.collect()
    total = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # The pending feedback store, apart: what waits for feedback is bounded by max_pending.
    pending_bytes = sum(sys.getsizeof(w._pending) for w in windows)
    pending_items = sum(len(w._pending) for w in windows)

    runs = []
    for _ in range(args.repeats):
        gc.collect()
        start = time.perf_counter()
        summaries = [w.summary(now) for w in windows]
        runs.append(time.perf_counter() - start)
    features = summaries[0].features
    return {
        "versions": args.versions,
        "features": args.features,
        "per_bucket": args.per_bucket,
        "buckets": 12,
        "build_s": build_s,
        "summary_s_runs": runs,
        "summary_s": statistics.median(runs),
        "per_version_ms": statistics.median(runs) / args.versions * 1000,
        "statistics_per_version": sum(len(s) for s in features.values())
        + len(summaries[0].metrics),
        "bytes_total": total,
        "bytes_per_version": total / args.versions,
        "pending_items": pending_items,
        "pending_dict_bytes": pending_bytes,
        "drifted_versions": sum(1 for s in summaries if s.metrics.get("data_drift_share", 0) > 0),
        "target_s": TARGET_S,
        "target_met": statistics.median(runs) < TARGET_S,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--reference", type=int, default=1000, help="reference rows")
    parser.add_argument("--per-bucket", type=int, default=100, help="predictions per bucket")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    guard = SourceGuard()
    result = measure(args)
    result["machine"] = machine(guard.after())
    result["params"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out = write_results(NAME, result, args.output)
    print(
        table(
            [
                "versions",
                "features",
                "summary median s",
                "per version ms",
                "statistics/version",
                "KiB/version",
                "target < 1 s",
            ],
            [
                [
                    result["versions"],
                    result["features"],
                    f"{result['summary_s']:.3f}",
                    f"{result['per_version_ms']:.2f}",
                    result["statistics_per_version"],
                    f"{result['bytes_per_version'] / 1024:.1f}",
                    "met" if result["target_met"] else "MISSED",
                ]
            ],
        )
    )
    print(
        f"  runs: {', '.join(f'{s:.3f}' for s in result['summary_s_runs'])} s; "
        f"{result['drifted_versions']} of {result['versions']} versions flagged drift "
        f"(half were shifted by 0.3 std); pending feedback {result['pending_items']} items"
    )
    print(f"results: {out}")
    return 1 if args.check and not result["target_met"] else 0


if __name__ == "__main__":
    sys.exit(main())

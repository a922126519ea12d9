"""The periodic refresh's summaries of many windows, timed by the size of the batches they
are computed in (`state.windows.SUMMARY_BATCH`): every window in one batch against
batches of 32 and 64, alternating in one process on the same windows.

The windows are `bench/drift_stats.py`'s (20 features, a 1,000-row reference, the
daemon's default window, every bucket holding data); each timed call recomputes every
summary, as a refresh under traffic does. Reported: CPU seconds per call (median of
--repeats), and the traced peak of one call over what it started from (tracemalloc,
an untimed call per batch size): what a refresh holds at once.

    .venv/bin/python bench/summary_batches.py [--versions 1000 --repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import drift_stats
from _harness import SourceGuard, machine, table, write_results
from model_health_exporter.state import windows as windows_module
from model_health_exporter.state.windows import WindowConfig

NAME = "summary_batches"
ALL = sys.maxsize  # every window in one batch


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[ALL, 32, 64])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    logs = drift_stats._LOGS  # the same defaults as drift_stats
    setup = argparse.Namespace(
        versions=args.versions,
        features=20,
        reference=1000,
        per_bucket=100,
        distinct=20,
        config=WindowConfig(
            bucket_seconds=logs.window_bucket_seconds,
            buckets=logs.window_buckets,
            short_buckets=logs.window_short_buckets,
            min_samples=100,
        ),
    )
    guard = SourceGuard()
    rng = random.Random(args.seed)
    pool = drift_stats.streams(rng, setup, setup.distinct)
    windows = [pool[v % len(pool)].window() for v in range(args.versions)]
    now = drift_stats.START + setup.config.buckets * setup.config.bucket_seconds - 1
    windows_module.summaries(windows, now)  # flushes the rows the windows were fed

    def refresh(batch: int) -> float:
        windows_module.SUMMARY_BATCH = batch  # the measured setting
        for w in windows:
            w._last_summary = None  # recompute every summary
        gc.collect()
        cpu = time.process_time()
        windows_module.summaries(windows, now)
        return time.process_time() - cpu

    runs: dict[int, list[float]] = {b: [] for b in args.batches}
    for _ in range(args.repeats):
        for batch in args.batches:
            runs[batch].append(refresh(batch))
    peaks: dict[int, int] = {}
    for batch in args.batches:
        refresh(batch)  # the summaries being replaced exist, as in the daemon
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            refresh(batch)
            peaks[batch] = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
    results: dict[str, Any] = {
        "versions": args.versions,
        "cpu_s_runs": {str(b): v for b, v in runs.items()},
        "cpu_s": {str(b): statistics.median(v) for b, v in runs.items()},
        "peak_bytes": {str(b): p for b, p in peaks.items()},
        "machine": machine(guard.after()),
    }
    rows = [
        [
            "all" if b == ALL else b,
            f"{statistics.median(runs[b]):.3f}",
            ", ".join(f"{x:.3f}" for x in runs[b]),
            f"{peaks[b] / 1e6:.1f}",
        ]
        for b in args.batches
    ]
    print(table(["batch", "CPU s (median)", "runs", "peak MB"], rows))
    print(f"results: {write_results(NAME, results, args.output)}")


if __name__ == "__main__":
    main()

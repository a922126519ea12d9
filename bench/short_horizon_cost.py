"""What the short horizon adds to a refresh that computes every summary: the windows of
`bench/drift_stats.py`, summarised with the short horizon's drift by the full report (as
before it was reduced: every statistic computed, then all but the flags dropped), by the
reduced report (`stats.reference.drift_flag_reports`), and without a short horizon. The
three are interleaved in one process, so a shared machine's load falls on all alike.

    .venv/bin/python bench/short_horizon_cost.py [--versions 300 --rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from dataclasses import replace

import drift_stats
from model_health_exporter.state import windows as windows_module
from model_health_exporter.stats.reference import drift_flag_reports, drift_reports

MODES = ("full report", "reduced report", "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=300)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--distinct", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)
    setup = argparse.Namespace(reference=1000, per_bucket=100, **vars(args))
    pool = drift_stats.streams(random.Random(args.seed), setup, args.distinct)  # seeded data
    windows = [pool[v % len(pool)].window() for v in range(args.versions)]
    config = drift_stats.CONFIG
    now = drift_stats.START + config.buckets * config.bucket_seconds - 1
    windows_module.summaries(windows, now)  # flushes the batched rows
    runs: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            for w in windows:
                w._last_summary = None
                w._config = replace(config, short_buckets=0) if mode == "none" else config
            windows_module.drift_flag_reports = (  # type: ignore[assignment]  # the old way
                drift_reports if mode == "full report" else drift_flag_reports
            )
            gc.collect()
            start = time.perf_counter()
            windows_module.summaries(windows, now)
            runs[mode].append(time.perf_counter() - start)
    windows_module.drift_flag_reports = drift_flag_reports
    print(f"{args.versions} versions x {args.features} features, {args.rounds} rounds")
    for mode, times in runs.items():
        listed = ", ".join(f"{t:.3f}" for t in times)
        print(f"short horizon by {mode:14}: median {statistics.median(times):.3f} s ({listed})")
    print("load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

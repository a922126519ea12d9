"""The ingester's periodic refresh (`IngestWorker._publish(everything=True)`, every
`summary_refresh`) with nothing new, in-process: 1,000 models x 2 versions, each with a
one-line prediction log (the `logs` case of `bench/idle_scale.py`), read to their end,
then the refresh timed (CPU time, median of --repeats). A diagnostic of what
`bench/idle_scale.py` measures end to end.

    .venv/bin/python bench/idle_refresh.py [--models 1000 --repeats 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)

METRICS = {"generated_at": "2026-11-01T12:00:00+00:00", "accuracy": 0.9}
LINE = json.dumps({"id": "1", "prediction": "a", "confidence": 0.9}) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mhe-idle-refresh-"))
    try:
        for m in range(args.models):
            for v in ("v1", "v2"):
                version = root / f"m{m}" / v
                (version / "predictions").mkdir(parents=True)
                (version / "metrics.json").write_text(json.dumps(METRICS))
                (version / "predictions" / "p.jsonl").write_text(LINE)
        errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
        dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
        registry = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), errors, dropped)
        registry.full_scan()
        worker = IngestWorker(IngestConfig(state_dir=None), lambda: registry.snapshot, errors)
        while worker.poll_once():
            pass
        worker._publish(everything=True)
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            worker._publish(everything=True)
            times.append(time.process_time() - start)
    finally:
        shutil.rmtree(root)
    median = statistics.median(times)
    print(
        f"{len(worker.tallies)} versions with logs, {len(worker.health)} health views: "
        f"a refresh with nothing new takes {median * 1000:.1f} ms of CPU (median of "
        f"{args.repeats}), {median / 10 * 100:.2f}% of a core at one per 10 s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

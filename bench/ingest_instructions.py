"""Instructions per line of ingestion, which a shared machine does not disturb: run under
cachegrind twice, on PREDICTIONS = 2,000 and 12,000, and divide the difference of the
two totals by the difference of the lines read (start-up, imports and the reference
cancel out). The lines are `ingest_daemon.py --parts throughput`'s (15 features, a
1,000-row reference, feedback for 30% one batch later in the same file), written to
DATA/<predictions> on the first run (without cachegrind) and read from there after.

The ingester is the real ModelRegistry and IngestWorker, draining the file by
`poll_once()` as the daemon's loop does, with the start-up objects frozen out of the
cyclic GC and its thresholds set as the daemon does once ready (`daemon._settle_heap`).
`--orjson`: read, split and `orjson.loads` each line instead, the reference of the ratio.

    .venv/bin/python bench/ingest_instructions.py --predictions 2000     # writes the data
    OPENBLAS_NUM_THREADS=1 valgrind --tool=cachegrind --cache-sim=no \\
        --cachegrind-out-file=/dev/null .venv/bin/python bench/ingest_instructions.py \\
        --predictions 2000 [--orjson]

(OPENBLAS_NUM_THREADS=1: OpenBLAS's idle threads spin for a while after each call, by a
different amount in each run, about 1,500 instructions a line of noise.)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import orjson

from ingest_daemon import tree, write_log, write_reference
from ingest_throughput import make_worker
from model_health_exporter import daemon

SEED = 1
FEATURES = 15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=2000)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "mhe-ingest-instructions"
    )
    parser.add_argument("--orjson", action="store_true", help="read, split, orjson.loads only")
    args = parser.parse_args()
    root = args.data / str(args.predictions) / "models"
    log = root / "model-000" / "v01" / "predictions" / "p.jsonl"
    if not log.exists():
        (version_dir,) = tree(root, 1, SEED)
        write_reference(version_dir, SEED, FEATURES)
        lines = write_log(log, SEED, 0, args.predictions, FEATURES, joined=True)
        print(f"wrote {lines} lines to {log}; run again (under cachegrind) to measure")
        return
    if args.orjson:
        loads = orjson.loads
        n = 0
        for line in log.read_bytes().split(b"\n"):
            if line:
                loads(line)
                n += 1
        print(f"lines {n}")
        return
    with tempfile.TemporaryDirectory() as state:
        worker, _ = make_worker(root, Path(state))
        daemon._settle_heap()  # as the daemon does once ready: frozen, its GC thresholds
        n = 0
        while lines_read := worker.poll_once(behind_only=True) or worker.poll_once():
            n += lines_read
    print(f"lines {n}")


if __name__ == "__main__":
    main()

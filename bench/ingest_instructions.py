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

The ingester's clock (`time.time` and `time.monotonic` as its module sees them) is
simulated: it moves on by 1 s for every RATE lines read, as if the lines arrived at
about the daemon's rate. With the real clock, the work that runs by the clock (window
summaries once per `summary_interval`, a bucket closed every minute) ran as often as
the wall time of the run allowed, 30-50 times slower under cachegrind and slower still
on a loaded machine: the figure then varied by 1-3% with the machine's load
(`--real-clock` measures that way, as sections 18-23 did).

`--runs N` does the whole measure in one command: it writes the data of both sizes if
missing, runs cachegrind N times on each (with OPENBLAS_NUM_THREADS=1 and
PYTHONHASHSEED=0), and prints every run's instructions a line and their median:

    .venv/bin/python bench/ingest_instructions.py --runs 5 [--orjson] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from ingest_daemon import tree, write_log, write_reference
from ingest_throughput import make_worker
from model_health_exporter import daemon
from model_health_exporter.state import ingest

SEED = 1
FEATURES = 15
RATE = 100_000  # lines a simulated second
SIZES = (2000, 22000)  # the smaller run's total cancels start-up, imports and the reference


class Clock:
    """The ingester's `time` module: time() and monotonic() move on when told."""

    def __init__(self) -> None:
        self.now, self.clock = time.time(), time.monotonic()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.clock

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.clock += seconds


def _cachegrind(
    predictions: int, data: Path, orjson_only: bool, real_clock: bool
) -> tuple[int, int]:
    """(instructions, lines read) of one run of this script under cachegrind."""
    command = [sys.executable, __file__, "--predictions", str(predictions), "--data", str(data)]
    if orjson_only:
        command.append("--orjson")
    if real_clock:
        command.append("--real-clock")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         *command],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    refs = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    lines = re.search(r"^lines (\d+)$", done.stdout, re.MULTILINE)
    if refs is None or lines is None:
        raise SystemExit(f"no count in the output of {command}:\n{done.stdout}{done.stderr}")
    return int(refs.group(1).replace(",", "")), int(lines.group(1))


def measure(runs: int, data: Path, orjson_only: bool, jobs: int, real_clock: bool) -> None:
    """Instructions a line, `runs` times: (large total - small total) / (lines apart)."""
    for predictions in SIZES:  # the data, written without cachegrind
        command = [sys.executable, __file__, "--predictions", str(predictions)]
        subprocess.run([*command, "--data", str(data)], check=True, capture_output=True)
    with ThreadPoolExecutor(jobs) as pool:
        results = list(
            pool.map(
                lambda size: _cachegrind(size, data, orjson_only, real_clock),
                [size for _ in range(runs) for size in SIZES],
            )
        )
    figures = []
    for run in range(runs):
        (small, small_lines), (large, large_lines) = results[2 * run : 2 * run + 2]
        figures.append((large - small) / (large_lines - small_lines))
        print(f"run {run + 1}: {figures[-1]:,.0f} instructions a line", flush=True)
    what = "orjson.loads" if orjson_only else "ingestion"
    print(f"{what}: median {statistics.median(figures):,.0f} instructions a line "
          f"({runs} runs, {SIZES[0]:,} -> {SIZES[1]:,} predictions)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, default=2000)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "mhe-ingest-instructions"
    )
    parser.add_argument("--orjson", action="store_true", help="read, split, orjson.loads only")
    parser.add_argument(
        "--runs", type=int, default=0, help="measure under cachegrind this many times, median"
    )
    parser.add_argument("--jobs", type=int, default=2, help="cachegrind runs at a time")
    parser.add_argument("--real-clock", action="store_true", help="the ingester reads the clock")
    args = parser.parse_args()
    if args.runs:
        measure(args.runs, args.data, args.orjson, args.jobs, args.real_clock)
        return
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
    clock = Clock()
    if not args.real_clock:
        ingest.time = clock  # type: ignore[assignment]  # time() and monotonic() only
    with tempfile.TemporaryDirectory() as state:
        worker, _ = make_worker(root, Path(state))
        daemon._settle_heap()  # as the daemon does once ready: frozen, its GC thresholds
        n = 0
        while lines_read := worker.poll_once(behind_only=True) or worker.poll_once():
            n += lines_read
            clock.advance(lines_read / RATE)
    print(f"lines {n}")


if __name__ == "__main__":
    main()

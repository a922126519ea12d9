"""The checkpoint's cost with many versions of full windows, end to end through the
daemon as a user starts it (`--models.dir`, `--state.dir`, default flags but
--logs.window-bucket-seconds=BUCKET_SECONDS, so that the default window's 60 buckets fill
in a minute: memory and checkpoints depend on buckets holding data, not on their length).

VERSIONS versions (one model each, all active) with 20 features, a 1,000-row reference
and 1,000 predictions each with ids (all waiting for feedback), appended in 60 slices,
one per bucket period, as `ingest_daemon.py --parts memory --memory-window full` does.
Then for MEASURE seconds one prediction keeps arriving at every version every 0.5 s, so
that every window stays full and the daemon writes its checkpoint every
--logs.checkpoint-interval (5 s by default). Reported: the daemon's CPU seconds
(utime + stime) over that time, the checkpoints it wrote (renames of checkpoint.json
seen), CPU per checkpoint (everything the daemon did in that time, divided by the
saves: an upper bound), the checkpoint's size, VmRSS at the end and VmHWM (the peak RSS
since start).

Diagnosis in this process: the daemon's last checkpoint loaded into an `IngestWorker`
(after the daemon stopped; then `gc.freeze()` as the daemon does after its start),
`save_checkpoint` timed REPEAT times (CPU time, median), the peak of Python allocations
during one save (tracemalloc), and the CPU time of a save's parts summed over the
windows: a whole window's JSON, its reference's, and its waiting predictions listed and
encoded.

    .venv/bin/python bench/checkpoint_cost.py [--versions 200] [--measure 30]
        [--bucket-seconds 1] [--repeat 5] [--flags='--logs.checkpoint-interval=3600']

With --flags='--logs.checkpoint-interval=3600' the daemon writes no checkpoint in the
measured time: its CPU then is what the rest costs, and the difference to a run with
checkpoints what they cost.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec

from _harness import Daemon, SourceGuard, machine, table, wait_until, write_results
from ingest_daemon import counts, records, tree, write_reference
from model_health_exporter.config import load_settings
from model_health_exporter.daemon import ingest_config
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestWorker, _json, _window_json
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)

NAME = "checkpoint_cost"
SLICES = 60  # the default window's buckets
FEATURES = 20


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_bytes(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key}")


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def run_daemon(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    root = work / "models"
    dirs = tree(root, args.versions, args.seed)
    batches = []
    for i, d in enumerate(dirs):
        write_reference(d, args.seed + i, FEATURES)
        batches.append(records(args.seed + i, 0, 1000, FEATURES)[0])
    state = work / "state"
    checkpoint = state / "checkpoint.json"
    flags = [
        f"--state.dir={state}",
        f"--logs.window-bucket-seconds={args.bucket_seconds}",
        *args.flags,
    ]
    with Daemon(root, work / "daemon.log", flags) as d:
        d.wait_ready(120)
        start = time.monotonic()
        for k in range(SLICES):  # every bucket of the window holds data
            time.sleep(max(0.0, start + k * args.bucket_seconds - time.monotonic()))
            for d_, pred in zip(dirs, batches, strict=True):
                part = pred[k * len(pred) // SLICES : (k + 1) * len(pred) // SLICES]
                with (d_ / "predictions" / "p.jsonl").open("ab") as f:
                    f.write(b"\n".join(part) + b"\n")
        wait_until(
            lambda: sum(counts(d.port).values()) >= 1000 * args.versions,
            600,
            "every version's predictions",
            interval=0.5,
        )
        extra = records(args.seed, 10**6, 10_000, FEATURES)[0]
        cpu0, saves, seen = cpu_seconds(d.pid), 0, inode(checkpoint)
        begin = time.monotonic()
        tick = 0
        while time.monotonic() - begin < args.measure:
            # Data keeps arriving, at every version: every interval has a checkpoint, and
            # every window stays full (an idle window's oldest buckets expire as time
            # passes, a bucket a second here).
            for d_ in dirs:
                with (d_ / "predictions" / "p.jsonl").open("ab") as f:
                    f.write(extra[tick % len(extra)] + b"\n")
            tick += 1
            for _ in range(5):
                time.sleep(0.1)
                now = inode(checkpoint)
                if now != seen:
                    saves, seen = saves + 1, now
        elapsed = time.monotonic() - begin
        cpu = cpu_seconds(d.pid) - cpu0
        out = {
            "versions": args.versions,
            "measured_s": elapsed,
            "cpu_s": cpu,
            "checkpoints": saves,
            "cpu_per_checkpoint_s": cpu / saves if saves else None,
            "checkpoint_bytes": checkpoint.stat().st_size if checkpoint.exists() else None,
            "rss": status_bytes(d.pid, "VmRSS"),
            "hwm": status_bytes(d.pid, "VmHWM"),
        }
    shutil.copy(checkpoint, work / "saved.json")
    return out


def diagnose(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """save_checkpoint of the daemon's last checkpoint, in this process."""

    state = work / "diagnosis"
    state.mkdir()
    shutil.copy(work / "saved.json", state / "checkpoint.json")
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    registry = ModelRegistry(RegistryConfig(roots=(RootConfig(work / "models"),)), errors, dropped)
    registry.full_scan()
    # the daemon's settings: its window and reference settings, so that the references
    # read again are the saved ones and the windows keep their drift counts
    settings = load_settings(
        {
            "models": {"dirs": [work / "models"]},
            "state": {"dir": state},
            "logs": {"window_bucket_seconds": args.bucket_seconds},
        }
    )
    worker = IngestWorker(ingest_config(settings), lambda: registry.snapshot, errors)
    worker.poll_once()  # as the daemon's first poll: references read, nothing new
    with_drift = sum(
        any(getattr(b, "layout", None) and b.layout.sizes for b in w._buckets)
        for w in worker._windows.values()
    )
    # as the daemon does after its start: the collector skips what was loaded
    gc.collect()
    gc.freeze()
    cpu = []
    for _ in range(args.repeat):
        t = time.process_time()
        assert worker.save_checkpoint()
        cpu.append(time.process_time() - t)
    # where the time of one save goes, summed over the windows
    parts = {"window": 0.0, "reference": 0.0, "pending": 0.0}
    sizes = dict.fromkeys(parts, 0)
    for window in worker._windows.values():
        t = time.process_time()
        sizes["window"] += len(_window_json(window))
        parts["window"] += time.process_time() - t
        if window.reference is not None:
            t = time.process_time()
            sizes["reference"] += len(_json(window.reference.to_dict()))
            parts["reference"] += time.process_time() - t
        t = time.process_time()
        pending = window._pending
        # as the code measured lists them (before PendingPredictions.saved: items())
        listed = pending.saved() if hasattr(pending, "saved") else [*map(list, pending.items())]
        sizes["pending"] += len(msgspec.json.encode(listed))
        parts["pending"] += time.process_time() - t
    tracemalloc.start()
    worker.save_checkpoint()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "save_cpu_s": statistics.median(cpu),
        "save_cpu_per_version_ms": 1000 * statistics.median(cpu) / args.versions,
        "save_peak_alloc_bytes": peak,
        "checkpoint_bytes": (state / "checkpoint.json").stat().st_size,
        "windows_with_drift": with_drift,
        "parts_cpu_s": parts,
        "parts_bytes": sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument("--measure", type=float, default=30.0)
    parser.add_argument("--bucket-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--flags",
        type=shlex.split,
        default=[],
        help="more daemon flags, e.g. '--logs.checkpoint-interval=3600' (no checkpoints)",
    )
    parser.add_argument("--keep", type=Path, default=None, help="copy the checkpoint there")
    args = parser.parse_args()
    guard = SourceGuard()
    with tempfile.TemporaryDirectory(prefix="mhe-ckpt-") as tmp:
        work = Path(tmp)
        load_before = os.getloadavg()[0]
        daemon = run_daemon(work, args)
        diagnosis = diagnose(work, args)
        if args.keep is not None:
            shutil.copy(work / "saved.json", args.keep)
        results = {
            "machine": machine(guard.after()),
            "load_average_1m": [load_before, os.getloadavg()[0]],
            "daemon": daemon,
            "diagnosis": diagnosis,
        }
    mib = 1024 * 1024
    per = daemon["cpu_per_checkpoint_s"]
    per_checkpoint = "-" if per is None else f"{per:.3f}"
    rows = [
        ["daemon CPU per checkpoint (upper bound)", f"{per_checkpoint} s"],
        ["checkpoints in the measured time", f"{daemon['checkpoints']} in {args.measure:.0f} s"],
        ["daemon CPU in the measured time", f"{daemon['cpu_s']:.2f} s"],
        ["checkpoint size (in process)", f"{diagnosis['checkpoint_bytes'] / mib:.1f} MiB"],
        ["VmRSS at the end / VmHWM", f"{daemon['rss'] / mib:.0f} / {daemon['hwm'] / mib:.0f} MiB"],
        ["save_checkpoint CPU (in process)", f"{diagnosis['save_cpu_s']:.3f} s"],
        ["  per version", f"{diagnosis['save_cpu_per_version_ms']:.2f} ms"],
        ["peak allocations during a save", f"{diagnosis['save_peak_alloc_bytes'] / mib:.1f} MiB"],
        *(
            [f"  of which {part}", f"{cpu:.3f} s, {diagnosis['parts_bytes'][part] / mib:.1f} MiB"]
            for part, cpu in diagnosis["parts_cpu_s"].items()
        ),
    ]
    print(table(["checkpoint", f"{args.versions} versions of full windows"], rows))
    print(f"load average: {results['load_average_1m']}", file=sys.stderr)
    print(f"results: {write_results(NAME, results, args.output)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Aggregate ingestion rate of two shard instances against one instance (docs/scaling.md).

A nested model tree of MODELS models, chosen so that half fall in each shard of two
(so the comparison measures the instances, not an uneven split; real model names split
about evenly once there are many). The daemons are started as users start them
(`python -m model_health_exporter run`, a --state.dir each, default flags unless
--flags adds some), wait until ready, and then every model's active version gets its
prediction log at once: a file of LINES lines (15 features, 3 classes with
probabilities, latency, an id, and feedback for a third of the predictions a few lines
after them) renamed into its `predictions/` folder. Timed from the renames until
`routing_ml_predictions_total`, summed over the instances' /metrics (polled every
POLL seconds), reaches every prediction written.

Runs alternate one instance / two instances, REPEATS times each, on fresh trees; the
median rate of each and their ratio are reported with the machine's load during each
run (other processes share the cores: /proc/loadavg, and the CPU time of the rest of
the machine against the daemons' own, from /proc/stat and /proc/PID/stat). Lines per
CPU-second of the daemons is the figure other load disturbs least.

    .venv/bin/python bench/shard_throughput.py [--models 8 --lines 40000 --repeats 3]
        [--flags=--logs.poll-interval=0.001]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from _harness import Daemon, http_get, machine, source_state, table, write_results
from model_health_exporter.sharding import shard_of

CLASSES = ("P100", "P200", "P300")
NUMERIC = 10
CATEGORICAL = 5
POLL = 0.1


def balanced_models(count: int, shards: int = 2) -> list[str]:
    """`count` names, the same number in each shard of `shards`."""
    names: list[str] = []
    per_shard = dict.fromkeys(range(shards), 0)
    i = 0
    while len(names) < count:
        name = f"model-{i:03d}"
        shard = shard_of(name, shards)
        if per_shard[shard] < count // shards:
            per_shard[shard] += 1
            names.append(name)
        i += 1
    return names


def log_text(lines: int, seed: int) -> str:
    rng = random.Random(seed)
    out = []
    predictions = 0
    pending: list[tuple[int, str]] = []
    while predictions < lines:
        weights = [rng.random() + 0.05 for _ in CLASSES]
        total = sum(weights)
        probabilities = {c: round(w / total, 3) for c, w in zip(CLASSES, weights, strict=True)}
        features: dict[str, Any] = {f"N{j}": round(rng.gauss(j, 1), 2) for j in range(NUMERIC)}
        features |= {f"C{j}": f"v{rng.randrange(8)}" for j in range(CATEGORICAL)}
        rid = f"req-{seed}-{predictions}"
        record = {
            "timestamp": "2026-11-22T09:00:00Z",
            "id": rid,
            "features": features,
            "prediction": max(probabilities, key=probabilities.__getitem__),
            "probabilities": probabilities,
            "latency_ms": round(rng.lognormvariate(3, 0.4), 1),
            "error": None,
        }
        out.append(json.dumps(record))
        predictions += 1
        if predictions % 3 == 0:
            pending.append((predictions + 5, rid))
        while pending and pending[0][0] <= predictions:
            out.append(json.dumps({"id": pending.pop(0)[1], "actual": rng.choice(CLASSES)}))
    return "\n".join(out) + "\n"


def build(root: Path, models: Sequence[str], lines: int) -> list[tuple[Path, Path]]:
    """The tree, and per model (staged log, its place in the predictions folder)."""
    moves = []
    for index, model in enumerate(models):
        version = root / model / "v1"
        (version / "predictions").mkdir(parents=True)
        (version / "metrics.json").write_text(
            json.dumps(
                {
                    "generated_at": "2026-11-01T00:00:00Z",
                    "model_version": f"{model}-v1",
                    "training_samples": 10000,
                    "accuracy": 0.9,
                    "precision_weighted": 0.9,
                    "recall_weighted": 0.9,
                    "f1_weighted": 0.9,
                }
            )
        )
        staged = root.parent / f"staged-{model}.jsonl"
        staged.write_text(log_text(lines, index))
        moves.append((staged, version / "predictions" / "bench.jsonl"))
    return moves


def predictions_total(port: int) -> float:
    _, body = http_get(port, "/metrics", timeout=10)
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "routing_ml_predictions":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def run(workdir: Path, shards: int, args: argparse.Namespace, repeat: int) -> dict[str, Any]:
    name = f"{shards}-shard-{repeat}"
    root = workdir / name / "models"
    root.mkdir(parents=True)
    models = balanced_models(args.models)
    moves = build(root, models, args.lines)
    expected = args.models * args.lines
    with ExitStack() as stack:
        daemons = []
        for index in range(shards):
            flags = [f"--state.dir={workdir / name / f'state-{index}'}", *args.flags]
            if shards > 1:
                flags.append(f"--models.shard={index}/{shards}")
            daemon = stack.enter_context(Daemon(root, workdir / name / f"d{index}.log", flags))
            daemons.append(daemon)
        for daemon in daemons:
            daemon.wait_ready(60)
        time.sleep(1.0)  # let start-up settle before the clock starts
        cpu_before = [d.cpu_seconds() for d in daemons]
        busy_before, total_before = cpu_ticks()
        load_before = os.getloadavg()[0]
        start = time.monotonic()
        for staged, target in moves:
            staged.rename(target)
        deadline = start + args.timeout
        counted = 0.0
        while counted < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {counted} of {expected} after {args.timeout}s")
            time.sleep(POLL)
            counted = sum(predictions_total(d.port) for d in daemons)
        elapsed = time.monotonic() - start
        busy_after, total_after = cpu_ticks()
        daemon_cpu = sum(d.cpu_seconds() - b for d, b in zip(daemons, cpu_before, strict=True))
    hz = os.sysconf("SC_CLK_TCK")
    machine_busy = (busy_after - busy_before) / hz
    capacity = (total_after - total_before) / hz
    return {
        "instances": shards,
        "seconds": elapsed,
        "lines_per_second": expected / elapsed,
        "daemon_cpu_seconds": daemon_cpu,
        "other_cpu_seconds": max(0.0, machine_busy - daemon_cpu),
        "machine_cpu_capacity_seconds": capacity,
        "loadavg_1m_before": load_before,
        "loadavg_1m_after": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--lines", type=int, default=40_000, help="predictions per model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument(
        "--flags", type=shlex.split, default=[], help="extra daemon flags, e.g. '--logs.x=1'"
    )
    args = parser.parse_args()
    source = source_state()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="shard-throughput-") as tmp:
        for repeat in range(args.repeats):
            for shards in (1, 2):
                result = run(Path(tmp), shards, args, repeat)
                runs.append(result)
                print(
                    f"{shards} instance(s): {result['lines_per_second']:,.0f} lines/s "
                    f"({result['seconds']:.1f} s; daemons {result['daemon_cpu_seconds']:.1f} "
                    f"CPU-s, rest of the machine {result['other_cpu_seconds']:.1f} CPU-s "
                    f"of {result['machine_cpu_capacity_seconds']:.1f}; "
                    f"load {result['loadavg_1m_before']:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
    medians = {
        n: statistics.median(r["lines_per_second"] for r in runs if r["instances"] == n)
        for n in (1, 2)
    }
    rows = [
        [
            f"{r['instances']} instance(s), run {i // 2 + 1}",
            f"{r['lines_per_second']:,.0f}",
            f"{r['seconds']:.1f}",
            f"{r['daemon_cpu_seconds']:.1f}",
            f"{args.models * args.lines / r['daemon_cpu_seconds']:,.0f}",
            f"{r['other_cpu_seconds']:.1f} / {r['machine_cpu_capacity_seconds']:.1f}",
            f"{r['loadavg_1m_before']:.2f}",
        ]
        for i, r in enumerate(runs)
    ]
    print(
        table(
            [
                "run",
                "lines/s",
                "s",
                "daemons' CPU-s",
                "lines per daemon CPU-s",
                "others' CPU-s / capacity",
                "load 1m",
            ],
            rows,
        )
    )
    print(
        f"\nmedian: 1 instance {medians[1]:,.0f} lines/s, 2 instances {medians[2]:,.0f} "
        f"lines/s, ratio {medians[2] / medians[1]:.2f}"
    )
    path = write_results(
        "shard_throughput",
        {
            "machine": machine(source),
            "args": {**vars(args), "workdir": str(args.workdir)},
            "runs": runs,
            "medians": medians,
        },
    )
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Idle cost and reaction at scale: what the daemon costs while nothing is written, how
soon a changed metrics.json shows on /metrics, and how an inotify queue overflow is
recovered, with thousands of model versions and prediction-log files.

Cases (each a fresh tree and a fresh daemon, started as users start it: a subprocess
with default flags, --models.dir and --state.dir; --flags adds some):

- `versions`: 1,100 models with 4,000 versions between them (3 or 4 each), 1,000 of
  them with a one-line prediction log in `<version>/predictions/`;
- `logs`: 2,000 versions (1,000 models x 2) each with a one-line prediction log;
- `logs-path`: 1,000 versions and 2,000 one-line logs in one folder outside the tree,
  given with --logs.path.

For each: wait until the daemon is caught up (/readyz, every log line counted, CPU
quiet), measure its idle CPU from /proc/<pid>/stat over --idle seconds, then --trials
times replace one metrics.json atomically and time until /metrics serves the new value.
In the `versions` case, also stop the daemon (SIGSTOP), create --burst files in a few
version folders (more events than /proc/sys/fs/inotify/max_queued_events lets the kernel
queue), let it go on (SIGCONT), and count the overflows and rescans it reports, and its
CPU in the 10 s after.

    .venv/bin/python bench/idle_scale.py [--cases versions,logs,logs-path] [--idle 20]
        [--flags='--logs.window-short-buckets=0']
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import (
    Daemon,
    SourceGuard,
    Version,
    http_get,
    machine,
    model_names,
    percentile,
    replace_json,
    table,
    timed_get,
    version_names,
    wait_until,
    write_model,
    write_results,
)

NAME = "idle_scale"
NAMESPACE = "routing_ml"
TARGET_IDLE_CORE = 0.02
TARGET_REACTION_S = 1.0
ACCURACY_PATH = f"/metrics?name[]={NAMESPACE}_model_accuracy"
PREDICTIONS_PATH = f"/metrics?name[]={NAMESPACE}_predictions_total"
EXPORTER_PATH = f"/metrics?name[]={NAMESPACE}_exporter_errors_total"


def log_line(model: str, version: str, with_names: bool, n: int = 0) -> str:
    record: dict[str, Any] = {
        "timestamp": "2026-11-22T09:00:00Z",
        # distinct in every file: files with the same lines are copies, read once
        "id": f"{model}-{version}-{n}",
        "features": {"ITEM_CD": "I8", "QTY": 41},
        "prediction": "P100",
        "probabilities": {"P100": 0.75, "P200": 0.25},
        "latency_ms": 25.4,
        "error": None,
    }
    if with_names:
        record |= {"model": model, "version": version}
    return json.dumps(record) + "\n"


def build(root: Path, models: int, versions: int, logged: int, seed: int) -> list[Version]:
    """`versions` spread over `models` (nested layout), the first `logged` of them (in
    model order) with a one-line `predictions/predictions.jsonl`."""
    out: list[Version] = []
    per_model, extra = divmod(versions, models)
    for m, model in enumerate(model_names(models)):
        names = version_names(per_model + (1 if m < extra else 0))
        out += write_model(root, model, names, seed)
    for v in out[:logged]:
        (v.path.parent / "predictions").mkdir()
        (v.path.parent / "predictions" / "predictions.jsonl").write_text(
            log_line(v.model, v.version, with_names=False)
        )
    return out


def total(body: bytes, family: str) -> float:
    return sum(
        float(line.rsplit(b" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(family.encode() + b"{")
    )


def errors(port: int, reason: str) -> float:
    _, body = timed_get(port, EXPORTER_PATH)
    pattern = rf'{NAMESPACE}_exporter_errors_total{{[^}}]*reason="{reason}"[^}}]*}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, body.decode()))


def cpu_over(daemon: Daemon, seconds: float) -> float:
    """The daemon's CPU over `seconds` of wall time, in cores (1.0 = one core busy)."""
    cpu0, t0 = daemon.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (daemon.cpu_seconds() - cpu0) / (time.monotonic() - t0)


def wait_caught_up(daemon: Daemon, lines: int, timeout: float) -> float:
    """Seconds until every log line is counted and the CPU is quiet (below 20% of a core
    over 2 s; at most 60 s of waiting for that)."""
    start = time.monotonic()

    def counted() -> bool:
        _, body = timed_get(daemon.port, PREDICTIONS_PATH)
        return total(body, f"{NAMESPACE}_predictions_total") >= lines

    wait_until(counted, timeout, f"{lines} predictions counted", interval=0.5)
    quiet_deadline = time.monotonic() + 60
    while time.monotonic() < quiet_deadline and cpu_over(daemon, 2.0) > 0.2:
        pass
    return time.monotonic() - start


def served_accuracy(port: int, v: Version) -> float | None:
    _, body = timed_get(port, ACCURACY_PATH)
    prefix = f'{NAMESPACE}_model_accuracy{{model="{v.model}",version="{v.version}"}} '.encode()
    start = body.find(prefix)
    if start < 0:
        return None
    end = body.find(b"\n", start)
    return float(body[start + len(prefix) : end])


def last_scan(port: int) -> float:
    _, body = timed_get(port, f"/metrics?name[]={NAMESPACE}_exporter_last_scan_timestamp_seconds")
    return total(body, f"{NAMESPACE}_exporter_last_scan_timestamp_seconds")


def reaction(
    daemon: Daemon, versions: list[Version], trials: int, seed: int
) -> tuple[list[float], list[bool]]:
    """Seconds from an atomic replace of a metrics.json to /metrics serving it, and
    whether a full rescan (the periodic resync) finished meanwhile."""
    rng = random.Random(seed)
    exported: list[Version] = []
    out, rescans = [], []
    for i in range(trials):
        while True:  # a version of an exported model (beyond --models.max-models: not)
            v = rng.choice(versions)
            if v in exported or served_accuracy(daemon.port, v) == v.doc["accuracy"]:
                exported.append(v)
                break
        accuracy = 0.5 + (i + 1) / 1_000_000  # unique; file values are >= 0.8
        tmp = replace_json(v.path, {**v.doc, "accuracy": accuracy})
        scanned = last_scan(daemon.port)
        start = time.perf_counter()
        tmp.replace(v.path)
        wait_until(
            lambda v=v, a=accuracy: served_accuracy(daemon.port, v) == a,  # type: ignore[misc]
            120,
            f"{v.model}/{v.version} accuracy {accuracy}",
            interval=0.02,
        )
        out.append(time.perf_counter() - start)
        rescans.append(last_scan(daemon.port) != scanned)
        v.doc["accuracy"] = accuracy
        time.sleep(0.5)  # let the event settle before the next change
    return out, rescans


def overflow_lines(log_path: Path) -> int:
    text = log_path.read_text(errors="replace").lower()
    return sum("overflow" in line for line in text.splitlines())


def overflow(daemon: Daemon, versions: list[Version], burst: int, log_path: Path) -> dict[str, Any]:
    """Stop the daemon (SIGSTOP), create `burst` files in four version folders, so that
    more events wait than the kernel queues (two each: created, closed), and let it go on
    (SIGCONT): count the overflows and rescans it reports and its CPU over the next 10 s."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    before = errors(daemon.port, "inotify_overflow")
    logged_before = overflow_lines(log_path)
    dirs = [v.path.parent for v in versions[:4]]
    daemon.proc_signal(signal.SIGSTOP)
    try:
        for i in range(burst):
            (dirs[i % len(dirs)] / f"burst-{i}").touch()
    finally:
        daemon.proc_signal(signal.SIGCONT)
    cpu_after = cpu_over(daemon, 10.0)
    after = errors(daemon.port, "inotify_overflow")
    logged = overflow_lines(log_path) - logged_before
    for i in range(burst):
        (dirs[i % len(dirs)] / f"burst-{i}").unlink()
    return {
        "max_queued_events": limit,
        "files": burst,
        "overflows_counted": after - before,
        "overflow_log_lines": logged,
        "cpu_cores_10s_after": cpu_after,
    }


def run_case(case: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root = work / case / "models"
    state = work / case / "state"
    state.mkdir(parents=True)
    extra = [f"--state.dir={state}", f"--namespace={NAMESPACE}", *args.flags]
    t0 = time.perf_counter()
    if case == "versions":
        versions = build(root, 1100, 4000, 1000, args.seed)
        lines = 1000
    elif case == "logs":
        versions = build(root, 1000, 2000, 2000, args.seed)
        lines = 2000
    else:  # logs-path
        versions = build(root, 1000, 1000, 0, args.seed)
        logs = work / case / "logs"
        logs.mkdir()
        for i in range(2000):
            v = versions[i % len(versions)]
            (logs / f"predictions-{i:04d}.jsonl").write_text(log_line(v.model, v.version, True, i))
        extra.append(f"--logs.path={logs}/predictions-*.jsonl")
        lines = 2000
    build_s = time.perf_counter() - t0
    print(f"{case}: tree built in {build_s:.1f} s", file=sys.stderr, flush=True)
    log_path = work / case / "daemon.log"
    with Daemon(root, log_path, extra) as daemon:
        try:
            ready_s = daemon.wait_ready(timeout=600)
            caught_up_s = wait_caught_up(daemon, lines, timeout=600)
            idle = cpu_over(daemon, args.idle)
            print(f"{case}: idle {idle * 100:.1f}% of a core", file=sys.stderr, flush=True)
            latencies, rescans = reaction(daemon, versions, args.trials, args.seed)
            print(f"{case}: reaction {latencies} rescan {rescans}", file=sys.stderr, flush=True)
            result: dict[str, Any] = {
                "versions": len(versions),
                "log_files": lines,
                "build_s": build_s,
                "ready_s": ready_s,
                "caught_up_s": caught_up_s,
                "idle_cores": idle,
                "reaction_s": latencies,
                "reaction_with_rescan": rescans,
                "reaction_median_s": percentile(latencies, 50),
                "reaction_max_s": max(latencies),
            }
            if case == "versions" and args.burst:
                result["overflow"] = overflow(daemon, versions, args.burst, log_path)
                print(f"{case}: overflow {result['overflow']}", file=sys.stderr, flush=True)
            status = http_get(daemon.port, "/readyz")[0]
            result["ready_after"] = status == 200
            result["rss_bytes"] = daemon.proc_status().get("VmRSS")
        except Exception:
            print(daemon.log_tail(), file=sys.stderr)
            raise
    return result


def report(results: dict[str, Any], out: Path) -> None:
    rows = []
    for case, r in results["cases"].items():
        rows.append(
            [
                case,
                r["versions"],
                r["log_files"],
                r["idle_cores"] * 100,
                r["reaction_median_s"] * 1000,
                r["reaction_max_s"] * 1000,
            ]
        )
    print(
        table(
            ["case", "versions", "log files", "idle % of a core", "reaction median ms", "max ms"],
            rows,
        )
    )
    o = results["cases"].get("versions", {}).get("overflow")
    if o:
        print(
            f"overflow: {o['files']} files created while the daemon was stopped "
            f"(max_queued_events {o['max_queued_events']}): {o['overflows_counted']:.0f} "
            f"overflows counted, {o['overflow_log_lines']} log lines, "
            f"{o['cpu_cores_10s_after'] * 100:.1f}% of a core over the next 10 s"
        )
    print(
        f"targets: idle < {TARGET_IDLE_CORE * 100:.0f}% of a core, "
        f"reaction < {TARGET_REACTION_S * 1000:.0f} ms"
    )
    print(f"results: {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="versions,logs,logs-path")
    parser.add_argument(
        "--idle",
        type=float,
        default=60.0,
        help="seconds of idle measured (60: one of each periodic task of the daemon)",
    )
    parser.add_argument("--trials", type=int, default=10, help="metrics.json changes timed")
    parser.add_argument("--burst", type=int, default=20_000, help="files; 0: no overflow test")
    parser.add_argument(
        "--flags",
        type=shlex.split,
        default=[],
        help="extra daemon flags, e.g. '--logs.window-short-buckets=0'",
    )
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--workdir", type=Path, help="where to build the trees (default: tmp)")
    parser.add_argument("--output", type=Path, help=f"default: bench/results/{NAME}.json")
    args = parser.parse_args(argv)
    guard = SourceGuard()
    cases = {}
    with tempfile.TemporaryDirectory(prefix="mhe-idle-", dir=args.workdir) as work:
        for case in args.cases.split(","):
            cases[case] = run_case(case, args, Path(work))
    results = {
        "benchmark": NAME,
        "machine": machine(guard.after()),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "cases": cases,
    }
    out = write_results(NAME, results, args.output)
    report(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

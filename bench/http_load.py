"""HTTP server under load, idle clients and a low open-files limit.

The daemon is started as users start it (default flags but the listen address) on the
example models (examples/models, 5 versions: what a new user tries first), or with
--models N on a generated tree of N models x 10 versions, then:

1. load: REQUESTS GETs of /metrics, CONCURRENCY at a time, each on a new connection;
   latency from connect to the last byte (target: p99 < 50 ms).
2. idle: IDLE TCP connections opened and held without sending anything, then PROBES
   scrapes of /metrics, one after another (target: every one < 100 ms).
3. trickle: TRICKLE clients each sending a request head a byte every 50 ms (slower than
   the header timeout allows: more clients than workers, all mid-head), then PROBES
   scrapes (target: every one < 100 ms: a client mid-head holds no worker).
4. fd limit: a second daemon with RLIMIT_NOFILE = FD_LIMIT (soft and hard), FD_CONNS
   connections opened and held (more than the limit allows), then PROBES scrapes
   (target: every one answers).

    .venv/bin/python bench/http_load.py                 # the figures in docs/benchmarks.md
    .venv/bin/python bench/http_load.py --short         # a quick run (CI: tests/integration)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import (
    HOST,
    Daemon,
    SourceGuard,
    build_tree,
    http_get,
    machine,
    summary_ms,
    table,
    write_results,
)

NAME = "http_load"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"
LOAD_P99_MS = 50.0
IDLE_MAX_MS = 100.0


class LimitedDaemon(Daemon):
    """The daemon with its open-files limit lowered (soft and hard) by util-linux's
    prlimit, which then executes it (the same PID)."""

    def __init__(self, models_dir: Path, log_path: Path, nofile: int) -> None:
        super().__init__(models_dir, log_path)
        self.args = ["prlimit", f"--nofile={nofile}:{nofile}", "--", *self.args]


def timed_scrape(port: int, timeout: float = 10) -> tuple[float, int]:
    start = time.perf_counter()
    status, _ = http_get(port, "/metrics", timeout=timeout)
    return time.perf_counter() - start, status


def load(port: int, requests: int, concurrency: int) -> dict[str, Any]:
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            try:
                elapsed, status = timed_scrape(port)
            except OSError as exc:
                with lock:
                    errors.append(repr(exc))
                continue
            with lock:
                (times if status == 200 else errors).append(elapsed if status == 200 else status)  # type: ignore[arg-type]

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        **summary_ms(times),
        "errors": len(errors),
        "first_errors": errors[:3],
        "requests_per_s": len(times) / wall,
    }


@contextlib.contextmanager
def held_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections opened (as many as the server accepts) and held, silent."""
    held = []
    try:
        for _ in range(count):
            try:
                held.append(socket.create_connection((HOST, port), timeout=5))
            except OSError:
                break
        yield held
    finally:
        for s in held:
            s.close()


@contextlib.contextmanager
def trickling_clients(port: int, count: int) -> Iterator[list[int]]:
    """`count` clients each sending a request head a byte every 50 ms, never finishing it
    while held; yields the bytes each has sent so far."""
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000
    stop = threading.Event()
    sent = [0] * count

    def client(i: int) -> None:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 5) as sock:
            for byte in head:
                if stop.wait(0.05):
                    return
                sock.sendall(bytes([byte]))
                sent[i] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 10
        while min(sent) < 5 and time.monotonic() < deadline:  # every client is mid-head
            stop.wait(0.05)
        yield sent
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)


def probes(port: int, count: int) -> dict[str, Any]:
    times, failures = [], []
    for _ in range(count):
        try:
            elapsed, status = timed_scrape(port)
        except OSError as exc:
            failures.append(repr(exc))
            continue
        if status == 200:
            times.append(elapsed)
        else:
            failures.append(f"HTTP {status}")
    out: dict[str, Any] = {"answered": len(times), "failed": len(failures), "first": failures[:3]}
    if times:
        out.update(summary_ms(times))
    return out


def still_open(held: list[socket.socket]) -> int:
    """How many of the held connections the server has not closed."""
    alive = 0
    for s in held:
        s.setblocking(False)
        try:
            alive += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def phase_row(phase: str, what: str, figures: dict[str, Any], errors: int, met: bool) -> list[Any]:
    """A phase's line of the table: its latency figures (NaN where none were answered)."""
    latencies = [figures.get(key, float("nan")) for key in ("median_ms", "p99_ms", "max_ms")]
    return [phase, what, *latencies, errors, met]


def print_table(args: argparse.Namespace, results: dict[str, Any]) -> None:
    load_r, idle, fd = results["load"], results["idle"], results["fd_limit"]
    trickle, met = results["trickle"], results["met"]
    rows = [
        phase_row(
            "load",
            f"{args.requests} GETs, {args.concurrency} at a time",
            load_r,
            load_r["errors"],
            met["load"],
        ),
        phase_row(
            "idle",
            f"{idle['held']} idle held, {args.probes} probes",
            idle,
            idle["failed"],
            met["idle"],
        ),
        phase_row(
            "trickle",
            f"{trickle['clients']} clients mid-head, {args.probes} probes",
            trickle,
            trickle["failed"],
            met["trickle"],
        ),
        phase_row(
            "fd limit",
            f"nofile {fd['nofile']}, {fd['opened']} opened, {args.probes} probes",
            fd,
            fd["failed"],
            met["fd_limit"],
        ),
    ]
    headers = ["phase", "what", "median ms", "p99 ms", "max ms", "errors", "target met"]
    print(table(headers, rows))


def measure(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The four phases against daemons started as users start them."""
    with tempfile.TemporaryDirectory(prefix="http-load-") as tmp:
        root = Path(tmp)
        if args.models:
            build_tree(root / "models", args.models, 10, args.seed)
        else:
            shutil.copytree(EXAMPLES, root / "models", symlinks=True)
        with Daemon(root / "models", root / "daemon.log") as daemon:
            daemon.wait_ready(120)
            results["body_bytes"] = len(http_get(daemon.port, "/metrics")[1])  # warms the caches
            results["load"] = load(daemon.port, args.requests, args.concurrency)
            with held_connections(daemon.port, args.idle) as held:
                results["idle"] = {"held": len(held), **probes(daemon.port, args.probes)}
                results["idle"]["still_open_after"] = still_open(held)
            with trickling_clients(daemon.port, args.trickle) as sent:
                results["trickle"] = {"clients": args.trickle, **probes(daemon.port, args.probes)}
                results["trickle"]["min_bytes_sent"] = min(sent)
        with LimitedDaemon(root / "models", root / "limited.log", args.fd_limit) as daemon:
            daemon.wait_ready(120)
            limits = Path(f"/proc/{daemon.pid}/limits").read_text().splitlines()
            results["daemon_open_files_limit"] = [x for x in limits if "open files" in x]
            timed_scrape(daemon.port)
            with held_connections(daemon.port, args.fd_conns) as held:
                results["fd_limit"] = {
                    "nofile": args.fd_limit,
                    "opened": len(held),
                    **probes(daemon.port, args.probes),
                    "still_open_after": still_open(held),
                }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="small sizes, for CI")
    parser.add_argument(
        "--models", type=int, default=0, help="0: examples/models; N: N models x 10 versions"
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--trickle", type=int, default=32)
    parser.add_argument("--fd-limit", type=int, default=256)
    parser.add_argument("--fd-conns", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.short:
        args.requests, args.idle, args.probes, args.fd_conns = 100, 50, 5, 300
        args.trickle = 16
    guard = SourceGuard()
    results: dict[str, Any] = {"parameters": vars(args) | {"output": str(args.output)}}
    results["load_average_start"] = os.getloadavg()
    measure(args, results)
    results["machine"] = machine(guard.after())
    results["load_average_end"] = os.getloadavg()
    load_r, idle, fd = results["load"], results["idle"], results["fd_limit"]
    trickle = results["trickle"]
    met = {
        "load": load_r["errors"] == 0 and load_r["p99_ms"] < LOAD_P99_MS,
        "idle": idle["failed"] == 0 and idle.get("max_ms", 1e9) < IDLE_MAX_MS,
        "trickle": trickle["failed"] == 0 and trickle.get("max_ms", 1e9) < IDLE_MAX_MS,
        "fd_limit": fd["failed"] == 0,
    }
    results["met"] = met
    print_table(args, results)
    path = write_results(NAME, results, args.output)
    print(f"load average start {results['load_average_start']}, end {results['load_average_end']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

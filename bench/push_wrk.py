"""Single-record pushes per second measured with `wrk`, a load generator in C that costs
the two cores little (the Python clients of push_http.py take about as much CPU as the
daemon they measure). The daemon runs as users start it: default flags, push enabled,
a --state.dir on disk, loopback.

Phases, each `--seconds` long with `--connections` clients over `--threads` wrk
threads: POST /api/v1/predictions/<model>/<version> with one record (a new id each
request), then GET /healthz (the server's own ceiling), both on keep-alive connections
(as an HTTP client library or KServe's logger sends) and with `Connection: close` (a
new TCP connection per request). Then every acknowledged record is waited for in
routing_ml_predictions_total. The daemon's CPU seconds per request are read from /proc.

Needs wrk (Debian: `apt-get install wrk`); push_http.py needs nothing but Python.
Run: .venv/bin/python bench/push_wrk.py [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _harness import HOST, Daemon, SourceGuard, machine, table, wait_until, write_results
from push_http import MODEL, VERSION, make_tree, predictions_total

# One record per request with a new id each time; the summary as one JSON line.
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  counter = counter + 1
  local body = string.format(
    '[{"id":"w%d-%d","prediction":"%s","probabilities":{"yes":0.7,"no":0.3},'
    .. '"latency_ms":%d,"features":{"a":%d,"b":%.3f,"c":"%s","d":null}}]',
    tid, counter, counter % 3 == 0 and "no" or "yes", 5 + counter % 20,
    counter % 97, (counter * 7) % 13 / 13, counter % 2 == 0 and "blue" or "red")
  return wrk.format(nil, nil, nil, body)
end
"""
SUMMARY = """
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests":%d,"status_errors":%d,"socket_errors":%d,'
    .. '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\\n',
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def run_wrk(url: str, script: Path, args: argparse.Namespace, *, close: bool) -> dict[str, Any]:
    command = [
        "wrk",
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={args.seconds:g}s",
        "--latency",
        f"--script={script}",
    ]
    if close:
        command += ["--header", "Connection: close"]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout)
    result = re.search(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    if rate is None or result is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    return {"requests_per_second": float(rate.group(1)), **json.loads(result.group(1))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="each phase")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    guard = SourceGuard()
    phases: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="push-wrk-") as tmp:
        root = Path(tmp)
        models = make_tree(root)
        post, get = root / "post.lua", root / "get.lua"
        post.write_text(LUA + SUMMARY)
        get.write_text(SUMMARY)
        state = root / "state"
        with Daemon(
            models, root / "daemon.log", [f"--state.dir={state}", "--web.enable-push=true"]
        ) as daemon:
            daemon.wait_ready(60)
            base = f"http://{HOST}:{daemon.port}"
            push_url = f"{base}/api/v1/predictions/{MODEL}/{VERSION}"
            pushed = 0
            for name, url, script, close in (
                ("push keep-alive", push_url, post, False),
                ("healthz keep-alive", f"{base}/healthz", get, False),
                ("push connection per request", push_url, post, True),
                ("healthz connection per request", f"{base}/healthz", get, True),
            ):
                load_before = os.getloadavg()[0]
                cpu_before = daemon.cpu_seconds()
                phase = run_wrk(url, script, args, close=close)
                cpu = daemon.cpu_seconds() - cpu_before
                phase["daemon_cpu_us_per_request"] = 1e6 * cpu / max(1, phase["requests"])
                phase["load_1m_start_end"] = [load_before, os.getloadavg()[0]]
                phases[name] = phase
                if url == push_url:
                    pushed += phase["requests"]
                print(f"  {name}: {phase}", file=sys.stderr, flush=True)
            # wrk leaves out requests still in flight when it stops: at least what it
            # counted was acknowledged, and each acknowledged record must be counted.
            counted = wait_until(
                lambda: (n := predictions_total(daemon.port)) >= pushed and n,
                120,
                "every acknowledged record counted",
            )
    results = {
        "args": vars(args),
        "machine": machine(guard.after()),
        "phases": phases,
        "records_acknowledged_at_least": pushed,
        "records_counted": counted,
    }
    write_results("push_wrk", results)
    print(
        table(
            ["phase", "requests/s", "p50 ms", "p99 ms", "daemon CPU us/request", "errors", "load"],
            [
                [
                    name,
                    p["requests_per_second"],
                    p["p50_ms"],
                    p["p99_ms"],
                    p["daemon_cpu_us_per_request"],
                    p["status_errors"] + p["socket_errors"],
                    "{:.1f} / {:.1f}".format(*p["load_1m_start_end"]),
                ]
                for name, p in phases.items()
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Predictions pushed over HTTP, through the daemon as users start it
(`--web.enable-push`, a --state.dir on disk, loopback):

1. batch: the latency of POST /api/v1/predictions with 1,000 records per request, each
   answered only after its batch was fsync'ed (target: p50 and p99 < 20 ms);
2. single: single-record requests per second from several client threads, one
   connection per request (target: >= 2,000/s on 2 cores). These clients are Python
   threads on the same cores and take about as much CPU as the daemon: push_wrk.py
   measures the same with wrk, a load generator that costs little;
3. end to end: records counted in routing_ml_predictions_total per second, pushed in
   batches of 1,000 against the same lines appended to a prediction-log file (the file
   path, the reference), each from the first byte sent to the last record counted.

Run: .venv/bin/python bench/push_http.py [--batches 50] [--seconds 5] [--threads 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _harness import (
    HOST,
    Daemon,
    SourceGuard,
    machine,
    percentile,
    summary_ms,
    table,
    wait_until,
    write_results,
)

MODEL = "iris"
VERSION = "v1"


def make_tree(root: Path) -> Path:
    models = root / "models"
    version = models / MODEL / VERSION
    version.mkdir(parents=True)
    (version / "metrics.json").write_text(
        json.dumps(
            {
                "generated_at": "2026-11-01T12:00:00+00:00",
                "accuracy": 0.9,
                "dataset_stats": {"column_names": ["a", "b", "c", "d"]},
            }
        )
    )
    return models


def record(i: int) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "prediction": "yes" if i % 3 else "no",
        "probabilities": {"yes": 0.7, "no": 0.3} if i % 3 else {"yes": 0.2, "no": 0.8},
        "latency_ms": 5 + i % 20,
        "features": {
            "a": i % 97,
            "b": (i * 7) % 13 / 13,
            "c": "red" if i % 2 else "blue",
            "d": None,
        },
    }


def get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def healthz_rate(port: int, seconds: float, threads: int) -> float:
    """GET /healthz per second from the same clients: what the HTTP server itself serves,
    the ceiling of any endpoint on it."""
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def client(n: int) -> None:
        while time.monotonic() < stop:
            assert get(port, "/healthz") == 200
            counts[n] += 1

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    begin = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.monotonic() - begin)


def post(port: int, path: str, body: bytes) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def predictions_total(port: int) -> float:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/metrics?name[]=routing_ml_predictions_total")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    for line in text.splitlines():
        if line.startswith("routing_ml_predictions_total{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def daemon_args(state: Path) -> list[str]:
    return [
        f"--state.dir={state}",
        "--web.enable-push=true",
        "--logs.poll-interval=0.05",
        "--push.spool-max-bytes=2000000000",
    ]


def batch_latency(
    port: int, batches: int, size: int, offset: int, settle: bool
) -> tuple[list[float], int]:
    """Times of `batches` POSTs of `size` records after one untimed warm-up, back to back
    (the tailer ingests each batch while the next one arrives) or, with `settle`, each
    sent once the one before was counted (the endpoint's own latency). Returns the
    times and the records sent."""
    path = f"/api/v1/predictions/{MODEL}/{VERSION}"
    bodies = [
        json.dumps([record(offset + b * size + i) for i in range(size)]).encode()
        for b in range(batches + 1)
    ]
    base = predictions_total(port)
    post(port, path, bodies[0])
    times = []
    for n, body in enumerate(bodies[1:], start=1):
        if settle:
            wait_until(lambda n=n: predictions_total(port) >= base + n * size, 60, "batch counted")
        start = time.perf_counter()
        status = post(port, path, body)
        times.append(time.perf_counter() - start)
        assert status == 200, status
    return times, len(bodies) * size


def single_rate(
    port: int, seconds: float, threads: int, offset: int
) -> tuple[float, int, list[float]]:
    path = f"/api/v1/predictions/{MODEL}/{VERSION}"
    stop = time.monotonic() + seconds
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[int] = []

    def client(n: int) -> None:
        i = offset + n * 10_000_000
        while time.monotonic() < stop:
            body = json.dumps([record(i)]).encode()
            start = time.perf_counter()
            status = post(port, path, body)
            latencies[n].append(time.perf_counter() - start)
            if status != 200:
                errors.append(status)
            counts[n] += 1
            i += 1

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    begin = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - begin
    assert not errors, errors[:5]
    return sum(counts) / elapsed, sum(counts), [x for per in latencies for x in per]


def end_to_end_push(port: int, total: int, size: int, base: float) -> float:
    path = f"/api/v1/predictions/{MODEL}/{VERSION}"
    bodies = [
        json.dumps([record(10**8 + b * size + i) for i in range(size)]).encode()
        for b in range(total // size)
    ]
    start = time.perf_counter()
    for body in bodies:
        assert post(port, path, body) == 200
    wait_until(lambda: predictions_total(port) >= base + total, 600, "pushed records counted", 0.02)
    return total / (time.perf_counter() - start)


def end_to_end_file(port: int, models: Path, total: int, base: float) -> float:
    log = models / MODEL / VERSION / "predictions" / "bench.jsonl"
    log.parent.mkdir(exist_ok=True)
    data = "".join(json.dumps(record(2 * 10**8 + i)) + "\n" for i in range(total)).encode()
    start = time.perf_counter()
    with log.open("ab") as f:
        f.write(data)
    wait_until(lambda: predictions_total(port) >= base + total, 600, "logged records counted", 0.02)
    return total / (time.perf_counter() - start)


def ms(seconds: list[float], p: float) -> float:
    return percentile([t * 1000 for t in seconds], p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="1,000-record batches timed")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="single-record phase")
    parser.add_argument("--threads", type=int, default=4, help="single-record clients")
    parser.add_argument("--total", type=int, default=50_000, help="records of the end-to-end phase")
    args = parser.parse_args()
    guard = SourceGuard()
    with tempfile.TemporaryDirectory(prefix="push-bench-") as tmp:
        root = Path(tmp)
        models = make_tree(root)
        with Daemon(models, root / "daemon.log", daemon_args(root / "state")) as daemon:
            daemon.wait_ready(60)
            settled, sent = batch_latency(daemon.port, args.batches, args.batch_size, 0, True)
            batch, more = batch_latency(daemon.port, args.batches, args.batch_size, 10**6, False)
            rate, requests, single = single_rate(
                daemon.port, args.seconds, args.threads, offset=10**7
            )
            ceiling = healthz_rate(daemon.port, args.seconds, args.threads)
            wait_until(
                lambda: predictions_total(daemon.port) >= sent + more + requests,
                600,
                "every pushed record counted",
            )
            base = predictions_total(daemon.port)
            push_rate = end_to_end_push(daemon.port, args.total, args.batch_size, base)
            base = predictions_total(daemon.port)
            file_rate = end_to_end_file(daemon.port, models, args.total, base)
            cpu = daemon.cpu_seconds()
    results = {
        "args": vars(args),
        "machine": machine(guard.after()),
        "batch_latency_settled": summary_ms(settled),
        "batch_latency_back_to_back": summary_ms(batch),
        "single": {
            "requests_per_second": rate,
            "requests": requests,
            "latency": summary_ms(single),
            "healthz_requests_per_second": ceiling,
        },
        "end_to_end": {
            "push_records_per_second": push_rate,
            "file_records_per_second": file_rate,
            "push_vs_file": push_rate / file_rate,
        },
        "daemon_cpu_seconds": cpu,
    }
    write_results("push_http", results)
    print(
        table(
            ["measure", "value"],
            [
                [f"batch of {args.batch_size}, tailer idle: p50 ms", ms(settled, 50)],
                [f"batch of {args.batch_size}, tailer idle: p99 ms", ms(settled, 99)],
                [f"batch of {args.batch_size}, back to back: p50 ms", ms(batch, 50)],
                [f"batch of {args.batch_size}, back to back: p99 ms", ms(batch, 99)],
                [f"single-record requests/s ({args.threads} clients)", rate],
                [f"GET /healthz requests/s ({args.threads} clients)", ceiling],
                ["single-record p50 ms", ms(single, 50)],
                ["single-record p99 ms", ms(single, 99)],
                ["end to end, pushed in batches: records/s", push_rate],
                ["end to end, appended to a log file: records/s", file_rate],
                ["push / file", push_rate / file_rate],
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

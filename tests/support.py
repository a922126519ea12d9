"""Test helpers: free ports, deadline waits, atomic writes and a daemon started the
way users start it (a subprocess on 127.0.0.1), stopped by its PID."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})"
    )


def write_json(path: Path, obj: Any) -> None:
    """Atomically (temp + rename), as well-behaved training code does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)


def good_metrics(version: str = "v1", accuracy: float = 0.92, **extra: Any) -> dict[str, Any]:
    return {
        "generated_at": "2026-11-01T12:00:00+00:00",
        "model_version": version,
        "training_samples": 1500,
        "dataset_stats": {"total_samples": 1500, "missing_rates": {"A": 0.0, "B": 0.02}},
        "training_duration_sec": 3.5,
        "accuracy": accuracy,
        "precision_weighted": 0.89,
        "recall_weighted": 0.91,
        "f1_weighted": 0.90,
        **extra,
    }


def parse_samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


class RunningDaemon:
    """`python -m model_health_exporter run ...` on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
    ):
        """`wrapper` runs before the interpreter, e.g. setpriv to drop privileges."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"daemon-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                *wrapper,
                sys.executable,
                "-m",
                "model_health_exporter",
                "run",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.format=json",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as exc:
            with exc:  # it holds the connection; unclosed, it warns when collected
                return exc.code, exc.read(), exc.headers

    def wait_ready(self, timeout: float = 20) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited rc={self.proc.returncode}:\n{self.log()}")
            return self.get("/readyz")[0] == 200

        wait_until(ready, timeout, "daemon /readyz")

    def metrics_text(self) -> str:
        status, body, _ = self.get("/metrics")
        assert status == 200, body
        return body.decode()

    def samples(self) -> Samples:
        return parse_samples(self.metrics_text())

    def value(self, name: str, **labels: str) -> float | None:
        return sample(self.samples(), name, **labels)

    def wait_value(
        self, name: str, expected: float | None, timeout: float = 10, **labels: str
    ) -> None:
        wait_until(
            lambda: self.value(name, **labels) == expected or None,
            timeout,
            f"{name}{labels} == {expected}",
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@functools.cache
def cli_flags() -> frozenset[str]:
    """Options `model-health-exporter --help` lists."""
    result = subprocess.run(
        [sys.executable, "-m", "model_health_exporter", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9.-]*", result.stdout))


def closed_by_server(sock: socket.socket, wait: float = 0.05) -> bool:
    """Whether the server has closed (or reset) the connection, waiting up to `wait`
    seconds for it; False while it is open. Reads a byte if one came."""
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True

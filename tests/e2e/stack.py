"""End-to-end harness: the exporter daemon, Prometheus, Alertmanager and a webhook receiver,
all on 127.0.0.1 free ports, with their files in one directory.

Prometheus loads the shipped alert rules with every `for` set to 0s, scrapes and evaluates
every second, and sends to Alertmanager, which forwards every notification to an in-process
webhook receiver. Processes are stopped by PID.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import socketserver
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_RULES = REPO_ROOT / "prometheus" / "rules" / "model-quality.rules.yml"
JOB = "model-health-exporter"
INTERVAL = "1s"  # scrape and rule evaluation
STARTUP_TIMEOUT_S = 60.0  # Prometheus' first scrape alone takes about 5-6 s
TIMEOUT_S = 30.0  # a file change reaching the webhook takes a few seconds
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 80

_T = TypeVar("_T")


class MissingBinaryError(RuntimeError):
    pass


class ProcessExitedError(RuntimeError):
    pass


def find_binary(*names: str) -> str:
    """The path of the first of `names` on PATH; Debian calls Alertmanager
    prometheus-alertmanager."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise MissingBinaryError(
        f"e2e tests need {' or '.join(names)} on PATH: "
        "apt-get install prometheus prometheus-alertmanager"
    )


def http_get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET. An HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the connection: left open, it warns when garbage-collected
            return exc.code, exc.read()


def http_ok(url: str) -> bool:
    return http_get(url)[0] == 200


def get_json(url: str) -> Any:
    status, body = http_get(url)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}: {body.decode(errors='replace')}")
    return json.loads(body)


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and os.replace, so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # os.replace: atomic on POSIX


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def rules_for_speed(source: Path, dest: Path) -> Path:
    """Copy a rule file with every alert's `for` set to 0s and no per-group `interval`, so the
    shipped expressions, labels and annotations are tested without waiting minutes."""
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        group.pop("interval", None)  # use the global 1s evaluation interval
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    return write_yaml(dest, doc)


class ModelsDir:
    """Nested layout: <root>/<model>/<version>/metrics.json and <root>/<model>/ACTIVE."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def write_metrics(
        self, model: str, version: str, *, accuracy: float, training_samples: int = 1500
    ) -> None:
        record = {
            "generated_at": "2026-11-01T12:00:00+00:00",
            "model_version": version,
            "training_samples": training_samples,
            "accuracy": accuracy,
            "precision_weighted": 0.89,
            "recall_weighted": 0.91,
            "f1_weighted": 0.90,
        }
        write_atomic(self.root / model / version / "metrics.json", json.dumps(record))

    def set_active(self, model: str, version: str) -> None:
        write_atomic(self.root / model / "ACTIVE", f"{version}\n")


class _WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.lock = threading.Lock()
        self.payloads: list[dict[str, Any]] = []

    def record(self, payload: dict[str, Any]) -> None:
        with self.lock:
            self.payloads.append(payload)


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _WebhookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.record(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the payloads are in the failure report."""


class ServedInThread:
    """A socketserver listening from construction on, served by a thread of the test
    process between start() and stop()."""

    def __init__(self, server: socketserver.BaseServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class WebhookReceiver(ServedInThread):
    """Alertmanager webhook receiver in a thread of the test process; records every payload."""

    _server: _WebhookServer

    def __init__(self) -> None:
        super().__init__(_WebhookServer())
        self.url = f"http://127.0.0.1:{self._server.server_port}/alerts"

    def payloads(self) -> list[dict[str, Any]]:
        with self._server.lock:
            return list(self._server.payloads)

    def find_alert(self, status: str, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """The first notified alert with this status ("firing"/"resolved") and these labels."""
        for payload in self.payloads():
            for alert in payload["alerts"]:
                if alert["status"] == status and labels.items() <= alert["labels"].items():
                    return dict(alert)
        return None


class ManagedProcess:
    """A subprocess with its output in a log file, stopped by PID."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
            )

    def check_running(self) -> None:
        if self._popen.poll() is not None:
            raise ProcessExitedError(
                f"{self.name} exited with rc {self._popen.returncode}; log: {self.log_path}"
            )

    def stop(self) -> None:
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()

    def report(self) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(
            [
                f"===== {self.name} (pid {self._popen.pid}, rc {self._popen.returncode}): "
                f"{' '.join(self.argv)}",
                *lines[-LOG_TAIL_LINES:],
            ]
        )


def _check_config(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")


class ProcessGroup:
    """Processes started by a test and a Prometheus at `prometheus_url`: stopped by PID in
    reverse order, waited on while checking that none has died, queried over the API."""

    def __init__(self, prometheus_url: str) -> None:
        self.prometheus_url = prometheus_url
        self.processes: list[ManagedProcess] = []

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def report(self) -> str:
        return "\n".join(process.report() for process in self.processes)

    def wait(self, predicate: Any, what: str, timeout: float = STARTUP_TIMEOUT_S) -> Any:
        def checked() -> Any:
            for process in self.processes:
                process.check_running()
            return predicate()

        return wait_until(checked, timeout, what, interval=0.5)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = get_json(
            f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        )
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


class Stack:
    """The whole pipeline. Call start() once the models directory holds the initial files;
    stop() is safe to call whether or not start() got far."""

    def __init__(self, workdir: Path, models_dir: Path, rule_file: Path = SHIPPED_RULES) -> None:
        self.workdir = workdir
        self.models_dir = models_dir
        self.rule_file = rule_file
        self.webhook = WebhookReceiver()
        self._processes: list[ManagedProcess] = []
        self.exporter_address = f"127.0.0.1:{free_port()}"
        self.alertmanager_address = f"127.0.0.1:{free_port()}"
        self.prometheus_address = f"127.0.0.1:{free_port()}"
        self.prometheus_url = f"http://{self.prometheus_address}"

    # ----- lifecycle -----

    def start(self) -> None:
        prometheus = find_binary("prometheus")
        alertmanager = find_binary("alertmanager", "prometheus-alertmanager")
        self.workdir.mkdir(parents=True, exist_ok=True)
        prometheus_config = self._write_prometheus_config()
        alertmanager_config = self._write_alertmanager_config()
        _check_config([find_binary("promtool"), "check", "config", str(prometheus_config)])
        _check_config([find_binary("amtool"), "check-config", str(alertmanager_config)])
        self.webhook.start()
        self._spawn("exporter", self._exporter_argv())
        self._spawn(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={alertmanager_config}",
                f"--storage.path={self.workdir / 'alertmanager-data'}",
                f"--web.listen-address={self.alertmanager_address}",
                f"--web.external-url=http://{self.alertmanager_address}/",
                "--cluster.listen-address=",  # no clustering: no 0.0.0.0:9094, no gossip wait
            ],
        )
        self._spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={prometheus_config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address={self.prometheus_address}",
                f"--web.external-url={self.prometheus_url}/",
            ],
        )
        self._wait_ready()

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self.webhook.stop()

    def _exporter_argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "model_health_exporter",
            "run",
            f"--web.listen-address={self.exporter_address}",
            f"--models.dir={self.models_dir}",
            f"--state.dir={self.workdir / 'exporter-state'}",
            "--log.format=json",
        ]

    def _spawn(self, name: str, argv: list[str]) -> None:
        self._processes.append(ManagedProcess(name, argv, self.workdir))

    def _write_prometheus_config(self) -> Path:
        rules = rules_for_speed(self.rule_file, self.workdir / "rules" / self.rule_file.name)
        return write_yaml(
            self.workdir / "prometheus.yml",
            {
                "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [self.alertmanager_address]}]}
                    ]
                },
                "scrape_configs": [
                    {"job_name": JOB, "static_configs": [{"targets": [self.exporter_address]}]}
                ],
            },
        )

    def _write_alertmanager_config(self) -> Path:
        return write_yaml(
            self.workdir / "alertmanager.yml",
            {
                "route": {
                    "receiver": "webhook",
                    "group_by": ["alertname", "model"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "webhook",
                        "webhook_configs": [{"url": self.webhook.url, "send_resolved": True}],
                    }
                ],
            },
        )

    def _wait_ready(self) -> None:
        for what, url in [
            ("exporter /readyz", f"http://{self.exporter_address}/readyz"),
            ("alertmanager /-/ready", f"http://{self.alertmanager_address}/-/ready"),
            ("prometheus /-/ready", f"{self.prometheus_url}/-/ready"),
        ]:
            self.wait(functools.partial(http_ok, url), what, STARTUP_TIMEOUT_S)
        # Ready is not scraped: the first scrape comes about 5 s after Prometheus starts.
        self.wait(self._target_up, "the exporter target to be up", STARTUP_TIMEOUT_S)
        self.wait(
            lambda: self.api("/api/v1/alertmanagers")["activeAlertmanagers"],
            "prometheus to know the alertmanager",
            STARTUP_TIMEOUT_S,
        )

    def _target_up(self) -> bool:
        targets = self.api("/api/v1/targets", state="active")["activeTargets"]
        return any(t["labels"]["job"] == JOB and t["health"] == "up" for t in targets)

    # ----- waiting -----

    def wait(self, predicate: Callable[[], _T | None], what: str, timeout: float = TIMEOUT_S) -> _T:
        """wait_until, failing at once if one of the processes has exited."""

        def checked() -> _T | None:
            for process in self._processes:
                process.check_running()
            return predicate()

        return wait_until(checked, timeout, what)

    def wait_for_value(self, expr: str, value: float) -> dict[str, Any]:
        """Wait until the instant query `expr` returns exactly one sample, equal to `value`."""

        def single_sample_equal() -> dict[str, Any] | None:
            result = self.query(expr)
            if len(result) == 1 and math.isclose(float(result[0]["value"][1]), value):
                return dict(result[0])
            return None

        return self.wait(single_sample_equal, f"{expr} == {value}")

    def wait_for_evaluations(self, group: str, cycles: int = 2) -> None:
        """Wait until rule `group` has been evaluated `cycles` more times. The first of them may
        already have been under way, so with cycles >= 2 at least one evaluation started after
        this call and saw every sample ingested before it."""
        seen = {self.rule_group(group)["lastEvaluation"]}

        def evaluated() -> bool:
            seen.add(self.rule_group(group)["lastEvaluation"])
            return len(seen) > cycles

        self.wait(evaluated, f"{cycles} evaluations of rule group {group}")

    def wait_for_notification(self, status: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """Wait for the webhook to receive an alert with this status and these labels."""
        return self.wait(
            lambda: self.webhook.find_alert(status, labels), f"a {status} notification of {labels}"
        )

    # ----- Prometheus HTTP API -----

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = get_json(url)
        if body["status"] != "success":
            raise RuntimeError(f"GET {url}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("/api/v1/query", query=expr)["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts."""
        alerts: list[dict[str, Any]] = self.api("/api/v1/alerts")["alerts"]
        return alerts

    def rule_group(self, name: str) -> dict[str, Any]:
        for group in self.api("/api/v1/rules")["groups"]:
            if group["name"] == name:
                return dict(group)
        raise LookupError(f"prometheus has no rule group {name!r}")

    # ----- diagnostics -----

    def report(self) -> str:
        """Process logs and webhook payloads, for a failed test."""
        sections = [process.report() for process in self._processes]
        sections.append("===== webhook payloads\n" + json.dumps(self.webhook.payloads(), indent=2))
        return "\n".join(sections)

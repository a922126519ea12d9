"""End-to-end harness for the SHIPPED Alertmanager configuration.

Like stack.Stack, but Prometheus loads every shipped rule file (`for` shortened to 0s) and
Alertmanager runs deploy/alertmanager/alertmanager.yml, rewritten in the work directory so
that its receivers reach recorders on 127.0.0.1 instead of Slack, PagerDuty, an SMTP relay
and the retraining service. The rewrite changes only addresses, secret files and timers
(group_wait and group_interval become 1s); the route tree, inhibit rules, receivers and
templates are the shipped ones.
"""

from __future__ import annotations

import email
import email.policy
import json
import socketserver
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .stack import REPO_ROOT, ServedInThread, Stack, get_json, rules_for_speed, write_yaml

SHIPPED_RULES_DIR = REPO_ROOT / "prometheus" / "rules"
SHIPPED_ALERTMANAGER_DIR = REPO_ROOT / "deploy" / "alertmanager"
PAGERDUTY_ROUTING_KEY = "test-routing-key-from-file"
RETRAIN_TOKEN = "test-retrain-token"  # noqa: S105 - a dummy written to a temp file, not a secret
# 1s keeps the test fast; not 0s, so that a critical alert reaches Alertmanager before the
# group of the warning it inhibits is first flushed (Prometheus may send them separately).
TEST_GROUP_WAIT = "1s"
TEST_GROUP_INTERVAL = "1s"


class _HttpRecorderServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HttpRecorderHandler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str], Any]] = []


class _HttpRecorderHandler(BaseHTTPRequestHandler):
    server: _HttpRecorderServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.requests.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")  # Slack's webhook answers "ok"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in the failure report."""


class HttpRecorder(ServedInThread):
    """Records every POST (path, headers, JSON body): stands in for Slack (/slack),
    PagerDuty's Events API (/pagerduty) and the retraining webhook (/retrain)."""

    _server: _HttpRecorderServer

    def __init__(self) -> None:
        super().__init__(_HttpRecorderServer())
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"

    def bodies(self, path: str) -> list[Any]:
        with self._server.lock:
            return [body for p, _, body in self._server.requests if p == path]

    def headers(self, path: str) -> list[dict[str, str]]:
        with self._server.lock:
            return [headers for p, headers, _ in self._server.requests if p == path]

    def report(self) -> str:
        with self._server.lock:
            return json.dumps(self._server.requests, indent=2)


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Alertmanager's client: EHLO, MAIL, RCPT, DATA, QUIT; no TLS
    and no AUTH advertised, so the client uses neither."""

    server: _SmtpServer

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self._reply("220 127.0.0.1 test SMTP recorder")
        while line := self.rfile.readline():
            verb = line.decode("utf-8", errors="replace").strip()[:4].upper()
            if verb in ("EHLO", "HELO"):
                self._reply("250 127.0.0.1")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                self._receive_message()
                self._reply("250 OK queued")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")

    def _receive_message(self) -> None:
        lines: list[bytes] = []
        while (line := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)  # undo dot-stuffing
        message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.server.lock:
            self.server.messages.append(message)


class SmtpRecorder(ServedInThread):
    """An SMTP server in a thread of the test process that keeps every message."""

    _server: _SmtpServer

    def __init__(self) -> None:
        super().__init__(_SmtpServer())
        self.address = f"127.0.0.1:{self._server.server_address[1]}"

    def messages(self) -> list[EmailMessage]:
        with self._server.lock:
            return list(self._server.messages)


def _shorten_timers(route: dict[str, Any]) -> None:
    for key, value in (("group_wait", TEST_GROUP_WAIT), ("group_interval", TEST_GROUP_INTERVAL)):
        route[key] = value
    for child in route.get("routes", []):
        _shorten_timers(child)


def rewrite_shipped_alertmanager_config(
    dest: Path,
    secrets_dir: Path,
    http: HttpRecorder,
    smtp: SmtpRecorder,
    shorten_timers: bool = True,
) -> Path:
    """The shipped config with every receiver pointed at the local recorders (and its
    group_wait / group_interval shortened, unless the test measures them)."""
    doc = yaml.safe_load((SHIPPED_ALERTMANAGER_DIR / "alertmanager.yml").read_text("utf-8"))
    secrets_dir.mkdir(parents=True, exist_ok=True)

    def secret(name: str, content: str) -> str:
        path = secrets_dir / name
        path.write_text(content + "\n", encoding="utf-8")
        return str(path)

    glob = doc["global"]
    glob["pagerduty_url"] = f"{http.base_url}/pagerduty"
    glob["smtp_smarthost"] = smtp.address
    glob["smtp_require_tls"] = False  # the recorder speaks plain SMTP
    glob.pop("smtp_auth_username", None)  # and offers no AUTH
    glob.pop("smtp_auth_password_file", None)
    doc["templates"] = [str(SHIPPED_ALERTMANAGER_DIR / "templates" / "*.tmpl")]
    if shorten_timers:
        _shorten_timers(doc["route"])
    for receiver in doc["receivers"]:
        for config in receiver.get("slack_configs", []):
            # each receiver its own webhook; both recorded under /slack, told apart by channel
            name = Path(config["api_url_file"]).name
            config["api_url_file"] = secret(name, f"{http.base_url}/slack")
        for config in receiver.get("pagerduty_configs", []):
            config["routing_key_file"] = secret("pagerduty-routing-key", PAGERDUTY_ROUTING_KEY)
        for config in receiver.get("webhook_configs", []):
            config["url"] = f"{http.base_url}/retrain"
            config["http_config"]["authorization"]["credentials_file"] = secret(
                "retrain-webhook-token", RETRAIN_TOKEN
            )
    return write_yaml(dest, doc)


class RoutingStack(Stack):
    """Exporter, Prometheus with all shipped rules, Alertmanager with the shipped routes."""

    def __init__(self, workdir: Path, models_dir: Path) -> None:
        super().__init__(workdir=workdir, models_dir=models_dir)
        self.http = HttpRecorder()
        self.smtp = SmtpRecorder()

    def start(self) -> None:
        self.http.start()
        self.smtp.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        self.http.stop()
        self.smtp.stop()

    def _write_prometheus_config(self) -> Path:
        rule_files = [
            rules_for_speed(path, self.workdir / "rules" / path.name)
            for path in sorted(SHIPPED_RULES_DIR.glob("*.yml"))
        ]
        config = super()._write_prometheus_config()
        doc = yaml.safe_load(config.read_text(encoding="utf-8"))
        doc["rule_files"] = [str(path) for path in rule_files]
        return write_yaml(config, doc)

    def _write_alertmanager_config(self) -> Path:
        return rewrite_shipped_alertmanager_config(
            self.workdir / "alertmanager.yml", self.workdir / "secrets", self.http, self.smtp
        )

    # ----- Alertmanager API -----

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds, with status.state active / suppressed."""
        alerts: list[dict[str, Any]] = get_json(f"http://{self.alertmanager_address}/api/v2/alerts")
        return alerts

    def alertmanager_alert(self, alertname: str) -> dict[str, Any] | None:
        for alert in self.alertmanager_alerts():
            if alert["labels"].get("alertname") == alertname:
                return alert
        return None

    # ----- waiting -----

    def hold(self, violated: Callable[[], object], what: str, seconds: float) -> None:
        """Check for `seconds` that `violated()` stays falsy (a negative result needs a
        duration; this polls instead of sleeping blindly and fails at the first breach)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for process in self._processes:
                process.check_running()
            breach = violated()
            if breach:
                raise AssertionError(f"{what}: {breach!r}")
            time.sleep(0.05)

    def report(self) -> str:
        return "\n".join(
            [
                super().report(),
                "===== HTTP receivers\n" + self.http.report(),
                "===== emails\n" + "\n".join(str(m) for m in self.smtp.messages()),
            ]
        )

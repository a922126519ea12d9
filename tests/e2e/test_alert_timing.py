"""How fast the shipped alerting reacts, and that it keeps quiet, end to end.

The demo writer feeds a copy of the example models (stamped relative to now, as `make run`
does) into the daemon; Prometheus loads every shipped rule file UNCHANGED (real `for:`,
the example config's 30 s scrape and evaluation interval) and Alertmanager runs the
shipped alertmanager.yml with its real group_wait, only the receivers pointed at local
recorders. The one thing shortened is the exporter's window, in this test only: 5-second
buckets, 60 of them (a 5-minute window) and a short horizon of 5 (20-25 s), the same
5:60 ratio as the defaults (1-minute buckets, 1 hour), so the data a horizon needs
arrives twelve times sooner. What remains is what the rules and routes cost: `for:`,
evaluation and scrape intervals, group_wait.

Measured: the accuracy page (PagerDuty) arrives within 5 minutes of the injected change
and the drift warning (Slack #ml-alerts) within 10; on a healthy stream nothing is
delivered, nothing fires and no alert stays pending for 2 minutes.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_health_exporter import demo

from .routing_stack import RoutingStack, rewrite_shipped_alertmanager_config
from .stack import REPO_ROOT, ManagedProcess, write_yaml

pytestmark = pytest.mark.e2e

EXAMPLES = REPO_ROOT / "examples" / "models"
SHIPPED_RULES = sorted((REPO_ROOT / "prometheus" / "rules").glob("*.yml"))
EXAMPLE_CONFIG = REPO_ROOT / "prometheus" / "prometheus.example.yml"
WINDOW_FLAGS = (
    "--logs.window-bucket-seconds=5",
    "--logs.window-buckets=60",
    "--logs.window-short-buckets=5",
)
PAGE_WITHIN_S = 300.0
PENDING_LIMIT_S = 120.0
DRIFT_WITHIN_S = 600.0


class TimingStack(RoutingStack):
    """RoutingStack with the shipped rules and timers untouched and the demo writer."""

    def __init__(self, workdir: Path, models_dir: Path, drift_after: float) -> None:
        super().__init__(workdir, models_dir)
        self.drift_after = drift_after
        self.demo: ManagedProcess | None = None

    def start(self) -> None:
        super().start()
        self.demo = ManagedProcess(
            "demo",
            [
                sys.executable,
                "-m",
                "model_health_exporter",
                "demo",
                f"--models.dir={self.models_dir}",
                "--seed=13",
                f"--drift-after={self.drift_after}",
            ],
            self.workdir,
        )
        self._processes.append(self.demo)

    def _exporter_argv(self) -> list[str]:
        return [*super()._exporter_argv(), *WINDOW_FLAGS]

    def _write_prometheus_config(self) -> Path:
        config = super()._write_prometheus_config()
        doc = yaml.safe_load(config.read_text(encoding="utf-8"))
        example = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))["global"]
        doc["global"] = {k: example[k] for k in ("scrape_interval", "evaluation_interval")}
        doc["rule_files"] = [str(path) for path in SHIPPED_RULES]  # as shipped
        return write_yaml(config, doc)

    def _write_alertmanager_config(self) -> Path:
        return rewrite_shipped_alertmanager_config(
            self.workdir / "alertmanager.yml",
            self.workdir / "secrets",
            self.http,
            self.smtp,
            shorten_timers=False,
        )

    def notifications(self) -> list[tuple[str, Any]]:
        """Everything delivered: HTTP receivers by path, and emails."""
        with self.http._server.lock:
            delivered = [(path, body) for path, _, body in self.http._server.requests]
        return delivered + [("email", str(m["Subject"])) for m in self.smtp.messages()]

    def pending_or_firing(self) -> list[dict[str, str]]:
        return [s["metric"] for s in self.query("ALERTS")]

    def hold_quiet(self, seconds: float) -> list[str]:
        """Check every second for `seconds` that nothing is delivered, nothing fires and
        no alert stays pending for PENDING_LIMIT_S: a condition that lasts (which with the
        real `for:` would notify) fails the test at once, while a chance flag of a drift
        test on a few seconds of data (these windows are 12 times shorter than the
        default ones, so there are 12 times more of them) only goes pending and clears.
        Returns what went pending, for the report."""
        deadline = time.monotonic() + seconds
        pending_since: dict[str, float] = {}
        seen: list[str] = []
        while (now := time.monotonic()) < deadline:
            for process in self._processes:
                process.check_running()
            assert not self.notifications(), f"delivered: {self.notifications()!r}"
            alerts = self.pending_or_firing()
            assert all(a["alertstate"] == "pending" for a in alerts), f"firing: {alerts!r}"
            keys = {f"{a['alertname']}/{a.get('model', '')}" for a in alerts}
            pending_since = {k: pending_since.get(k, now) for k in keys}
            seen += [k for k in keys if k not in seen]
            stuck = {k: now - t for k, t in pending_since.items() if now - t > PENDING_LIMIT_S}
            assert not stuck, f"pending for longer than {PENDING_LIMIT_S} s: {stuck}"
            time.sleep(1.0)
        return seen

    def demo_said(self, text: str) -> bool:
        assert self.demo is not None
        return text in self.demo.log_path.read_text(encoding="utf-8", errors="replace")


def _pagerduty_alert(stack: TimingStack, alertname: str) -> Any:
    for body in stack.http.bodies("/pagerduty"):
        if body.get("event_action") == "trigger" and alertname in str(body):
            return body
    return None


def _slack_message(stack: TimingStack, channel: str, alertname: str) -> Any:
    for body in stack.http.bodies("/slack"):
        if body["channel"] == channel and alertname in str(body):
            return body
    return None


@pytest.fixture
def timing_stack(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[TimingStack, float]]:
    drift_after: float = request.param
    models = tmp_path / "models"
    shutil.copytree(EXAMPLES, models, symlinks=True)
    demo.stamp_now(models)  # as `make run` does: the examples are dated
    stack = TimingStack(tmp_path / "stack", models, drift_after)
    try:
        stack.start()
        yield stack, drift_after
    finally:
        stack.stop()
        print(stack.report())  # pytest shows it only when the test failed


@pytest.mark.timeout(900)
@pytest.mark.parametrize("timing_stack", [90.0], indirect=True)
def test_accuracy_drop_pages_within_5_minutes_and_drift_warns_within_10(
    timing_stack: tuple[TimingStack, float],
) -> None:
    stack, _ = timing_stack
    # Healthy for 90 s first: nothing at all is delivered.
    stack.wait(lambda: stack.demo_said("drift injected"), "the demo's change", 300.0)
    assert stack.notifications() == [], "delivered before the change"
    injected = time.monotonic()

    page = stack.wait(
        lambda: _pagerduty_alert(stack, "ModelLiveAccuracyCritical"),
        "the live-accuracy page",
        PAGE_WITHIN_S + 30.0,
    )
    page_after = time.monotonic() - injected
    drift = stack.wait(
        lambda: _slack_message(stack, "#ml-alerts", "ModelDataDrift"),
        "the drift warning in #ml-alerts",
        DRIFT_WITHIN_S + 30.0,
    )
    drift_after = time.monotonic() - injected
    print(f"page after {page_after:.0f} s, drift warning after {drift_after:.0f} s")
    assert page_after <= PAGE_WITHIN_S, page
    assert drift_after <= DRIFT_WITHIN_S, drift
    assert page["payload"]["severity"] == "critical"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("timing_stack", [1e9], indirect=True)
def test_healthy_stream_raises_no_alert_at_all(timing_stack: tuple[TimingStack, float]) -> None:
    stack, _ = timing_stack
    # Five minutes: the long window fills, the short one turns over twelve times.
    stack.wait(
        lambda: stack.query('routing_ml_short_live_accuracy{model="routing"}'), "data", 120.0
    )
    went_pending = stack.hold_quiet(300.0)
    print(f"pending for a while, never firing: {went_pending}")

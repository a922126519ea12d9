"""Written model files -> exporter -> Prometheus (all shipped rules, `for` 0s) -> Alertmanager
with the SHIPPED routes, inhibit rules and templates -> recorders standing in for PagerDuty,
Slack and the email relay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from .conftest import _REPORTS
from .routing_stack import PAGERDUTY_ROUTING_KEY, RoutingStack
from .stack import ModelsDir, write_atomic

RUNBOOKS = (
    "https://github.com/model-health-exporter/model-health-exporter/blob/main/docs/runbooks.md"
)
DASHBOARD = (
    "https://grafana.example.com/d/mhe-model/model-health-model?var-model=fraud&var-version=v1"
)
HOLD_S = 4.0  # several group_intervals (1s) and evaluations: long enough for a leak to show


@pytest.fixture
def routing_stack(
    request: pytest.FixtureRequest, tmp_path: Path, models: ModelsDir
) -> Iterator[RoutingStack]:
    stack = RoutingStack(workdir=tmp_path / "stack", models_dir=models.root)
    yield stack
    stack.stop()
    if any(report.failed for report in request.node.stash.get(_REPORTS, {}).values()):
        print(stack.report())


def write_metrics(models: ModelsDir, *, accuracy: float, age_days: float) -> None:
    generated_at = datetime.now(UTC) - timedelta(days=age_days)
    record = {
        "generated_at": generated_at.isoformat(),
        "model_version": "v1",
        "training_samples": 1500,
        "accuracy": accuracy,
        "precision_weighted": 0.89,
        "recall_weighted": 0.91,
        "f1_weighted": 0.90,
    }
    write_atomic(models.root / "fraud" / "v1" / "metrics.json", json.dumps(record))


def pagerduty_events(stack: RoutingStack, alertname: str, action: str) -> list[dict[str, Any]]:
    return [
        event
        for event in stack.http.bodies("/pagerduty")
        if event["event_action"] == action and alertname in event["payload"]["summary"]
    ]


def slack_messages(stack: RoutingStack, needle: str) -> list[dict[str, Any]]:
    return [
        attachment
        for body in stack.http.bodies("/slack")
        for attachment in body["attachments"]
        if needle in attachment["title"] or needle in attachment["text"]
    ]


def emails(stack: RoutingStack, needle: str) -> list[EmailMessage]:
    return [m for m in stack.smtp.messages() if needle in str(m["Subject"])]


def delivered_anywhere(stack: RoutingStack, alertname: str) -> list[Any]:
    """Every notification that mentions `alertname`, wherever it went."""
    return [
        *pagerduty_events(stack, alertname, "trigger"),
        *slack_messages(stack, alertname),
        *emails(stack, alertname),
        *[b for b in stack.http.bodies("/retrain") if alertname in json.dumps(b)],
    ]


@pytest.mark.e2e
def test_shipped_routes_page_inhibit_digest_and_resolve(
    models: ModelsDir, routing_stack: RoutingStack
) -> None:
    stack = routing_stack
    # Healthy accuracy, but generated 40 days ago: the info alert ModelVersionTooOld.
    write_metrics(models, accuracy=0.92, age_days=40)
    models.set_active("fraud", "v1")
    stack.start()
    stack.wait_for_value('routing_ml_model_accuracy{model="fraud",version="v1"}', 0.92)

    # info -> the email digest only.
    digest = stack.wait(lambda: emails(stack, "ModelVersionTooOld"), "the email digest")[0]
    assert digest["To"] == "ml-team@example.com"
    html = digest.get_body(("html",))
    assert html is not None
    body = html.get_content()
    for expected in ("fraud", "v1", "40 days", f"{RUNBOOKS}#modelversiontooold", DASHBOARD):
        assert expected in body
    assert not pagerduty_events(stack, "ModelVersionTooOld", "trigger")
    assert not slack_messages(stack, "ModelVersionTooOld")

    # The model degrades: both accuracy alerts fire in Prometheus ...
    write_metrics(models, accuracy=0.70, age_days=40)
    page = stack.wait(
        lambda: pagerduty_events(stack, "ModelAccuracyCritical", "trigger"), "the page"
    )[0]
    # ... critical -> PagerDuty (key read from routing_key_file) and Slack ...
    assert page["routing_key"] == PAGERDUTY_ROUTING_KEY
    assert page["payload"]["severity"] == "critical"
    details = page["payload"]["custom_details"]
    assert (details["model"], details["version"], details["value"]) == ("fraud", "v1", "70%")
    assert details["runbook_url"] == f"{RUNBOOKS}#modelaccuracycritical"
    assert {link["href"] for link in page["links"]} == {
        f"{RUNBOOKS}#modelaccuracycritical",
        DASHBOARD,
    }
    slack = stack.wait(lambda: slack_messages(stack, "ModelAccuracyCritical"), "Slack")[0]
    assert slack["title"] == "[FIRING:1] ModelAccuracyCritical fraud/v1 (critical)"
    assert slack["color"] == "danger"
    for expected in ("`fraud`", "`v1`", "70%", f"{RUNBOOKS}#modelaccuracycritical", DASHBOARD):
        assert expected in slack["text"]
    assert stack.http.bodies("/slack") and all(
        body["channel"] == "#ml-oncall" for body in stack.http.bodies("/slack")
    )

    # ... and the warning of the same model and family is inhibited, not delivered.
    assert any(a["labels"]["alertname"] == "ModelAccuracyDegraded" for a in stack.alerts())
    warning = stack.wait(
        lambda: (
            (a := stack.alertmanager_alert("ModelAccuracyDegraded"))
            and a["status"]["state"] == "suppressed"
            and a
        ),
        "Alertmanager to suppress the warning",
    )
    critical = stack.alertmanager_alert("ModelAccuracyCritical")
    assert critical is not None
    assert warning["status"]["inhibitedBy"] == [critical["fingerprint"]]
    # Another family is not inhibited by the accuracy page.
    too_old = stack.alertmanager_alert("ModelVersionTooOld")
    assert too_old is not None and too_old["status"]["state"] == "active"
    stack.hold(
        lambda: delivered_anywhere(stack, "ModelAccuracyDegraded"),
        "the inhibited warning was delivered",
        HOLD_S,
    )

    # Fixed: the resolution reaches PagerDuty (same incident) and Slack.
    write_metrics(models, accuracy=0.92, age_days=40)
    resolve = stack.wait(
        lambda: pagerduty_events(stack, "ModelAccuracyCritical", "resolve"), "the resolution"
    )[0]
    assert resolve["dedup_key"] == page["dedup_key"]
    resolved = stack.wait(
        lambda: [m for m in slack_messages(stack, "ModelAccuracyCritical") if m["color"] == "good"],
        "the Slack resolution",
    )[0]
    assert resolved["title"].startswith("[RESOLVED] ModelAccuracyCritical fraud/v1")
    assert delivered_anywhere(stack, "ModelAccuracyDegraded") == []
    assert stack.http.bodies("/retrain") == []  # nothing recommended retraining


def append_predictions(models: ModelsDir, n: int, error_every: int, start: int) -> None:
    """`n` prediction log lines for fraud/v1, every `error_every`-th a failed prediction."""
    log = models.root / "fraud" / "v1" / "predictions" / "serving.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        for i in range(start, start + n):
            failed = error_every and i % error_every == 0
            record = {
                "id": f"r{i}",
                "prediction": None if failed else "approve",
                "probabilities": None if failed else {"approve": 0.9, "deny": 0.1},
                "latency_ms": 20,
                "error": "FeatureStoreTimeout" if failed else None,
            }
            f.write(json.dumps(record) + "\n")


@pytest.mark.e2e
def test_failing_predictions_in_the_logs_page_with_the_warning_inhibited(
    models: ModelsDir, routing_stack: RoutingStack
) -> None:
    """Log lines, not a gauge: half the predictions fail -> ModelErrorRateCritical pages
    PagerDuty and Slack; ModelErrorRateHigh (same family, warning) is inhibited."""
    stack = routing_stack
    write_metrics(models, accuracy=0.95, age_days=1)
    models.set_active("fraud", "v1")
    append_predictions(models, 10, error_every=0, start=0)
    stack.start()
    stack.wait_for_value('routing_ml_predictions_total{model="fraud",version="v1"}', 10)

    sent = 10

    def failing() -> list[dict[str, Any]]:
        nonlocal sent
        append_predictions(models, 20, error_every=2, start=sent)  # keeps the rates up
        sent += 20
        return pagerduty_events(stack, "ModelErrorRateCritical", "trigger")

    page = stack.wait(failing, "the error-rate page", timeout=60)[0]
    assert page["payload"]["severity"] == "critical"
    details = page["payload"]["custom_details"]
    assert (details["model"], details["version"]) == ("fraud", "v1")
    slack = stack.wait(lambda: slack_messages(stack, "ModelErrorRateCritical"), "Slack")[0]
    assert "(critical)" in slack["title"]
    stack.wait(
        lambda: (
            (a := stack.alertmanager_alert("ModelErrorRateHigh"))
            and a["status"]["state"] == "suppressed"
        ),
        "Alertmanager to suppress the error-rate warning",
    )
    stack.hold(
        lambda: delivered_anywhere(stack, "ModelErrorRateHigh"),
        "the inhibited warning was delivered",
        HOLD_S,
    )

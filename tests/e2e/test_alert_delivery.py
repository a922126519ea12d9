"""Exporter -> Prometheus (shipped rules, `for` shortened to 0s) -> Alertmanager -> webhook."""

from __future__ import annotations

import pytest

from .stack import JOB, ModelsDir, Stack

GROUP = "model-quality"
BREACHES_CRITICAL = (
    "routing_ml_model_accuracy < on(model) group_left "
    'routing_ml_model_quality_threshold{metric="accuracy", severity="critical"}'
)


@pytest.mark.e2e
def test_critical_accuracy_is_notified_then_resolved(models: ModelsDir, stack: Stack) -> None:
    models.write_metrics("m", "v1", accuracy=0.92)
    models.set_active("m", "v1")
    stack.start()
    stack.wait_for_value('routing_ml_model_accuracy{model="m",version="v1"}', 0.92)

    models.write_metrics("m", "v1", accuracy=0.70)
    firing = stack.wait_for_notification(
        "firing", {"alertname": "ModelAccuracyCritical", "model": "m"}
    )
    assert firing["labels"] == {
        "alertname": "ModelAccuracyCritical",
        "severity": "critical",
        "component": "ml-model",
        "alert_family": "accuracy",
        "model": "m",
        "version": "v1",
        "job": JOB,
        "instance": stack.exporter_address,
    }
    assert firing["annotations"]["description"] == (
        "Model m version v1 (active) has accuracy 70%, below its critical threshold of 80%. "
        "Immediate action required."
    )
    assert firing["generatorURL"].startswith(stack.prometheus_url)

    models.write_metrics("m", "v1", accuracy=0.92)
    resolved = stack.wait_for_notification("resolved", firing["labels"])
    assert resolved["startsAt"] == firing["startsAt"]


@pytest.mark.e2e
def test_bad_inactive_version_raises_no_alert(models: ModelsDir, stack: Stack) -> None:
    models.write_metrics("m", "v0", accuracy=0.50, training_samples=10)
    models.write_metrics("m", "v1", accuracy=0.92)
    models.set_active("m", "v1")
    stack.start()
    stack.wait_for_value('routing_ml_model_accuracy{model="m",version="v0"}', 0.50)
    stack.wait_for_value('routing_ml_model_active{model="m",version="v0"}', 0)
    stack.wait_for_value('routing_ml_model_active{model="m",version="v1"}', 1)
    # Not vacuous: v0 does breach its threshold, only the active-version gate keeps it quiet.
    assert [s["metric"]["version"] for s in stack.query(BREACHES_CRITICAL)] == ["v0"]

    stack.wait_for_evaluations(GROUP, cycles=2)

    rules = stack.rule_group(GROUP)["rules"]
    assert {(r["name"], r["health"], r["state"]) for r in rules} == {
        ("ModelAccuracyDegraded", "ok", "inactive"),
        ("ModelAccuracyCritical", "ok", "inactive"),
        ("ModelDatasetSizeDecreased", "ok", "inactive"),
    }
    assert stack.alerts() == []
    assert stack.query("ALERTS") == []
    assert stack.webhook.payloads() == []

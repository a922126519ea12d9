"""The shipped Alertmanager configuration: amtool accepts it, each kind of alert reaches the
right receivers, secrets only come from files, and the message templates render."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"
CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
TEMPLATES_GLOB = str(ALERTMANAGER_DIR / "templates" / "*.tmpl")


def _amtool(*args: str) -> str:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool not found on PATH: install the Debian package prometheus-alertmanager")
    result = subprocess.run([amtool, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"amtool {' '.join(args)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result.stdout


def _config() -> Any:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def test_check_config_passes() -> None:
    out = _amtool("check-config", str(CONFIG))
    assert "SUCCESS" in out
    assert "1 templates" in out  # the templates glob matched our file


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"severity": "critical"}, ["pagerduty", "slack-critical"]),
        ({"severity": "warning"}, ["slack-warning"]),
        ({"severity": "info"}, ["email-digest"]),
        ({"severity": "info", "action": "retrain"}, ["retrain-webhook", "email-digest"]),
        ({"alertname": "SomethingUnlabelled"}, ["slack-warning"]),  # never dropped
    ],
    ids=["critical", "warning", "info", "retrain", "no-severity"],
)
def test_routes_reach_the_right_receivers(labels: dict[str, str], receivers: list[str]) -> None:
    base = {"alertname": "ModelAccuracyCritical", "model": "m", "version": "v1"}
    pairs = [f"{k}={v}" for k, v in {**base, **labels}.items()]
    out = _amtool("config", "routes", "test", f"--config.file={CONFIG}", *pairs)
    assert out.strip().split(",") == receivers


def test_rules_severities_and_actions_are_all_routed_explicitly() -> None:
    """Every severity and action label used by the shipped rules has a route of its own."""
    rules_dir = ALERTMANAGER_DIR.parents[1] / "prometheus" / "rules"
    used: set[tuple[str, str]] = set()
    for path in rules_dir.glob("*.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                for key in ("severity", "action"):
                    if key in rule.get("labels", {}):
                        used.add((key, rule["labels"][key]))
    routed = {
        tuple(m.replace('"', "").split("=", 1))
        for route in _config()["route"]["routes"]
        for m in route["matchers"]
    }
    assert used <= routed
    assert ("severity", "info") in used and ("action", "retrain") in used


def test_inhibition_is_per_model_and_family() -> None:
    inhibit = _config()["inhibit_rules"]
    critical = [r for r in inhibit if r["source_matchers"] == ['severity="critical"']]
    assert critical and critical[0]["equal"] == ["model", "alert_family"]
    assert any(r["source_matchers"] == ['alertname="ModelExporterDown"'] for r in inhibit)


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in _walk(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [item for i, v in enumerate(node) for item in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_secrets_only_through_files() -> None:
    secret_keys = re.compile(
        r"\.(api_url|slack_api_url|routing_key|service_key|auth_password|smtp_auth_password|"
        r"auth_secret|smtp_auth_secret|password|credentials|bearer_token|token)$"
    )
    leaves = _walk(_config())
    assert [path for path, _ in leaves if secret_keys.search(path)] == []
    file_fields = {path.rsplit(".", 1)[-1] for path, _ in leaves if path.endswith("_file")}
    assert {
        "api_url_file",
        "routing_key_file",
        "smtp_auth_password_file",
        "credentials_file",
    } <= file_fields


def test_each_slack_receiver_has_its_own_webhook_file() -> None:
    """A Slack app's incoming webhook posts to one channel only: critical and warning
    each need their own URL, read from their own file."""
    config = _config()
    assert "slack_api_url_file" not in config["global"]
    files = {
        receiver["name"]: [c["api_url_file"] for c in receiver["slack_configs"]]
        for receiver in config["receivers"]
        if "slack_configs" in receiver
    }
    assert files == {
        "slack-critical": ["/etc/alertmanager/secrets/slack-critical-webhook-url"],
        "slack-warning": ["/etc/alertmanager/secrets/slack-warning-webhook-url"],
    }
    documented = (REPO / "docs" / "alerting.md").read_text(encoding="utf-8")
    for (path,) in files.values():
        assert path in documented


def _render(template: str, data: dict[str, Any], tmp_path: Path) -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data), encoding="utf-8")
    return _amtool(
        "template",
        "render",
        f"--template.glob={TEMPLATES_GLOB}",
        f"--template.text={{{{ template {json.dumps(template)} . }}}}",
        f"--template.data={data_file}",
    )


RUNBOOK = "https://github.com/model-health-exporter/model-health-exporter/blob/main/docs/runbooks.md#modelaccuracycritical"
LABELS = {
    "alertname": "ModelAccuracyCritical",
    "severity": "critical",
    "alert_family": "accuracy",
    "model": "fraud",
    "version": "v7",
}
ANNOTATIONS = {
    "summary": "Model accuracy critically low",
    "value": "70%",
    "description": "Model fraud version v7 (active) has accuracy 70%, below 80%.",
    "runbook_url": RUNBOOK,
}
DATA: dict[str, Any] = {
    "receiver": "slack-critical",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": LABELS,
            "annotations": ANNOTATIONS,
            "startsAt": "2026-12-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        }
    ],
    "groupLabels": {"alertname": "ModelAccuracyCritical", "model": "fraud"},
    "commonLabels": LABELS,
    "commonAnnotations": ANNOTATIONS,
    "externalURL": "http://alertmanager.example",
}
DASHBOARD = (
    "https://grafana.example.com/d/mhe-model/model-health-model?var-model=fraud&var-version=v7"
)


@pytest.mark.parametrize("template", ["mhe.slack.text", "mhe.email.html", "mhe.email.text"])
def test_message_templates_name_model_version_value_and_links(
    template: str, tmp_path: Path
) -> None:
    out = _render(template, DATA, tmp_path)
    for expected in ("fraud", "v7", "70%", "critical", RUNBOOK, DASHBOARD):
        assert expected in out, f"{template} lacks {expected!r}:\n{out}"


def test_title_and_pagerduty_severity(tmp_path: Path) -> None:
    assert _render("mhe.title", DATA, tmp_path).strip() == (
        "[FIRING:1] ModelAccuracyCritical fraud/v7 (critical)"
    )
    assert _render("mhe.pagerduty.severity", DATA, tmp_path).strip() == "critical"


def test_exporter_alerts_link_to_the_overview(tmp_path: Path) -> None:
    labels = {"alertname": "ModelExporterDown", "severity": "critical", "job": "x"}
    data = {**DATA, "commonLabels": labels, "alerts": [{**DATA["alerts"][0], "labels": labels}]}
    out = _render("mhe.slack.text", data, tmp_path)
    assert "https://grafana.example.com/d/mhe-overview/model-health-overview" in out

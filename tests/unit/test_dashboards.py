"""The shipped Grafana dashboards and provisioning files: structure, stable uids, the
datasource variable, valid PromQL (checked by promtool) and known metric names.

Grafana itself is not available here; what it would reject is checked structurally."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_rule_consistency import known_metrics, metric_names

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO_ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
EXPECTED_UIDS = {
    "model-health-overview.json": "mhe-overview",
    "model-health-model.json": "mhe-model",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Values for Grafana's variables, so that the queries can be handed to promtool.
VARIABLE_VALUES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$model": "m",
    "$version": "v1",
    "$job": ".+",
    "$instance": ".+",
}
# The job and instance variables, as every model-metric selector filters by them.
BY_TARGET = 'job=~"$job", instance=~"$instance"'


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows nest their panels
    return panels


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in _panels(dashboard) for t in p.get("targets", [])]


def _substitute(expr: str) -> str:
    for name, value in sorted(VARIABLE_VALUES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown variable in {expr!r}"
    return expr


def test_both_dashboards_are_shipped_with_stable_uids() -> None:
    assert {path.name: _load(path)["uid"] for path in DASHBOARDS} == EXPECTED_UIDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert "__inputs" not in dashboard, "no import-time ${DS_PROMETHEUS} inputs"
    assert "DS_PROMETHEUS" not in path.read_text(encoding="utf-8")
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_datasource_variable_comes_first(path: Path) -> None:
    variables = _load(path)["templating"]["list"]
    assert variables[0]["name"] == "datasource"
    assert variables[0]["type"] == "datasource" and variables[0]["query"] == "prometheus"
    for var in variables[1:]:
        assert var["datasource"] == DATASOURCE


def test_model_dashboard_variables() -> None:
    variables = {
        v["name"]: v
        for v in _load(GRAFANA_DIR / "dashboards" / "model-health-model.json")["templating"]["list"]
    }
    assert list(variables) == ["datasource", "job", "instance", "model", "version"]
    assert variables["job"]["definition"] == 'label_values(up{job="model-health-exporter"}, job)'
    assert variables["instance"]["definition"] == 'label_values(up{job=~"$job"}, instance)'
    assert variables["model"]["definition"] == (
        f"label_values(routing_ml_model_active{{{BY_TARGET}}}, model)"
    )
    assert variables["version"]["definition"] == (
        f'label_values(routing_ml_model_active{{{BY_TARGET}, model="$model"}}, version)'
    )
    for name in ("job", "instance"):
        assert variables[name]["includeAll"] and variables[name]["multi"]
    assert variables["version"]["includeAll"] and variables["version"]["allValue"] == ".*"


def test_model_dashboard_has_the_issue_panels() -> None:
    dashboard = _load(GRAFANA_DIR / "dashboards" / "model-health-model.json")
    exprs = " ".join(t["expr"] for _, t in _targets(dashboard))
    for needed in (
        "routing_ml_model_accuracy",
        "routing_ml_live_accuracy",
        "routing_ml_estimated_accuracy",
        "topk(5, routing_ml_model_f1_score",
        "routing_ml_training_samples",
        "routing_ml_feature_psi",
        "routing_ml_prediction_psi",
        "model_version:routing_ml_prediction_errors:ratio_rate5m",
        "p50_rate5m",
        "p95_rate5m",
        "p99_rate5m",
        "routing_ml_prediction_confidence_bucket",
        "routing_ml_low_confidence_ratio",
        "routing_ml_feature_missing_ratio",
        "routing_ml_feature_unseen_category_ratio",
        "routing_ml_model_health_check_score",
        "routing_ml_model_retrain_reason",
    ):
        assert needed in exprs, needed


def test_threshold_lines_come_from_the_configured_thresholds() -> None:
    dashboard = _load(GRAFANA_DIR / "dashboards" / "model-health-model.json")
    accuracy = next(p for p in _panels(dashboard) if p["title"].startswith("Accuracy"))
    thresholds = {
        t["legendFormat"]: t["expr"] for t in accuracy["targets"] if "threshold" in t["expr"]
    }
    selector = (
        f"routing_ml_model_quality_threshold{{{BY_TARGET}, "
        'model="$model", metric="accuracy", severity="%s"}'
    )
    assert thresholds == {
        "warning threshold": selector % "warning",
        "critical threshold": selector % "critical",
    }
    styled = {o["matcher"]["options"] for o in accuracy["fieldConfig"]["overrides"]}
    assert any(re.fullmatch(regex, "warning threshold") for regex in styled)
    assert any(re.fullmatch(regex, "critical threshold") for regex in styled)


def test_overview_covers_every_model() -> None:
    dashboard = _load(GRAFANA_DIR / "dashboards" / "model-health-overview.json")
    exprs = " ".join(t["expr"] for _, t in _targets(dashboard))
    for needed in (
        "routing_ml_model_health_score",
        "routing_ml_model_health_level",
        'ALERTS{alertstate="firing"',
        "model:routing_ml_model_accuracy:active",
        "model_version:routing_ml_predictions:rate5m",
        "model:routing_ml_data_drift_share:active",
    ):
        assert needed in exprs, needed


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool parses each query (variables substituted) as the expression of a rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: install the Debian package 'prometheus'")
    rules = []
    for path in DASHBOARDS:
        dashboard = _load(path)
        for i, (_, target) in enumerate(_targets(dashboard)):
            rules.append(
                {
                    "record": f"dashboard:{path.stem.replace('-', '_')}:q{i}",
                    "expr": _substitute(target["expr"]),
                }
            )
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_metric_exists() -> None:
    unknown = {
        (path.name, title, name)
        for path in DASHBOARDS
        for title, target in _targets(_load(path))
        for name in metric_names(target["expr"]) - known_metrics()
    }
    assert unknown == set()


def test_provisioning_files() -> None:
    dashboards = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "model-health.yml").read_text()
    )
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy" and source["url"]

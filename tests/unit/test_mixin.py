"""The jsonnet mixin (mixin/) generates the committed rule files, dashboards and
PrometheusRule, and its _config reaches every one of them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import _jsonnet
import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "gen-mixin.py"
MIXIN = REPO / "mixin"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_mixin", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_files_equal_the_mixin_output() -> None:
    rendered = generator().render()
    assert {
        "deploy/kubernetes/prometheusrule.yaml",
        "grafana/dashboards/model-health-model.json",
        "grafana/dashboards/model-health-overview.json",
        "prometheus/rules/model-live.rules.yml",
    } <= set(rendered)
    generated_rules = {n for n in rendered if n.startswith("prometheus/rules/")}
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "prometheus" / "rules").glob("*.yml")}
    assert on_disk == generated_rules, "a rule file the mixin does not generate"
    for name, text in rendered.items():
        committed = (REPO / name).read_text(encoding="utf-8")
        assert committed == text, (
            f"{name} is out of date with mixin/: run `.venv/bin/python scripts/gen-mixin.py` "
            "and commit the result"
        )


def test_check_mode_fails_on_a_stale_tree(tmp_path: Path) -> None:
    command = [sys.executable, str(GENERATOR), "--check", f"--root={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "prometheus/rules/model-live.rules.yml" in result.stdout
    written = subprocess.run([*command[:2], f"--root={tmp_path}"], check=True)
    assert written.returncode == 0
    assert subprocess.run(command, check=False).returncode == 0


def _evaluate(config: str) -> dict[str, Any]:
    """The mixin's three outputs under a _config override."""
    snippet = f"""
      local mixin = (import 'mixin.libsonnet') + {{ _config+:: {config} }};
      {{
        alerts: mixin.prometheusAlerts,
        rules: mixin.prometheusRules,
        dashboards: mixin.grafanaDashboards,
      }}
    """
    result: dict[str, Any] = json.loads(
        _jsonnet.evaluate_snippet("test", snippet, jpathdir=[str(MIXIN)])
    )
    return result


def _rules(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for doc in (out["alerts"], out["rules"]) for g in doc["groups"] for r in g["rules"]]


def test_config_reaches_every_rule_and_panel() -> None:
    out = _evaluate(
        """{
          prefix: 'acme_ml',
          exporterSelector: 'job="ml-exporter"',
          runbookURLBase: 'https://wiki.example/runbooks#',
          datasource: 'acme-prometheus',
          thresholds+: { liveAccuracyDropCritical: 0.2 },
          'for'+: { ModelDataDrift: '7m' },
        }"""
    )
    text = json.dumps(out)
    assert "routing_ml" not in text
    assert "model-health-exporter/blob" not in text
    rules = {r.get("alert") or r["record"]: r for r in _rules(out)}
    assert rules["ModelExporterDown"]["expr"] == 'up{job="ml-exporter"} == 0'
    assert rules["ModelExporterAbsent"]["expr"] == 'absent(up{job="ml-exporter"})'
    assert "> 0.2\n" in rules["ModelLiveAccuracyCritical"]["expr"]
    assert rules["ModelDataDrift"]["for"] == "7m"
    assert all(
        r["annotations"]["runbook_url"] == "https://wiki.example/runbooks#" + r["alert"].lower()
        for r in rules.values()
        if "alert" in r
    )
    for dashboard in out["dashboards"].values():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["query"] == "acme-prometheus"
        assert variables["job"]["definition"] == 'label_values(up{job="ml-exporter"}, job)'


@pytest.mark.parametrize("labels", [["job", "instance"], ["cluster", "job", "instance"]])
def test_joins_follow_the_instance_labels(labels: list[str]) -> None:
    out = _evaluate(f"{{ instanceLabels: {json.dumps(labels)} }}")
    joined = ", ".join(labels)
    for rule in _rules(out):
        if " on(" in rule["expr"]:
            assert f"on({joined}, model" in rule["expr"], rule.get("alert") or rule["record"]
        assert "on(model" not in rule["expr"], rule.get("alert") or rule["record"]

"""The shipped rules and dashboards only use metrics that exist, and every alert carries what
the routes, templates and runbooks rely on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "prometheus" / "rules"
DASHBOARDS_DIR = REPO_ROOT / "grafana" / "dashboards"
METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"
RUNBOOKS_DOC = REPO_ROOT / "docs" / "runbooks.md"
RUNBOOK_PREFIX = (
    "https://github.com/model-health-exporter/model-health-exporter/blob/main/docs/runbooks.md#"
)

# Series Prometheus itself makes: scrape health and the alerts' own state.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}

# PromQL words that look like metric names: keywords, aggregations, modifiers.
_PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "inf", "nan", "atan2",
}  # fmt: skip


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def shipped_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in _load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def shipped_alerts() -> list[dict[str, Any]]:
    return [rule for rule in shipped_rules() if "alert" in rule]


def recording_rule_names() -> set[str]:
    return {rule["record"] for rule in shipped_rules() if "record" in rule}


def documented_metrics() -> set[str]:
    """Names in the first column of docs/metrics.md's tables; a histogram also serves its
    _bucket, _sum and _count series."""
    names: set[str] = set()
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(\w+)", line)
        if match:
            name, kind = match.groups()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def known_metrics() -> set[str]:
    return documented_metrics() | recording_rule_names() | PROMETHEUS_SERIES


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a lexer-level approximation that ignores
    strings, label matchers, label lists, ranges, functions and keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    exprs = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for panel in doc["panels"]:
            for target in panel.get("targets", []):
                exprs.append((f"{path.name}: {panel['title']}", target["expr"]))
        for var in doc["templating"]["list"]:
            if var["type"] == "query":
                match = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["definition"])
                assert match, var["definition"]
                exprs.append((f"{path.name}: variable {var['name']}", match.group(1)))
    return exprs


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (model, le) (rate(routing_ml_x_bucket{model="$model", le=~"a|b"}[5m])) '
        "> on(model) group_left 2 * (a:b:c offset 1d) and ALERTS unless up"
    )
    assert metric_names(expr) == {"routing_ml_x_bucket", "a:b:c", "ALERTS", "up"}


@pytest.mark.parametrize("rule", shipped_rules(), ids=lambda r: r.get("alert") or r["record"])
def test_rule_uses_only_served_metrics(rule: dict[str, Any]) -> None:
    assert metric_names(rule["expr"]) - known_metrics() == set()


@pytest.mark.parametrize(("where", "expr"), dashboard_exprs(), ids=lambda x: str(x)[:60])
def test_dashboard_uses_only_served_metrics(where: str, expr: str) -> None:
    assert metric_names(expr) - known_metrics() == set(), where


def test_recording_rule_names_follow_the_convention() -> None:
    for name in recording_rule_names():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name


def _runbook_anchors() -> set[str]:
    anchors = set()
    for line in RUNBOOKS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            heading = line[3:].strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("alert", shipped_alerts(), ids=lambda r: r["alert"])
def test_alert_is_complete(alert: dict[str, Any]) -> None:
    name = alert["alert"]
    labels, annotations = alert["labels"], alert["annotations"]
    assert re.fullmatch(r"Model[A-Z][A-Za-z0-9]*", name), "one prefix, CamelCase"
    assert labels["severity"] in {"critical", "warning", "info"}
    assert labels["alert_family"], "inhibit rules compare alert_family"
    assert labels["component"]
    assert annotations["summary"] and "{{" not in annotations["summary"], "summary is static"
    description = annotations["description"]
    assert "{{" in description
    if labels["component"] != "exporter":  # the exporter's alerts concern no model
        assert "$labels.model" in description and "$labels.version" in description
    assert "$value" in description or "$value" in annotations["value"]
    assert annotations["runbook_url"] == RUNBOOK_PREFIX + name.lower()
    assert name.lower() in _runbook_anchors(), f"docs/runbooks.md has no section ## {name}"
    assert "for" in alert, "for: against flapping"


def test_alert_names_are_unique() -> None:
    names = [alert["alert"] for alert in shipped_alerts()]
    assert len(names) == len(set(names))


def test_every_runbook_section_belongs_to_an_alert() -> None:
    assert _runbook_anchors() - {a["alert"].lower() for a in shipped_alerts()} == set()


def test_every_recording_rule_is_read_by_an_alert_or_a_panel() -> None:
    readers = [rule["expr"] for rule in shipped_alerts()] + [e for _, e in dashboard_exprs()]
    used = set().union(*(metric_names(expr) for expr in readers))
    assert recording_rule_names() - used == set()

"""Compare a candidate model's metrics with a baseline's against thresholds, as a
CI quality gate. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from model_health_exporter.quality_metrics import BY_NAME
from model_health_exporter.schema import Levels, ModelMetrics

Severity = Literal["ok", "warning", "critical"]
_RANK = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Finding:
    metric: str
    candidate: float | None
    baseline: float | None
    change_ratio: float | None  # (candidate - baseline) / baseline
    severity: Severity
    threshold: float | None  # the level breached, if any

    def describe(self) -> str:
        if self.candidate is None:
            return f"{self.metric}: missing from the candidate"
        base = "n/a" if self.baseline is None else f"{self.baseline:.3f}"
        change = "" if self.change_ratio is None else f", {self.change_ratio * 100:+.1f}%"
        breach = ""
        if self.threshold is not None:
            side = "<" if BY_NAME[self.metric].higher_is_better else ">"
            breach = f" {side} {self.severity} threshold {self.threshold:.3f}"
        return f"{self.metric} = {self.candidate:.3f} (baseline {base}{change}){breach}"


def _breaches(value: float, level: float | None, higher_is_better: bool) -> bool:
    if level is None:
        return False
    return value < level if higher_is_better else value > level


def compare(
    baseline: ModelMetrics, candidate: ModelMetrics, levels: Mapping[str, Levels]
) -> list[Finding]:
    """One finding per metric that has a warning or critical level. A metric the
    candidate lacks is a warning: a gate must not pass on missing evidence."""
    base_values, cand_values = baseline.quality(), candidate.quality()
    findings = []
    for name, lv in levels.items():
        if lv.warning is None and lv.critical is None:
            continue
        higher = BY_NAME[name].higher_is_better
        value, base = cand_values.get(name), base_values.get(name)
        change = None if value is None or not base else (value - base) / abs(base)
        severity: Severity = "ok"
        threshold = None
        if value is None:
            severity = "warning"
        elif _breaches(value, lv.critical, higher):
            severity, threshold = "critical", lv.critical
        elif _breaches(value, lv.warning, higher):
            severity, threshold = "warning", lv.warning
        findings.append(Finding(name, value, base, change, severity, threshold))
    return findings


def gate_passes(findings: list[Finding], fail_on: Literal["warning", "critical"]) -> bool:
    return all(_RANK[f.severity] < _RANK[fail_on] for f in findings)

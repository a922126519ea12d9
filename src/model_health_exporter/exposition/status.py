"""Each version's status against its own model's thresholds, worst finding first: what
the status board and the model page show. Pure: views in, findings out.

The word is the worst of every finding, so a health score that still reads "good"
cannot hide a live accuracy under the warning threshold: both are findings, and the
status is the worse one. The limits are those of the shipped alert rules (live accuracy
5% / 10% below evaluation, errors over 5% / 10%, health under 70 / 50)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from model_health_exporter.quality_metrics import BY_NAME
from model_health_exporter.schema import Levels
from model_health_exporter.state.health import HealthView
from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import ModelView, VersionView
from model_health_exporter.state.series import MIN_POINT_SAMPLES

Severity = Literal["critical", "warning", "info"]
Status = Literal["critical", "warning", "ok", "no data"]
STATUSES: Final[tuple[Status, ...]] = ("critical", "warning", "ok", "no data")
_RANK: Final = {"critical": 2, "warning": 1, "info": 0}

LIVE_DROP: Final = {"warning": 0.05, "critical": 0.10}  # below evaluation accuracy
ERROR_RATIO: Final = {"warning": 0.05, "critical": 0.10}
HEALTH_LEVEL_SEVERITY: Final[dict[str, Severity]] = {"fair": "warning", "poor": "critical"}


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    text: str


@dataclass(frozen=True, slots=True)
class VersionStatus:
    status: Status
    findings: tuple[Finding, ...]  # worst first
    drifted: tuple[str, ...]  # features flagged as drifted, most drifted (PSI) first
    serving: bool
    # (evaluation|live|estimated, metric) -> the finding of that metric past a threshold
    marks: Mapping[tuple[str, str], Finding] = field(default_factory=dict)

    @property
    def worst(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.4g}"


_LEVELS: Final[tuple[Severity, ...]] = ("critical", "warning")


def breach(value: float, levels: Levels, higher_is_better: bool) -> Severity | None:
    """critical or warning if `value` is past that level (below it when higher is better,
    above it when lower is better), else None."""
    for severity in _LEVELS:
        limit = getattr(levels, severity)
        if limit is None:
            continue
        if (value < limit) if higher_is_better else (value > limit):
            return severity
    return None


def _over(value: float, limits: dict[str, float], text: str) -> list[Finding]:
    """The worst of critical / warning whose limit `value` exceeds, as a finding whose
    `text` gets the limit put in."""
    for severity in _LEVELS:
        if value > limits[severity]:
            return [Finding(severity, text.format(limit=limits[severity]))]
    return []


def _threshold_findings(
    source: str,
    values: dict[str, float],
    levels: dict[str, Levels],
    marks: dict[tuple[str, str], Finding],
) -> list[Finding]:
    """One finding per severity, naming each metric of `source` past that threshold (the
    first in full, the others briefly); each metric's own finding goes into `marks`."""
    grouped: dict[Severity, list[tuple[str, str]]] = {}
    for name, value in values.items():
        metric, lv = BY_NAME.get(name), levels.get(name)
        if metric is None or lv is None:
            continue
        severity = breach(value, lv, metric.higher_is_better)
        if severity is None:
            continue
        limit = getattr(lv, severity)
        word, sign = ("below", "<") if metric.higher_is_better else ("above", ">")
        full = f"{source} {name} {_fmt(value)} {word} {severity} {_fmt(limit)}"
        marks[(source, name)] = Finding(severity, full)
        grouped.setdefault(severity, []).append(
            (full, f"{name} {_fmt(value)} {sign} {_fmt(limit)}")
        )
    out = []
    for severity, items in grouped.items():
        text = items[0][0]
        if len(items) > 1:
            text += ", also " + ", ".join(brief for _, brief in items[1:])
        out.append(Finding(severity, text))
    return out


def drifted_features(tallies: TalliesView | None) -> tuple[str, ...]:
    if tallies is None:
        return ()
    flagged = [
        (stats.get("psi", 0.0), name)
        for name, stats in tallies.window.features.items()
        if stats.get("drift_detected")
    ]
    return tuple(name for _, name in sorted(flagged, key=lambda f: (-f[0], f[1])))


def _file_findings(
    model: ModelView, version: VersionView, marks: dict[tuple[str, str], Finding]
) -> tuple[list[Finding], bool]:
    """What metrics.json says against the thresholds, and whether anything was judged."""
    levels, expected = dict(model.baseline.levels), model.baseline.expected
    findings: list[Finding] = []
    if not version.valid:
        findings.append(Finding("warning", f"metrics.json invalid: {version.problem or 'unknown'}"))
    metrics = version.metrics
    if metrics is None:
        return findings, False
    evaluation = metrics.quality()
    judged = any(name in levels for name in evaluation)
    findings += _threshold_findings("evaluation", evaluation, levels, marks)
    samples = metrics.training_samples
    if samples is not None and expected.min_samples is not None:
        judged = True
        if samples < expected.min_samples:
            findings.append(
                Finding(
                    "warning",
                    f"trained on {samples} samples, fewer than the expected {expected.min_samples}",
                )
            )
    limit = expected.max_missing_rate
    rates = version.missing_rates
    high = sorted(c for c, r in rates.items() if limit is not None and r > limit)
    if high and limit is not None:
        findings.append(
            Finding("warning", f"training data missing over {limit:.0%} in: " + ", ".join(high))
        )
    return findings, judged


def _window_findings(
    model: ModelView,
    version: VersionView,
    tallies: TalliesView,
    marks: dict[tuple[str, str], Finding],
) -> tuple[list[Finding], bool]:
    """What the live window says against the same thresholds and the alert limits."""
    levels, expected = dict(model.baseline.levels), model.baseline.expected
    window = dict(tallies.window.metrics)
    live = {name: window[name] for name in BY_NAME if name in window}
    judged = bool(live) or "estimated_accuracy" in window or "error_ratio" in window
    findings = _threshold_findings("live", live, levels, marks)
    if "estimated_accuracy" in window:
        estimated = {"accuracy": window["estimated_accuracy"]}
        findings += _threshold_findings("estimated", estimated, levels, marks)
    evaluation = version.metrics.accuracy if version.metrics is not None else None
    if "accuracy" in live and evaluation:
        drop = (evaluation - live["accuracy"]) / evaluation
        findings += _over(
            drop,
            LIVE_DROP,
            f"live accuracy {drop:.1%} below evaluation accuracy (limit {{limit:.0%}})",
        )
    errors = window.get("error_ratio")
    if errors is not None:
        findings += _over(
            errors, ERROR_RATIO, f"{errors:.1%} of predictions failed (limit {{limit:.0%}})"
        )
    drifted = drifted_features(tallies)
    if drifted:
        findings.append(Finding("warning", "data drift in: " + ", ".join(drifted)))
    if window.get("prediction_drift_detected"):
        findings.append(Finding("warning", "the predictions drifted from the reference"))
    limit = expected.max_missing_rate
    if limit is not None:
        missing = sorted(
            name
            for name, stats in tallies.window.features.items()
            if stats.get("missing_ratio", 0.0) > limit
        )
        if missing:
            findings.append(
                Finding(
                    "warning", f"live values missing over {limit:.0%} in: " + ", ".join(missing)
                )
            )
    return findings, judged


def accuracy_trouble_since(
    model: ModelView, version: VersionView, tallies: TalliesView
) -> float | None:
    """The start of the run of buckets, up to the newest, whose live accuracy was under
    the warning threshold or more than 5% below the evaluation accuracy (buckets with
    fewer than MIN_POINT_SAMPLES labelled predictions neither break nor start it)."""
    series = tallies.window.series
    if series is None:
        return None
    levels = model.baseline.levels.get("accuracy")
    warning = None if levels is None else levels.warning
    evaluation = version.metrics.accuracy if version.metrics is not None else None
    since = None
    for point in reversed(series.points):
        accuracy = point.accuracy
        if accuracy is None or point.labelled < MIN_POINT_SAMPLES:
            continue
        below = warning is not None and accuracy < warning
        dropped = (
            evaluation is not None
            and evaluation > 0
            and (evaluation - accuracy) / evaluation > LIVE_DROP["warning"]
        )
        if not (below or dropped):
            break
        since = point.start
    return since


def _health_findings(health: HealthView) -> list[Finding]:
    findings = []
    if health.score is not None and health.level is not None:
        severity = HEALTH_LEVEL_SEVERITY.get(health.level)
        if severity is not None:
            findings.append(Finding(severity, f"health {health.score:.0f} ({health.level})"))
    if health.retrain_recommended:
        reasons = ", ".join(sorted(health.retrain_reasons))
        findings.append(Finding("info", f"retraining recommended: {reasons}"))
    return findings


def version_status(
    model: ModelView,
    version: VersionView,
    tallies: TalliesView | None,
    health: HealthView | None,
) -> VersionStatus:
    """The findings about one version. Thresholds on evaluation metrics hold for every
    version (an old version below its critical threshold is flagged, not hidden); what
    the live window says counts for any version that logs predictions."""
    marks: dict[tuple[str, str], Finding] = {}
    findings, judged = _file_findings(model, version, marks)
    if tallies is not None:
        more, judged_window = _window_findings(model, version, tallies, marks)
        findings += more
        judged |= judged_window
    if health is not None:
        findings += _health_findings(health)
        judged |= health.score is not None
    findings.sort(key=lambda f: -_RANK[f.severity])
    worst = max((_RANK[f.severity] for f in findings), default=0)
    status: Status = (
        "critical" if worst == 2 else "warning" if worst == 1 else "ok" if judged else "no data"
    )
    return VersionStatus(
        status, tuple(findings), drifted_features(tallies), version.active, MappingProxyType(marks)
    )

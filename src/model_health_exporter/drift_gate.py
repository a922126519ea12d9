"""`inspect --reference REF --current CUR`: two datasets compared the way the daemon
compares a live window with a version's reference, for CI and batch jobs.

The reference becomes a profile exactly as a `reference.csv` / `reference.jsonl` next to
metrics.json does (`stats.reference.build_reference`, with the configured bins, top
categories and feature limit); the current dataset is tallied over its bins as a window
tallies predictions (`DriftCounts`), and `drift_report` computes drift, multiple-testing
correction, data quality and label-free estimates with the configured method. The health
checks are those of `state.health`. Only the schema comparison is particular to two files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from model_health_exporter.config import Settings
from model_health_exporter.records import Prediction
from model_health_exporter.sources.reference import (
    ReferenceError,
    ReferenceProfileFile,
    ReferenceRows,
    read_reference,
)
from model_health_exporter.state.health import window_checks
from model_health_exporter.stats import health
from model_health_exporter.stats.degradation import degradation_ratio
from model_health_exporter.stats.drift import DEFAULT_THRESHOLDS
from model_health_exporter.stats.profile import NumericProfile, category_key
from model_health_exporter.stats.reference import (
    DriftCounts,
    DriftSettings,
    ModelReference,
    build_reference,
    drift_report,
)

MAX_ROWS: Final = 1_000_000
MAX_BYTES: Final = 1024 * 1024 * 1024
CHECKS: Final = ("drift", "quality", "health")
QUALITY_RATIOS: Final = ("missing_ratio", "out_of_range_ratio", "unseen_category_ratio")
DEFAULT_QUALITY_MAX: Final = health.DEFAULT_QUALITY_ALERT
DEFAULT_HEALTH_MIN: Final = 70.0  # the good/fair edge, where ModelHealthFair fires


class GateInputError(Exception):
    """A dataset cannot be used; the message names the file and what is wrong."""


def _read(path: Path, what: str, *, profile_ok: bool) -> ReferenceRows | ModelReference:
    if not path.is_file():
        raise GateInputError(f"{path}: {what} dataset does not exist or is not a file")
    try:
        loaded = read_reference(path, max_bytes=MAX_BYTES, max_rows=MAX_ROWS)
    except ReferenceError as exc:
        raise GateInputError(f"{what} dataset {exc}") from None
    if isinstance(loaded, ReferenceProfileFile):
        if not profile_ok:
            raise GateInputError(f"{path}: a reference profile; give the current data itself")
        try:
            return ModelReference.from_dict(loaded.data, source="profile")
        except ValueError as exc:
            raise GateInputError(f"{path}: {exc}") from None
    if not len(loaded):
        problem = f" (first problem: {loaded.first_problem})" if loaded.first_problem else ""
        raise GateInputError(f"{path}: {what} dataset has no usable rows{problem}")
    return loaded


def _read_current(path: Path) -> ReferenceRows:
    loaded = _read(path, "current", profile_ok=False)
    if not isinstance(loaded, ReferenceRows):  # _read refuses a profile here
        raise GateInputError(f"{path}: a reference profile; give the current data itself")
    return loaded


def _predictions(rows: ReferenceRows) -> list[Prediction]:
    return [
        Prediction(None, label, value, probs, conf, latency, None, features=features)
        for features, label, value, probs, conf, latency in zip(
            rows.features,
            rows.labels,
            rows.values,
            rows.probabilities,
            rows.confidences,
            rows.latencies,
            strict=True,
        )
    ]


def _names(rows: Iterable[Mapping[str, object]]) -> set[str]:
    return {name for row in rows for name in row}


def _schema(
    reference: ModelReference,
    reference_names: set[str],
    current: ReferenceRows,
    counts: DriftCounts,
) -> dict[str, Any]:
    """Features the current data lacks entirely, features it adds, and numeric features
    whose current values include text (share of the present values)."""
    current_names = _names(current.features)
    to_text = {}
    for i, (name, profile) in enumerate(reference.features.items()):
        invalid = int(counts.invalid_type[i])
        if isinstance(profile, NumericProfile) and invalid:
            present = int(counts.feature_counts[i].sum()) + invalid
            to_text[name] = invalid / present
    return {
        "missing": sorted(set(reference.features) - current_names),
        "added": sorted(current_names - reference_names),
        "numeric_to_text": to_text,
    }


def _accuracy(rows: ReferenceRows) -> tuple[float | None, int]:
    """The share of labelled rows whose predicted class is the actual one, and how many
    rows that is (classification rows with both a prediction and an actual)."""
    pairs = [
        (label, category_key(actual))
        for label, actual in zip(rows.labels, rows.actuals, strict=True)
        if label is not None and actual is not None
    ]
    if not pairs:
        return None, 0
    return sum(label == actual for label, actual in pairs) / len(pairs), len(pairs)


def _mean(values: Sequence[float | None]) -> tuple[float | None, int]:
    known = [v for v in values if v is not None]
    return (sum(known) / len(known) if known else None), len(known)


def compare_datasets(
    reference_path: Path, current_path: Path, settings: Settings
) -> dict[str, Any]:
    """The comparison as one JSON-ready document. Raises GateInputError."""
    ref = _read(reference_path, "reference", profile_ok=True)
    cur = _read_current(current_path)
    d, logs = settings.drift, settings.logs
    if isinstance(ref, ReferenceRows):
        reference = build_reference(
            ref.source,
            ref.features,
            **ref.columns(),
            n_bins=d.bins,
            top_k=d.top_categories,
            max_features=d.max_features,
            max_classes=logs.max_classes,
        )
        reference_names = _names(ref.features)
        ref_info = {"rows": len(ref), "skipped": ref.skipped, "truncated": ref.truncated}
        target, _ = _accuracy(ref)
    else:
        reference, reference_names = ref, set(ref.features)
        ref_info = {"rows": ref.n, "skipped": 0, "truncated": False}
        target = None  # a profile keeps no labels
    counts = DriftCounts.empty(reference)
    counts.add_rows(reference, _predictions(cur))
    drift_settings = DriftSettings(d.method, d.threshold, d.correction, logs.window_min_samples)
    report = drift_report(reference, counts, drift_settings)
    metrics = dict(report.metrics)
    minimum = logs.window_min_samples
    if len(cur) + cur.skipped >= minimum:
        metrics["invalid_record_ratio"] = cur.skipped / (len(cur) + cur.skipped)
    latency, n_latency = _mean(cur.latencies)
    if latency is not None and reference.latency_mean is not None and n_latency >= minimum:
        metrics["latency_mean_seconds"] = latency
        metrics["reference_latency_mean_seconds"] = reference.latency_mean
    accuracy, labelled = _accuracy(cur)
    if accuracy is not None and labelled >= minimum:
        metrics["accuracy"] = accuracy
    # As the daemon's performance check: labelled accuracy, else the label-free estimate,
    # against a target, here the reference's own accuracy.
    picked = health.pick_performance(
        metrics.get("accuracy"), metrics.get("estimated_accuracy"), None
    )
    drop = None
    if picked is not None and target is not None:
        metrics["reference_accuracy"] = target
        drop = degradation_ratio(picked[1], target, higher_is_better=True)
    features = {name: dict(stats) for name, stats in report.features.items()}
    checks = window_checks(metrics, features, drop)
    score = health.health_score(checks)
    return {
        "reference": {"path": str(reference_path), "source": reference.source, **ref_info},
        "current": {
            "path": str(current_path),
            "rows": len(cur),
            "skipped": cur.skipped,
            "first_problem": cur.first_problem,
            "truncated": cur.truncated,
        },
        "drift": {
            "method": d.method,
            "threshold": DEFAULT_THRESHOLDS[d.method] if d.threshold is None else d.threshold,
            "correction": d.correction,
            "min_samples": minimum,
            "dropped_features": reference.dropped_features,
        },
        "schema": _schema(reference, reference_names, cur, counts),
        "drifted": sorted(n for n, s in features.items() if s.get("drift_detected")),
        "features": features,
        "metrics": metrics,
        "health": {
            "performance_source": None if picked is None or drop is None else picked[0],
            "score": score.score,
            "level": score.level,
            "checks": {c: s for c, s in checks.items() if s is not None},
            "weights": dict(score.weights_used),
        },
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    failed: bool
    reasons: tuple[str, ...]  # why it failed, or why it could not be evaluated
    evaluated: bool = True


def _evidence(stats: Mapping[str, float]) -> str:
    shown = [
        f"{label} {stats[key]:.3g}"
        for key, label in (("drift_p_value", "p before correction"), ("psi", "PSI"))
        if key in stats
    ]
    return ", ".join(shown) or "past the threshold"


def drift_verdict(
    features: Mapping[str, Mapping[str, float]], metrics: Mapping[str, float]
) -> Verdict:
    tested = [n for n, s in features.items() if "drift_detected" in s]
    drifted = sorted(n for n in tested if features[n]["drift_detected"])
    reasons = [f"feature {n} drifted ({_evidence(features[n])})" for n in drifted]
    if metrics.get("prediction_drift_detected"):
        reasons.append("the prediction's distribution drifted")
    if not tested and "prediction_drift_detected" not in metrics:
        return Verdict(False, ("too few rows to test for drift",), evaluated=False)
    return Verdict(bool(reasons), tuple(reasons))


def quality_verdict(
    features: Mapping[str, Mapping[str, float]],
    metrics: Mapping[str, float],
    schema: Mapping[str, Any] | None,
    quality_max: float,
) -> Verdict:
    reasons = []
    if schema is not None:
        reasons += [f"feature {n} missing from the current data" for n in schema["missing"]]
        reasons += [
            f"numeric feature {n} holds text in {ratio:.1%} of its values"
            for n, ratio in schema["numeric_to_text"].items()
        ]
    for name, stats in sorted(features.items()):
        for ratio in QUALITY_RATIOS:
            value = stats.get(ratio)
            if value is not None and value > quality_max:
                label = ratio.removesuffix("_ratio").replace("_", " ")
                reasons.append(f"feature {name}: {label} {value:.1%} > {quality_max:.1%}")
    invalid = metrics.get("invalid_record_ratio")
    if invalid is not None and invalid > quality_max:
        reasons.append(f"invalid records {invalid:.1%} > {quality_max:.1%}")
    evaluated = bool(reasons) or any(r in s for s in features.values() for r in QUALITY_RATIOS)
    if not evaluated:
        return Verdict(False, ("too few rows to measure data quality",), evaluated=False)
    return Verdict(bool(reasons), tuple(reasons))


def health_verdict(score: float | None, level: str | None, health_min: float) -> Verdict:
    if score is None:
        return Verdict(False, ("no health check had data",), evaluated=False)
    if score < health_min:
        return Verdict(True, (f"health score {score:.0f} ({level}) < {health_min:g}",))
    return Verdict(False, ())


def dataset_verdicts(
    document: Mapping[str, Any], quality_max: float, health_min: float
) -> dict[str, Verdict]:
    features, metrics = document["features"], document["metrics"]
    h = document["health"]
    return {
        "drift": drift_verdict(features, metrics),
        "quality": quality_verdict(features, metrics, document["schema"], quality_max),
        "health": health_verdict(h["score"], h["level"], health_min),
    }


def models_verdicts(
    document: Mapping[str, Any], quality_max: float, health_min: float
) -> dict[str, Verdict]:
    """The same checks over the active version of every model in a /api/v1/models
    document; a version without the data a check needs does not fail it."""
    found: dict[str, list[str]] = {check: [] for check in CHECKS}
    for model in document["models"]:
        for v in model["versions"]:
            if not v["active"]:
                continue
            where = f"{model['name']}/{v['version']}"
            window = v.get("window") or {"features": {}, "metrics": {}}
            h = v.get("health") or {"score": None, "level": None}
            verdicts = {
                "drift": drift_verdict(window["features"], window["metrics"]),
                "quality": quality_verdict(
                    window["features"], window["metrics"], None, quality_max
                ),
                "health": health_verdict(h["score"], h["level"], health_min),
            }
            if not v["valid"]:
                found["quality"].append(f"{where}: metrics.json invalid: {v['problem']}")
            for check, verdict in verdicts.items():
                if verdict.failed:
                    found[check] += [f"{where}: {reason}" for reason in verdict.reasons]
    return {check: Verdict(bool(reasons), tuple(reasons)) for check, reasons in found.items()}

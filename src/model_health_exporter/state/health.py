"""The health score and retraining recommendation of a model version: gathers what the
registry (metrics.json, baseline) and the live window know and hands it to
`stats.health`. Immutable views, compared by value so an unchanged version keeps its
rendered text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import ModelView, VersionView
from model_health_exporter.stats import health
from model_health_exporter.stats.degradation import DEFAULT_BANDS, SeverityBands, degradation_ratio

CHECKS: Final = health.CHECKS
LEVELS: Final = health.HEALTH_LEVELS
RETRAIN_REASONS: Final = health.RETRAIN_REASONS


@dataclass(frozen=True, slots=True)
class HealthConfig:
    triggers: health.RetrainTriggers = field(default_factory=health.RetrainTriggers)
    bands: SeverityBands = DEFAULT_BANDS


@dataclass(frozen=True, slots=True)
class HealthView:
    model: str
    version: str
    score: float | None
    level: str | None
    checks: tuple[tuple[str, float], ...]  # check -> score, only checks with data
    weights: tuple[tuple[str, float], ...]  # check -> effective weight, every check
    performance_source: str | None  # live, estimated or evaluation
    retrain_reasons: frozenset[str]
    retrain_recommended: bool


def _model_age_days(version: VersionView, now: float) -> float | None:
    generated = version.metrics.generated_at if version.metrics is not None else None
    return None if generated is None else health.age_in_days(generated.timestamp(), now)


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What a health view is made of: the registry's and the window's immutable views
    (replaced, never changed, when what they show changes) and the one thing time moves,
    whether the version is past the model-age trigger."""

    model: ModelView
    version: VersionView
    tallies: TalliesView | None
    too_old: bool

    @classmethod
    def of(
        cls,
        model: ModelView,
        version: VersionView,
        tallies: TalliesView | None,
        now: float,
        config: HealthConfig,
    ) -> HealthInputs:
        age, limit = _model_age_days(version, now), config.triggers.max_age_days
        return cls(model, version, tallies, age is not None and limit is not None and age > limit)

    def same(self, other: HealthInputs) -> bool:
        """By identity: comparing the views by value would cost what it saves."""
        return (
            self.model is other.model
            and self.version is other.version
            and self.tallies is other.tallies
            and self.too_old == other.too_old
        )


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


def window_checks(
    window: Mapping[str, float],
    features: Mapping[str, Mapping[str, float]],
    drop: float | None,
    bands: SeverityBands = DEFAULT_BANDS,
) -> dict[str, float | None]:
    """Each check's score from what a window says (window-wide metrics, per-feature
    statistics) and the relative performance drop; None for a check without data."""
    drifted_psi = [
        stats.get("psi", 0.0) for stats in features.values() if stats.get("drift_detected")
    ]
    share = window.get("data_drift_share")
    return {
        "performance": health.performance_score(drop, bands),
        "data_drift": health.data_drift_score(
            share, (max(drifted_psi) if drifted_psi else 0.0) if share is not None else None
        ),
        "prediction_drift": health.prediction_drift_score(
            window.get("prediction_psi"), window.get("prediction_drift_p_value")
        ),
        "latency": health.latency_score(
            window.get("latency_mean_seconds"), window.get("reference_latency_mean_seconds")
        ),
        "error_rate": health.error_rate_score(window.get("error_ratio")),
        "data_quality": health.data_quality_score(
            _max([s["missing_ratio"] for s in features.values() if "missing_ratio" in s]),
            _max([s["out_of_range_ratio"] for s in features.values() if "out_of_range_ratio" in s]),
            _max(
                [
                    s["unseen_category_ratio"]
                    for s in features.values()
                    if "unseen_category_ratio" in s
                ]
            ),
            window.get("invalid_record_ratio"),
        ),
    }


def health_view(
    model: ModelView,
    version: VersionView,
    tallies: TalliesView | None,
    now: float,
    config: HealthConfig,
) -> HealthView:
    window = {} if tallies is None else dict(tallies.window.metrics)
    features = {} if tallies is None else tallies.window.features
    evaluation = version.metrics.accuracy if version.metrics is not None else None
    picked = health.pick_performance(
        window.get("accuracy"), window.get("estimated_accuracy"), evaluation
    )
    levels = model.baseline.levels.get("accuracy")
    target = None if levels is None else levels.target
    drop = (
        None
        if picked is None or target is None
        else degradation_ratio(picked[1], target, higher_is_better=True)
    )
    checks = window_checks(window, features, drop, config.bands)
    score = health.health_score(checks)
    share = window.get("data_drift_share")
    drift_detected = None
    if share is not None or "prediction_drift_detected" in window:
        drift_detected = bool(share) or bool(window.get("prediction_drift_detected"))
    reasons = health.retrain_reasons(
        performance_drop=drop,
        drift_detected=drift_detected,
        model_age_days=_model_age_days(version, now),
        new_data_points=None if tallies is None else tallies.predictions,
        error_rate=window.get("error_ratio"),
        triggers=config.triggers,
    )
    return HealthView(
        model=version.model,
        version=version.version,
        score=score.score,
        level=score.level,
        checks=tuple((c, s) for c, s in checks.items() if s is not None),
        weights=tuple(score.weights_used.items()),
        performance_source=None if picked is None else picked[0],
        retrain_reasons=reasons,
        retrain_recommended=health.retrain_recommended(reasons, config.triggers),
    )

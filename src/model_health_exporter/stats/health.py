"""Model health: per-check scores 0-100, the weighted health score and level, and the
retraining recommendation (default weights, levels and triggers).

Every check score is a piecewise-linear, monotone function of its inputs, bounded to
[0, 100], and None when its inputs are None (no data yet). The anchor points follow one rule
so that the scores read the same way across checks and line up with the health levels:

- 100: nothing wrong (no degradation, no drift, latency at or below the reference, ...);
- 70 (the good/fair edge): the check's *alert* threshold. A medium alert means
  "investigation recommended", exactly as the fair level does;
- 50 (the fair/poor edge): the check's *high* threshold (a high alert means
  "immediate attention required", as the poor level does);
- 25 and 0 at two further doublings of the high threshold; 0 beyond.

Pure functions: no I/O, nothing about Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Set
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NamedTuple

import numpy as np

from model_health_exporter.stats.degradation import DEFAULT_BANDS, SeverityBands

CHECKS: Final = (
    "performance",
    "data_drift",
    "prediction_drift",
    "latency",
    "error_rate",
    "data_quality",
)

DEFAULT_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "performance": 0.30,
        "data_drift": 0.25,
        "prediction_drift": 0.20,
        "latency": 0.10,
        "error_rate": 0.10,
        "data_quality": 0.05,
    }
)

HEALTH_LEVELS: Final = ("excellent", "good", "fair", "poor")

DEFAULT_PSI_ALERT: Final = 0.2
"""PSI at which a distribution counts as drifted (DESIGN: 0.1 warning, 0.2 drift)."""
DEFAULT_DRIFT_ALPHA: Final = 0.05
"""Significance level of the drift tests (a KS p-value < 0.05 is prediction drift)."""
SIGNIFICANT_WITHOUT_MAGNITUDE: Final = 60.0
"""Prediction-drift score when a test is significant but no PSI says how large the change is:
the middle of the fair band (drift detected is a medium alert)."""
DEFAULT_LATENCY_SPIKE: Final = 2.0
"""Window mean / reference mean latency that is a spike (2x)."""
DEFAULT_ERROR_RATE_ALERT: Final = 0.05
"""An error rate above 5% alerts."""
DEFAULT_ERROR_RATE_HIGH: Final = 0.10
"""An error rate above 10% is a high alert and a retraining trigger."""
DEFAULT_QUALITY_ALERT: Final = 0.10
"""The default max_missing_rate 0.10 (more than 10% missing is a warning)."""

_ANCHOR_SCORES: Final = (100.0, 70.0, 50.0, 25.0, 0.0)


def _anchored(x: float, alert: float, high: float, worse: float, worst: float) -> float:
    """100 at x <= 0, 70 at `alert`, 50 at `high`, 25 at `worse`, 0 at >= `worst`; linear
    in between."""
    return float(np.interp(x, (0.0, alert, high, worse, worst), _ANCHOR_SCORES))


def _doubling(x: float, alert: float) -> float:
    """`_anchored` with the edges alert, 2 alert, 4 alert, 8 alert."""
    return _anchored(x, alert, 2 * alert, 4 * alert, 8 * alert)


def _check_ratio(value: float, name: str) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _check_nonnegative(value: float, name: str) -> float:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_positive(value: float, name: str) -> float:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Check scores
# --------------------------------------------------------------------------------------------


def pick_performance(
    live: float | None, estimated: float | None, evaluation: float | None
) -> tuple[str, float] | None:
    """The performance value the health and retraining checks use, with its source: live
    (from feedback labels), else estimated (CBPE), else evaluation (the metrics file)."""
    for source, value in (("live", live), ("estimated", estimated), ("evaluation", evaluation)):
        if value is not None:
            return source, value
    return None


def performance_score(
    drop_ratio: float | None, bands: SeverityBands = DEFAULT_BANDS
) -> float | None:
    """Score of the relative performance drop against the baseline target, `drop_ratio` =
    `degradation_ratio(value, target, higher_is_better)` (0.1 = 10% worse, <= 0 = no drop).

    Anchors on the degradation severity bands: 100 at no drop, 70 at `bands.low` (5%: the
    alert, medium severity starts), 50 at `bands.medium` (10%: high starts), 25 at
    `bands.high` (20%: critical starts), 0 at 2 x `bands.high` (40%) and beyond.
    """
    if drop_ratio is None:
        return None
    if not math.isfinite(drop_ratio):
        raise ValueError(f"drop_ratio must be finite, got {drop_ratio!r}")
    if not 0.0 < bands.low < bands.medium < bands.high:
        raise ValueError(f"severity bands must satisfy 0 < low < medium < high, got {bands}")
    return _anchored(drop_ratio, bands.low, bands.medium, bands.high, 2 * bands.high)


def data_drift_score(
    drift_share: float | None,
    max_drifted_psi: float | None,
    *,
    psi_alert: float = DEFAULT_PSI_ALERT,
) -> float | None:
    """Worse (minimum) of two sub-scores, each left out when None:

    - share of drifted features s in [0, 1]: 100 (1 - s) (half the features drifted = 50);
    - the largest PSI among the features flagged as drifted (0 when none is): 100 at 0,
      70 at `psi_alert` (0.2), 50 at 0.4, 25 at 0.8, 0 at >= 1.6. Only flagged features
      count, so small-sample PSI noise on an undrifted feature does not lower the score.
    """
    scores = []
    if drift_share is not None:
        scores.append(100.0 * (1.0 - _check_ratio(drift_share, "drift_share")))
    if max_drifted_psi is not None:
        psi = _check_nonnegative(max_drifted_psi, "max_drifted_psi")
        scores.append(_doubling(psi, _check_positive(psi_alert, "psi_alert")))
    return min(scores) if scores else None


def prediction_drift_score(
    psi: float | None,
    p_value: float | None,
    *,
    alpha: float = DEFAULT_DRIFT_ALPHA,
    psi_alert: float = DEFAULT_PSI_ALERT,
) -> float | None:
    """Drift of the prediction distribution: significance gates magnitude.

    - p_value >= alpha (not significant): 100, whatever the PSI (it is sampling noise);
    - otherwise, with a PSI: the PSI curve of `data_drift_score` (70 at `psi_alert`, ...);
    - significant without a PSI: 60 (`SIGNIFICANT_WITHOUT_MAGNITUDE`);
    - PSI without a p-value: the PSI curve. None when both are None.
    """
    if p_value is not None and _check_ratio(p_value, "p_value") >= alpha:
        return 100.0
    if psi is not None:
        value = _check_nonnegative(psi, "psi")
        return _doubling(value, _check_positive(psi_alert, "psi_alert"))
    return None if p_value is None else SIGNIFICANT_WITHOUT_MAGNITUDE


def latency_score(
    window_mean: float | None,
    reference_mean: float | None,
    *,
    spike_ratio: float = DEFAULT_LATENCY_SPIKE,
) -> float | None:
    """Score of r = window mean latency / reference mean latency, on a log scale with base
    `spike_ratio` s: 100 at r <= 1, 70 at r = s (2x, the spike alert), 50 at s² (4x),
    25 at s³ (8x), 0 at >= s⁴ (16x). None when either mean is None or the reference is 0."""
    if window_mean is None or reference_mean is None:
        return None
    window = _check_nonnegative(window_mean, "window_mean")
    reference = _check_nonnegative(reference_mean, "reference_mean")
    spike = _check_positive(spike_ratio, "spike_ratio")
    if spike <= 1.0:
        raise ValueError(f"spike_ratio must exceed 1, got {spike_ratio!r}")
    if reference == 0.0:
        return None
    if window <= reference:
        return 100.0
    x = math.log(window / reference) / math.log(spike)
    return _anchored(x, 1.0, 2.0, 3.0, 4.0)


def error_rate_score(
    error_rate: float | None,
    *,
    alert: float = DEFAULT_ERROR_RATE_ALERT,
    high: float = DEFAULT_ERROR_RATE_HIGH,
) -> float | None:
    """Score of the share of failed predictions: 100 at 0, 70 at `alert` (5%), 50 at `high`
    (10%), 25 at 2 x high (20%), 0 at >= 4 x high (40%)."""
    if error_rate is None:
        return None
    rate = _check_ratio(error_rate, "error_rate")
    if not 0.0 < alert < high:
        raise ValueError(f"need 0 < alert < high, got alert={alert!r}, high={high!r}")
    return _anchored(rate, alert, high, 2 * high, 4 * high)


def data_quality_score(
    missing_ratio: float | None,
    out_of_range_ratio: float | None = None,
    unseen_category_ratio: float | None = None,
    invalid_record_ratio: float | None = None,
    *,
    alert: float = DEFAULT_QUALITY_ALERT,
) -> float | None:
    """Score of the worst data-quality ratio x = max of the given ratios (each the worst
    feature's: max over features of its missing / out-of-reference-range / unseen-category
    ratio, and the invalid-record ratio): 100 at 0, 70 at `alert` (10%, the default max
    missing rate), 50 at 20%, 25 at 40%, 0 at >= 80%. None when all are None."""
    given = [
        _check_ratio(v, name)
        for v, name in (
            (missing_ratio, "missing_ratio"),
            (out_of_range_ratio, "out_of_range_ratio"),
            (unseen_category_ratio, "unseen_category_ratio"),
            (invalid_record_ratio, "invalid_record_ratio"),
        )
        if v is not None
    ]
    if not given:
        return None
    return _doubling(max(given), _check_positive(alert, "alert"))


# --------------------------------------------------------------------------------------------
# Health score and level
# --------------------------------------------------------------------------------------------


class HealthScore(NamedTuple):
    score: float | None
    """Weighted mean of the available check scores, 0-100; None if no check has data."""
    level: str | None
    """`health_level(score)`; None with the score."""
    weights_used: Mapping[str, float]
    """Every weighted check -> its effective weight (renormalised; 0 if left out)."""


def health_level(score: float) -> str:
    """excellent >= 90, good >= 70, fair >= 50, poor < 50."""
    if not math.isfinite(score):
        raise ValueError(f"score must be finite, got {score!r}")
    if score >= 90:
        return "excellent"
    if score >= 70:
        return "good"
    if score >= 50:
        return "fair"
    return "poor"


def health_score(
    check_scores: Mapping[str, float | None], weights: Mapping[str, float] = DEFAULT_WEIGHTS
) -> HealthScore:
    """Weighted health score: sum_c w_c s_c / sum_c w_c over the checks c whose score s_c is
    not None (missing keys count as None). The effective weights w_c / sum w_c are reported
    in `weights_used` (0 for checks left out). A check with weight 0 never counts. Raises
    ValueError for a score outside [0, 100], a negative weight, or a check name that has no
    weight."""
    unknown = set(check_scores) - set(weights)
    if unknown:
        raise ValueError(f"no weight for check(s) {sorted(unknown)}")
    for name, w in weights.items():
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"weight of {name} must be a finite number >= 0, got {w!r}")
    available: dict[str, float] = {}
    for name, s in check_scores.items():
        if s is None:
            continue
        if not (math.isfinite(s) and 0.0 <= s <= 100.0):
            raise ValueError(f"score of {name} must lie in [0, 100], got {s!r}")
        if weights[name] > 0:
            available[name] = float(s)
    total = sum(weights[name] for name in available)
    if total == 0:
        return HealthScore(None, None, MappingProxyType(dict.fromkeys(weights, 0.0)))
    used = {name: (weights[name] / total if name in available else 0.0) for name in weights}
    score = min(max(sum(used[name] * s for name, s in available.items()), 0.0), 100.0)
    return HealthScore(score, health_level(score), MappingProxyType(used))


# --------------------------------------------------------------------------------------------
# Retraining recommendation
# --------------------------------------------------------------------------------------------

RETRAIN_REASONS: Final = ("performance_drop", "data_drift", "model_age", "new_data", "error_rate")

SECONDS_PER_DAY: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class RetrainTriggers:
    """The retraining triggers. A threshold of None (or drift=False) disables its
    trigger; min_new_data_points = 0 disables the new-data requirement."""

    performance_drop: float | None = 0.05
    """Relative drop of the performance metric against its baseline target (5%)."""
    drift: bool = True
    """Any drift alert (data or prediction) is a trigger."""
    max_age_days: float | None = 30
    """Days since the version was trained (generated_at)."""
    min_new_data_points: int = 1000
    """New data a retraining needs ('sufficient new data')."""
    error_rate: float | None = 0.10
    """Share of failed predictions (10%)."""

    def __post_init__(self) -> None:
        for name in ("performance_drop", "max_age_days", "error_rate"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be None or a finite number >= 0, got {value!r}")
        if self.min_new_data_points < 0:
            raise ValueError("min_new_data_points must be >= 0")


DEFAULT_TRIGGERS: Final = RetrainTriggers()


def age_in_days(generated_at_seconds: float, now_seconds: float) -> float:
    """Age of a version in days from its generated_at (both Unix seconds); never negative."""
    return max(now_seconds - generated_at_seconds, 0.0) / SECONDS_PER_DAY


def retrain_reasons(
    *,
    performance_drop: float | None,
    drift_detected: bool | None,
    model_age_days: float | None,
    new_data_points: int | None,
    error_rate: float | None,
    triggers: RetrainTriggers = DEFAULT_TRIGGERS,
) -> frozenset[str]:
    """The conditions that hold, each by its name in `RETRAIN_REASONS`. An input of None
    (unknown) never makes its reason hold.

    - performance_drop: the relative drop (`degradation_ratio`) > triggers.performance_drop;
    - data_drift: triggers.drift and drift_detected (any feature or the prediction drifted);
    - model_age: model_age_days > triggers.max_age_days;
    - new_data: new_data_points >= triggers.min_new_data_points;
    - error_rate: error_rate > triggers.error_rate.
    """
    reasons: set[str] = set()
    if (
        performance_drop is not None
        and triggers.performance_drop is not None
        and performance_drop > triggers.performance_drop
    ):
        reasons.add("performance_drop")
    if triggers.drift and drift_detected:
        reasons.add("data_drift")
    if (
        model_age_days is not None
        and triggers.max_age_days is not None
        and model_age_days > triggers.max_age_days
    ):
        reasons.add("model_age")
    if new_data_points is not None and new_data_points >= triggers.min_new_data_points:
        reasons.add("new_data")
    if (
        error_rate is not None
        and triggers.error_rate is not None
        and error_rate > triggers.error_rate
    ):
        reasons.add("error_rate")
    return frozenset(reasons)


def retrain_recommended(reasons: Set[str], triggers: RetrainTriggers = DEFAULT_TRIGGERS) -> bool:
    """Retrain when at least one trigger fires (performance_drop, data_drift, model_age,
    error_rate) AND there is enough new data to learn from (`new_data`, unless
    triggers.min_new_data_points = 0). New data alone is not a reason to retrain, and a
    trigger without new data would retrain on the data the model already saw."""
    fired = bool(reasons - {"new_data"})
    enough_data = triggers.min_new_data_points == 0 or "new_data" in reasons
    return fired and enough_data

"""Health check scores, weighted health score, retraining triggers, trends and severity levels."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import linregress

from model_health_exporter.stats.degradation import (
    SEVERITY_LEVELS,
    SeverityBands,
    degradation_severity_level,
)
from model_health_exporter.stats.health import (
    CHECKS,
    DEFAULT_WEIGHTS,
    RetrainTriggers,
    age_in_days,
    data_drift_score,
    data_quality_score,
    error_rate_score,
    health_level,
    health_score,
    latency_score,
    performance_score,
    pick_performance,
    prediction_drift_score,
    retrain_reasons,
    retrain_recommended,
)
from model_health_exporter.stats.trend import slope_per_day

# --------------------------------------------------------------------------------------------
# Weighted health score
# --------------------------------------------------------------------------------------------


def test_seed_weights_sum_to_one_and_cover_every_check() -> None:
    assert set(DEFAULT_WEIGHTS) == set(CHECKS)
    assert math.fsum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0)


def test_health_score_all_checks_hand_computed() -> None:
    scores = {
        "performance": 80.0,
        "data_drift": 60.0,
        "prediction_drift": 100.0,
        "latency": 70.0,
        "error_rate": 50.0,
        "data_quality": 90.0,
    }
    result = health_score(scores)
    # .30*80 + .25*60 + .20*100 + .10*70 + .10*50 + .05*90 = 24 + 15 + 20 + 7 + 5 + 4.5
    assert result.score == pytest.approx(75.5)
    assert result.level == "good"
    assert dict(result.weights_used) == pytest.approx(dict(DEFAULT_WEIGHTS))


def test_health_score_renormalises_over_checks_with_data() -> None:
    result = health_score({"performance": 80.0, "latency": 60.0, "data_drift": None})
    # weights .30 and .10 -> .75 and .25: 60 + 15
    assert result.score == pytest.approx(75.0)
    assert result.weights_used["performance"] == pytest.approx(0.75)
    assert result.weights_used["latency"] == pytest.approx(0.25)
    for check in ("data_drift", "prediction_drift", "error_rate", "data_quality"):
        assert result.weights_used[check] == 0.0
    assert math.fsum(result.weights_used.values()) == pytest.approx(1.0)


def test_health_score_custom_weights_and_zero_weight() -> None:
    weights = {"performance": 3.0, "latency": 1.0, "error_rate": 0.0}
    result = health_score({"performance": 40.0, "latency": 100.0, "error_rate": 0.0}, weights)
    assert result.score == pytest.approx(55.0)  # (3*40 + 1*100) / 4; error_rate never counts
    assert result.level == "fair"
    assert result.weights_used == {"performance": 0.75, "latency": 0.25, "error_rate": 0.0}


def test_health_score_without_data() -> None:
    result = health_score({"performance": None})
    assert result.score is None
    assert result.level is None
    assert set(result.weights_used.values()) == {0.0}
    assert health_score({}).score is None


def test_health_score_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no weight"):
        health_score({"uptime": 100.0})
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        health_score({"performance": 100.5})
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        health_score({"performance": math.nan})
    with pytest.raises(ValueError, match="weight"):
        health_score({"performance": 50.0}, {"performance": -1.0})


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (100.0, "excellent"),
        (90.0, "excellent"),
        (89.999, "good"),
        (70.0, "good"),
        (69.999, "fair"),
        (50.0, "fair"),
        (49.999, "poor"),
        (0.0, "poor"),
    ],
)
def test_health_level_edges(score: float, level: str) -> None:
    assert health_level(score) == level


# --------------------------------------------------------------------------------------------
# Check scores
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (-0.10, 100.0),
        (0.0, 100.0),
        (0.025, 85.0),
        (0.05, 70.0),
        (0.075, 60.0),
        (0.10, 50.0),
        (0.15, 37.5),
        (0.20, 25.0),
        (0.30, 12.5),
        (0.40, 0.0),
        (1.0, 0.0),
    ],
)
def test_performance_score_anchors(drop: float, expected: float) -> None:
    assert performance_score(drop) == pytest.approx(expected)


def test_performance_score_follows_custom_bands() -> None:
    bands = SeverityBands(low=0.02, medium=0.04, high=0.08)
    assert performance_score(0.02, bands) == pytest.approx(70.0)
    assert performance_score(0.04, bands) == pytest.approx(50.0)
    assert performance_score(0.16, bands) == pytest.approx(0.0)
    assert performance_score(None) is None


def test_pick_performance_prefers_live_then_estimated_then_evaluation() -> None:
    assert pick_performance(0.8, 0.7, 0.9) == ("live", 0.8)
    assert pick_performance(None, 0.7, 0.9) == ("estimated", 0.7)
    assert pick_performance(None, None, 0.9) == ("evaluation", 0.9)
    assert pick_performance(None, None, None) is None


def test_data_drift_score() -> None:
    assert data_drift_score(0.3, None) == pytest.approx(70.0)
    assert data_drift_score(None, 0.2) == pytest.approx(70.0)
    assert data_drift_score(0.1, 0.3) == pytest.approx(60.0)  # min(90, 60)
    assert data_drift_score(0.0, 0.0) == pytest.approx(100.0)
    assert data_drift_score(0.5, 0.05) == pytest.approx(50.0)  # min(50, 92.5)
    assert data_drift_score(None, 2.0) == pytest.approx(0.0)
    assert data_drift_score(None, None) is None
    with pytest.raises(ValueError, match="drift_share"):
        data_drift_score(1.5, None)


def test_prediction_drift_score() -> None:
    assert prediction_drift_score(5.0, 0.2) == 100.0  # not significant: PSI is noise
    assert prediction_drift_score(0.1, 0.01) == pytest.approx(85.0)
    assert prediction_drift_score(0.4, 0.01) == pytest.approx(50.0)
    assert prediction_drift_score(None, 0.01) == pytest.approx(60.0)
    assert prediction_drift_score(0.8, None) == pytest.approx(25.0)
    assert prediction_drift_score(None, None) is None
    assert prediction_drift_score(0.1, 0.04, alpha=0.01) == 100.0


def test_latency_score() -> None:
    assert latency_score(1.0, 1.0) == 100.0
    assert latency_score(0.5, 1.0) == 100.0
    assert latency_score(math.sqrt(2.0) * 0.2, 0.2) == pytest.approx(85.0)
    assert latency_score(0.4, 0.2) == pytest.approx(70.0)
    assert latency_score(0.8, 0.2) == pytest.approx(50.0)
    assert latency_score(1.6, 0.2) == pytest.approx(25.0)
    assert latency_score(3.2, 0.2) == pytest.approx(0.0)
    assert latency_score(30.0, 0.2) == pytest.approx(0.0)
    assert latency_score(0.3, 0.1, spike_ratio=3.0) == pytest.approx(70.0)
    assert latency_score(1.0, 0.0) is None
    assert latency_score(None, 1.0) is None


def test_error_rate_score() -> None:
    for rate, expected in [(0.0, 100.0), (0.025, 85.0), (0.05, 70.0), (0.10, 50.0)]:
        assert error_rate_score(rate) == pytest.approx(expected)
    assert error_rate_score(0.20) == pytest.approx(25.0)
    assert error_rate_score(0.40) == pytest.approx(0.0)
    assert error_rate_score(None) is None


def test_data_quality_score() -> None:
    assert data_quality_score(0.05, 0.2, None, 0.0) == pytest.approx(50.0)
    assert data_quality_score(0.10) == pytest.approx(70.0)
    assert data_quality_score(0.0, 0.0, 0.0, 0.0) == pytest.approx(100.0)
    assert data_quality_score(None, None, 0.4) == pytest.approx(25.0)
    assert data_quality_score(None) is None


GRID = np.linspace(0.0, 1.0, 201)
SCORE_FUNCTIONS: dict[str, Callable[[float], float | None]] = {
    "performance": performance_score,
    "data_drift_share": lambda x: data_drift_score(x, None),
    "data_drift_psi": lambda x: data_drift_score(None, 2 * x),
    "prediction_drift": lambda x: prediction_drift_score(2 * x, 0.0),
    "latency": lambda x: latency_score(1.0 + 20 * x, 1.0),
    "error_rate": error_rate_score,
    "data_quality": data_quality_score,
}


@pytest.mark.parametrize("name", SCORE_FUNCTIONS)
def test_check_scores_are_monotone_and_bounded(name: str) -> None:
    raw = [SCORE_FUNCTIONS[name](float(x)) for x in GRID]
    values = [v for v in raw if v is not None]
    assert len(values) == len(raw)
    assert all(0.0 <= v <= 100.0 for v in values)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] == 100.0


# --------------------------------------------------------------------------------------------
# Retraining recommendation
# --------------------------------------------------------------------------------------------

QUIET = {
    "performance_drop": 0.0,
    "drift_detected": False,
    "model_age_days": 1.0,
    "new_data_points": 0,
    "error_rate": 0.0,
}


@pytest.mark.parametrize(
    ("field", "on", "off", "reason"),
    [
        ("performance_drop", 0.0501, 0.05, "performance_drop"),
        ("drift_detected", True, False, "data_drift"),
        ("model_age_days", 30.01, 30.0, "model_age"),
        ("new_data_points", 1000, 999, "new_data"),
        ("error_rate", 0.1001, 0.10, "error_rate"),
    ],
)
def test_each_retrain_trigger_on_and_off(field: str, on: object, off: object, reason: str) -> None:
    assert retrain_reasons(**{**QUIET, field: on}) == frozenset({reason})
    assert retrain_reasons(**{**QUIET, field: off}) == frozenset()
    assert retrain_reasons(**{**QUIET, field: None}) == frozenset()


def test_disabled_triggers_never_fire() -> None:
    off = RetrainTriggers(performance_drop=None, drift=False, max_age_days=None, error_rate=None)
    loud = {
        "performance_drop": 0.9,
        "drift_detected": True,
        "model_age_days": 400.0,
        "new_data_points": 10,
        "error_rate": 0.9,
    }
    assert retrain_reasons(**loud, triggers=off) == frozenset()
    assert retrain_reasons(**loud) == frozenset(
        {"performance_drop", "data_drift", "model_age", "error_rate"}
    )


def test_retrain_needs_a_trigger_and_enough_new_data() -> None:
    assert retrain_recommended(frozenset({"performance_drop", "new_data"})) is True
    assert retrain_recommended(frozenset({"model_age", "error_rate", "new_data"})) is True
    assert retrain_recommended(frozenset({"performance_drop"})) is False  # nothing new to learn
    assert retrain_recommended(frozenset({"new_data"})) is False  # nothing wrong
    assert retrain_recommended(frozenset()) is False
    no_gate = RetrainTriggers(min_new_data_points=0)
    assert retrain_recommended(frozenset({"model_age"}), no_gate) is True
    assert retrain_recommended(frozenset(), no_gate) is False


def test_age_in_days() -> None:
    assert age_in_days(1_700_000_000.0, 1_700_000_000.0 + 2.5 * 86_400) == pytest.approx(2.5)
    assert age_in_days(10.0, 0.0) == 0.0


def test_retrain_triggers_validate() -> None:
    with pytest.raises(ValueError, match="performance_drop"):
        RetrainTriggers(performance_drop=-0.1)
    with pytest.raises(ValueError, match="min_new_data_points"):
        RetrainTriggers(min_new_data_points=-1)


# --------------------------------------------------------------------------------------------
# Trend across versions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_slope_per_day_equals_linregress(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    times = 1_700_000_000.0 + np.sort(rng.random(n)) * 200 * 86_400
    values = 0.9 - 0.0005 * (times - times[0]) / 86_400 + rng.normal(0.0, 0.01, n)
    expected = linregress(times, values).slope * 86_400
    assert slope_per_day(times.tolist(), values.tolist()) == pytest.approx(expected, rel=1e-9)


def test_slope_per_day_hand_computed_and_undefined() -> None:
    day = 86_400.0
    t0 = 1_760_000_000.0
    assert slope_per_day([t0, t0 + day, t0 + 3 * day], [0.90, 0.91, 0.93]) == pytest.approx(0.01)
    assert slope_per_day([t0], [0.9]) is None
    assert slope_per_day([t0, t0, t0], [0.9, 0.8, 0.7]) is None  # no distinct times
    assert slope_per_day([], []) is None
    assert slope_per_day([t0, t0 + day], [0.9, 0.8], min_points=10) is None
    with pytest.raises(ValueError, match="same length"):
        slope_per_day([t0, t0 + day], [0.9])


# --------------------------------------------------------------------------------------------
# Degradation severity as a number (routing_ml_model_degradation_severity)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "level"),
    [
        (-0.1, 0),
        (0.0, 0),
        (1e-9, 1),
        (0.049, 1),
        (0.05, 2),
        (0.0999, 2),
        (0.10, 3),
        (0.20, 3),
        (0.2001, 4),
        (5.0, 4),
    ],
)
def test_severity_level_at_seed_002_band_edges(ratio: float, level: int) -> None:
    assert degradation_severity_level(ratio) == level


def test_severity_levels_table_and_custom_bands() -> None:
    assert dict(SEVERITY_LEVELS) == {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
    bands = SeverityBands(low=0.01, medium=0.02, high=0.03)
    assert [degradation_severity_level(r, bands) for r in (0.005, 0.015, 0.025, 0.031)] == [
        1,
        2,
        3,
        4,
    ]

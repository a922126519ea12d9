from __future__ import annotations

import pytest

from model_health_exporter.baselines import (
    DEFAULT_EXPECTED,
    DEFAULT_LEVELS,
    BaselineOverrides,
    merge_baseline,
)
from model_health_exporter.schema import ExpectedDataset, Levels
from model_health_exporter.stats.degradation import degradation_ratio, degradation_severity


def test_defaults_are_the_seed_table() -> None:
    b = merge_baseline()
    assert (b.levels["accuracy"].warning, b.levels["accuracy"].critical) == (0.85, 0.80)
    assert (b.levels["precision_weighted"].warning, b.levels["precision_weighted"].critical) == (
        0.82,
        0.75,
    )
    assert (b.levels["recall_weighted"].warning, b.levels["recall_weighted"].critical) == (
        0.84,
        0.78,
    )
    assert (b.levels["f1_score"].warning, b.levels["f1_score"].critical) == (0.83, 0.77)
    assert b.expected.min_samples == 1000
    assert b.expected.max_missing_rate == 0.10
    assert b.levels == DEFAULT_LEVELS
    assert b.expected == DEFAULT_EXPECTED


def test_layers_merge_field_by_field_most_specific_last() -> None:
    config_defaults = BaselineOverrides({"accuracy": Levels(warning=0.9)})
    file_layer = BaselineOverrides(
        {"accuracy": Levels(target=0.95), "auc_roc": Levels(critical=0.7)},
        ExpectedDataset(min_samples=5000),
    )
    per_model = BaselineOverrides({"accuracy": Levels(critical=0.6)})
    b = merge_baseline(config_defaults, file_layer, per_model)
    assert b.levels["accuracy"] == Levels(target=0.95, warning=0.9, critical=0.6)
    assert b.levels["auc_roc"] == Levels(critical=0.7)
    assert b.expected.min_samples == 5000
    assert b.expected.max_missing_rate == 0.10  # untouched field keeps the default


@pytest.mark.parametrize(
    ("value", "baseline", "higher_is_better", "expected"),
    [
        (0.78, 0.92, True, (0.92 - 0.78) / 0.92),  # documented example: accuracy v2 vs v1
        (0.95, 0.92, True, -(0.95 - 0.92) / 0.92),  # better is negative
        (0.3, 0.2, False, 0.5),  # log loss up 50% is 50% worse
        (0.1, 0.2, False, -0.5),
        (-0.5, -0.25, True, 1.0),  # r2 below a negative baseline: |baseline| denominator
    ],
)
def test_degradation_ratio_hand_computed(
    value: float, baseline: float, higher_is_better: bool, expected: float
) -> None:
    assert degradation_ratio(value, baseline, higher_is_better) == pytest.approx(expected)


def test_degradation_ratio_undefined_for_zero_baseline() -> None:
    assert degradation_ratio(0.5, 0.0, True) is None


@pytest.mark.parametrize(
    ("ratio", "severity"),
    [
        (-0.1, "none"),
        (0.0, "none"),
        (0.049, "low"),
        (0.05, "medium"),
        (0.099, "medium"),
        (0.10, "high"),
        (0.20, "high"),
        (0.2001, "critical"),
    ],
)
def test_seed_002_severity_bands(ratio: float, severity: str) -> None:
    assert degradation_severity(ratio) == severity

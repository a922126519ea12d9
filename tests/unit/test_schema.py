from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from model_health_exporter.schema import InvalidFileError, parse_baseline, parse_metrics

DOCUMENTED_EXAMPLE = {  # the documented metrics.json example
    "generated_at": "2025-10-09T12:00:00+00:00",
    "model_version": "production-v2",
    "training_samples": 1500,
    "dataset_stats": {
        "total_samples": 1500,
        "unique_items": 120,
        "unique_processes": 45,
        "unique_candidates": 45,
        "total_columns": 8,
        "column_names": ["ITEM_CD", "PROC_CD", "DURATION_MIN"],
        "missing_rates": {"ITEM_CD": 0.0, "PROC_CD": 0.0, "DURATION_MIN": 0.02},
    },
    "training_duration_sec": 3.5,
    "accuracy": 0.92,
    "precision_weighted": 0.89,
    "recall_weighted": 0.91,
    "f1_weighted": 0.90,
    "note": "Model quality metrics (accuracy, precision) require evaluation dataset",
}


def parse(obj: object) -> object:
    return parse_metrics(json.dumps(obj).encode())


def test_seed_example_parses_with_every_field() -> None:
    m = parse_metrics(json.dumps(DOCUMENTED_EXAMPLE).encode())
    assert m.generated_at == datetime(2025, 10, 9, 12, tzinfo=UTC)
    assert m.training_samples == 1500
    assert m.dataset_stats is not None
    assert m.dataset_stats.missing_rates["DURATION_MIN"] == 0.02
    assert m.quality() == {
        "accuracy": 0.92,
        "precision_weighted": 0.89,
        "recall_weighted": 0.91,
        "f1_score": 0.90,
    }


def test_unknown_fields_are_kept_not_fatal() -> None:
    m = parse_metrics(b'{"accuracy": 0.9, "custom_metric": 3, "tags": ["a"]}')
    assert m.model_extra == {"custom_metric": 3, "tags": ["a"]}


def test_optional_metrics_of_seeds_002_and_004() -> None:
    m = parse_metrics(
        b'{"auc_roc": 0.97, "auc_pr": 0.7, "log_loss": 0.2, "mae": 1.5, "mse": 4.0,'
        b' "rmse": 2.0, "r2": -0.3, "mape": 0.12, "smape": 0.11}'
    )
    assert m.quality()["r2"] == -0.3
    assert len(m.quality()) == 9


def test_naive_timestamp_is_utc_and_integral_float_counts_accepted() -> None:
    m = parse({"generated_at": "2025-10-09T12:00:00", "training_samples": 1500.0})
    assert m.generated_at == datetime(2025, 10, 9, 12, tzinfo=UTC)  # type: ignore[attr-defined]
    assert m.training_samples == 1500  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "reason", "mentions"),
    [
        (b'{"accuracy": 0.9', "invalid_json", "line 1"),
        (b"", "invalid_json", "line 1"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not_utf8", "UTF-8"),
        (b"[0.9]", "invalid_type", "JSON object"),
        (b'{"accuracy": NaN}', "invalid_value", "NaN"),
        (b'{"accuracy": Infinity}', "invalid_value", "Infinity"),
        (b'{"accuracy": 1.2}', "invalid_value", "accuracy"),
        (b'{"accuracy": -0.1}', "invalid_value", "accuracy"),
        (b'{"training_samples": -5}', "invalid_value", "training_samples"),
        (b'{"accuracy": "0.92"}', "invalid_type", "accuracy"),
        (b'{"accuracy": true}', "invalid_type", "accuracy"),
        (b'{"training_samples": 1500.5}', "invalid_type", "training_samples"),
        (b'{"dataset_stats": []}', "invalid_type", "dataset_stats"),
        (b'{"dataset_stats": {"missing_rates": {"A": 1.5}}}', "invalid_value", "missing_rates.A"),
        (b'{"generated_at": "last tuesday"}', "invalid_type", "generated_at"),
        (b'{"r2": 1.5}', "invalid_value", "r2"),
    ],
)
def test_bad_content_is_rejected_with_reason_and_location(
    content: bytes, reason: str, mentions: str
) -> None:
    with pytest.raises(InvalidFileError) as err:
        parse_metrics(content)
    assert err.value.reason == reason
    assert mentions in err.value.message


def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidFileError) as err:
        parse_metrics(b'{"accuracy": 2, "f1_weighted": "x", "training_samples": -1}')
    for key in ("accuracy", "f1_weighted", "training_samples"):
        assert key in err.value.message


def test_baseline_documented_format() -> None:
    b = parse_baseline(
        json.dumps(
            {
                "baseline_version": "production-v1",
                "established_date": "2025-10-01",
                "quality_thresholds": {
                    "accuracy": {"target": 0.92, "warning": 0.85, "critical": 0.80},
                    "f1_weighted": {"target": 0.90, "warning": 0.83, "critical": 0.77},
                },
                "expected_dataset": {
                    "min_samples": 1000,
                    "min_unique_items": 50,
                    "max_missing_rate": 0.10,
                },
            }
        ).encode()
    )
    assert b.quality_thresholds["f1_score"].critical == 0.77  # f1_weighted is an alias
    assert b.expected_dataset is not None
    assert b.expected_dataset.min_samples == 1000


def test_baseline_simple_extract_becomes_targets() -> None:
    b = parse_baseline(b'{"accuracy": 0.92, "precision": 0.89, "f1": 0.9, "samples": 1500}')
    assert {k: v.target for k, v in b.quality_thresholds.items()} == {
        "accuracy": 0.92,
        "precision_weighted": 0.89,
        "f1_score": 0.9,
    }


@pytest.mark.parametrize(
    "content",
    [
        b'{"quality_thresholds": {"bogus_metric": {"warning": 1}}}',
        b'{"quality_thresholds": {"accuracy": {"warning": "high"}}}',
        b'{"unexpected": 1}',
        b'{"expected_dataset": {"max_missing_rate": 3}}',
    ],
)
def test_bad_baseline_rejected(content: bytes) -> None:
    with pytest.raises(InvalidFileError):
        parse_baseline(content)

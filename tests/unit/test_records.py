from __future__ import annotations

import pytest

from model_health_exporter.records import Feedback, InvalidRecordError, Prediction, parse_line


def test_classification_with_probabilities() -> None:
    p = parse_line(
        b'{"timestamp": "2026-11-22T10:00:00Z", "id": "a1", "features": {"x": 1},'
        b' "prediction": "approve", "probabilities": {"approve": 0.8, "deny": 0.2},'
        b' "latency_ms": 12, "error": null}'
    )
    assert p == Prediction(
        "a1", "approve", None, {"approve": 0.8, "deny": 0.2}, 0.8, 0.012, None, features={"x": 1}
    )


def test_features_keep_numbers_strings_and_missing_values() -> None:
    p = parse_line(b'{"prediction": 1.0, "features": {"a": 1.5, "b": "US", "c": null, "d": true}}')
    assert isinstance(p, Prediction)
    assert p.features == {"a": 1.5, "b": "US", "c": None, "d": True}


def test_regression_and_integer_ids() -> None:
    p = parse_line(b'{"id": 7, "prediction": 12.5, "latency_seconds": 0.003}')
    assert p == Prediction("7", None, 12.5, None, None, 0.003, None)


def test_integer_class_with_confidence_is_classification() -> None:
    p = parse_line(b'{"prediction": 1, "confidence": 0.9}')
    assert isinstance(p, Prediction)
    assert (p.label, p.value, p.confidence) == ("1", None, 0.9)


def test_failed_prediction() -> None:
    p = parse_line(b'{"id": "x", "prediction": null, "error": "TimeoutError"}')
    assert isinstance(p, Prediction)
    assert (p.error, p.label, p.value) == ("TimeoutError", None, None)


def test_feedback() -> None:
    assert parse_line(b'{"id": "a1", "actual": "deny"}') == Feedback("a1", "deny")
    assert parse_line(b'{"id": 3, "actual": 4.5}') == Feedback("3", 4.5)


@pytest.mark.parametrize(
    ("line", "reason", "mentions"),
    [
        (b'{"prediction": ', "invalid_json", "JSON"),
        (b"[1, 2]", "invalid_record", "object"),
        (b'{"prediction": "a", "probabilities": {"b": 1.0}}', "invalid_record", "'a'"),
        (b'{"prediction": "a", "probabilities": {"a": 1.5}}', "invalid_record", "probabilities.a"),
        (b'{"prediction": "a", "confidence": 2}', "invalid_record", "confidence"),
        (b'{"prediction": 1.0, "latency_ms": -3}', "invalid_latency", "latency_ms"),
        (b'{"prediction": 1.0, "latency_seconds": "fast"}', "invalid_latency", "latency_seconds"),
        (b'{"prediction": "a", "latency_seconds": 1e308}', "invalid_latency", "latency_seconds"),
        (b'{"prediction": "a", "latency_seconds": 86400.5}', "invalid_latency", "one day"),
        (b'{"prediction": "a", "latency_ms": 86400001}', "invalid_latency", "latency_ms"),
        (b'{"prediction": 1e101}', "invalid_number", "prediction"),
        (b'{"prediction": -1e300, "latency_ms": 3}', "invalid_number", "prediction"),
        (b'{"id": "x", "actual": 1e200}', "invalid_number", "actual"),
        (b'{"id": "x", "actual": -%d}' % 10**101, "invalid_number", "actual"),
        (b'{"prediction": "a", "features": {"x": 1e308}}', "invalid_number", "features.x"),
        (b'{"prediction": "a", "features": {"x": %d}}' % 10**120, "invalid_number", "features.x"),
        (b'{"prediction": 1.0, "confidence": NaN}', "invalid_json", "JSON"),
        (b'{"prediction": 1.0, "latency_seconds": Infinity}', "invalid_json", "JSON"),
        (b'{"prediction": 1e400}', "invalid_json", "JSON"),
        (b'{"prediction": "a", "probabilities": {"a": -Infinity}}', "invalid_json", "JSON"),
        (b'{"prediction": [1]}', "invalid_record", "class label"),
        (b'{"id": "x"}', "invalid_record", "prediction"),
        (b'{"prediction": 1.0, "error": 3}', "invalid_record", "error"),
        (b'{"actual": "a"}', "invalid_record", "id"),
        (b'{"id": "x", "actual": {"a": 1}}', "invalid_record", "actual"),
        (b'{"id": {"n": 1}, "prediction": 1.0}', "invalid_record", "id"),
        (b'{"prediction": 1.0, "features": [1, 2]}', "invalid_record", "features"),
        (b'{"prediction": 1.0, "features": {"x": [1]}}', "invalid_record", "features.x"),
    ],
)
def test_invalid_records(line: bytes, reason: str, mentions: str) -> None:
    with pytest.raises(InvalidRecordError) as err:
        parse_line(line)
    assert err.value.reason == reason
    assert mentions in err.value.message

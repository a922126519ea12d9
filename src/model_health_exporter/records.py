"""Prediction and feedback records: one JSON object per log line (docs/prediction-logs.md).

Parsing is hand-written over orjson rather than a pydantic model: it runs for every
prediction, and a schema object per line would cost more than the JSON decoding.
"""

from __future__ import annotations

import math
from typing import Any, Final, NamedTuple

import orjson

# Label values of routing_ml_exporter_errors_total{source="prediction_log"}.
LINE_ERROR_REASONS: Final = ("invalid_json", "invalid_record", "line_too_long", "unknown_model")


class InvalidRecordError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Prediction(NamedTuple):  # a tuple: built for every line, ~5x cheaper than a dataclass
    id: str | None
    label: str | None  # classification: the predicted class
    value: float | None  # regression: the predicted number
    probabilities: dict[str, float] | None
    confidence: float | None  # of the predicted class, given or from probabilities
    latency_seconds: float | None
    error: str | None  # None for a successful prediction
    model: str | None = None  # needed only in logs outside the version folders
    version: str | None = None
    features: dict[str, str | int | float | None] | None = None  # as logged, for drift


class Feedback(NamedTuple):
    id: str
    actual: str | int | float | bool  # as written; the join reads it as its prediction's kind
    model: str | None = None
    version: str | None = None


def _bad(message: str) -> InvalidRecordError:
    return InvalidRecordError("invalid_record", message)


def _number(
    record: dict[str, Any], key: str, low: float = 0.0, high: float = math.inf
) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{key}: expected a number, got {value!r}")
    if not low <= value <= high:  # also rejects NaN
        raise _bad(f"{key}: {value!r} is outside [{low}, {high}]")
    return float(value)


def _identifier(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _bad(f"{key}: expected a string or integer, got {value!r}")


def label_of(value: Any) -> str:
    # Class labels are compared as text: true, 1 and "1" written by different code paths
    # are the same class only if the writer means so, so keep JSON's spelling.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise _bad(f"class label: expected a string, integer or boolean, got {value!r}")


def _probabilities(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise _bad(f"probabilities: expected a non-empty object, got {value!r}")
    out = {}
    for label, p in value.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise _bad(f"probabilities.{label}: expected a number in [0, 1], got {p!r}")
        out[label] = float(p)
    return out


def parse_features(value: Any) -> dict[str, str | int | float | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(f"features: expected an object, got {value!r}")
    for name, v in value.items():
        if v is not None and not isinstance(v, str | int | float):  # bool is an int
            raise _bad(f"features.{name}: expected a number, string or null, got {v!r}")
    return value


def prediction_from_dict(record: dict[str, Any]) -> Prediction:
    """A prediction from a decoded record; raises InvalidRecordError."""
    error = record.get("error")
    if error is not None and not isinstance(error, str):
        raise _bad(f"error: expected null or a string, got {error!r}")
    latency = _number(record, "latency_seconds")
    if latency is None and (ms := _number(record, "latency_ms")) is not None:
        latency = ms / 1000.0
    probabilities = _probabilities(record.get("probabilities"))
    confidence = _number(record, "confidence", 0.0, 1.0)
    raw = record.get("prediction")
    label: str | None = None
    value: float | None = None
    if raw is None:
        if error is None:
            raise _bad("prediction: missing (a failed prediction needs an error type)")
    elif probabilities is not None or confidence is not None or not isinstance(raw, int | float):
        label = label_of(raw)
        if probabilities is not None:
            if label not in probabilities:
                raise _bad(f"probabilities: no entry for the predicted class {label!r}")
            confidence = probabilities[label] if confidence is None else confidence
    elif isinstance(raw, bool):
        label = label_of(raw)
    else:
        if not math.isfinite(raw):
            raise _bad(f"prediction: {raw!r} is not a finite number")
        value = float(raw)
    return Prediction(
        id=_identifier(record.get("id"), "id"),
        label=label,
        value=value,
        probabilities=probabilities,
        confidence=confidence,
        latency_seconds=latency,
        error=error,
        model=_identifier(record.get("model"), "model"),
        version=_identifier(record.get("version"), "version"),
        features=parse_features(record.get("features")),
    )


def _feedback(record: dict[str, Any]) -> Feedback:
    identifier = _identifier(record.get("id"), "id")
    if identifier is None:
        raise _bad("id: feedback needs the id of its prediction")
    actual = record["actual"]
    if isinstance(actual, float) and not math.isfinite(actual):
        raise _bad(f"actual: {actual!r} is not a finite number")
    if not isinstance(actual, str | int | float):  # bool is an int
        raise _bad(f"actual: expected a class label or a number, got {actual!r}")
    return Feedback(
        identifier,
        actual,
        _identifier(record.get("model"), "model"),
        _identifier(record.get("version"), "version"),
    )


def parse_line(data: bytes) -> Prediction | Feedback:
    """A prediction, or feedback (a record with `actual` and no `prediction`)."""
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError("invalid_json", f"invalid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise _bad(f"expected a JSON object, got {type(record).__name__}")
    if "actual" in record and "prediction" not in record:
        return _feedback(record)
    return prediction_from_dict(record)

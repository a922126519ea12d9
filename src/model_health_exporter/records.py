"""Prediction and feedback records: one JSON object per log line (docs/prediction-logs.md).

A line is decoded by msgspec straight into a typed struct that already checks each
field's type and range (`_Record`): about as fast as `orjson.loads` makes a dict, and
faster than checking that dict by hand. A line it rejects, or whose fields disagree with
each other (say probabilities without the predicted class), goes through the
hand-written checks over the decoded dict (`prediction_from_dict`), which decide the
outcome and name the field in the message; they are the rules, the typed struct only a
fast way to accept what they accept.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Annotated, Any, Final, Literal, cast

import msgspec
import orjson
from msgspec import UNSET, UnsetType

from model_health_exporter.schema import excerpt

# Label values of routing_ml_exporter_errors_total{source="prediction_log"}.
LINE_ERROR_REASONS: Final = (
    "invalid_json",
    "invalid_record",
    "invalid_latency",
    "invalid_number",
    "line_too_long",
    "unknown_model",
)

# A latency above a day is a unit mistake (nanoseconds written as seconds, say), not a
# prediction that took that long; below it, no number of predictions a server could log
# brings the histogram's sum anywhere near overflowing.
MAX_LATENCY_SECONDS: Final = 86_400.0
# Regression outputs, numeric feedback and numeric features are summed and squared
# (errors, drift statistics, reference profiles): beyond this magnitude a square, or a
# sum of a few, would overflow to infinity and stay in the totals.
MAX_ABS_NUMBER: Final = 1e100


class InvalidRecordError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# Structs without cyclic-GC tracking: built for every line and kept by the thousand
# (drift batches, pending joins), they would make every collection walk them. They only
# hold strings, numbers and dicts of those, so they cannot be part of a cycle.
class Prediction(msgspec.Struct, frozen=True, gc=False):
    id: str | None
    label: str | None  # classification: the predicted class
    value: float | None  # regression: the predicted number
    probabilities: dict[str, float] | None
    confidence: float | None  # of the predicted class, given or from probabilities
    latency_seconds: float | None
    error: str | None  # None for a successful prediction
    model: str | None = None  # needed only in logs outside the version folders
    version: str | None = None
    # As logged, for drift: a dict, or a `typed_decoder` schema's struct (`features_dict`)
    features: dict[str, str | int | float | None] | msgspec.Struct | None = None


class Feedback(msgspec.Struct, frozen=True, gc=False):
    id: str
    actual: str | int | float | bool  # as written; the join reads it as its prediction's kind
    model: str | None = None
    version: str | None = None


# ---- the rules, over a decoded dict ---------------------------------------------------------


def _bad(message: str) -> InvalidRecordError:
    return InvalidRecordError("invalid_record", message)


def _too_big(key: str, value: float) -> InvalidRecordError:
    return InvalidRecordError(
        "invalid_number",
        f"{key}: {excerpt(value)} is beyond +-{MAX_ABS_NUMBER:g}, not a usable number",
    )


def _latency(record: dict[str, Any]) -> float | None:
    """latency_seconds, or latency_ms in seconds: a number in [0, MAX_LATENCY_SECONDS]."""
    for key, scale in (("latency_seconds", 1.0), ("latency_ms", 1000.0)):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRecordError(
                "invalid_latency", f"{key}: expected a number, got {excerpt(value)}"
            )
        if not 0.0 <= value <= MAX_LATENCY_SECONDS * scale:  # also rejects NaN
            raise InvalidRecordError(
                "invalid_latency",
                f"{key}: {excerpt(value)} is outside [0, {MAX_LATENCY_SECONDS * scale:g}], one day",
            )
        return value / scale
    return None


def _number(
    record: dict[str, Any], key: str, low: float = 0.0, high: float = math.inf
) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{key}: expected a number, got {excerpt(value)}")
    if not low <= value <= high:  # also rejects NaN
        raise _bad(f"{key}: {excerpt(value)} is outside [{low}, {high}]")
    return float(value)


def _identifier(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _bad(f"{key}: expected a string or integer, got {excerpt(value)}")


def label_of(value: Any) -> str:
    # Class labels are compared as text: true, 1 and "1" written by different code paths
    # are the same class only if the writer means so, so keep JSON's spelling.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise _bad(f"class label: expected a string, integer or boolean, got {excerpt(value)}")


def _probabilities(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise _bad(f"probabilities: expected a non-empty object, got {excerpt(value)}")
    out = {}
    for label, p in value.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise _bad(f"probabilities.{label}: expected a number in [0, 1], got {excerpt(p)}")
        out[label] = float(p)
    return out


def parse_features(value: Any) -> dict[str, str | int | float | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(f"features: expected an object, got {excerpt(value)}")
    for name, v in value.items():
        if v is not None and not isinstance(v, str | int | float):  # bool is an int
            raise _bad(f"features.{name}: expected a number, string or null, got {excerpt(v)}")
        if isinstance(v, int | float) and not -MAX_ABS_NUMBER <= v <= MAX_ABS_NUMBER:
            raise _too_big(f"features.{name}", v)
    return value


def prediction_from_dict(record: dict[str, Any]) -> Prediction:
    """A prediction from a decoded record; raises InvalidRecordError."""
    error = record.get("error")
    if error is not None and not isinstance(error, str):
        raise _bad(f"error: expected null or a string, got {excerpt(error)}")
    latency = _latency(record)
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
                raise _bad(f"probabilities: no entry for the predicted class {excerpt(label)}")
            confidence = probabilities[label] if confidence is None else confidence
    elif isinstance(raw, bool):
        label = label_of(raw)
    else:
        if not math.isfinite(raw):
            raise _bad(f"prediction: {excerpt(raw)} is not a finite number")
        if not -MAX_ABS_NUMBER <= raw <= MAX_ABS_NUMBER:
            raise _too_big("prediction", raw)
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
        raise _bad(f"actual: {excerpt(actual)} is not a finite number")
    if not isinstance(actual, str | int | float):  # bool is an int
        raise _bad(f"actual: expected a class label or a number, got {excerpt(actual)}")
    if isinstance(actual, int | float) and not -MAX_ABS_NUMBER <= actual <= MAX_ABS_NUMBER:
        raise _too_big("actual", actual)
    return Feedback(
        identifier,
        actual,
        _identifier(record.get("model"), "model"),
        _identifier(record.get("version"), "version"),
    )


def parse_dict_line(data: bytes) -> Prediction | Feedback:
    """`parse_line` by the rules alone: orjson's dict, checked by hand."""
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError("invalid_json", f"invalid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise _bad(f"expected a JSON object, got {type(record).__name__}")
    if "actual" in record and "prediction" not in record:
        return _feedback(record)
    return prediction_from_dict(record)


# ---- the fast path: a typed decode ----------------------------------------------------------

# orjson, whose dicts the rules were written against, reads integers beyond 64 bits as
# floats; outside the int64 range the typed decode gives up, and the rules decide.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Seconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_LATENCY_SECONDS)]
_Milliseconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_LATENCY_SECONDS * 1000.0)]
_Number = Annotated[float, msgspec.Meta(ge=-MAX_ABS_NUMBER, le=MAX_ABS_NUMBER)]
_Scalar = str | _Int | _Number | bool


class _Record(msgspec.Struct, gc=False):
    """A line's fields with their types and ranges; UNSET tells an absent key from null
    (feedback is a record with `actual` and without `prediction`)."""

    id: str | _Int | None = None
    prediction: _Scalar | UnsetType | None = UNSET
    probabilities: Annotated[dict[str, _Unit], msgspec.Meta(min_length=1)] | None = None
    confidence: _Unit | None = None
    latency_seconds: _Seconds | None = None
    latency_ms: _Milliseconds | None = None
    error: str | None = None
    actual: _Scalar | UnsetType | None = UNSET
    model: str | _Int | None = None
    version: str | _Int | None = None
    features: dict[str, _Scalar | None] | None = None


_decode: Final = msgspec.json.Decoder(_Record).decode


def _feedback_from(r: _Record, actual: str | int | float | bool | None) -> Feedback | None:
    if r.id is None or actual is None:  # (the decoder rejects infinite numbers)
        return None
    model, version = r.model, r.version
    return Feedback(
        str(r.id),
        actual,
        model if model is None else str(model),
        version if version is None else str(version),
    )


# Runs for every line, so written for CPython's speed: identity and exact-type checks,
# no helper calls on the common path.
def _from_record(r: _Record) -> Prediction | Feedback | None:  # noqa: PLR0912 - one frame a line
    """What the rules make of a typed record, or None where they would reject it (they
    then say why)."""
    raw = r.prediction
    if raw is UNSET:
        if r.actual is not UNSET:
            return _feedback_from(r, r.actual)
        raw = None
    probabilities = r.probabilities
    confidence = r.confidence
    latency = r.latency_seconds
    if latency is None:
        ms = r.latency_ms
        if ms is not None:
            latency = ms / 1000.0
    label: str | None = None
    value: float | None = None
    if type(raw) is str:
        label = raw
    elif raw is None:
        if r.error is None:
            return None
    elif type(raw) is float or type(raw) is int:
        if probabilities is None and confidence is None:
            value = float(raw)  # finite: the decoder rejects what overflows a double
        elif type(raw) is float:
            return None  # a number as a class label
        else:
            label = str(raw)
    else:
        label = "true" if raw else "false"
    if probabilities is not None and label is not None:
        given = probabilities.get(label)
        if given is None:
            return None
        if confidence is None:
            confidence = given
    rid, model, version = r.id, r.model, r.version
    return Prediction(
        rid if rid is None or type(rid) is str else str(rid),
        label,
        value,
        probabilities,
        confidence,
        latency,
        r.error,
        model if model is None or type(model) is str else str(model),
        version if version is None or type(version) is str else str(version),
        r.features,
    )


def parse_line(data: bytes) -> Prediction | Feedback:
    """A prediction, or feedback (a record with `actual` and no `prediction`); raises
    InvalidRecordError with the reason and a message naming the field."""
    try:
        # The typed decode skips the fields it does not know without checking their
        # UTF-8, which orjson (the rules) does; ASCII needs no check.
        if not data.isascii():
            data.decode()
        record = _decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        pass  # ValidationError is a DecodeError
    else:
        parsed = _from_record(record)
        if parsed is not None:
            return parsed
    return parse_dict_line(data)


# ---- the block path: features decoded into a struct of a reference's features -------------

# (feature name, numeric) in a reference's order: what `typed_decoder` decodes.
FeatureSchema = tuple[tuple[str, bool], ...]
# Per feature of a schema, the only strings a categorical one takes (None: any string).
Categories = tuple[tuple[str, ...] | None, ...]
Decode = Callable[[bytes], _Record]


def _feature_type(numeric: bool, categories: tuple[str, ...] | None) -> Any:
    if numeric:
        return _Int | _Number | None
    if categories:
        # msgspec returns the one str object of the literal: no new string per value,
        # and the drift tally's dict lookup finds its cached hash and the same object.
        return Literal[categories] | None  # built at run time from the reference
    return str | None


@functools.lru_cache(maxsize=256)  # versions with the same features share one
def typed_decoder(
    schema: FeatureSchema, categories: Categories = ()
) -> tuple[Decode, type[msgspec.Struct]]:
    """A decode like the fast path's whose `features` is a struct with exactly the
    schema's fields (numbers, or strings, or null; absent: null), and its struct type.
    Decoding into fixed fields makes no key string and no dict per line, and a drift
    tally reads a row's values in one call (`msgspec.structs.astuple`). A line it rejects
    (another feature, a string for a numeric feature, a number for a categorical one) is
    left to the usual path, so what it accepts is a subset of what that accepts, decoded
    to the same values: numbers keep their JSON type (int or float), as there.
    `categories`, if given (one item per feature), restricts a categorical feature to
    those strings: any other is rejected too (decode such lines with the decoder
    without `categories`, see `parse_lines`)."""
    allowed = categories or (None,) * len(schema)
    features = msgspec.defstruct(
        "Features",
        [(f"f{i}", _feature_type(numeric, known), None)
         for i, ((_, numeric), known) in enumerate(zip(schema, allowed, strict=True))],
        rename={f"f{i}": name for i, (name, _) in enumerate(schema)},
        forbid_unknown_fields=True,
        gc=False,
    )  # fmt: skip
    record = msgspec.defstruct(
        "TypedRecord", [("features", features | None, None)], bases=(_Record,), gc=False
    )
    decode = cast("Decode", msgspec.json.Decoder(record).decode)  # a _Record subclass
    return decode, features


def in_line_order(schema: FeatureSchema, lines: Sequence[bytes]) -> FeatureSchema | None:
    """`schema`'s features in the order the first of `lines` with features writes them
    (those it lacks after them), or None if none of the first few has features. Decoded
    into a struct of fields in that order, each key is found where msgspec looks first,
    instead of after comparing it with the fields before it."""
    numeric = dict(schema)
    for data in islice(lines, _ORDER_SAMPLE):
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        features = record.get("features") if isinstance(record, dict) else None
        if isinstance(features, dict) and features:
            first = [(name, numeric[name]) for name in features if name in numeric]
            return (*first, *(item for item in schema if item[0] not in features))
    return None


_ORDER_SAMPLE: Final = 8


def features_dict(
    features: dict[str, str | int | float | None] | msgspec.Struct | None,
) -> dict[str, str | int | float | None] | None:
    """A prediction's features as a dict, whichever way its line was decoded."""
    if features is None or isinstance(features, dict):
        return features
    return {k: v for k, v in msgspec.to_builtins(features).items() if v is not None}


# A decode that failed, in the list of a block's decoded lines: `_from_record` makes None
# of it (neither a prediction nor an error), as of a record the rules have to look at.
_FAILED: Final = _Record()
# Lines of a block that fail the typed decode before the block goes on line by line:
# each failure restarts the C-level pass after it.
_MAX_RESTARTS: Final = 16


def _decode_one(data: bytes, decode: Decode | None) -> _Record:
    if decode is None:
        return _FAILED
    try:
        return decode(data)
    except (msgspec.DecodeError, RecursionError):
        return _FAILED


def _decode_block(
    lines: Sequence[bytes], decode: Decode, fallback: Decode | None = None
) -> list[_Record]:
    """`decode` of each line by C-level passes; a line it rejects is given to
    `fallback`, if any (`_FAILED` where that rejects it too)."""
    decoded: list[_Record] = []
    restarts = 0
    while len(decoded) < len(lines):
        start = len(decoded)
        try:
            # extend() keeps what it took before the failing line
            decoded.extend(map(decode, islice(lines, start, None) if start else lines))
        except (msgspec.DecodeError, RecursionError):
            decoded.append(_decode_one(lines[len(decoded)], fallback))  # that line failed
            restarts += 1
            if restarts < _MAX_RESTARTS:
                continue
            if fallback is not None:  # the first decode rejects many: the fallback goes on
                decode, fallback, restarts = fallback, None, 0
                continue
            # many bad lines: one at a time
            decoded.extend(_decode_one(data, decode) for data in islice(lines, len(decoded), None))
    return decoded


def parse_lines(
    lines: Sequence[bytes],
    decode: Decode = _decode,
    fallback: Decode | None = None,
) -> tuple[list[Prediction | Feedback], list[tuple[int, InvalidRecordError]]]:
    """`parse_line` of each line: the records in their order, and (index in `lines`,
    error) of the lines rejected. The typed decode and what the rules make of it run as
    C-level passes over the block; a line either rejects, and one that is not ASCII (the
    typed decode skips unknown fields without checking their UTF-8, as `parse_line`
    does first), takes `parse_line`. `decode` may be a `typed_decoder`'s, and
    `fallback` another one tried on the lines `decode` rejects (a decoder of any
    category after one of the reference's categories)."""
    parsed = list(map(_from_record, _decode_block(lines, decode, fallback)))
    if None not in parsed and all(map(bytes.isascii, lines)):
        return cast("list[Prediction | Feedback]", parsed), []
    records: list[Prediction | Feedback] = []
    rejected: list[tuple[int, InvalidRecordError]] = []
    add = records.append
    for i, (data, record) in enumerate(zip(lines, parsed, strict=True)):
        if record is not None and data.isascii():
            add(record)
            continue
        try:
            add(parse_line(data))
        except InvalidRecordError as exc:
            rejected.append((i, exc))
    return records, rejected

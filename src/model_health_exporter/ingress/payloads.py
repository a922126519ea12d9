"""What pushed bodies mean, without I/O: batches of records (a JSON array, JSON Lines or
one object), and the payload-logger CloudEvents of KServe and Seldon Core turned into
prediction records (docs/integrations.md).

A KServe or Seldon logger sends the request (the model's inputs) and the response (its
outputs) of one inference as two events with the same id. Neither alone is a record:
`Half` is one of them, decoded; `join` makes the records of a pair, one per row."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import orjson

from model_health_exporter.schema import excerpt

# The ce-type values of the payload loggers, and which half of a pair each is.
EVENT_TYPES: Final[Mapping[str, Literal["request", "response"]]] = {
    "org.kubeflow.serving.inference.request": "request",
    "org.kubeflow.serving.inference.response": "response",
    "io.seldon.serving.inference.request": "request",
    "io.seldon.serving.inference.response": "response",
}
MAX_ROWS: Final = 100_000  # rows of one inference: more is not a payload logger's event
# Nesting a record may have: the rules of the record format go deeper than no real body.
_MAX_DEPTH: Final = 32


_LINES_TYPES: Final = frozenset(
    ("application/x-ndjson", "application/jsonl", "application/json-lines")
)


class PayloadError(Exception):
    """A body that cannot be taken: `reason` (a metric label), a message naming what is
    wrong, and the index of the record in its batch where there is one."""

    def __init__(self, reason: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.index = index


class BodyError(ValueError):
    """A request or response body that is not what its protocol says."""


def _loads(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("invalid_json", f"{where}: invalid JSON: {exc}") from None


def decode_batch(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """Records of a batch: a JSON array of objects, one object, or JSON Lines
    (`application/x-ndjson`, `application/jsonl`, or JSON whose first line is a whole
    object). Raises PayloadError with the index of the first bad record."""
    text = body.strip()
    if not text:
        raise PayloadError("invalid_json", "empty body: expected records")
    lines_type = content_type in (
        "application/x-ndjson",
        "application/jsonl",
        "application/json-lines",
    )
    if not lines_type and text[:1] == b"[":
        records = _loads(text, "body")
        if not isinstance(records, list):
            raise PayloadError("invalid_json", "body: expected a JSON array of records")
    elif not lines_type and b"\n" not in text:
        records = [_loads(text, "body")]
    else:
        records = []
        for i, line in enumerate(text.split(b"\n")):
            if line.strip():
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise PayloadError(
                        "invalid_json",
                        f"record {len(records)} (line {i + 1}): invalid JSON: {exc}",
                        len(records),
                    ) from None
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise PayloadError(
                "invalid_record", f"record {i}: expected a JSON object, got {excerpt(record)}", i
            )
    return records


def split_batch(body: bytes, content_type: str) -> list[bytes] | None:
    """The text of each record of a batch, not decoded (a JSON array is only scanned),
    each on one line; None if the body is not well-formed JSON (then `decode_batch`
    says where)."""
    text = body.strip()
    lines_type = content_type in _LINES_TYPES
    if not lines_type and text[:1] == b"[":
        try:
            raws = _split_array(text)
        except msgspec.DecodeError:
            return None
        # JSON strings hold no raw line breaks: those are whitespace between tokens
        return [bytes(r).replace(b"\n", b" ").replace(b"\r", b" ") for r in raws]
    if not lines_type and b"\n" not in text:
        return [text] if text else None
    return [line.strip() for line in text.split(b"\n") if line.strip()]


_split_array: Final = msgspec.json.Decoder(list[msgspec.Raw]).decode


# ---- CloudEvents --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Half:
    """One event of a request/response pair."""

    pair: str  # what joins the two: Ce-Requestid (Seldon) or the event id
    kind: Literal["request", "response"]
    names: tuple[str, ...]  # model names to try, in order (service, model id, ...)
    data: Any  # the decoded JSON body
    time: float | None  # ce-time, Unix seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "kind": self.kind,
            "names": list(self.names),
            "data": self.data,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Half:
        kind = d["kind"]
        if kind not in ("request", "response"):
            raise BodyError(f"unknown half {kind!r}")
        time = d.get("time")
        return cls(
            str(d["pair"]),
            kind,
            tuple(str(n) for n in d["names"]),
            d["data"],
            None if time is None else float(time),
        )


def _event_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None  # a time we cannot read: no latency, the event still counts


def _model_names(attributes: Mapping[str, str]) -> tuple[str, ...]:
    """The names a model may go by: the InferenceService (KServe) or deployment (Seldon)
    name, Seldon's model id, and that id without a trailing `_<version>` (Seldon Core 2
    names a loaded model `iris_1`)."""
    names: list[str] = []
    for key in ("inferenceservicename", "modelid", "endpoint"):
        value = attributes.get(key, "")
        if value and value not in names:
            names.append(value)
        head, _, tail = value.rpartition("_")
        if key == "modelid" and head and tail.isdigit() and head not in names:
            names.append(head)
    return tuple(names)


def event_half(attributes: Mapping[str, str], data: Any) -> Half:
    """A payload-logger event from its attributes (lower-case names without `ce-`) and
    decoded data. Raises PayloadError for an event that is not one."""
    ce_type = attributes.get("type", "")
    kind = EVENT_TYPES.get(ce_type)
    if kind is None:
        raise PayloadError(
            "unknown_event_type",
            f"ce-type {excerpt(ce_type)}: expected one of {', '.join(sorted(EVENT_TYPES))}",
        )
    pair = attributes.get("requestid") or attributes.get("id")
    if not pair:
        raise PayloadError("invalid_event", "the event has no id (ce-id)")
    names = _model_names(attributes)
    if not names:
        raise PayloadError(
            "invalid_event", "the event names no model (ce-inferenceservicename or ce-modelid)"
        )
    if not isinstance(data, dict):
        raise PayloadError("invalid_event", f"data: expected a JSON object, got {excerpt(data)}")
    return Half(pair, kind, names, data, _event_time(attributes.get("time")))


def binary_event(headers: Mapping[str, str], body: bytes) -> Half:
    """A binary-mode event: attributes in `ce-*` headers (names lower-case), data the body."""
    attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    return event_half(attributes, _loads(body, "event data"))


def structured_event(body: bytes) -> Half:
    """A structured-mode event (`application/cloudevents+json`)."""
    event = _loads(body, "event")
    if not isinstance(event, dict):
        raise PayloadError("invalid_event", "expected a CloudEvent JSON object")
    attributes = {
        str(k).lower(): str(v) for k, v in event.items() if k not in ("data", "data_base64")
    }
    if "data_base64" in event:
        import base64  # noqa: PLC0415 - rare

        try:
            data = _loads(base64.b64decode(str(event["data_base64"]), validate=True), "data_base64")
        except ValueError:
            raise PayloadError("invalid_event", "data_base64: not base64") from None
    else:
        data = event.get("data")
    return event_half(attributes, data)


# ---- tensors ------------------------------------------------------------------------------


def _flatten(data: Any, depth: int = 0) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if depth > _MAX_DEPTH:
        raise BodyError("nested too deeply")
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item, depth + 1))
    return out


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    rows: list[list[Any]]  # one list of values per row (the first dimension)


def _tensor(spec: Any, where: str) -> Tensor:
    """An Open Inference Protocol (v2) tensor: name, shape, datatype and data, the data
    flat in row-major order or nested."""
    if not isinstance(spec, dict):
        raise BodyError(f"{where}: expected a tensor object")
    name = spec.get("name")
    shape = spec.get("shape")
    if not isinstance(name, str):
        raise BodyError(f"{where}: a tensor needs a name")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BodyError(f"{where} {excerpt(name)}: shape must be a list of sizes")
    values = _flatten(spec.get("data"))
    size = math.prod(shape)
    if len(values) != size:
        raise BodyError(
            f"{where} {excerpt(name)}: shape {shape} holds {size} values, data has {len(values)}"
        )
    rows = shape[0]
    if rows > MAX_ROWS:
        raise BodyError(f"{where} {excerpt(name)}: more than {MAX_ROWS} rows")
    width = size // rows if rows else 0
    if spec.get("datatype") == "BOOL":
        values = [bool(v) for v in values]
    return Tensor(name, [values[i * width : (i + 1) * width] for i in range(rows)])


def _tensors(data: Any, key: str) -> list[Tensor]:
    specs = data.get(key)
    if not isinstance(specs, list) or not specs:
        raise BodyError(f"{key}: expected a non-empty list of tensors")
    return [_tensor(spec, f"{key}[{i}]") for i, spec in enumerate(specs)]


def _seldon_rows(data: Any) -> tuple[list[str] | None, list[list[Any]]]:
    """Seldon Core's own protocol: {"data": {"names": [...], "ndarray": [[...]]}} or
    with "tensor": {"shape": [...], "values": [...]}."""
    body = data["data"]
    if not isinstance(body, dict):
        raise BodyError("data: expected an object")
    names = body.get("names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise BodyError("data.names: expected a list of strings")
    if "ndarray" in body:
        rows = body["ndarray"]
        if not isinstance(rows, list):
            raise BodyError("data.ndarray: expected a list")
        return names, [row if isinstance(row, list) else [row] for row in rows]
    if "tensor" in body and isinstance(body["tensor"], dict):
        t = _tensor(
            {
                "name": "tensor",
                "shape": body["tensor"].get("shape"),
                "data": body["tensor"].get("values"),
            },
            "data.tensor",
        )
        return names, t.rows
    raise BodyError("data: expected ndarray or tensor")


# ---- features ---------------------------------------------------------------------------


def _feature_value(value: Any) -> str | int | float | None:
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    return excerpt(value)  # a nested value: kept as its text, a category


def request_rows(data: Mapping[str, Any], columns: Sequence[str] | None) -> list[dict[str, Any]]:
    """The features of each row of a request: KServe v1 `instances` (lists named by
    position, or objects), v2 `inputs` (one [rows, features] tensor named by position,
    or one tensor per feature) or Seldon's `data`. A positional value takes the name of
    its column in `columns`, else its index ("0", "1", ...). Raises ValueError."""
    if "instances" in data:
        instances = data["instances"]
        if not isinstance(instances, list) or len(instances) > MAX_ROWS:
            raise BodyError(f"instances: expected a list of at most {MAX_ROWS} rows")
        rows = []
        for i, row in enumerate(instances):
            if isinstance(row, dict):
                rows.append({str(k): _feature_value(v) for k, v in row.items()})
            elif isinstance(row, list):
                rows.append(_positional(_flatten(row), columns))
            else:
                rows.append(_positional([row], columns))
            if i >= MAX_ROWS:
                break
        return rows
    if "inputs" in data:
        tensors = _tensors(data, "inputs")
        n = len(tensors[0].rows)
        if any(len(t.rows) != n for t in tensors):
            raise BodyError("inputs: tensors with different numbers of rows")
        if len(tensors) == 1 and tensors[0].rows and len(tensors[0].rows[0]) != 1:
            return [_positional(row, columns) for row in tensors[0].rows]
        return [
            {t.name: _feature_value(t.rows[i][0] if t.rows[i] else None) for t in tensors}
            for i in range(n)
        ]
    if "data" in data:
        names, values = _seldon_rows(data)
        return [_positional(row, names or columns) for row in values]
    raise BodyError("expected instances (v1), inputs (v2) or data (Seldon)")


def _positional(values: Sequence[Any], columns: Sequence[str] | None) -> dict[str, Any]:
    names = columns if columns is not None and len(columns) == len(values) else None
    return {
        (names[i] if names is not None else str(i)): _feature_value(v) for i, v in enumerate(values)
    }


# ---- outputs ----------------------------------------------------------------------------


def _output(values: Sequence[Any], classes: Sequence[str] | None) -> dict[str, Any]:
    """A row of outputs as a record's prediction fields: one value is the prediction (a
    class label, or a regression number if it is a float); several numbers in [0, 1]
    are class probabilities, the most probable one the prediction."""
    if len(values) == 1:
        value = values[0]
        if isinstance(value, int) and not isinstance(value, bool):
            return {"prediction": str(value)}  # a class index: a label, not a number
        return {"prediction": value}
    if not values or not all(
        isinstance(p, int | float) and not isinstance(p, bool) and 0.0 <= p <= 1.0 for p in values
    ):
        raise BodyError(
            f"an output row of {len(values)} values must be class probabilities in [0, 1], "
            f"got {excerpt(list(values))}"
        )
    names = (
        list(classes)
        if classes is not None and len(classes) == len(values)
        else [str(i) for i in range(len(values))]
    )
    best = max(range(len(values)), key=values.__getitem__)
    return {
        "prediction": names[best],
        "probabilities": {name: float(p) for name, p in zip(names, values, strict=True)},
    }


def response_rows(data: Mapping[str, Any], classes: Sequence[str] | None) -> list[dict[str, Any]]:
    """The prediction fields of each row of a response: v1 `predictions`, v2 `outputs`
    (a [rows] or [rows, 1] tensor of labels or numbers, and/or a [rows, classes] tensor
    of probabilities) or Seldon's `data`. Raises ValueError."""
    if "predictions" in data:
        predictions = data["predictions"]
        if not isinstance(predictions, list) or len(predictions) > MAX_ROWS:
            raise BodyError(f"predictions: expected a list of at most {MAX_ROWS} rows")
        return [_output(_flatten(p) if isinstance(p, list) else [p], classes) for p in predictions]
    if "outputs" in data:
        tensors = _tensors(data, "outputs")
        n = len(tensors[0].rows)
        if any(len(t.rows) != n for t in tensors):
            raise BodyError("outputs: tensors with different numbers of rows")
        labels = next((t for t in tensors if all(len(r) == 1 for r in t.rows)), None)
        probabilities = next((t for t in tensors if any(len(r) > 1 for r in t.rows)), None)
        rows = []
        for i in range(n):
            if probabilities is not None:
                row = _output(probabilities.rows[i], classes)
                if labels is not None:
                    label = _output(labels.rows[i], None)["prediction"]
                    if str(label) in row["probabilities"]:
                        row["prediction"] = str(label)
            elif labels is not None:
                row = _output(labels.rows[i], classes)
            else:
                raise BodyError("outputs: empty tensors")
            rows.append(row)
        return rows
    if "data" in data:
        names, values = _seldon_rows(data)
        return [_output(row, classes or names) for row in values]
    raise BodyError("expected predictions (v1), outputs (v2) or data (Seldon)")


def join(
    request: Half | None,
    response: Half | None,
    columns: Sequence[str] | None,
    classes: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """The records of an inference: one per row, ids `<pair>` (one row) or `<pair>/<i>`.
    A response without its request gives records without features. Raises PayloadError
    (reason invalid_event) naming the half at fault."""
    if response is None:
        return []  # a request alone says nothing about a prediction
    try:
        outputs = response_rows(response.data, classes)
    except ValueError as exc:
        raise PayloadError("invalid_event", f"response: {exc}") from None
    features: list[dict[str, Any]] | None = None
    if request is not None:
        try:
            features = request_rows(request.data, columns)
        except ValueError as exc:
            raise PayloadError("invalid_event", f"request: {exc}") from None
        if len(features) != len(outputs):
            raise PayloadError(
                "invalid_event",
                f"the request has {len(features)} rows, its response {len(outputs)}",
            )
    latency = None
    if request is not None and request.time is not None and response.time is not None:
        seconds = response.time - request.time
        latency = seconds if 0.0 <= seconds <= 86_400.0 else None
    single = len(outputs) == 1
    records = []
    for i, output in enumerate(outputs):
        record: dict[str, Any] = {"id": response.pair if single else f"{response.pair}/{i}"}
        if request is not None and request.time is not None:
            record["timestamp"] = request.time
        record.update(output)
        if features is not None:
            record["features"] = features[i]
        if latency is not None:
            record["latency_seconds"] = latency
        records.append(record)
    return records

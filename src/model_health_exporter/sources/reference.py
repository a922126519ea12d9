"""Reading a model version's reference data: a training sample (`reference.jsonl` in
the prediction-log record format, or `reference.csv` with one column per feature) or a
profile built from one (`reference_profile.json`). I/O only: the rows are handed on
as they are read; building the profile is `stats.reference`."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from model_health_exporter.records import (
    InvalidRecordError,
    Prediction,
    features_dict,
    parse_features,
    prediction_from_dict,
)
from model_health_exporter.schema import excerpt

PROFILE_FILE: Final = "reference_profile.json"
JSONL_FILE: Final = "reference.jsonl"
CSV_FILE: Final = "reference.csv"
# In this order: a profile someone built on purpose wins over the raw sample.
REFERENCE_FILES: Final = (PROFILE_FILE, JSONL_FILE, CSV_FILE)
# Columns of reference.csv that are not features.
CSV_RESERVED: Final = frozenset(
    {"id", "prediction", "actual", "confidence", "latency_ms", "latency_seconds", "timestamp"}
)
ERROR_REASONS: Final = (
    "unreadable",
    "invalid_row",
    "invalid_profile",
    "too_large",
    "outside_root",
)

Source = Literal["profile", "jsonl", "csv"]
FeatureValue = str | int | float | None


class ReferenceError(Exception):
    """The reference file cannot be used at all; `reason` is an ERROR_REASONS value."""

    def __init__(self, path: Path, reason: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason


@dataclass(slots=True)
class ReferenceRows:
    """A reference sample, one entry per row in every list (None where a row lacks it)."""

    path: Path
    source: Source
    features: list[dict[str, FeatureValue]] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)  # predicted class
    values: list[float | None] = field(default_factory=list)  # regression output
    probabilities: list[dict[str, float] | None] = field(default_factory=list)
    confidences: list[float | None] = field(default_factory=list)
    actuals: list[str | int | float | bool | None] = field(default_factory=list)
    latencies: list[float | None] = field(default_factory=list)
    skipped: int = 0  # rows that failed validation
    first_problem: str | None = None  # "line N: what", for the log line
    truncated: bool = False  # more rows than max_rows

    def __len__(self) -> int:
        return len(self.features)

    def columns(self) -> dict[str, list[Any]]:
        """The per-row lists by the keyword names of `stats.reference.build_reference`."""
        return {
            "labels": self.labels,
            "values": self.values,
            "probabilities": self.probabilities,
            "confidences": self.confidences,
            "actuals": self.actuals,
            "latencies": self.latencies,
        }

    def _skip(self, where: str, problem: str) -> None:
        self.skipped += 1
        if self.first_problem is None:
            self.first_problem = f"{where}: {problem}"

    def _add(self, p: Prediction, actual: Any) -> None:
        self.features.append(features_dict(p.features) or {})
        self.labels.append(p.label)
        self.values.append(p.value)
        self.probabilities.append(p.probabilities)
        self.confidences.append(p.confidence)
        self.actuals.append(actual)
        self.latencies.append(p.latency_seconds)


@dataclass(frozen=True, slots=True)
class ReferenceProfileFile:
    path: Path
    data: dict[str, Any]


def find_reference(version_dir: Path) -> Path | None:
    for name in REFERENCE_FILES:
        path = version_dir / name
        try:
            if path.is_file():
                return path
        except OSError:  # a version folder that cannot be searched: as if it had none
            return None
    return None


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ReferenceError(path, "unreadable", f"cannot read: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ReferenceError(path, "too_large", f"larger than {max_bytes} bytes")
    return data


def read_reference(
    path: Path, *, max_bytes: int = 256 * 1024 * 1024, max_rows: int = 100_000
) -> ReferenceRows | ReferenceProfileFile:
    """The rows of a reference.jsonl / reference.csv (bad rows skipped and counted, at
    most `max_rows`), or the parsed reference_profile.json. Raises ReferenceError."""
    data = _read_bytes(path, max_bytes)
    if path.name == PROFILE_FILE:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ReferenceError(path, "invalid_profile", f"invalid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ReferenceError(path, "invalid_profile", "expected a JSON object")
        return ReferenceProfileFile(path, parsed)
    if path.suffix == ".csv":
        return _read_csv(path, data, max_rows)
    return _read_jsonl(path, data, max_rows)


def _jsonl_row(line: bytes) -> tuple[Prediction, Any]:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecordError("invalid_json", f"invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRecordError("invalid_record", "expected a JSON object")
    actual = raw.get("actual")
    if isinstance(actual, float) and not math.isfinite(actual):
        actual = None
    if not isinstance(actual, str | int | float):
        actual = None
    if raw.get("prediction") is None and raw.get("error") is None:
        # A training row without a model output: features (and label) only.
        features = parse_features(raw.get("features"))
        return Prediction(None, None, None, None, None, None, None, features=features), actual
    return prediction_from_dict(raw), actual


def _read_jsonl(path: Path, data: bytes, max_rows: int) -> ReferenceRows:
    rows = ReferenceRows(path, "jsonl")
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        if len(rows) >= max_rows:
            rows.truncated = True
            break
        try:
            record, actual = _jsonl_row(line)
        except InvalidRecordError as exc:
            rows._skip(f"line {number}", exc.message)
            continue
        if record.error is None:
            rows._add(record, actual)
    return rows


def _csv_value(text: str) -> FeatureValue:
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else None


def _read_csv(path: Path, data: bytes, max_rows: int) -> ReferenceRows:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReferenceError(path, "unreadable", f"not UTF-8: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise ReferenceError(path, "invalid_row", "no header row")
    rows = ReferenceRows(path, "csv")
    for row in reader:
        if len(rows) >= max_rows:
            rows.truncated = True
            break
        if None in row:  # more cells than the header has
            rows._skip(f"line {reader.line_num}", "more values than columns")
            continue
        cells = {k: _csv_value(v) for k, v in row.items() if v is not None}
        confidence = cells.get("confidence")
        if confidence is not None and not (isinstance(confidence, float) and 0 <= confidence <= 1):
            bad = excerpt(confidence)
            rows._skip(f"line {reader.line_num}", f"confidence: {bad} is not in [0, 1]")
            continue
        predicted = cells.get("prediction")
        # As in the logs: a number is a regression output unless a confidence is given.
        regression = isinstance(predicted, float) and confidence is None
        latency = cells.get("latency_seconds")
        if latency is None and isinstance(ms := cells.get("latency_ms"), float):
            latency = ms / 1000.0
        rows.features.append({k: v for k, v in cells.items() if k not in CSV_RESERVED})
        rows.labels.append(None if predicted is None or regression else row["prediction"])
        rows.values.append(predicted if regression and isinstance(predicted, float) else None)
        rows.probabilities.append(None)
        rows.confidences.append(confidence if isinstance(confidence, float) else None)
        rows.actuals.append(cells.get("actual"))
        rows.latencies.append(latency if isinstance(latency, float) else None)
    return rows


def csv_feature_columns(path: Path, max_bytes: int = 64 * 1024) -> tuple[str, ...] | None:
    """The feature columns of a reference.csv in their order (its header without the
    reserved columns), or None if it has no readable header."""
    try:
        with path.open("rb") as f:
            head = f.readline(max_bytes)
    except OSError:
        return None
    try:
        header = next(csv.reader([head.decode("utf-8-sig").rstrip("\r\n")]), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    if not header:
        return None
    return tuple(name for name in header if name not in CSV_RESERVED)

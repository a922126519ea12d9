"""Parsing and validation of the files users write: metrics.json and
baseline_metrics.json. Pure: bytes in, a validated model or a `InvalidFileError` out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from model_health_exporter.quality_metrics import BY_NAME, QUALITY_METRICS, canonical_metric_name

_M = TypeVar("_M", bound=BaseModel)

METRICS_FILE: Final = "metrics.json"
BASELINE_FILE: Final = "baseline_metrics.json"

# Reasons are label values of routing_ml_exporter_errors_total: keep the set small and fixed.
FILE_ERROR_REASONS: Final = (
    "unreadable",
    "permission_denied",
    "outside_root",
    "too_large",
    "too_deep",
    "not_utf8",
    "invalid_json",
    "invalid_type",
    "invalid_value",
)


# Containers nested deeper than this are rejected (reason too_deep): metrics.json and
# baseline files need 3 levels, and unknown fields are kept and served back as JSON, so a
# value nested hundreds deep would break every later /api/v1/models answer.
MAX_JSON_DEPTH: Final = 64
# A value that failed validation is quoted in messages (logs, the API, the landing page)
# at most this long, escaped: a file may hold what its reader must not see in full.
MAX_EXCERPT_CHARS: Final = 40


def excerpt(value: object, limit: int = MAX_EXCERPT_CHARS) -> str:
    """`repr(value)`, cut to at most `limit` characters ("..." marks the cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InvalidFileError(Exception):
    """A user file that cannot be used, with a reason label and a human message."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in FILE_ERROR_REASONS, reason  # a programming error, not bad input
        super().__init__(message)
        self.reason = reason
        self.message = message


def _reject_bool_and_str(value: Any) -> Any:
    # JSON `true` or "0.9" where a number belongs is a writer bug worth reporting,
    # not something to coerce silently.
    if isinstance(value, bool | str):
        # pydantic turns ValueError (not TypeError) into a validation error
        raise ValueError(f"expected a number, got {type(value).__name__} {excerpt(value)}")  # noqa: TRY004
    return value


def _integral(value: Any) -> Any:
    value = _reject_bool_and_str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # numpy-based writers emit 1500.0 for counts
    return value


Number = Annotated[float, BeforeValidator(_reject_bool_and_str), Field(allow_inf_nan=False)]
Ratio = Annotated[Number, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[Number, Field(ge=0.0)]
# Counts beyond 2**53 are not exact as the float of a sample value, and far beyond
# any dataset; a 400-digit integer would not convert at all.
Count = Annotated[int, BeforeValidator(_integral), Field(ge=0, le=2**53, strict=True)]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class DatasetStats(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    total_samples: Count | None = None
    unique_items: Count | None = None
    unique_processes: Count | None = None
    unique_candidates: Count | None = None
    total_columns: Count | None = None
    column_names: list[str] | None = None
    missing_rates: dict[str, Ratio] = Field(default_factory=dict)


class ModelMetrics(BaseModel):
    """metrics.json: training facts, dataset stats and evaluation metrics. Unknown keys kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    generated_at: datetime | None = None
    model_version: str | None = None
    training_samples: Count | None = None
    dataset_stats: DatasetStats | None = None
    training_duration_sec: NonNegative | None = None
    note: str | None = None

    accuracy: Ratio | None = None
    precision_weighted: Ratio | None = None
    recall_weighted: Ratio | None = None
    f1_weighted: Ratio | None = None
    auc_roc: Ratio | None = None
    auc_pr: Ratio | None = None
    log_loss: NonNegative | None = None
    mae: NonNegative | None = None
    mse: NonNegative | None = None
    rmse: NonNegative | None = None
    r2: Annotated[Number, Field(le=1.0)] | None = None
    mape: NonNegative | None = None
    smape: Annotated[NonNegative, Field(le=2.0)] | None = None

    @field_validator("generated_at")
    @classmethod
    def _generated_at_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)

    def quality(self) -> dict[str, float]:
        """Quality metric values by canonical name, only those present."""
        values = {m.name: getattr(self, m.field) for m in QUALITY_METRICS}
        return {name: float(v) for name, v in values.items() if v is not None}


class Levels(BaseModel):
    """Target, warning and critical levels of one metric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: Number | None = None
    warning: Number | None = None
    critical: Number | None = None


class ExpectedDataset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_samples: Count | None = None
    min_unique_items: Count | None = None
    max_missing_rate: Ratio | None = None


class BaselineFile(BaseModel):
    """baseline_metrics.json in its documented format, or the simpler
    `{"accuracy": 0.92, "precision": 0.89, ..., "samples": 1500}` extract, whose values
    become targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline_version: str | None = None
    established_date: str | None = None
    quality_thresholds: dict[str, Levels] = Field(default_factory=dict)
    expected_dataset: ExpectedDataset | None = None

    @model_validator(mode="before")
    @classmethod
    def _simple_format(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        data = dict(data)
        thresholds = dict(data.get("quality_thresholds") or {})
        for key in [k for k in data if k not in known]:
            if canonical_metric_name(key) is not None:
                thresholds.setdefault(key, {"target": data.pop(key)})
            elif key == "samples":
                data.pop(key)  # the simple extract records it; it is informational only
        if thresholds:
            data["quality_thresholds"] = thresholds
        return data

    @field_validator("quality_thresholds")
    @classmethod
    def _known_metrics(cls, value: dict[str, Levels]) -> dict[str, Levels]:
        out: dict[str, Levels] = {}
        for key, levels in value.items():
            name = canonical_metric_name(key)
            if name is None:
                raise ValueError(f"unknown metric {excerpt(key)}")
            if problem := level_order_problem(name, levels):
                raise PydanticCustomError("threshold_order", problem)
            out[name] = levels
        return out


def level_order_problem(name: str, levels: Levels) -> str | None:
    """Why the levels of quality metric `name` are in the wrong order, or None. Warning
    must lie between target and critical: a warning on the wrong side of critical would
    never fire before critical does (or would fire on a healthy model)."""
    higher_is_better = BY_NAME[name].higher_is_better
    present = [
        (label, value)
        for label, value in (
            ("target", levels.target),
            ("warning", levels.warning),
            ("critical", levels.critical),
        )
        if value is not None
    ]
    for (better, better_value), (worse, worse_value) in itertools.pairwise(present):
        if higher_is_better and better_value < worse_value:
            return (
                f"{name}: {better} {better_value:g} is below {worse} {worse_value:g}; higher "
                f"{name} is better, so target >= warning >= critical"
            )
        if not higher_is_better and better_value > worse_value:
            return (
                f"{name}: {better} {better_value:g} is above {worse} {worse_value:g}; lower "
                f"{name} is better (an error metric), so target <= warning <= critical"
            )
    return None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


def _has_lone_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_tree(obj: object, limit: int) -> None:
    """Reject containers nested more than `limit` levels, and strings holding a lone
    surrogate (JSON may escape one, "\\udcff": not text, and no label or page can carry
    it). Iterative: a deep tree must not recurse."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = []
    if isinstance(obj, dict | list):
        stack.append((obj, 1))
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise InvalidFileError("too_deep", f"nested deeper than {limit} levels")
        children: Iterable[Any] = value.values() if isinstance(value, dict) else value
        keys: Iterable[Any] = value if isinstance(value, dict) else ()
        strings = [s for s in (*keys, *children) if isinstance(s, str) and _has_lone_surrogate(s)]
        if strings:
            raise InvalidFileError(
                "not_utf8", f"a string escapes a lone surrogate: {excerpt(strings[0])}"
            )
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def decode_json_object(data: bytes) -> dict[str, Any]:
    """Decode bytes as a UTF-8 JSON object of at most MAX_JSON_DEPTH levels, rejecting
    NaN and Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFileError("not_utf8", f"not UTF-8 text (byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidFileError(
            "invalid_json", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # NaN / Infinity
        raise InvalidFileError("invalid_value", str(exc)) from None
    except RecursionError:  # far deeper than the limit below; the parser gave up first
        raise InvalidFileError("too_deep", f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    _check_tree(obj, MAX_JSON_DEPTH)
    if not isinstance(obj, dict):
        raise InvalidFileError("invalid_type", f"expected a JSON object, got {type(obj).__name__}")
    return obj


_VALUE_ERROR_TYPES: Final = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "finite_number",
        "threshold_order",
    }
)
# Errors whose message already quotes the offending value.
_SELF_DESCRIBING: Final = frozenset({"value_error", "threshold_order"})


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(reason, message) for a pydantic error: every problem, each with its key path."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors:
        # keys come from the file too: long ones are cut like values
        keys = (str(p) if len(str(p)) <= MAX_EXCERPT_CHARS else excerpt(p) for p in err["loc"])
        where = ".".join(keys) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] not in _SELF_DESCRIBING:
            msg += f" (got {excerpt(err.get('input'))})"
        parts.append(f"{where}: {msg}")
    only_values = all(err["type"] in _VALUE_ERROR_TYPES for err in errors)
    return ("invalid_value" if only_values else "invalid_type"), "; ".join(parts)


def _parse(data: bytes, model: type[_M]) -> _M:
    obj = decode_json_object(data)
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise InvalidFileError(*describe_validation_error(exc)) from None


def parse_metrics(data: bytes) -> ModelMetrics:
    """Parse metrics.json content; raises InvalidFileError."""
    return _parse(data, ModelMetrics)


def parse_baseline(data: bytes) -> BaselineFile:
    """Parse baseline_metrics.json content; raises InvalidFileError."""
    return _parse(data, BaselineFile)

"""Per-version tallies from prediction logs: counters and fixed-bucket histograms, in
memory that does not grow with the number of predictions, serialisable for checkpoints."""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

import structlog

# Only for types: windows imports numpy, whose import starts a thread (see cli._run).
if TYPE_CHECKING:
    from model_health_exporter.records import Prediction
    from model_health_exporter.state.windows import LiveWindow, WindowSummary

# Prometheus' default buckets suit request latencies in seconds.
DEFAULT_LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# 0.75 is the default low-confidence threshold.
DEFAULT_CONFIDENCE_BUCKETS: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 1.0)
OTHER_ERROR: Final = "other"

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative; the last one is +Inf) and the sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le="bound").
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def observe_many(self, values: list[float], total: float | None = None) -> None:
        """`observe` each value, in one numpy call rather than one bisect per value;
        `total`, if given, is `sum(values)` (taken by the caller for its own use too)."""
        if len(values) < 16:  # not worth numpy's call overhead
            for value in values:
                self.observe(value)
            return
        # Imported here (numpy with it): config imports this module, before the daemon
        # blocks the signals that numpy's threads must not take (cli._run).
        from model_health_exporter.stats.profile import counts_between  # noqa: PLC0415

        # a value equal to a bound belongs to that bucket, as bisect_left says
        for i, n in enumerate(counts_between(values, self.bounds, side="right").tolist()):
            self.counts[i] += n
        self.total += sum(values) if total is None else total

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count) pairs ending with +Inf, as Prometheus wants."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": self.bounds, "counts": self.counts, "sum": self.total}

    def load(self, data: dict[str, Any]) -> None:
        # Reconfigured buckets start over: Prometheus reads it as a counter reset.
        if tuple(float(b) for b in data["bounds"]) != self.bounds:
            return
        total = float(data["sum"])
        if not math.isfinite(total):
            # Saved by a version that let an overflowing value in: the sum cannot be
            # mended, and a count without its sum would skew every mean taken from them.
            # Start over, as for reconfigured buckets.
            log.warning("histogram with an infinite or NaN sum in the checkpoint starts over")
            return
        self.counts, self.total = [int(c) for c in data["counts"]], total


_LATENCY: Final = operator.attrgetter("latency_seconds")
_CONFIDENCE: Final = operator.attrgetter("confidence")
_ERROR: Final = operator.attrgetter("error")


class RunFacts(NamedTuple):
    """What the counters and the window read of a run of predictions, each read once by
    C-level passes (no Python code per prediction)."""

    n: int  # predictions in the run
    latencies: list[float]  # the given ones, in order
    latency_sum: float  # their sum, for the counters' histogram and the window's bucket
    errors: list[str]  # of the failed predictions, in order
    ok: list[Prediction]  # the successful predictions
    confidences: list[float]  # of the successful ones, the given ones
    confidence_sum: float  # their sum, for the counters' histogram


def _summed(values: Iterable[float | None]) -> tuple[list[float], float]:
    """The values that are not None, in order, and their sum (C-level passes: run per
    prediction). The sum, taken anyway, finds a None (TypeError) without comparing
    every value with None first."""
    out = list(values)
    try:
        return cast("list[float]", out), sum(cast("list[float]", out))
    except TypeError:
        given = [v for v in out if v is not None]
        return given, sum(given)


def run_facts(predictions: Sequence[Prediction]) -> RunFacts:
    latencies, latency_sum = _summed(map(_LATENCY, predictions))
    errors = list(map(_ERROR, predictions))
    if errors.count(None) == len(errors):
        ok, failed = list(predictions), []
    else:
        ok = list(compress(predictions, map(operator.is_, errors, repeat(None))))
        failed = list(compress(errors, map(operator.is_not, errors, repeat(None))))
    return RunFacts(
        len(predictions), latencies, latency_sum, failed, ok, *_summed(map(_CONFIDENCE, ok))
    )


@dataclass(slots=True)
class VersionTallies:
    """Everything counted for one model version since counting began."""

    latency: Histogram
    confidence: Histogram
    max_error_types: int
    predictions: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    feedback: int = 0

    @classmethod
    def create(
        cls,
        latency_buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS,
        confidence_buckets: tuple[float, ...] = DEFAULT_CONFIDENCE_BUCKETS,
        max_error_types: int = 20,
    ) -> VersionTallies:
        return cls(Histogram(latency_buckets), Histogram(confidence_buckets), max_error_types)

    def observe_predictions(self, predictions: Sequence[Prediction]) -> None:
        """Count predictions: errors by type, latencies, confidences of the successful."""
        self.observe(run_facts(predictions))

    def observe(self, facts: RunFacts) -> None:
        """Count a run of predictions from what `run_facts` read of it."""
        self.predictions += facts.n
        self.latency.observe_many(facts.latencies, facts.latency_sum)
        self.confidence.observe_many(facts.confidences, facts.confidence_sum)
        for error in facts.errors:
            self.count_error(error)

    def count_error(self, error_type: str) -> None:
        if error_type not in self.errors and len(self.errors) >= self.max_error_types:
            error_type = OTHER_ERROR  # bounded label cardinality
        self.errors[error_type] = self.errors.get(error_type, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "predictions": self.predictions,
            "errors": self.errors,
            "feedback": self.feedback,
            "latency": self.latency.to_dict(),
            "confidence": self.confidence.to_dict(),
        }

    def load(self, data: dict[str, Any]) -> None:
        self.predictions = int(data["predictions"])
        self.errors = {str(k): int(v) for k, v in data["errors"].items()}
        self.feedback = int(data["feedback"])
        self.latency.load(data["latency"])
        self.confidence.load(data["confidence"])


@dataclass(frozen=True, slots=True)
class TalliesView:
    """An immutable copy for the collector, with the window's summary."""

    model: str
    version: str
    predictions: int
    errors: tuple[tuple[str, int], ...]
    feedback: int
    latency: tuple[tuple[float, int], ...]
    latency_sum: float
    confidence: tuple[tuple[float, int], ...]
    confidence_sum: float
    window: WindowSummary
    feedback_matched: int
    feedback_expired: int
    feedback_unmatched: int
    feedback_waiting: int

    @classmethod
    def of(
        cls,
        key: tuple[str, str],
        t: VersionTallies,
        window: LiveWindow,
        now: float,
        summary: WindowSummary | None = None,
    ) -> TalliesView:
        """The view now; `summary` is the window's (computed here when not given)."""
        return cls(
            key[0],
            key[1],
            t.predictions,
            tuple(sorted(t.errors.items())),
            t.feedback,
            tuple(t.latency.cumulative()),
            t.latency.total,
            tuple(t.confidence.cumulative()),
            t.confidence.total,
            window.summary(now) if summary is None else summary,
            window.matched,
            window.expired,
            window.unmatched,
            window.feedback_waiting,
        )

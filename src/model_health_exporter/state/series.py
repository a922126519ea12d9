"""One point per bucket of a live window, for the model page's charts: what each bucket
alone says (predictions, errors, latency, live and estimated accuracy, MAE). Immutable,
published with the window's summary; at most one point per bucket of the window.

A point is kept packed (nine doubles in one bytes object, about 100 bytes, a third of the
same as objects): every version holds one per bucket of its window, and the pages that
unpack them are rarely open."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Final

from model_health_exporter.stats import performance as perf
from model_health_exporter.stats.estimation import estimated_metrics
from model_health_exporter.stats.reference import DriftCounts


@dataclass(frozen=True, slots=True)
class BucketPoint:
    start: float  # seconds since the epoch
    predictions: int
    errors: int
    latency_mean_seconds: float | None
    labelled: int  # predictions joined with their feedback in this bucket
    accuracy: float | None  # over `labelled` (classification)
    mae: float | None  # over `labelled` (regression)
    estimated: int  # predictions the label-free estimate covers
    estimated_accuracy: float | None


# A bucket's accuracy counts from this many labelled predictions on: below it, chance
# alone moves one bucket's accuracy by more than +-10 points (binomial, 95%, p = 0.9).
MIN_POINT_SAMPLES: Final = 30

_PACKED: Final = struct.Struct("<9d")  # NaN for None; counts are exact as doubles


def pack(point: BucketPoint) -> bytes:
    return _PACKED.pack(*(math.nan if v is None else float(v) for v in _fields(point)))


def _fields(point: BucketPoint) -> tuple[float | int | None, ...]:
    return (
        point.start,
        point.predictions,
        point.errors,
        point.latency_mean_seconds,
        point.labelled,
        point.accuracy,
        point.mae,
        point.estimated,
        point.estimated_accuracy,
    )


def unpack(packed: bytes) -> BucketPoint:
    v = [None if math.isnan(x) else x for x in _PACKED.unpack(packed)]
    return BucketPoint(
        start=v[0] or 0.0,
        predictions=int(v[1] or 0),
        errors=int(v[2] or 0),
        latency_mean_seconds=v[3],
        labelled=int(v[4] or 0),
        accuracy=v[5],
        mae=v[6],
        estimated=int(v[7] or 0),
        estimated_accuracy=v[8],
    )


@dataclass(frozen=True, slots=True)
class Series:
    """The window's buckets with data, oldest first, and the window's extent."""

    bucket_seconds: float
    buckets: int  # how many buckets the window holds at most
    packed: tuple[bytes, ...]  # one `pack`ed point per bucket with data
    last_record_at: float | None  # when this version's last record was read, if known

    @property
    def points(self) -> tuple[BucketPoint, ...]:
        return tuple(unpack(p) for p in self.packed)


def _estimate(drift: DriftCounts | None) -> tuple[int, float | None]:
    """The label-free accuracy estimate of one bucket's counts, as the window's (the
    expected confusion matrix when calibrated probabilities exist, else the mean
    calibrated confidence), and how many predictions it covers."""
    if drift is None:
        return 0, None
    if drift.expected is not None and drift.expected_n:
        estimate = estimated_metrics(drift.expected)
        return drift.expected_n, None if estimate is None else estimate.accuracy
    if drift.calibrated_confidence_n:
        n = drift.calibrated_confidence_n
        return n, drift.calibrated_confidence_sum / n
    return 0, None


def bucket_point(  # noqa: PLR0917 - one bucket's fields, each named at the call
    start: float,
    predictions: int,
    errors: int,
    latency_sum: float,
    latency_n: int,
    labelled: perf.ClassificationCounts | None,
    regression: perf.RegressionSums | None,
    drift: DriftCounts | None,
) -> BucketPoint:
    n_labelled = (labelled.n_samples if labelled is not None else 0) + (
        regression.n if regression is not None else 0
    )
    estimated, estimated_accuracy = _estimate(drift)
    return BucketPoint(
        start=start,
        predictions=predictions,
        errors=errors,
        latency_mean_seconds=latency_sum / latency_n if latency_n else None,
        labelled=n_labelled,
        accuracy=None if labelled is None else perf.accuracy(labelled),
        mae=None if regression is None else perf.mae(regression),
        estimated=estimated,
        estimated_accuracy=estimated_accuracy,
    )

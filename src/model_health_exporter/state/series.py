"""One point per bucket of a live window, for the model page's charts: what each bucket
alone says (predictions, errors, latency, live and estimated accuracy, MAE). Immutable,
published with the window's summary; at most one point per bucket of the window."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Series:
    """The window's buckets with data, oldest first, and the window's extent."""

    bucket_seconds: float
    buckets: int  # how many buckets the window holds at most
    points: tuple[BucketPoint, ...]
    last_record_at: float | None  # when this version's last record was read, if known


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

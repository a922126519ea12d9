"""Sliding windows of live performance per model version, in bounded memory.

A window is a ring of time buckets; each bucket holds fixed-size aggregates only
(`stats.performance`), so memory depends on classes x bins x buckets, never on the
number of predictions. Per version and bucket, about
8 * (K^2 + 2*K*B_auc + B_conf) bytes for classification (K = max classes + 1 for
"other"), plus at most `max_pending` predictions awaiting their feedback.

Labelled samples are placed in the bucket of the moment their feedback is joined, so a
window answers "how did the predictions labelled in the last hour do"."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar

from model_health_exporter.records import Feedback, Prediction, label_of
from model_health_exporter.stats import performance as perf
from model_health_exporter.stats.reference import (
    DriftCounts,
    DriftSettings,
    ModelReference,
    build_reference,
    drift_report,
)

Kind = Literal["classification", "regression"]
OTHER_CLASS: Final = "__other__"


@dataclass(frozen=True, slots=True)
class WindowConfig:
    bucket_seconds: float = 300.0
    buckets: int = 12
    max_classes: int = 10
    auc_bins: int = 50
    confidence_bins: int = 100
    low_confidence_threshold: float = 0.75
    max_pending: int = 5000
    pending_max_age: float = 86_400.0
    min_samples: int = 100
    drift: DriftSettings = field(default_factory=DriftSettings)
    # Without a reference file, this many first successful predictions become it.
    reference_predictions: int = 1000
    reference_bins: int = 20
    reference_top_k: int = 20
    max_features: int = 50


_NO_FEATURES: Final[MappingProxyType[str, MappingProxyType[str, float]]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """What the window says now: metric name -> value, sample counts by kind, and
    per-feature drift and quality (feature -> statistic -> value)."""

    metrics: MappingProxyType[str, float]
    samples: MappingProxyType[str, int]
    features: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: _NO_FEATURES)
    reference_source: str | None = None


_FLUSH_AT: Final = 4096


@dataclass(slots=True)
class _Bucket:
    index: int  # floor(time / bucket_seconds)
    confidence: perf.ConfidenceHistogram
    labelled: perf.ClassificationCounts | None = None
    regression: perf.RegressionSums | None = None
    predictions: int = 0
    errors: int = 0
    invalid_records: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    drift: DriftCounts | None = None
    # Successful predictions wait here for the vectorised drift tally.
    drift_rows: list[Prediction] = field(default_factory=list)
    # Confidences wait here and enter the histogram in batches: numpy costs tens of
    # microseconds a call, a list append a few dozen nanoseconds.
    unflushed: list[float] = field(default_factory=list)

    def add_confidence(self, value: float) -> None:
        self.unflushed.append(value)
        if len(self.unflushed) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> perf.ConfidenceHistogram:
        if self.unflushed:
            self.confidence.add_many(self.unflushed)
            self.unflushed = []
        return self.confidence

    def flush_drift(self, reference: ModelReference | None) -> DriftCounts | None:
        if self.drift_rows and reference is not None:
            if self.drift is None:
                self.drift = DriftCounts.empty(reference)
            self.drift.add_rows(reference, self.drift_rows)
        self.drift_rows = []
        return self.drift


@dataclass(slots=True)
class _Pending:
    at: float
    predicted: int | float  # class index, or the regression output
    probabilities: dict[str, float] | None  # as logged; a vector only when joined


class LiveWindow:
    """One model version's window and its pending feedback join. Not thread-safe: owned
    by the ingest thread, which publishes `summary()` results."""

    def __init__(self, config: WindowConfig) -> None:
        self._config = config
        self.kind: Kind | None = None
        self.classes: list[str] = []  # index -> label; grows to max_classes, then "other"
        self._buckets: deque[_Bucket] = deque()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self.matched = 0
        self.expired = 0
        self.unmatched = 0
        self.reference: ModelReference | None = None
        self._reference_rows: list[Prediction] = []  # collecting the automatic reference

    # ---- reference ----------------------------------------------------------------------

    def set_reference(self, reference: ModelReference | None) -> None:
        """Use `reference` from now on (None: build one from the first predictions).
        Drift tallied against another reference is dropped: its bins differ."""
        same = (
            reference is not None
            and self.reference is not None
            and reference.to_dict() == self.reference.to_dict()
        )
        if same:
            return
        if (
            reference is None
            and self.reference is not None
            and self.reference.source == "predictions"
        ):
            return  # already built from the first predictions
        self.reference = reference
        self._reference_rows = []
        for bucket in self._buckets:
            bucket.drift, bucket.drift_rows = None, []

    def _collect_reference(self, prediction: Prediction) -> None:
        rows = self._reference_rows
        rows.append(prediction)
        if len(rows) < self._config.reference_predictions:
            return
        config = self._config
        self.reference = build_reference(
            "predictions",
            [r.features or {} for r in rows],
            labels=[r.label for r in rows],
            values=[r.value for r in rows],
            confidences=[r.confidence for r in rows],
            latencies=[r.latency_seconds for r in rows],
            n_bins=config.reference_bins,
            top_k=config.reference_top_k,
            max_features=config.max_features,
            max_classes=config.max_classes,
        )
        self._reference_rows = []

    def observe_invalid(self, now: float) -> None:
        """A line in this version's logs that failed validation (data quality)."""
        self._bucket(now).invalid_records += 1

    # ---- classes ------------------------------------------------------------------------

    @property
    def _n_classes(self) -> int:
        return self._config.max_classes + 1

    def _class_index(self, label: str) -> int:
        try:
            return self.classes.index(label)
        except ValueError:
            if len(self.classes) < self._config.max_classes:
                self.classes.append(label)
                return len(self.classes) - 1
            return self._config.max_classes  # "other"

    def _proba_vector(self, probabilities: dict[str, float]) -> list[float]:
        vector = [0.0] * self._n_classes
        for label, p in probabilities.items():
            vector[self._class_index(label)] += p
        return [min(p, 1.0) for p in vector]

    # ---- buckets ------------------------------------------------------------------------

    def _bucket(self, now: float) -> _Bucket:
        index = math.floor(now / self._config.bucket_seconds)
        if not self._buckets or self._buckets[-1].index < index:
            self._expire_pending(now)
            self._buckets.append(
                _Bucket(
                    index,
                    perf.ConfidenceHistogram.empty(
                        self._config.confidence_bins, self._config.low_confidence_threshold
                    ),
                )
            )
        self._expire(index)
        return self._buckets[-1]

    def _expire(self, index: int) -> None:
        while self._buckets and self._buckets[0].index <= index - self._config.buckets:
            self._buckets.popleft()

    # ---- records ------------------------------------------------------------------------

    def observe_prediction(self, prediction: Prediction, now: float) -> None:
        bucket = self._bucket(now)
        bucket.predictions += 1
        if prediction.latency_seconds is not None:
            bucket.latency_sum += prediction.latency_seconds
            bucket.latency_n += 1
        if prediction.error is not None:
            bucket.errors += 1
            return
        if prediction.confidence is not None:
            bucket.add_confidence(prediction.confidence)
        if self.reference is not None:
            bucket.drift_rows.append(prediction)
            if len(bucket.drift_rows) >= _FLUSH_AT:
                bucket.flush_drift(self.reference)
        else:
            self._collect_reference(prediction)
        if prediction.id is None:
            return
        if prediction.label is not None:
            self.kind = self.kind or "classification"
            predicted: int | float = self._class_index(prediction.label)
        elif prediction.value is not None:
            self.kind = self.kind or "regression"
            predicted = prediction.value
        else:
            return
        pending = self._pending
        pending[prediction.id] = _Pending(now, predicted, prediction.probabilities)
        pending.move_to_end(prediction.id)
        if len(pending) > self._config.max_pending:
            pending.popitem(last=False)
            self.expired += 1

    def _expire_pending(self, now: float) -> None:
        """Drop predictions that waited too long; run once per bucket, not per record."""
        oldest = now - self._config.pending_max_age
        while self._pending and next(iter(self._pending.values())).at < oldest:
            self._pending.popitem(last=False)
            self.expired += 1

    def observe_feedback(self, feedback: Feedback, now: float) -> None:
        pending = self._pending.pop(feedback.id, None)
        if pending is None:
            self.unmatched += 1
            return
        bucket = self._bucket(now)
        if isinstance(pending.predicted, int) and self.kind == "classification":
            if bucket.labelled is None:
                bucket.labelled = perf.ClassificationCounts.empty(
                    self._n_classes, self._config.auc_bins
                )
            actual = self._class_index(label_of(feedback.actual))
            proba = (
                None if pending.probabilities is None else self._proba_vector(pending.probabilities)
            )
            bucket.labelled.add(actual, pending.predicted, proba)
        else:
            if isinstance(feedback.actual, str | bool):
                self.unmatched += 1  # a class label for a regression model
                return
            if bucket.regression is None:
                bucket.regression = perf.RegressionSums.empty()
            bucket.regression.add(float(feedback.actual), float(pending.predicted))
        self.matched += 1

    # ---- summary ------------------------------------------------------------------------

    def summary(self, now: float) -> WindowSummary:
        self._expire(math.floor(now / self._config.bucket_seconds))
        self._expire_pending(now)
        predictions = sum(b.predictions for b in self._buckets)
        confidence = _merge([b.flush() for b in self._buckets])
        labelled = _merge([b.labelled for b in self._buckets if b.labelled is not None])
        regression = _merge([b.regression for b in self._buckets if b.regression is not None])
        n_labelled = (labelled.n_samples if labelled is not None else 0) + (
            regression.n if regression is not None else 0
        )
        reference = self.reference
        drift = _merge([d for b in self._buckets if (d := b.flush_drift(reference)) is not None])
        samples = {
            "predictions": predictions,
            "labelled": n_labelled,
            "confidence": confidence.count if confidence is not None else 0,
            "features": drift.rows if drift is not None else 0,
        }
        metrics: dict[str, float | None] = {}
        minimum = self._config.min_samples
        features: Mapping[str, Mapping[str, float]] = _NO_FEATURES
        errors = sum(b.errors for b in self._buckets)
        invalid = sum(b.invalid_records for b in self._buckets)
        latency_n = sum(b.latency_n for b in self._buckets)
        if predictions >= minimum:
            metrics["error_ratio"] = errors / predictions
        if predictions + invalid >= minimum:
            metrics["invalid_record_ratio"] = invalid / (predictions + invalid)
        if latency_n >= minimum:
            metrics["latency_mean_seconds"] = sum(b.latency_sum for b in self._buckets) / latency_n
        if reference is not None:
            metrics["reference_samples"] = float(reference.n)
            if reference.latency_mean is not None:
                metrics["reference_latency_mean_seconds"] = reference.latency_mean
            if drift is not None:
                report = drift_report(
                    reference, drift, replace(self._config.drift, min_samples=minimum)
                )
                metrics |= report.metrics
                features = report.features
        if labelled is not None and labelled.n_samples >= minimum:
            weighted = perf.precision_recall_f1(labelled, "weighted")
            macro = perf.precision_recall_f1(labelled, "macro")
            metrics |= {
                "accuracy": perf.accuracy(labelled),
                "precision_weighted": weighted and weighted.precision,
                "recall_weighted": weighted and weighted.recall,
                "f1_score": weighted and weighted.f1,
                "precision_macro": macro and macro.precision,
                "recall_macro": macro and macro.recall,
                "f1_macro": macro and macro.f1,
                "auc_roc": perf.roc_auc(labelled, "macro"),
                "log_loss": perf.log_loss(labelled),
            }
        if regression is not None and regression.n >= minimum:
            metrics |= {
                "mae": perf.mae(regression),
                "mse": perf.mse(regression),
                "rmse": perf.rmse(regression),
                "r2": perf.r2(regression),
                "mape": perf.mape(regression),
                "smape": perf.smape(regression),
            }
        if confidence is not None and confidence.count >= minimum:
            metrics |= {
                "confidence_mean": perf.mean(confidence),
                "confidence_median": perf.median(confidence),
                "confidence_stddev": perf.std(confidence),
                "low_confidence_ratio": perf.low_confidence_ratio(confidence),
            }
        return WindowSummary(
            MappingProxyType({k: v for k, v in metrics.items() if v is not None}),
            MappingProxyType(samples),
            features,
            None if reference is None else reference.source,
        )

    # ---- checkpoint ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "classes": self.classes,
            "counts": [self.matched, self.expired, self.unmatched],
            "reference": None if self.reference is None else self.reference.to_dict(),
            "buckets": [
                {
                    "index": b.index,
                    "predictions": b.predictions,
                    "confidence": b.flush().to_dict(),
                    "labelled": None if b.labelled is None else b.labelled.to_dict(),
                    "regression": None if b.regression is None else b.regression.to_dict(),
                    "tallies": [b.errors, b.invalid_records, b.latency_sum, b.latency_n],
                    "drift": None if (d := b.flush_drift(self.reference)) is None else d.to_dict(),
                }
                for b in self._buckets
            ],
            "pending": [[k, p.at, p.predicted, p.probabilities] for k, p in self._pending.items()],
        }

    def load(self, data: dict[str, Any]) -> None:
        self.kind = data["kind"]
        self.classes = [str(c) for c in data["classes"]][: self._config.max_classes]
        self.matched, self.expired, self.unmatched = (int(n) for n in data["counts"])
        saved_reference = data.get("reference")
        reference = None if saved_reference is None else ModelReference.from_dict(saved_reference)
        buckets: deque[_Bucket] = deque()
        for b in data["buckets"]:
            labelled, regression, drift = b["labelled"], b["regression"], b.get("drift")
            errors, invalid, latency_sum, latency_n = b.get("tallies", (0, 0, 0.0, 0))
            buckets.append(
                _Bucket(
                    int(b["index"]),
                    perf.ConfidenceHistogram.from_dict(b["confidence"]),
                    None if labelled is None else perf.ClassificationCounts.from_dict(labelled),
                    None if regression is None else perf.RegressionSums.from_dict(regression),
                    int(b["predictions"]),
                    int(errors),
                    int(invalid),
                    float(latency_sum),
                    int(latency_n),
                    None
                    if drift is None or reference is None
                    else DriftCounts.from_dict(reference, drift),
                )
            )
        self.reference = reference
        self._buckets = buckets
        self._pending = OrderedDict(
            (str(k), _Pending(float(at), predicted, probabilities))
            for k, at, predicted, probabilities in data["pending"]
        )


_A = TypeVar(
    "_A", perf.ClassificationCounts, perf.RegressionSums, perf.ConfidenceHistogram, DriftCounts
)


def _merge(parts: list[_A]) -> _A | None:
    if not parts:
        return None
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total

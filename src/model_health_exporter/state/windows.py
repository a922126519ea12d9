"""Sliding windows of live performance per model version, in bounded memory.

A window is a ring of time buckets; each bucket holds fixed-size aggregates only
(`stats.performance`), so memory depends on classes x bins x buckets, never on the
number of predictions. Per version and bucket, at most about
8 * (K^2 + B_conf) + 24 * K_scored * C_auc bytes for classification (K = max classes + 1
for "other", K_scored the classes given probabilities, C_auc the ROC AUC sketch's cells
per class, `stats.auc_sketch`), plus at most `max_pending` predictions awaiting their
feedback.

Labelled samples are placed in the bucket of the moment their feedback is joined, so a
window answers "how did the predictions labelled in the last hour do".

Each summary also covers a short horizon, the newest `short_buckets` buckets merged (the
newest one still filling): fast alerts read it, confirmed by the whole window."""

from __future__ import annotations

import binascii
import itertools
import math
import operator
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, cast

import msgspec
import numpy as np

from model_health_exporter.records import Feedback, Prediction, features_dict, label_of
from model_health_exporter.state.live import RunFacts, run_facts
from model_health_exporter.state.pending import PendingPredictions
from model_health_exporter.state.series import Series, bucket_point, pack
from model_health_exporter.state.shared_references import shared
from model_health_exporter.stats import performance as perf
from model_health_exporter.stats.auc_sketch import DEFAULT_MAX_CELLS
from model_health_exporter.stats.feature_stats import FeatureTable
from model_health_exporter.stats.packed import (
    PackedLayout,
    confidence_of,
    deflated,
    drift_of,
    expanded,
    head_of,
    heads,
    layout_from_json,
    layout_json,
    pack_bucket,
    packed_size,
    set_drift_inexact,
)
from model_health_exporter.stats.reference import (
    DriftCounts,
    DriftReport,
    DriftSettings,
    ModelReference,
    build_reference,
    drift_flag_reports,
    drift_reports,
)

Kind = Literal["classification", "regression"]
OTHER_CLASS: Final = "__other__"


@dataclass(frozen=True, slots=True)
class WindowConfig:
    # The daemon's defaults are LogsSettings' (1-minute buckets, 60 of them, 5 short).
    bucket_seconds: float = 300.0
    buckets: int = 12
    # The short horizon: the newest this many buckets (the newest one still filling); 0: none.
    short_buckets: int = 1
    max_classes: int = 10
    auc_cells: int = DEFAULT_MAX_CELLS  # ROC AUC sketch cells per class (stats.auc_sketch)
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
    # The same over the short horizon (WindowConfig.short_buckets); None inside `short`.
    short: WindowSummary | None = None
    # Each bucket's own figures, for charts; None inside `short`. Not compared: a display
    # aid, and a checkpoint from before it held when the last record came has none.
    series: Series | None = field(default=None, compare=False)


_ID: Final = operator.attrgetter("id")
_ACTUAL: Final = operator.attrgetter("actual")
_LABEL: Final = operator.attrgetter("label")
_PROBABILITIES: Final = operator.attrgetter("probabilities")
_FLUSH_AT: Final = 1024  # measured: larger batches run slower (the rows are colder in cache)


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
    point: bytes | None = None  # its packed chart point, kept once the bucket is closed
    # What arrives per record waits in lists and enters the numpy aggregates in batches
    # (numpy costs microseconds a call, a list append nanoseconds): successful
    # predictions for the drift tally, confidences, and joined pairs.
    # Flat lists of numbers, no container per record: thousands of those living for a
    # while would make the cyclic GC's full collections frequent.
    drift_rows: list[Prediction] = field(default_factory=list)
    unflushed: list[float] = field(default_factory=list)
    joined_actual: list[int] = field(default_factory=list)  # class indices
    joined_predicted: list[int] = field(default_factory=list)
    # blocks of probability rows (pairs x n_classes; a NaN row: none), kept as arrays
    joined_proba: list[np.ndarray] = field(default_factory=list)
    joined_values: list[float] = field(default_factory=list)  # regression: actual, predicted

    def add_confidences(self, values: list[float]) -> None:
        self.unflushed += values
        if len(self.unflushed) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> perf.ConfidenceHistogram:
        if self.unflushed:
            self.confidence.add_many(self.unflushed)
            self.unflushed = []
        return self.confidence

    def flush_drift(self, reference: ModelReference | None) -> DriftCounts | None:
        if self.drift_rows:
            if reference is not None:
                if self.drift is None:
                    self.drift = DriftCounts.empty(reference)
                self.drift.add_rows(reference, self.drift_rows)
            self.drift_rows = []
        return self.drift

    def close(
        self, n_classes: int, auc_cells: int, reference: ModelReference | None
    ) -> _ClosedBucket:
        """This bucket takes no more records: everything into its aggregates, which the
        closed bucket returned holds in as little memory as they fit (`stats.packed`,
        `stats.compact`), with no lists for records."""
        self.flush()
        labelled = self.flush_labelled(n_classes, auc_cells)
        self.flush_regression()
        self.flush_drift(reference)
        if labelled is not None:
            labelled.compact()
        return _ClosedBucket(self, reference)

    def flush_labelled(self, n_classes: int, auc_cells: int) -> perf.ClassificationCounts | None:
        if self.joined_actual:
            if self.labelled is None:
                self.labelled = perf.ClassificationCounts.empty(n_classes, sketch_cells=auc_cells)
            proba = np.concatenate(self.joined_proba).reshape(-1, n_classes)
            # Several classes summed into "other" may pass 1; a NaN row stays NaN.
            np.minimum(proba, 1.0, out=proba)
            scored = not np.isnan(proba).all()
            self.labelled.add_many(
                self.joined_actual, self.joined_predicted, proba if scored else None
            )
            self.joined_actual, self.joined_predicted, self.joined_proba = [], [], []
        return self.labelled

    def flush_regression(self) -> perf.RegressionSums | None:
        if self.joined_values:
            if self.regression is None:
                self.regression = perf.RegressionSums.empty()
            pairs = np.array(self.joined_values, dtype=np.float64).reshape(-1, 2)
            self.regression.add_many(pairs[:, 0], pairs[:, 1])
            self.joined_values = []
        return self.regression


class _ClosedBucket:
    """A bucket that takes no more records, read as a `_Bucket` is: its confidence
    histogram, drift counts and tallies packed into one `bytes` (`stats.packed`, its counts
    deflated), about a quarter of the memory of the objects. Those aggregates are made on
    each read, as views of the bytes: expiry, merges from scratch, the short horizon's merge
    and checkpoints read them, at most once per bucket period; the re-merge after each
    bucket boundary reads the packed floats themselves (`_Totals.set_inexact`)."""

    __slots__ = ("data", "index", "labelled", "layout", "point", "regression")
    index: int
    labelled: perf.ClassificationCounts | None
    regression: perf.RegressionSums | None
    point: bytes | None
    layout: PackedLayout
    data: bytes

    def __init__(
        self,
        bucket: _Bucket | _ClosedBucket,
        reference: ModelReference | None,
        *,
        drift: bool = True,
    ) -> None:
        self.index = bucket.index
        self.labelled = bucket.labelled
        self.regression = bucket.regression
        self.point = bucket.point if drift else None
        head = (bucket.predictions, bucket.errors, bucket.invalid_records, bucket.latency_n)
        counts = bucket.drift if drift else None
        numeric = None
        if reference is not None and counts is not None:
            numeric = [i for i, kind in enumerate(reference.feature_kinds) if kind]
        self.layout, self.data = pack_bucket(
            head, bucket.latency_sum, bucket.confidence, counts, numeric
        )

    @property
    def predictions(self) -> int:
        return head_of(self.data)[0][0]

    @property
    def errors(self) -> int:
        return head_of(self.data)[0][1]

    @property
    def invalid_records(self) -> int:
        return head_of(self.data)[0][2]

    @property
    def latency_n(self) -> int:
        return head_of(self.data)[0][3]

    @property
    def latency_sum(self) -> float:
        return head_of(self.data)[1][0]

    @property
    def confidence(self) -> perf.ConfidenceHistogram:
        return confidence_of(self.layout, self.data)

    @property
    def drift(self) -> DriftCounts | None:
        return drift_of(self.layout, self.data)

    @classmethod
    def restored(
        cls,
        index: int,
        labelled: perf.ClassificationCounts | None,
        regression: perf.RegressionSums | None,
        layout: PackedLayout,
        data: bytes,
    ) -> _ClosedBucket:
        """A closed bucket as a checkpoint saved it: its packed bytes as they were, not
        packed again (`data` with its counts deflated again: the same bytes, so the same
        figures, bit for bit)."""
        bucket = cls.__new__(cls)
        bucket.index, bucket.labelled, bucket.regression = index, labelled, regression
        bucket.point, bucket.layout, bucket.data = None, layout, data
        return bucket

    def without_drift(self) -> _ClosedBucket:
        """This bucket with its drift counts (and chart point) dropped: a new reference."""
        return _ClosedBucket(self, None, drift=False)

    # What a `_Bucket` flushes first: a closed bucket has nothing waiting.
    def flush(self) -> perf.ConfidenceHistogram:
        return self.confidence

    def flush_labelled(self, n_classes: int, auc_cells: int) -> perf.ClassificationCounts | None:
        return self.labelled

    def flush_regression(self) -> perf.RegressionSums | None:
        return self.regression

    def flush_drift(self, reference: ModelReference | None) -> DriftCounts | None:
        return self.drift


_AnyBucket = _Bucket | _ClosedBucket


class _ConfidencePart:
    """What `ConfidenceHistogram.set_inexact` reads of a part, from a packed bucket."""

    __slots__ = ("count", "m2", "maximum", "minimum", "total")

    def __init__(self, count: int, floats: list[float]) -> None:
        self.count = count
        _, _, self.total, self.m2, self.minimum, self.maximum = floats


class _EarlyFeedback(msgspec.Struct, gc=False):
    """Feedback awaiting its prediction: when it came, and the actual value."""

    at: float
    actual: str | int | float | bool


class _ProbabilityRows:
    """A prediction's probabilities as a row by class index, as long as the indices it
    uses (None for none). Probabilities over exactly the known classes, the usual case,
    are read in one C-level call; any other set goes through LiveWindow._proba_vector,
    which also learns new classes."""

    def __init__(self, window: LiveWindow) -> None:
        self._window = window
        self._n_known = len(window.classes)
        self._of_known = operator.itemgetter(*window.classes) if self._n_known > 1 else None

    def __call__(self, probabilities: dict[str, float] | None) -> list[float] | None:
        if probabilities is None:
            return None
        of_known = self._of_known
        if of_known and len(probabilities) == self._n_known == len(self._window.classes):
            try:
                return list(of_known(probabilities))
            except KeyError:
                pass
        row = self._window._proba_vector(probabilities)
        while row and row[-1] == 0.0:  # the classes after the last it names
            row.pop()
        return row


class LiveWindow:
    """One model version's window and its pending feedback join. Not thread-safe: owned
    by the ingest thread, which publishes `summary()` results."""

    def __init__(self, config: WindowConfig) -> None:
        self._config = config
        # drift statistics follow the window's minimum sample count
        self._drift_settings = replace(config.drift, min_samples=config.min_samples)
        self.kind: Kind | None = None
        self.classes: list[str] = []  # index -> label; grows to max_classes, then "other"
        self._class_of: dict[str, int] = {}  # label -> index, of `classes`
        # the newest bucket takes records (a `_Bucket`), the others are closed
        self._buckets: deque[_AnyBucket] = deque()
        # All buckets but the newest, merged, kept up to date as buckets close and expire
        # (None: to be merged afresh). `_closed_inexact`: a bucket's integer counts were
        # taken out, the rest of it not yet (`_totals`).
        self._closed: _Totals | None = None
        self._closed_inexact = False
        # The closed buckets of the short horizon merged, with the newest bucket's index
        # and the short horizon's oldest at the time (`_short_totals`).
        self._short_closed: tuple[tuple[int, int], _Totals] | None = None
        self._pending = PendingPredictions(config.max_pending)
        # Feedback read before its prediction (a feedback file read ahead of its
        # predictions file, as after downtime): it waits, under the same limits as the
        # predictions, and is joined when the prediction comes.
        self._early: OrderedDict[str, _EarlyFeedback] = OrderedDict()
        self.matched = 0
        self.expired = 0
        self.unmatched = 0
        self.reference: ModelReference | None = None
        self._reference_rows: list[Prediction] = []  # collecting the automatic reference
        # Counts the changes of what a summary is made of (records, reference); with which
        # buckets the horizons hold at a moment, the key of the last summary, reused while
        # neither moved (`summaries`).
        self._generation = 0
        self._last_summary: tuple[tuple[int, int, int], WindowSummary] | None = None
        self.last_record_at: float | None = None  # checkpointed

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
        for i, bucket in enumerate(self._buckets):
            if isinstance(bucket, _ClosedBucket):
                self._buckets[i] = bucket.without_drift()
                continue
            bucket.drift, bucket.point = None, None
            if bucket.drift_rows:
                bucket.drift_rows = []
        self._closed = self._short_closed = None
        self._generation += 1

    def _collect_reference(self, predictions: list[Prediction]) -> int:
        """Take successful predictions into the automatic reference until it is built;
        returns how many were taken."""
        rows = self._reference_rows
        taken = max(0, min(len(predictions), self._config.reference_predictions - len(rows)))
        rows += predictions[:taken]
        if len(rows) < self._config.reference_predictions:
            return taken
        config = self._config
        self.reference = build_reference(
            "predictions",
            [features_dict(r.features) or {} for r in rows],
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
        return taken

    def observe_invalid(self, now: float) -> None:
        """A line in this version's logs that failed validation (data quality)."""
        self._bucket(now).invalid_records += 1

    # ---- classes ------------------------------------------------------------------------

    @property
    def _n_classes(self) -> int:
        return self._config.max_classes + 1

    def _class_index(self, label: str) -> int:
        index = self._class_of.get(label)
        if index is not None:
            return index
        if len(self.classes) < self._config.max_classes:
            self.classes.append(label)
            self._class_of[label] = len(self.classes) - 1
            return len(self.classes) - 1
        return self._config.max_classes  # "other"

    def _proba_vector(self, probabilities: dict[str, float]) -> list[float]:
        """Probabilities by class index, unclipped: "other" may sum several classes."""
        vector = [0.0] * self._n_classes
        class_of = self._class_of
        for label, p in probabilities.items():
            index = class_of.get(label)
            vector[self._class_index(label) if index is None else index] += p
        return vector

    # ---- buckets ------------------------------------------------------------------------

    def _bucket(self, now: float) -> _Bucket:
        """The bucket of `now`, for a record about to enter it (every path that changes
        a bucket's content comes here, so the last summary is no longer current)."""
        self._generation += 1
        self.last_record_at = now
        index = math.floor(now / self._config.bucket_seconds)
        if not self._buckets or self._buckets[-1].index < index:
            self._expire_pending(now)
            if self._buckets:
                self._close_newest()
            self._buckets.append(
                _Bucket(
                    index,
                    perf.ConfidenceHistogram.empty(
                        self._config.confidence_bins, self._config.low_confidence_threshold
                    ),
                )
            )
        self._expire(index)
        return self._newest

    @property
    def _newest(self) -> _Bucket:
        """The newest bucket (there is one): the one that takes records."""
        return cast("_Bucket", self._buckets[-1])

    def _close_newest(self) -> None:
        """The newest bucket takes no more records: into the merge of the closed ones."""
        newest = self._newest
        closed_bucket = newest.close(self._n_classes, self._config.auc_cells, self.reference)
        closed = self._closed
        if closed is not None:
            closed.add(newest)
            closed.auc_cache = None
        self._buckets[-1] = closed_bucket

    def _expire(self, index: int) -> None:
        while self._buckets and self._buckets[0].index <= index - self._config.buckets:
            gone = self._buckets.popleft()
            closed = self._closed
            if closed is None:
                continue
            if not self._buckets:  # that was the newest: nothing is closed
                self._closed, self._closed_inexact = None, False
                continue
            closed.subtract_counts(gone)
            closed.auc_cache = None
            self._closed_inexact = True

    # ---- records ------------------------------------------------------------------------

    def observe_prediction(self, prediction: Prediction, now: float) -> None:
        self.observe_predictions((prediction,), now)

    def observe_predictions(
        self, predictions: Sequence[Prediction], now: float, facts: RunFacts | None = None
    ) -> None:
        """Predictions logged one after the other, all counted at `now`; `facts`, if
        given, what `run_facts` read of them (the counters read the same)."""
        if not predictions:
            return
        if facts is None:
            facts = run_facts(predictions)
        bucket = self._bucket(now)
        bucket.predictions += len(predictions)
        latencies = facts.latencies
        if latencies:
            bucket.latency_sum += facts.latency_sum
            bucket.latency_n += len(latencies)
        ok = facts.ok
        bucket.errors += len(predictions) - len(ok)
        if not ok:
            return
        confidences = facts.confidences
        if confidences:
            bucket.add_confidences(confidences)
        if self.reference is None:
            taken = self._collect_reference(ok)
            rest = ok[taken:] if self.reference is not None else []
        else:
            rest = ok
        if rest:
            bucket.drift_rows += rest
            if len(bucket.drift_rows) >= _FLUSH_AT:
                bucket.flush_drift(self.reference)
        self._await_feedback(ok, now)

    def _await_feedback(self, predictions: list[Prediction], now: float) -> None:
        """Successful predictions with an id wait for their feedback, the oldest making
        room beyond max_pending; one whose feedback came first is joined now."""
        if self._await_known_classes(predictions, now):
            return
        early = self._early
        class_of = self._class_of
        kind = self.kind  # the first prediction's, as a local: set once, read per record
        keys: list[str] = []
        values: list[int | float] = []
        rows: list[Sequence[float] | None] = []
        row_of = _ProbabilityRows(self)
        joined: list[tuple[int | float, Sequence[float] | None, str | int | float | bool]] = []
        for p in predictions:
            key = p.id
            if key is None:
                continue
            label = p.label
            if label is not None:
                index = class_of.get(label)
                predicted: int | float = self._class_index(label) if index is None else index
                if kind is None:
                    kind = "classification"
            elif p.value is not None:
                predicted = p.value
                if kind is None:
                    kind = "regression"
            else:
                continue
            waiting = early.pop(key, None) if early else None
            if waiting is not None:  # its feedback came first
                joined.append((predicted, row_of(p.probabilities), waiting.actual))
                continue
            keys.append(key)
            values.append(predicted)
            rows.append(row_of(p.probabilities))
        self.kind = kind
        self.expired += self._pending.add(keys, now, values, rows)
        if joined:
            predicted_values, joined_rows, actuals = zip(*joined, strict=True)
            self._join(list(predicted_values), self._rows_array(joined_rows), actuals, now)

    def _await_known_classes(self, predictions: list[Prediction], now: float) -> bool:
        """`_await_feedback` by C-level passes over the run, for the usual case: every
        prediction has an id and a class the window knows, with probabilities over
        exactly the known classes, and no feedback waits for one of them. False (nothing
        done) otherwise."""
        n_known = len(self.classes)
        if self.kind != "classification" or n_known < 2:
            return False
        ids = list(map(_ID, predictions))
        probabilities = list(map(_PROBABILITIES, predictions))
        try:  # len(None) raises: no comparison of every dict with None first
            lengths = set(map(len, probabilities))
        except TypeError:  # a prediction without probabilities
            return False
        if None in ids or lengths != {n_known}:
            return False
        if self._early and not self._early.keys().isdisjoint(ids):
            return False
        try:
            predicted = list(map(self._class_of.__getitem__, map(_LABEL, predictions)))
            # the rows as one array, filled from one flat C-level pass (no list per row)
            flat = map(operator.itemgetter(*self.classes), probabilities)
            rows = np.fromiter(
                itertools.chain.from_iterable(flat), np.float64, len(ids) * n_known
            ).reshape(len(ids), n_known)
        except KeyError:  # a new class (or no class: a regression output)
            return False
        self.expired += self._pending.add(cast("list[str]", ids), now, predicted, rows)
        return True

    def _rows_array(self, rows: Sequence[Sequence[float] | None]) -> np.ndarray:
        """Probability rows as an array over every class index (NaN rows for none)."""
        out = np.zeros((len(rows), self._n_classes))
        for i, row in enumerate(rows):
            if row is None:
                out[i] = np.nan
            else:
                out[i, : len(row)] = row
        return out

    def flush_rows(self) -> None:
        """Tally what waits in the newest bucket now (rows for the drift tally,
        confidences, joined pairs). The ingester calls it after each chunk: rows kept
        across chunks are whole records (feature dicts), and thousands of versions
        holding up to a batch each grow the heap, which does not shrink again while
        long-lived objects sit between the freed ones; and the periodic refresh of every
        version then only computes statistics, it does not tally records."""
        if self._buckets:
            self._flushed(self._newest)

    def _expire_pending(self, now: float) -> None:
        """Drop predictions and feedback that waited too long; run once per bucket, not
        per record. Feedback whose prediction never came counts as unmatched."""
        oldest = now - self._config.pending_max_age
        self.expired += self._pending.expire(oldest)
        while self._early and next(iter(self._early.values())).at < oldest:
            self._early.popitem(last=False)
            self.unmatched += 1

    @property
    def predictions_waiting(self) -> int:
        """Predictions waiting for their feedback."""
        return len(self._pending)

    @property
    def feedback_waiting(self) -> int:
        """Feedback records waiting for their prediction."""
        return len(self._early)

    def observe_feedback(self, feedback: Feedback, now: float) -> None:
        self.observe_feedbacks((feedback,), now)

    def observe_feedbacks(self, feedbacks: Sequence[Feedback], now: float) -> None:
        """Feedback records logged one after the other, joined at `now` to their waiting
        predictions; feedback without one waits for it (the oldest making room beyond
        max_pending, counted unmatched)."""
        pending, early = self._pending, self._early
        # Taken out in order (a repeated id finds its prediction gone the second time).
        found = pending.pop_many(list(map(_ID, feedbacks)))
        if None not in found:  # the usual case: every one joins
            slots = cast("list[int]", found)
            actuals = list(map(_ACTUAL, feedbacks))
        else:
            slots = [slot for slot in found if slot is not None]
            actuals = [
                f.actual for f, slot in zip(feedbacks, found, strict=True) if slot is not None
            ]
        replaced = 0
        for feedback, slot in zip(feedbacks, found, strict=True):
            if slot is not None:
                continue
            if feedback.id in early:  # the same id again: the older one stays unmatched
                replaced += 1
                early.move_to_end(feedback.id)
            early[feedback.id] = _EarlyFeedback(now, feedback.actual)
        excess = max(0, len(early) - self._config.max_pending)
        for _ in range(excess):
            early.popitem(last=False)
        self.unmatched += replaced + excess
        if slots:
            rows = pending.rows(slots, self._n_classes)
            self._join(pending.predicted(slots), rows, actuals, now)

    def _join(
        self,
        predicted_values: Sequence[int | float],
        rows: np.ndarray,
        actual_values: Sequence[str | int | float | bool],
        now: float,
    ) -> None:
        """Add predictions (what each predicted, its probability row over every class
        index) joined to their actual values to the bucket of `now`."""
        class_of = self._class_of
        classification = self.kind == "classification"
        if classification and self._join_known_classes(predicted_values, rows, actual_values, now):
            return
        # What the joins add to the bucket, gathered here first.
        actuals: list[int] = []
        predicted_classes: list[int] = []
        scored: list[int] = []  # the rows of the joined classifications
        pairs: list[float] = []
        unmatched = 0
        for i, (predicted, actual) in enumerate(zip(predicted_values, actual_values, strict=True)):
            if classification and isinstance(predicted, int):
                label = actual if type(actual) is str else label_of(actual)
                index = class_of.get(label)
                actuals.append(self._class_index(label) if index is None else index)
                predicted_classes.append(predicted)
                scored.append(i)
            elif isinstance(actual, str | bool):
                unmatched += 1  # a class label for a regression model
            else:
                pairs += (float(actual), float(predicted))
        self.unmatched += unmatched
        self.matched += len(actuals) + len(pairs) // 2
        if unmatched == len(predicted_values):
            return
        bucket = self._bucket(now)
        if actuals:
            bucket.joined_actual += actuals
            bucket.joined_predicted += predicted_classes
            bucket.joined_proba.append(rows[scored])
            if len(bucket.joined_actual) >= _FLUSH_AT:
                bucket.flush_labelled(self._n_classes, self._config.auc_cells)
        if pairs:
            bucket.joined_values += pairs
            if len(bucket.joined_values) >= 2 * _FLUSH_AT:
                bucket.flush_regression()

    def _join_known_classes(
        self,
        predicted_values: Sequence[int | float],
        rows: np.ndarray,
        actual_values: Sequence[str | int | float | bool],
        now: float,
    ) -> bool:
        """`_join` by C-level passes for the usual case: class predictions joined to
        class labels (strings) the window knows. False (nothing done) otherwise."""
        if set(map(type, predicted_values)) != {int} or set(map(type, actual_values)) != {str}:
            return False
        try:
            actuals = list(map(self._class_of.__getitem__, cast("list[str]", actual_values)))
        except KeyError:  # a class seen first in feedback
            return False
        self.matched += len(actuals)
        bucket = self._bucket(now)
        bucket.joined_actual += actuals
        bucket.joined_predicted += cast("list[int]", predicted_values)
        bucket.joined_proba.append(rows)
        if len(bucket.joined_actual) >= _FLUSH_AT:
            bucket.flush_labelled(self._n_classes, self._config.auc_cells)
        return True

    def _flush_labelled(self, bucket: _AnyBucket) -> perf.ClassificationCounts | None:
        return bucket.flush_labelled(self._n_classes, self._config.auc_cells)

    # ---- summary ------------------------------------------------------------------------

    def summary(self, now: float) -> WindowSummary:
        return summaries([self], now)[0]

    def _summary_key(self, now: float) -> tuple[int, int, int]:
        """What the summary at `now` depends on: the content's generation and how many
        of the buckets each horizon holds at `now` (buckets only enter at the newest end
        and leave from the oldest, so the counts tell which). As time passes with nothing
        logged, the key changes only when a bucket leaves a horizon."""
        index = math.floor(now / self._config.bucket_seconds)
        oldest_long = index - self._config.buckets + 1
        oldest_short = index - self._config.short_buckets + 1
        n_long = n_short = 0
        for bucket in reversed(self._buckets):
            if bucket.index < oldest_long:
                break
            n_long += 1
            if bucket.index >= oldest_short:
                n_short += 1
        return (self._generation, n_long, n_short)

    def expire_pending(self, now: float) -> None:
        """Let predictions and feedback that waited too long go (a summary does it too;
        this is for a refresh that reuses the last summary)."""
        self._expire_pending(now)

    def _totals(self, now: float) -> _Totals:
        """The window's buckets merged. Only the newest bucket takes records, so the
        merge of the others is kept: a bucket that closes is added to it, one that
        expires has its integer counts taken out, and what cannot be taken out (sums of
        floats, minima, maxima, the ROC AUC sketch) is merged again from the closed
        buckets, in the same order as a merge from scratch (so with the same result)."""
        self._expire(math.floor(now / self._config.bucket_seconds))
        self._expire_pending(now)
        if not self._buckets:
            return _Totals()
        closed_buckets = cast(
            "list[_ClosedBucket]", list(itertools.islice(self._buckets, len(self._buckets) - 1))
        )
        if self._closed is None:
            self._closed = _Totals()
            for bucket in closed_buckets:
                self._closed.add(bucket)
        elif self._closed_inexact:
            self._closed.set_inexact(closed_buckets)
        self._closed_inexact = False
        totals = self._closed.copy()
        totals.add(self._flushed(self._newest))
        return totals

    def _short_totals(self, now: float) -> _Totals:
        """The newest `short_buckets` buckets merged (after `_totals`, which expires).
        The merge of its closed buckets is kept while the newest bucket and the short
        horizon's oldest stay the same."""
        first = math.floor(now / self._config.bucket_seconds) - self._config.short_buckets + 1
        if not self._buckets:
            return _Totals()
        newest = self._newest
        key = (newest.index, first)
        if self._short_closed is None or self._short_closed[0] != key:
            closed = _Totals()
            for bucket in itertools.islice(self._buckets, len(self._buckets) - 1):
                if bucket.index >= first:
                    closed.add(bucket)  # closed: nothing waits in it
            closed.compact()  # only copied until the next bucket boundary
            self._short_closed = (key, closed)
        totals = self._short_closed[1].copy()
        if newest.index >= first:
            totals.add(self._flushed(newest))
        return totals

    def _flushed(self, bucket: _AnyBucket) -> _AnyBucket:
        bucket.flush()
        bucket.flush_labelled(self._n_classes, self._config.auc_cells)
        bucket.flush_regression()
        bucket.flush_drift(self.reference)
        return bucket

    def _series(self) -> Series:
        """One point per bucket with data (after `_totals`, which expires). A closed
        bucket never changes again, so its point is kept; the newest one's is made anew."""
        seconds = self._config.bucket_seconds
        points = []
        for position, bucket in enumerate(self._buckets, 1 - len(self._buckets)):
            point = bucket.point
            if point is None:
                self._flushed(bucket)
                point = pack(
                    bucket_point(
                        bucket.index * seconds,
                        bucket.predictions,
                        bucket.errors,
                        bucket.latency_sum,
                        bucket.latency_n,
                        bucket.labelled,
                        bucket.regression,
                        bucket.drift,
                    )
                )
                if position < 0:
                    bucket.point = point
            points.append(point)
        return Series(seconds, self._config.buckets, tuple(points), self.last_record_at)

    def _head_metrics(self, totals: _Totals) -> dict[str, float | None]:
        """What the window says before drift: error, invalid-record and latency figures."""
        metrics: dict[str, float | None] = {}
        minimum = self._config.min_samples
        predictions, invalid = totals.predictions, totals.invalid_records
        if predictions >= minimum:
            metrics["error_ratio"] = totals.errors / predictions
        if predictions + invalid >= minimum:
            metrics["invalid_record_ratio"] = invalid / (predictions + invalid)
        if totals.latency_n >= minimum:
            metrics["latency_mean_seconds"] = totals.latency_sum / totals.latency_n
        reference = self.reference
        if reference is not None:
            metrics["reference_samples"] = float(reference.n)
            if reference.latency_mean is not None:
                metrics["reference_latency_mean_seconds"] = reference.latency_mean
        return metrics

    def _live_auc(self, labelled: perf.ClassificationCounts) -> tuple[float, float] | None:
        """ROC AUC and bound of the window's labelled counts, reused while neither the
        closed buckets nor the newest bucket's labelled samples changed: adding up the
        sketches costs more than the rest of the live metrics. The key holds the samples
        of `labelled` too, so counts over fewer buckets holding other samples miss it (and
        fewer buckets with the same samples have the same AUC)."""
        closed, newest = self._closed, self._buckets[-1] if self._buckets else None
        part = None if newest is None else newest.labelled
        key = (
            -1 if newest is None else newest.index,
            0 if part is None else part.n_samples,
            labelled.n_samples,
        )
        if closed is not None and closed.auc_cache is not None and closed.auc_cache[0] == key:
            return closed.auc_cache[1]
        result = perf.roc_auc_with_bound(labelled, "macro")
        if closed is not None:
            closed.auc_cache = (key, result)
        return result

    def _summary(
        self, totals: _Totals, metrics: dict[str, float | None], report: DriftReport | None
    ) -> WindowSummary:
        labelled, regression, confidence = totals.labelled, totals.regression, totals.confidence
        n_labelled = (labelled.n_samples if labelled is not None else 0) + (
            regression.n if regression is not None else 0
        )
        samples = {
            "predictions": totals.predictions,
            "labelled": n_labelled,
            "confidence": confidence.count if confidence is not None else 0,
            "features": totals.drift.rows if totals.drift is not None else 0,
        }
        minimum = self._config.min_samples
        features: Mapping[str, Mapping[str, float]] = _NO_FEATURES
        if report is not None:
            metrics |= report.metrics
            features = report.features
        if labelled is not None and labelled.n_samples >= minimum:
            auc = self._live_auc(labelled)
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
                "auc_roc": auc and auc[0],
                "auc_roc_error_bound": auc and auc[1],
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
        reference = self.reference
        return WindowSummary(
            MappingProxyType({k: v for k, v in metrics.items() if v is not None}),
            MappingProxyType(samples),
            features,
            None if reference is None else reference.source,
        )

    def _short_summary(self, totals: _Totals, report: DriftReport | None) -> WindowSummary:
        """What the fast alerts read over the short horizon: the sample counts, accuracy,
        the label-free estimate, the drift share and each feature's drift flag (the rest of
        a full summary would cost as much again on every refresh, for no reader)."""
        labelled, regression = totals.labelled, totals.regression
        samples = {
            "predictions": totals.predictions,
            "labelled": (labelled.n_samples if labelled is not None else 0)
            + (regression.n if regression is not None else 0),
            "confidence": totals.confidence.count if totals.confidence is not None else 0,
            "features": totals.drift.rows if totals.drift is not None else 0,
        }
        metrics: dict[str, float] = {}
        features: Mapping[str, Mapping[str, float]] = _NO_FEATURES
        if report is not None:
            metrics |= {
                k: v
                for k in ("estimated_accuracy", "data_drift_share")
                if (v := report.metrics.get(k)) is not None
            }
            features = FeatureTable(
                {
                    f: {"drift_detected": stats["drift_detected"]}
                    for f, stats in report.features.items()
                    if "drift_detected" in stats
                }
            )
        if labelled is not None and labelled.n_samples >= self._config.min_samples:
            accuracy = perf.accuracy(labelled)
            if accuracy is not None:
                metrics["accuracy"] = accuracy
        return WindowSummary(MappingProxyType(metrics), MappingProxyType(samples), features)

    # ---- checkpoint ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The window as a checkpoint saves it (`load` reads it back, and the form of
        older checkpoints too): each closed bucket as its packed bytes (base64) and the
        number of their layout in "layouts"; the newest bucket, still filling, as its
        aggregates."""
        layouts: dict[PackedLayout, int] = {}
        buckets = [self._bucket_dict(b, layouts) for b in self._buckets]
        return {
            "kind": self.kind,
            "classes": self.classes,
            "counts": [self.matched, self.expired, self.unmatched],
            "reference": None if self.reference is None else self.reference.to_dict(),
            "layouts": [layout_json(layout) for layout in layouts],
            "buckets": buckets,
            # probabilities as a row over the class indices (older checkpoints: a dict)
            "pending": self._pending.saved(),
            "early": [[k, f.at, f.actual] for k, f in self._early.items()],
            "last_record_at": self.last_record_at,
        }

    def _bucket_dict(self, b: _AnyBucket, layouts: dict[PackedLayout, int]) -> dict[str, Any]:
        labelled = None if (c := self._flush_labelled(b)) is None else c.to_dict()
        regression = None if (r := b.flush_regression()) is None else r.to_dict()
        if isinstance(b, _ClosedBucket):
            # Its bytes, counts inflated as the format has them: microseconds, where its
            # counts as JSON numbers took a hundred times longer and several times the bytes.
            packed = binascii.b2a_base64(expanded(b.layout, b.data), newline=False).decode("ascii")
            return {
                "index": b.index,
                "packed": [layouts.setdefault(b.layout, len(layouts)), packed],
                "labelled": labelled,
                "regression": regression,
            }
        drift = b.flush_drift(self.reference)
        return {
            "index": b.index,
            "predictions": b.predictions,
            "confidence": b.flush().to_dict(),
            "labelled": labelled,
            "regression": regression,
            "tallies": [b.errors, b.invalid_records, b.latency_sum, b.latency_n],
            "drift": None if drift is None else drift.to_dict(),
        }

    def _restore_packed(
        self,
        saved: dict[str, Any],
        layouts: Sequence[PackedLayout],
        labelled: perf.ClassificationCounts | None,
        regression: perf.RegressionSums | None,
        reference: ModelReference | None,
    ) -> _ClosedBucket:
        """A closed bucket saved packed; ValueError if its bytes do not fit its layout
        or its drift counts the reference."""
        number, text = saved["packed"]
        if not isinstance(number, int) or not 0 <= number < len(layouts):
            raise ValueError(f"packed bucket: no layout number {number!r}")
        layout = layouts[number]
        data = binascii.a2b_base64(text, strict_mode=True)
        if len(data) != packed_size(layout):
            raise ValueError(
                f"packed bucket: {len(data)} bytes where its layout holds {packed_size(layout)}"
            )
        if labelled is not None:
            labelled.compact()  # as closing the bucket made it
        bucket = _ClosedBucket.restored(
            int(saved["index"]), labelled, regression, layout, deflated(layout, data)
        )
        if layout.sizes is None:
            return bucket
        if reference is None:  # as a bucket saved unpacked: no reference, no drift counts
            return bucket.without_drift()
        empty = DriftCounts.empty(reference)
        shape = (
            empty.sizes,
            0 if empty.prediction_counts is None else empty.prediction_counts.size,
            0 if empty.confidence_counts is None else empty.confidence_counts.size,
            0 if empty.expected is None else len(empty.expected),
        )
        saved_shape = (
            layout.sizes,
            layout.prediction_bins,
            layout.confidence_counts_bins,
            layout.expected_side,
        )
        if saved_shape != shape:
            raise ValueError("packed drift counts do not match the reference's bins")
        return bucket

    def load(self, data: dict[str, Any]) -> None:
        self.kind = data["kind"]
        self.classes = [str(c) for c in data["classes"]][: self._config.max_classes]
        self._class_of = {}
        for i, c in enumerate(self.classes):
            self._class_of.setdefault(c, i)  # as list.index would: the first one
        self.matched, self.expired, self.unmatched = (int(n) for n in data["counts"])
        saved_reference = data.get("reference")
        reference = (
            None if saved_reference is None else shared(ModelReference.from_dict(saved_reference))
        )
        # absent from checkpoints that saved every bucket as its aggregates
        layouts = [layout_from_json(saved) for saved in data.get("layouts", ())]
        loaded: list[_AnyBucket] = []
        for b in data["buckets"]:
            labelled = (
                None
                if (saved_labelled := b["labelled"]) is None
                # a checkpoint from before the ROC AUC sketch holds equal-width bins
                else perf.ClassificationCounts.from_dict(saved_labelled).with_sketch(
                    self._config.auc_cells
                )
            )
            regression = (
                None
                if (saved_regression := b["regression"]) is None
                else perf.RegressionSums.from_dict(saved_regression)
            )
            if "packed" in b:
                loaded.append(self._restore_packed(b, layouts, labelled, regression, reference))
                continue
            drift = b.get("drift")
            errors, invalid, latency_sum, latency_n = b.get("tallies", (0, 0, 0.0, 0))
            if not math.isfinite(float(latency_sum)):  # saved before latencies were bounded
                latency_sum, latency_n = 0.0, 0
            loaded.append(
                _Bucket(
                    int(b["index"]),
                    perf.ConfidenceHistogram.from_dict(b["confidence"]),
                    labelled,
                    regression,
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
        if loaded and isinstance(loaded[-1], _ClosedBucket):
            raise ValueError("the newest bucket, which takes records, was saved closed")
        self.reference = reference
        buckets: deque[_AnyBucket] = deque(
            bucket
            if isinstance(bucket, _ClosedBucket)
            else bucket.close(self._n_classes, self._config.auc_cells, reference)
            for bucket in loaded[:-1]
        )
        buckets.extend(loaded[-1:])
        self._buckets = buckets
        self._closed = self._short_closed = None
        self._generation += 1
        self._pending = PendingPredictions(self._config.max_pending)
        row_of = _ProbabilityRows(self)
        keys: list[str] = []
        ats: list[float] = []
        values: list[int | float] = []
        rows: list[Sequence[float] | None] = []
        for k, at, predicted, probabilities in data["pending"]:
            row = row_of(probabilities) if isinstance(probabilities, dict) else probabilities
            keys.append(str(k))
            ats.append(float(at))
            values.append(predicted if isinstance(predicted, int | float) else float(predicted))
            rows.append(None if row is None else [float(p) for p in row])
        # in one batch, as they were added one by one (a repeated id replaces the first)
        self.expired += self._pending.add(keys, ats, values, rows)
        self._early = OrderedDict(
            (str(k), _EarlyFeedback(float(at), actual))
            for k, at, actual in data.get("early", ())  # absent from older checkpoints
        )
        last = data.get("last_record_at")  # absent from older checkpoints: None, unknown
        self.last_record_at = float(last) if last is not None else None


SUMMARY_BATCH: Final = 32
"""Windows whose summaries are computed together. A batch costs numpy's per-call
overhead once, but holds every window's merged totals and the drift arrays of all of
them at once; a bounded batch keeps that peak from growing with the number of versions
(with every version at once, it was about 60 KB a version, left as free but resident
heap after each refresh)."""


def summaries(windows: Sequence[LiveWindow], now: float) -> list[WindowSummary]:
    """`LiveWindow.summary(now)` of each window, with its short horizon: what the
    ingester's periodic refresh of every version calls. A window whose records, reference
    and horizons' buckets are those of its last summary gets that summary again (the same
    object); the others are computed, the drift of both horizons of all of them in one
    batch (`stats.reference.drift_reports`)."""
    keys = [w._summary_key(now) for w in windows]
    out: list[WindowSummary | None] = []
    stale: list[int] = []
    for i, (w, key) in enumerate(zip(windows, keys, strict=True)):
        last = w._last_summary
        if last is not None and last[0] == key:
            w._expire_pending(now)
            out.append(last[1])
        else:
            out.append(None)
            stale.append(i)
    for start in range(0, len(stale), SUMMARY_BATCH):
        group = stale[start : start + SUMMARY_BATCH]
        computed = _compute_summaries([windows[i] for i in group], now)
        for i, summary in zip(group, computed, strict=True):
            windows[i]._last_summary = (keys[i], summary)
            out[i] = summary
    return [s for s in out if s is not None]


def _compute_summaries(windows: Sequence[LiveWindow], now: float) -> list[WindowSummary]:
    """The summaries of `windows` at `now`, computed (see `summaries`)."""
    totals = [w._totals(now) for w in windows]
    shorts = [w._short_totals(now) if w._config.short_buckets else _Totals() for w in windows]
    heads = [w._head_metrics(t) for w, t in zip(windows, totals, strict=True)]
    # One batch per horizon: numpy's cost per call, not the arithmetic, dominates. The
    # short horizon's holds only what its summary keeps (`_short_summary`).
    reports = _drift_of(windows, totals, drift_reports)
    short_reports = _drift_of(windows, shorts, drift_flag_reports)
    return [
        replace(
            w._summary(t, head, report),
            short=w._short_summary(short, short_report) if w._config.short_buckets else None,
            series=w._series(),
        )
        for w, t, short, head, report, short_report in zip(
            windows, totals, shorts, heads, reports, short_reports, strict=True
        )
    ]


def _drift_of(
    windows: Sequence[LiveWindow],
    totals: Sequence[_Totals],
    batch: Callable[
        [Sequence[tuple[ModelReference, DriftCounts, DriftSettings]]], list[DriftReport]
    ],
) -> list[DriftReport | None]:
    """The drift report of each window's `totals` (None without reference or rows), all
    of them computed by one call of `batch`."""
    jobs = [
        (i, w.reference, t.drift, w._drift_settings)
        for i, (w, t) in enumerate(zip(windows, totals, strict=True))
        if w.reference is not None and t.drift is not None
    ]
    reports: list[DriftReport | None] = [None] * len(windows)
    computed = batch([(reference, drift, settings) for _, reference, drift, settings in jobs])
    for (i, _, _, _), report in zip(jobs, computed, strict=True):
        reports[i] = report
    return reports


@dataclass(slots=True)
class _Totals:
    """Buckets added up: the aggregates are copies, never a bucket's own."""

    confidence: perf.ConfidenceHistogram | None = None
    labelled: perf.ClassificationCounts | None = None
    regression: perf.RegressionSums | None = None
    drift: DriftCounts | None = None
    predictions: int = 0
    errors: int = 0
    invalid_records: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    # on the merge of the closed buckets: the live ROC AUC and its bound, and the newest
    # bucket's index and labelled samples and the window's it was computed with
    # (`LiveWindow._live_auc`)
    auc_cache: tuple[tuple[int, int, int], tuple[float, float] | None] | None = None

    def add(self, part: _AnyBucket | _Totals) -> None:
        self.confidence = _plus(self.confidence, part.confidence)
        self.labelled = _plus(self.labelled, part.labelled)
        self.regression = _plus(self.regression, part.regression)
        self.drift = _plus(self.drift, part.drift)
        self.predictions += part.predictions
        self.errors += part.errors
        self.invalid_records += part.invalid_records
        self.latency_sum += part.latency_sum
        self.latency_n += part.latency_n

    def copy(self) -> _Totals:
        totals = _Totals()
        totals.add(self)
        return totals

    def compact(self) -> None:
        """Hold these totals, which will only be copied from now on, in less memory."""
        for aggregate in (self.confidence, self.labelled, self.drift):
            if aggregate is not None:
                aggregate.compact()

    def subtract_counts(self, part: _AnyBucket) -> None:
        """Take the integer counts of `part`, added before, out again (exact); the rest
        is then stale until `set_inexact`."""
        for name in ("confidence", "labelled", "regression", "drift"):
            mine, theirs = getattr(self, name), getattr(part, name)
            if mine is not None and theirs is not None:
                mine.subtract_counts(theirs)
        self.predictions -= part.predictions
        self.errors -= part.errors
        self.invalid_records -= part.invalid_records
        self.latency_n -= part.latency_n

    def set_inexact(self, parts: Sequence[_ClosedBucket]) -> None:
        """After `subtract_counts`: what cannot be subtracted, from `parts` (the buckets
        added up) in their order, as adding them afresh does; an aggregate that none of
        them has is None again, as it would be. The floats are read from the packed
        vectors, not from aggregates made of them: this runs after every bucket boundary."""
        tallies, floats = heads([part.data for part in parts])
        latency_sum = 0.0
        for row in floats:
            latency_sum += row[0]
        self.latency_sum = latency_sum
        if not parts:
            self.confidence = None
        elif self.confidence is not None:
            # every bucket has a confidence histogram: (count, ...), (..., sum, M2, min, max)
            confidences = [
                _ConfidencePart(ints[4], row) for ints, row in zip(tallies, floats, strict=True)
            ]
            self.confidence.set_inexact(cast("list[perf.ConfidenceHistogram]", confidences))
        for name in ("labelled", "regression"):
            having = [a for part in parts if (a := getattr(part, name)) is not None]
            mine = getattr(self, name)
            if not having:
                setattr(self, name, None)
            elif mine is not None:
                mine.set_inexact(having)
        drifted = [part for part in parts if part.layout.sizes is not None]
        if not drifted:
            self.drift = None
        elif self.drift is not None:
            layout = drifted[0].layout
            key = layout.float_key
            if all(p.layout is layout or p.layout.float_key == key for p in drifted):
                set_drift_inexact(self.drift, layout, [part.data for part in drifted])
            else:  # packed in other integer types or shapes: as aggregates
                self.drift.set_inexact([d for part in drifted if (d := part.drift) is not None])


_A = TypeVar(
    "_A", perf.ClassificationCounts, perf.RegressionSums, perf.ConfidenceHistogram, DriftCounts
)


def _plus(total: _A | None, part: _A | None) -> _A | None:
    """`total + part` in `total` (a copy of `part` when there is no total yet)."""
    if part is None:
        return total
    if total is None:
        return part.copy()
    total += part
    return total

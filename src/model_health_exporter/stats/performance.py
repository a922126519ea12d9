"""Live model performance from bounded, mergeable aggregates.

Each aggregate holds fixed-size numpy arrays and a few scalars, so a time bucket's memory does
not grow with the number of predictions. Buckets of the same shape are merged by adding them
(`merge`, `+=`), and the merged window is what the metric functions read. Every function
returns None, never NaN, when its metric is undefined for the data seen.

- `ClassificationCounts`: confusion matrix, per-class score histograms or an `AucSketch` (ROC AUC),
  log-loss sum.
- `RegressionSums`: error sums (MAE, MSE, RMSE, R², MAPE, SMAPE).
- `ConfidenceHistogram`: the model's confidence (mean, std, median, low-confidence ratio).

Pure numpy: no I/O, nothing about Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, NamedTuple, Self

import numpy as np
import numpy.typing as npt

from model_health_exporter.stats.auc_sketch import AucSketch
from model_health_exporter.stats.compact import narrowest

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

LOG_LOSS_EPS: Final = 1e-15
"""Probabilities of the actual class are clipped from below to this before the log."""

DEFAULT_AUC_BINS: Final = 1000
DEFAULT_CONFIDENCE_BINS: Final = 100
DEFAULT_LOW_CONFIDENCE_THRESHOLD: Final = 0.75

Average = Literal["weighted", "macro"]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _bin_index(values: FloatArray, n_bins: int) -> IntArray:
    """Equal-width bin of each value in [0, 1]: floor(v * B), with v = 1 in the last bin."""
    idx: IntArray = np.minimum((values * n_bins).astype(np.int64), n_bins - 1)
    return idx


def class_indices(values: npt.ArrayLike, n_classes: int, name: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out.min() < 0 or out.max() >= n_classes:
        raise ValueError(f"{name} holds a class index outside [0, {n_classes})")
    return out


def _float_vector(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds a non-finite value")
    return arr


def _counts_from(value: Any, shape: tuple[int, ...], name: str) -> IntArray:
    """A checkpointed count array: integers >= 0 of exactly `shape`."""
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise ValueError(f"{name} holds a negative count")
    return out


def _count_from(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def _float_from(value: Any, name: str, *, nonnegative: bool = True) -> float:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    out = float(value) if is_number else math.nan
    if not math.isfinite(out) or (nonnegative and out < 0):
        qualifier = " >= 0" if nonnegative else ""
        raise ValueError(f"{name} must be a finite number{qualifier}, got {value!r}")
    return out


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _merge_moments(a: tuple[int, float, float], b: tuple[int, float, float]) -> float:
    """M2 (sum of squared deviations from the mean) of two merged groups, each given as
    (n, sum, M2): M2_a + M2_b + (mean_b - mean_a)² n_a n_b / n (Chan et al.)."""
    n_a, sum_a, m2_a = a
    n_b, sum_b, m2_b = b
    n = n_a + n_b
    if n_a == 0 or n_b == 0:
        return m2_a + m2_b
    delta = sum_b / n_b - sum_a / n_a
    return m2_a + m2_b + delta * delta * n_a * n_b / n


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


class ClassificationCounts:
    """Labelled classification outcomes over a fixed class list of size K.

    - `confusion[actual, predicted]`: int64, K x K.
    - `pos[k, b]` / `neg[k, b]`: int64, K x B. Of the records with probabilities, how many
      whose actual class is / is not k had a probability for class k in bin b. Bins are
      equal-width on [0, 1]: bin b = floor(p * B), p = 1 in the last bin.
    - `log_loss_sum`: sum of -ln(max(p_actual, 1e-15)) over records with probabilities,
      `log_loss_count` their number.

    The caller maps labels to indices; index K - 1 may be a catch-all "other" class.
    Probabilities are used as given (scikit-learn renormalises rows; callers pass rows that
    already sum to 1).
    """

    __slots__ = (
        "_pending",
        "_sketch",
        "confusion",
        "log_loss_count",
        "log_loss_sum",
        "n_bins",
        "n_classes",
        "neg",
        "pos",
    )

    def __init__(
        self,
        confusion: IntArray,
        pos: IntArray,
        neg: IntArray,
        log_loss_sum: float = 0.0,
        log_loss_count: int = 0,
        *,
        sketch: AucSketch | None = None,
    ) -> None:
        k = confusion.shape[0]
        if k < 2 or confusion.shape != (k, k):
            raise ValueError(f"confusion must be K x K with K >= 2, got shape {confusion.shape}")
        if pos.ndim != 2 or pos.shape[0] != k or pos.shape[1] < 1 or neg.shape != pos.shape:
            raise ValueError(f"pos and neg must both be K x B, got {pos.shape} and {neg.shape}")
        self.n_classes: int = k
        self.n_bins: int = pos.shape[1]
        self.confusion: IntArray = confusion
        self.pos: IntArray = pos
        self.neg: IntArray = neg
        self.log_loss_sum: float = log_loss_sum
        self.log_loss_count: int = log_loss_count
        if sketch is not None and sketch.n_classes != k:
            raise ValueError(f"the AUC sketch holds {sketch.n_classes} classes, not {k}")
        self._sketch: AucSketch | None = sketch
        # Sketches merged in but not yet added up: a window merges its buckets on every
        # refresh, and most refreshes reuse the AUC they computed before (LiveWindow).
        self._pending: list[AucSketch] = []

    @property
    def sketch(self) -> AucSketch | None:
        """The ROC AUC sketch, if these counts keep one instead of equal-width bins."""
        if self._pending and self._sketch is not None:
            self._sketch.merge_many(self._pending)
            self._pending.clear()
        return self._sketch

    @classmethod
    def empty(
        cls, n_classes: int, n_bins: int = DEFAULT_AUC_BINS, *, sketch_cells: int | None = None
    ) -> Self:
        """All-zero counts for `n_classes` classes and `n_bins` equal-width score bins, or,
        with `sketch_cells`, an `AucSketch` of that many cells per class instead of bins
        (then `pos` and `neg` hold one unused bin)."""
        k = _positive_int(n_classes, "n_classes")
        b = 1 if sketch_cells is not None else _positive_int(n_bins, "n_bins")
        return cls(
            np.zeros((k, k), dtype=np.int64),
            np.zeros((k, b), dtype=np.int64),
            np.zeros((k, b), dtype=np.int64),
            sketch=None if sketch_cells is None else AucSketch(k, sketch_cells),
        )

    @property
    def n_samples(self) -> int:
        """Labelled records counted (with or without probabilities)."""
        return int(self.confusion.sum())

    @property
    def n_scored(self) -> int:
        """Labelled records that came with probabilities (the ROC AUC and log-loss sample)."""
        return self.log_loss_count

    def add(self, actual_idx: int, predicted_idx: int, proba: npt.ArrayLike | None) -> None:
        """Count one record; `proba` is the length-K probability vector or None."""
        k = self.n_classes
        if not (0 <= actual_idx < k and 0 <= predicted_idx < k):
            raise ValueError(f"class index outside [0, {k})")
        if proba is not None:
            p = np.asarray(proba, dtype=np.float64)
            if p.shape != (k,):
                raise ValueError(f"proba must have shape ({k},), got {p.shape}")
            if not np.all((p >= 0.0) & (p <= 1.0)):
                raise ValueError("proba must lie in [0, 1]")
            idx = _bin_index(p, self.n_bins)
            self.neg[np.arange(k), idx] += 1
            self.neg[actual_idx, idx[actual_idx]] -= 1
            self.pos[actual_idx, idx[actual_idx]] += 1
            self.log_loss_sum += -math.log(max(float(p[actual_idx]), LOG_LOSS_EPS))
            self.log_loss_count += 1
        self.confusion[actual_idx, predicted_idx] += 1
        if proba is not None and self.sketch is not None:
            self.sketch.add(np.asarray(proba, dtype=np.float64)[None, :], np.array([actual_idx]))

    def add_many(
        self, actual: npt.ArrayLike, predicted: npt.ArrayLike, proba: npt.ArrayLike | None
    ) -> None:
        """Count n records at once: class indices of length n and an n x K `proba` or None.

        A `proba` row that is entirely NaN means "no probabilities for this record": it counts
        in the confusion matrix only. Other non-finite or out-of-[0, 1] values raise.
        """
        k = self.n_classes
        a = class_indices(actual, k, "actual")
        p = class_indices(predicted, k, "predicted")
        if a.shape != p.shape:
            raise ValueError(f"actual and predicted differ in length: {a.size} != {p.size}")
        scores: FloatArray | None = None
        if proba is not None:
            scores = np.asarray(proba, dtype=np.float64)
            if scores.shape != (a.size, k):
                raise ValueError(f"proba must have shape ({a.size}, {k}), got {scores.shape}")
            missing = np.all(np.isnan(scores), axis=1)
            scores = scores[~missing]
            if not np.all((scores >= 0.0) & (scores <= 1.0)):
                raise ValueError("proba must lie in [0, 1] (or be an all-NaN row)")
            scored_actual = a[~missing]
        self.confusion += np.bincount(a * k + p, minlength=k * k).reshape(k, k)
        if scores is None or scores.shape[0] == 0:
            return
        if self.sketch is not None:
            self.sketch.add(scores, scored_actual)
        b = self.n_bins
        flat = np.arange(k, dtype=np.int64) * b + _bin_index(scores, b)  # n x K
        is_pos = scored_actual[:, None] == np.arange(k)[None, :]
        self.pos += np.bincount(flat[is_pos], minlength=k * b).reshape(k, b)
        self.neg += np.bincount(flat[~is_pos], minlength=k * b).reshape(k, b)
        p_actual = scores[np.arange(scores.shape[0]), scored_actual]
        self.log_loss_sum += float(-np.log(np.maximum(p_actual, LOG_LOSS_EPS)).sum())
        self.log_loss_count += int(scores.shape[0])

    def with_sketch(self, cells: int) -> ClassificationCounts:
        """These counts with an `AucSketch` of `cells` cells per class; equal-width bins
        are put in the sketch at their midpoints (pairs within one bin lose their order
        there, and the sketch's bound cannot know it: for converting old checkpoints)."""
        if self.sketch is not None:
            return self
        sketch = AucSketch(self.n_classes, cells)
        midpoints = (np.arange(self.n_bins) + 0.5) / self.n_bins
        sketch.add_counts(midpoints, self.pos, self.neg)
        k = self.n_classes
        return ClassificationCounts(
            self.confusion.copy(),
            np.zeros((k, 1), dtype=np.int64),
            np.zeros((k, 1), dtype=np.int64),
            self.log_loss_sum,
            self.log_loss_count,
            sketch=sketch,
        )

    def _check_compatible(self, other: ClassificationCounts) -> None:
        if (self.n_classes, self.n_bins, self._sketch is None) != (
            other.n_classes,
            other.n_bins,
            other._sketch is None,
        ):
            raise ValueError(
                f"cannot merge counts of shape (K={other.n_classes}, B={other.n_bins}) "
                f"into (K={self.n_classes}, B={self.n_bins})"
            )

    def merge(self, other: ClassificationCounts) -> Self:
        """Add `other` (same K and B) into this aggregate; returns self."""
        self._check_compatible(other)
        self.confusion += other.confusion
        self.pos += other.pos
        self.neg += other.neg
        self.log_loss_sum += other.log_loss_sum
        self.log_loss_count += other.log_loss_count
        if self._sketch is not None and other.sketch is not None:
            # added up when first read; a copy, as the other goes on counting
            self._pending.append(other.sketch.copy())
        return self

    def __iadd__(self, other: ClassificationCounts) -> Self:
        return self.merge(other)

    def subtract_counts(self, other: ClassificationCounts) -> None:
        """Take the integer counts of `other`, merged in before, out again (exact); the
        rest (`set_inexact`) cannot be taken out."""
        self._check_compatible(other)
        self.confusion -= other.confusion
        self.pos -= other.pos
        self.neg -= other.neg
        self.log_loss_count -= other.log_loss_count

    def set_inexact(self, parts: Sequence[ClassificationCounts]) -> None:
        """Set what `subtract_counts` leaves (the log-loss sum and the AUC sketch) to what
        merging `parts` in order into a copy of the first gives, as `merge` does."""
        log_loss_sum = parts[0].log_loss_sum
        for part in parts[1:]:
            log_loss_sum += part.log_loss_sum
        self.log_loss_sum = log_loss_sum
        sketches = [part.sketch for part in parts]
        self._pending = []
        self._sketch = (
            None
            if self._sketch is None or sketches[0] is None
            else sketches[0].copy().merge_many([s for s in sketches[1:] if s is not None])
        )

    def __add__(self, other: ClassificationCounts) -> ClassificationCounts:
        return self.copy().merge(other)

    def compact(self) -> None:
        """Hold these counts, which will not change again, in less memory (`copy` gives
        counts that can be added to)."""
        sketch = self.sketch  # sketches merged in are added up first
        self.confusion = narrowest(self.confusion)
        self.pos = narrowest(self.pos)
        self.neg = narrowest(self.neg)
        if sketch is not None:
            sketch.compact()

    def copy(self) -> ClassificationCounts:
        """An independent copy, in int64 whatever `compact` did."""
        return ClassificationCounts(
            self.confusion.astype(np.int64),
            self.pos.astype(np.int64),
            self.neg.astype(np.int64),
            self.log_loss_sum,
            self.log_loss_count,
            sketch=None if self.sketch is None else self.sketch.copy(),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready checkpoint (plain ints, floats and lists)."""
        return {
            "n_classes": self.n_classes,
            "n_bins": self.n_bins,
            "confusion": self.confusion.tolist(),
            "pos": self.pos.tolist(),
            "neg": self.neg.tolist(),
            "log_loss_sum": self.log_loss_sum,
            "log_loss_count": self.log_loss_count,
        } | ({} if self.sketch is None else {"auc_sketch": self.sketch.to_dict()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; raises ValueError on a malformed checkpoint."""
        k = _positive_int(data.get("n_classes"), "n_classes")
        b = _positive_int(data.get("n_bins"), "n_bins")
        return cls(
            _counts_from(data.get("confusion"), (k, k), "confusion"),
            _counts_from(data.get("pos"), (k, b), "pos"),
            _counts_from(data.get("neg"), (k, b), "neg"),
            _float_from(data.get("log_loss_sum"), "log_loss_sum"),
            _count_from(data.get("log_loss_count"), "log_loss_count"),
            sketch=(
                None if "auc_sketch" not in data else AucSketch.from_dict(k, data["auc_sketch"])
            ),
        )


class PrecisionRecallF1(NamedTuple):
    precision: float
    recall: float
    f1: float


def accuracy(counts: ClassificationCounts) -> float | None:
    """trace(confusion) / n; None without samples."""
    n = counts.n_samples
    return None if n == 0 else float(np.trace(counts.confusion)) / n


def precision_recall_f1(
    counts: ClassificationCounts, average: Average = "weighted"
) -> PrecisionRecallF1 | None:
    """Averaged precision, recall and F1, as scikit-learn's `precision_recall_fscore_support`
    with `zero_division=0` and default labels.

    Per class k: tp = confusion[k, k], precision = tp / predicted_k (0 if never predicted),
    recall = tp / actual_k (0 if never actual), F1 = 2 tp / (predicted_k + actual_k).
    Only classes that occur as actual or predicted count (scikit-learn's default labels).
    "macro" is their plain mean; "weighted" weights each by its actual count (support).
    None without samples.
    """
    if average not in ("weighted", "macro"):
        raise ValueError(f"average must be 'weighted' or 'macro', got {average!r}")
    cm = counts.confusion.astype(np.float64)
    tp = np.diag(cm)
    actual = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = (actual + predicted) > 0
    if not present.any():
        return None
    tp, actual, predicted = tp[present], actual[present], predicted[present]
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    f1 = 2.0 * tp / (predicted + actual)  # > 0 for every present class
    weights = actual if average == "weighted" else np.ones_like(actual)
    total = float(weights.sum())
    return PrecisionRecallF1(
        float(precision @ weights) / total,
        float(recall @ weights) / total,
        float(f1 @ weights) / total,
    )


def _auc_per_class(counts: ClassificationCounts) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(AUC estimate, its error bound, positive count) per class; NaN where undefined."""
    if counts.sketch is not None:
        return counts.sketch.per_class()
    pos = counts.pos.astype(np.float64)
    neg = counts.neg.astype(np.float64)
    n_pos = pos.sum(axis=1)
    n_neg = neg.sum(axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg  # negatives in strictly lower bins
    wins = (pos * neg_below).sum(axis=1)
    ties = (pos * neg).sum(axis=1)
    pairs = n_pos * n_neg
    ok = pairs > 0
    auc = np.full(counts.n_classes, np.nan)
    bound = np.full(counts.n_classes, np.nan)
    auc[ok] = (wins[ok] + 0.5 * ties[ok]) / pairs[ok]
    bound[ok] = 0.5 * ties[ok] / pairs[ok]
    return auc, bound, n_pos


def roc_auc_with_bound(
    counts: ClassificationCounts, average: Average = "macro"
) -> tuple[float, float] | None:
    """(`roc_auc`, `roc_auc_error_bound`) computed together; None where they are."""
    per_class = _auc_per_class(counts)
    auc = _auc_average(counts, average, 0, per_class)
    bound = _auc_average(counts, average, 1, per_class)
    return None if auc is None or bound is None else (auc, bound)


def _auc_average(
    counts: ClassificationCounts,
    average: Average,
    which: int,
    per_class: tuple[FloatArray, FloatArray, FloatArray] | None = None,
) -> float | None:
    if average not in ("weighted", "macro"):
        raise ValueError(f"average must be 'weighted' or 'macro', got {average!r}")
    if per_class is None:
        per_class = _auc_per_class(counts)
    values, n_pos = per_class[which], per_class[2]
    if counts.n_classes == 2:
        return None if math.isnan(values[1]) else float(values[1])
    present = n_pos > 0
    if not present.any() or np.isnan(values[present]).any():
        return None
    weights = n_pos[present] if average == "weighted" else np.ones(int(present.sum()))
    return float(values[present] @ weights) / float(weights.sum())


def roc_auc(counts: ClassificationCounts, average: Average = "macro") -> float | None:
    """ROC AUC from the binned scores (or, with a `sketch`, its cells: `stats.auc_sketch`,
    what live windows use), as scikit-learn's `roc_auc_score` (multi-class:
    `multi_class="ovr"`).

    Per class k, Mann-Whitney over (positive, negative) pairs of the class-k probability:
    AUC_k = (sum_b pos[k,b] * neg[k, <b] + 1/2 sum_b pos[k,b] * neg[k,b]) / (P_k N_k).
    Binary (K = 2): AUC of class 1's probability. Multi-class: one-vs-rest over the classes
    that occur as actual (scikit-learn's default labels), averaged plainly ("macro") or by
    P_k ("weighted"). None when no class, or only one class, occurs as actual (some class
    then has no positives or no negatives), and when there are no scored records.

    Error: pairs in different bins are ordered exactly as by the raw scores; a pair in the
    same bin counts 1/2 where the raw scores give 0, 1/2 or 1. So per class
    |AUC_k - exact| <= 1/2 * sum_b pos[k,b] neg[k,b] / (P_k N_k) (`roc_auc_error_bound`
    returns it, averaged like the AUC). If the class-k scores of positives or of negatives
    have a density bounded by L on [0, 1], this is <= L / (2B): e.g. 0.0005 for uniform
    scores and B = 1000. It is 0 when all scores in a bin are equal (e.g. on bin centres),
    and reaches 1/2 when all scores share one bin: a class the model only ever gives
    probabilities below 1/B gets AUC_k = 0.5 with bound 0.5, which can move the macro
    average a lot (check the bound before alerting on it).
    """
    return _auc_average(counts, average, 0)


def roc_auc_error_bound(counts: ClassificationCounts, average: Average = "macro") -> float | None:
    """Upper bound on |roc_auc(counts, average) - exact AUC of the raw scores| (see roc_auc)."""
    return _auc_average(counts, average, 1)


def log_loss(counts: ClassificationCounts) -> float | None:
    """Mean of -ln(max(p_actual, 1e-15)) over records with probabilities; None without any.

    scikit-learn clips to [eps, 1 - eps] with eps = float64 machine epsilon (2.2e-16) and
    renormalises rows; the two agree unless p_actual < 1e-15 or rows do not sum to 1.
    """
    n = counts.log_loss_count
    return None if n == 0 else counts.log_loss_sum / n


# --------------------------------------------------------------------------------------------
# Regression
# --------------------------------------------------------------------------------------------


class RegressionSums:
    """Error sums of a regression model, with e = y_pred - y.

    `n`, `sum_abs_error` (sum |e|), `sum_squared_error` (sum e²), `sum_y` and `m2_y`
    (sum of (y - mean y)²: merged with Chan et al.'s formula, which stays accurate where
    sum y² - (sum y)² / n would cancel catastrophically), `sum_ape` (sum |e| / |y| over
    y != 0) with its own count `n_ape`, and `sum_sape` (sum 2|e| / (|y| + |y_pred|), a term
    being 0 when both are 0).
    """

    __slots__ = (
        "m2_y",
        "n",
        "n_ape",
        "sum_abs_error",
        "sum_ape",
        "sum_sape",
        "sum_squared_error",
        "sum_y",
    )

    def __init__(
        self,
        *,
        n: int = 0,
        sum_abs_error: float = 0.0,
        sum_squared_error: float = 0.0,
        sum_y: float = 0.0,
        m2_y: float = 0.0,
        sum_ape: float = 0.0,
        n_ape: int = 0,
        sum_sape: float = 0.0,
    ) -> None:
        self.n = n
        self.sum_abs_error = sum_abs_error
        self.sum_squared_error = sum_squared_error
        self.sum_y = sum_y
        self.m2_y = m2_y
        self.sum_ape = sum_ape
        self.n_ape = n_ape
        self.sum_sape = sum_sape

    @classmethod
    def empty(cls) -> Self:
        return cls()

    def add(self, y: float, y_pred: float) -> None:
        """Count one (actual, predicted) pair."""
        self.add_many(np.array([y], dtype=np.float64), np.array([y_pred], dtype=np.float64))

    def add_many(self, y: npt.ArrayLike, y_pred: npt.ArrayLike) -> None:
        """Count pairs of actual and predicted values (finite, same length)."""
        yt = _float_vector(y, "y")
        yp = _float_vector(y_pred, "y_pred")
        if yt.shape != yp.shape:
            raise ValueError(f"y and y_pred differ in length: {yt.size} != {yp.size}")
        if yt.size == 0:
            return
        abs_err = np.abs(yp - yt)
        abs_y = np.abs(yt)
        nonzero = abs_y > 0
        denom = abs_y + np.abs(yp)
        sape = np.divide(2.0 * abs_err, denom, out=np.zeros_like(abs_err), where=denom > 0)
        batch_sum_y = float(yt.sum())
        batch_m2 = float(np.square(yt - batch_sum_y / yt.size).sum())
        self.m2_y = _merge_moments(
            (self.n, self.sum_y, self.m2_y), (yt.size, batch_sum_y, batch_m2)
        )
        self.n += int(yt.size)
        self.sum_y += batch_sum_y
        self.sum_abs_error += float(abs_err.sum())
        self.sum_squared_error += float(np.square(abs_err).sum())
        self.sum_ape += float((abs_err[nonzero] / abs_y[nonzero]).sum())
        self.n_ape += int(nonzero.sum())
        self.sum_sape += float(sape.sum())

    def merge(self, other: RegressionSums) -> Self:
        """Add `other` into this aggregate; returns self."""
        self.m2_y = _merge_moments(
            (self.n, self.sum_y, self.m2_y), (other.n, other.sum_y, other.m2_y)
        )
        self.n += other.n
        self.sum_y += other.sum_y
        self.sum_abs_error += other.sum_abs_error
        self.sum_squared_error += other.sum_squared_error
        self.sum_ape += other.sum_ape
        self.n_ape += other.n_ape
        self.sum_sape += other.sum_sape
        return self

    def __iadd__(self, other: RegressionSums) -> Self:
        return self.merge(other)

    def subtract_counts(self, other: RegressionSums) -> None:
        """Take the counts of `other`, merged in before, out again (exact); the sums
        (`set_inexact`) cannot be taken out."""
        self.n -= other.n
        self.n_ape -= other.n_ape

    def set_inexact(self, parts: Sequence[RegressionSums]) -> None:
        """Set the sums to what merging `parts` in order into a copy of the first gives,
        as `merge` does."""
        first = parts[0]
        n, sum_y, m2_y = first.n, first.sum_y, first.m2_y
        abs_error, squared, ape, sape = (
            first.sum_abs_error,
            first.sum_squared_error,
            first.sum_ape,
            first.sum_sape,
        )
        for part in parts[1:]:
            m2_y = _merge_moments((n, sum_y, m2_y), (part.n, part.sum_y, part.m2_y))
            n += part.n
            sum_y += part.sum_y
            abs_error += part.sum_abs_error
            squared += part.sum_squared_error
            ape += part.sum_ape
            sape += part.sum_sape
        self.sum_y, self.m2_y = sum_y, m2_y
        self.sum_abs_error, self.sum_squared_error = abs_error, squared
        self.sum_ape, self.sum_sape = ape, sape

    def __add__(self, other: RegressionSums) -> RegressionSums:
        return self.copy().merge(other)

    def copy(self) -> RegressionSums:
        return RegressionSums(**self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready checkpoint."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; raises ValueError on a malformed checkpoint."""
        out = cls(
            n=_count_from(data.get("n"), "n"),
            sum_abs_error=_float_from(data.get("sum_abs_error"), "sum_abs_error"),
            sum_squared_error=_float_from(data.get("sum_squared_error"), "sum_squared_error"),
            sum_y=_float_from(data.get("sum_y"), "sum_y", nonnegative=False),
            m2_y=_float_from(data.get("m2_y"), "m2_y"),
            sum_ape=_float_from(data.get("sum_ape"), "sum_ape"),
            n_ape=_count_from(data.get("n_ape"), "n_ape"),
            sum_sape=_float_from(data.get("sum_sape"), "sum_sape"),
        )
        if out.n_ape > out.n:
            raise ValueError("n_ape exceeds n")
        return out


def mae(sums: RegressionSums) -> float | None:
    """Mean absolute error, sum |e| / n (scikit-learn `mean_absolute_error`)."""
    return None if sums.n == 0 else sums.sum_abs_error / sums.n


def mse(sums: RegressionSums) -> float | None:
    """Mean squared error, sum e² / n (scikit-learn `mean_squared_error`)."""
    return None if sums.n == 0 else sums.sum_squared_error / sums.n


def rmse(sums: RegressionSums) -> float | None:
    """sqrt(MSE)."""
    value = mse(sums)
    return None if value is None else math.sqrt(value)


def r2(sums: RegressionSums) -> float | None:
    """1 - sum e² / sum (y - mean y)² (scikit-learn `r2_score`, force_finite=True: a constant
    y gives 1.0 for a perfect fit, else 0.0). None below 2 samples (scikit-learn: NaN)."""
    if sums.n < 2:
        return None
    if sums.m2_y == 0.0:
        return 1.0 if sums.sum_squared_error == 0.0 else 0.0
    return 1.0 - sums.sum_squared_error / sums.m2_y


def mape(sums: RegressionSums) -> float | None:
    """Mean absolute percentage error as a ratio: mean |e| / |y| over the samples with y != 0.

    Differs from scikit-learn's `mean_absolute_percentage_error` only when some y = 0:
    scikit-learn divides by float64 epsilon there (a term of ~4.5e15 * |e|), we leave those
    samples out. None when no sample has y != 0.
    """
    return None if sums.n_ape == 0 else sums.sum_ape / sums.n_ape


def smape(sums: RegressionSums) -> float | None:
    """Symmetric MAPE as a ratio in [0, 2]: mean 2|e| / (|y| + |y_pred|), a term being 0
    when y = y_pred = 0."""
    return None if sums.n == 0 else sums.sum_sape / sums.n


# --------------------------------------------------------------------------------------------
# Confidence
# --------------------------------------------------------------------------------------------


class ConfidenceHistogram:
    """The model's confidence (in [0, 1]) for its predictions.

    `counts[b]`: int64 histogram over B equal-width bins on [0, 1] (bin b = floor(c * B),
    c = 1 in the last bin). Exact: `count`, `total` (the sum), `m2` (sum of squared
    deviations from the mean, merged with Chan et al.'s formula), `minimum`/`maximum`, and
    `below`, the number of confidences strictly below `threshold`. The default B = 100 makes
    the default threshold 0.75 a bin edge.
    """

    __slots__ = ("below", "count", "counts", "m2", "maximum", "minimum", "threshold", "total")

    def __init__(
        self,
        counts: IntArray,
        *,
        threshold: float = DEFAULT_LOW_CONFIDENCE_THRESHOLD,
        count: int = 0,
        total: float = 0.0,
        m2: float = 0.0,
        below: int = 0,
        minimum: float = math.inf,
        maximum: float = -math.inf,
    ) -> None:
        if counts.ndim != 1 or counts.size < 1:
            raise ValueError(f"counts must be a non-empty vector, got shape {counts.shape}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        self.counts: IntArray = counts
        self.threshold: float = threshold
        self.count: int = count
        self.total: float = total
        self.m2: float = m2
        self.below: int = below
        self.minimum: float = minimum
        self.maximum: float = maximum

    @classmethod
    def empty(
        cls,
        n_bins: int = DEFAULT_CONFIDENCE_BINS,
        threshold: float = DEFAULT_LOW_CONFIDENCE_THRESHOLD,
    ) -> Self:
        return cls(np.zeros(_positive_int(n_bins, "n_bins"), dtype=np.int64), threshold=threshold)

    @property
    def n_bins(self) -> int:
        return int(self.counts.size)

    def add(self, confidence: float) -> None:
        """Count one confidence."""
        self.add_many(np.array([confidence], dtype=np.float64))

    def add_many(self, confidences: npt.ArrayLike) -> None:
        """Count confidences (finite, in [0, 1])."""
        c = _float_vector(confidences, "confidences")
        if c.size == 0:
            return
        if c.min() < 0.0 or c.max() > 1.0:
            raise ValueError("confidences must lie in [0, 1]")
        self.counts += np.bincount(_bin_index(c, self.n_bins), minlength=self.n_bins)
        batch_sum = float(c.sum())
        batch_m2 = float(np.square(c - batch_sum / c.size).sum())
        self.m2 = _merge_moments((self.count, self.total, self.m2), (c.size, batch_sum, batch_m2))
        self.count += int(c.size)
        self.total += batch_sum
        self.below += int((c < self.threshold).sum())
        self.minimum = min(self.minimum, float(c.min()))
        self.maximum = max(self.maximum, float(c.max()))

    def merge(self, other: ConfidenceHistogram) -> Self:
        """Add `other` (same B and threshold) into this aggregate; returns self."""
        if (self.n_bins, self.threshold) != (other.n_bins, other.threshold):
            raise ValueError(
                f"cannot merge a histogram with B={other.n_bins}, threshold={other.threshold} "
                f"into B={self.n_bins}, threshold={self.threshold}"
            )
        self.m2 = _merge_moments(
            (self.count, self.total, self.m2), (other.count, other.total, other.m2)
        )
        self.counts += other.counts
        self.count += other.count
        self.total += other.total
        self.below += other.below
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        return self

    def __iadd__(self, other: ConfidenceHistogram) -> Self:
        return self.merge(other)

    def subtract_counts(self, other: ConfidenceHistogram) -> None:
        """Take the counts of `other`, merged in before, out again (exact); the sum, M2,
        minimum and maximum (`set_inexact`) cannot be taken out."""
        self.counts -= other.counts
        self.count -= other.count
        self.below -= other.below

    def set_inexact(self, parts: Sequence[ConfidenceHistogram]) -> None:
        """Set the sum, M2, minimum and maximum to what merging `parts` in order into a
        copy of the first gives, as `merge` does."""
        first = parts[0]
        count, total, m2 = first.count, first.total, first.m2
        minimum, maximum = first.minimum, first.maximum
        for part in parts[1:]:
            m2 = _merge_moments((count, total, m2), (part.count, part.total, part.m2))
            count += part.count
            total += part.total
            minimum = min(minimum, part.minimum)
            maximum = max(maximum, part.maximum)
        self.total, self.m2, self.minimum, self.maximum = total, m2, minimum, maximum

    def __add__(self, other: ConfidenceHistogram) -> ConfidenceHistogram:
        return self.copy().merge(other)

    def compact(self) -> None:
        """Hold these counts, which will not change again, in less memory (`copy` gives
        counts that can be added to)."""
        self.counts = narrowest(self.counts)

    def copy(self) -> ConfidenceHistogram:
        """An independent copy, in int64 whatever `compact` did."""
        return ConfidenceHistogram(
            self.counts.astype(np.int64),
            threshold=self.threshold,
            count=self.count,
            total=self.total,
            m2=self.m2,
            below=self.below,
            minimum=self.minimum,
            maximum=self.maximum,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready checkpoint; minimum and maximum are null while empty."""
        empty = self.count == 0
        return {
            "n_bins": self.n_bins,
            "threshold": self.threshold,
            "counts": self.counts.tolist(),
            "count": self.count,
            "total": self.total,
            "m2": self.m2,
            "below": self.below,
            "minimum": None if empty else self.minimum,
            "maximum": None if empty else self.maximum,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; raises ValueError on a malformed checkpoint."""
        b = _positive_int(data.get("n_bins"), "n_bins")
        counts = _counts_from(data.get("counts"), (b,), "counts")
        count = _count_from(data.get("count"), "count")
        below = _count_from(data.get("below"), "below")
        if int(counts.sum()) != count or below > count:
            raise ValueError("counts, count and below disagree")
        if count == 0:
            minimum, maximum = math.inf, -math.inf
        else:
            minimum = _float_from(data.get("minimum"), "minimum")
            maximum = _float_from(data.get("maximum"), "maximum")
        return cls(
            counts,
            threshold=_float_from(data.get("threshold"), "threshold"),
            count=count,
            total=_float_from(data.get("total"), "total"),
            m2=_float_from(data.get("m2"), "m2"),
            below=below,
            minimum=minimum,
            maximum=maximum,
        )


def mean(hist: ConfidenceHistogram) -> float | None:
    """Exact mean confidence; None when empty."""
    return None if hist.count == 0 else hist.total / hist.count


def std(hist: ConfidenceHistogram) -> float | None:
    """Exact population standard deviation sqrt(M2 / n) (numpy's default, ddof=0)."""
    return None if hist.count == 0 else math.sqrt(max(hist.m2, 0.0) / hist.count)


def quantile(hist: ConfidenceHistogram, q: float) -> float | None:
    """The q-quantile as numpy's default (linear) method, from the histogram.

    numpy interpolates between order statistics x_(i) and x_(i+1) at position (n - 1) q.
    Each order statistic is estimated inside its bin, the c items of a bin being placed at
    the centres of c equal sub-intervals (linear interpolation inside the bin), then clamped
    to the exact [minimum, maximum]. Each estimate lies in the bin of the true value, so
    the error is at most one bin width, 1 / B (0.01 for B = 100). None when empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must lie in [0, 1], got {q}")
    n = hist.count
    if n == 0:
        return None
    position = (n - 1) * q
    lo = math.floor(position)
    ranks = np.array([lo, min(lo + 1, n - 1)], dtype=np.int64)  # 0-based order statistics
    cum = np.cumsum(hist.counts)
    bins = np.searchsorted(cum, ranks, side="right")
    in_bin = hist.counts[bins]
    before = cum[bins] - in_bin
    width = 1.0 / hist.n_bins
    estimates = (bins + (ranks - before + 0.5) / in_bin) * width
    estimates = np.clip(estimates, hist.minimum, hist.maximum)
    frac = position - lo
    return float(estimates[0] + frac * (estimates[1] - estimates[0]))


def median(hist: ConfidenceHistogram) -> float | None:
    """Median (numpy's `np.median`) from the histogram; error at most one bin width, 1 / B."""
    return quantile(hist, 0.5)


def low_confidence_ratio(hist: ConfidenceHistogram) -> float | None:
    """Exact share of confidences strictly below the threshold; None when empty."""
    return None if hist.count == 0 else hist.below / hist.count

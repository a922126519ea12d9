"""Performance without labels: confidence-based performance estimation (CBPE).

A classifier whose probabilities are calibrated tells us, for each prediction, how likely it
is to be right: if the calibrated probability of class k is p_k, then in expectation the
record's actual class is k with probability p_k. Summing those probabilities over a window
gives an *expected* confusion matrix, and the usual metrics computed from it estimate the
metrics the labels would give once they arrive.

1. `fit_calibrator` learns, on labelled reference data, an isotonic map per class
   (probability -> observed frequency, one-vs-rest) and a map "confidence -> P(correct)".
   Each map is kept only when cross-fitting shows it lowers the expected calibration error;
   otherwise the identity is kept.
2. `Calibrator.apply` / `apply_confidence` calibrate production probabilities / confidences.
3. `expected_confusion` turns a batch into expected counts (additive across batches, so a
   time bucket stores a K x K float array), `estimated_metrics` reads a window of them, and
   `estimated_accuracy_from_confidence` covers logs that only carry the confidence.

Assumptions: no concept shift (P(y | x) is the same in production as in the reference), the
reference is labelled and representative of the score range seen in production, and the
predictions log probabilities (or at least the confidence of the predicted class).

Pure numpy/scipy: no I/O, nothing about Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.optimize import isotonic_regression  # type: ignore[import-untyped]  # scipy has no stubs here

from model_health_exporter.stats.performance import class_indices

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_ECE_BINS: Final = 15
"""Equal-width bins on [0, 1] for the expected calibration error (Guo et al., 2017)."""

DEFAULT_MIN_CALIBRATION_SAMPLES: Final = 100
"""Below this many labelled reference records no calibration is attempted (identity)."""

N_FOLDS: Final = 2
ECE_TOLERANCE: Final = 1e-12
"""A calibration must beat the raw ECE by more than this (float noise is not an improvement)."""

FORMAT_VERSION: Final = 1


# --------------------------------------------------------------------------------------------
# Isotonic maps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IsotonicMap:
    """A non-decreasing piecewise-linear map [0, 1] -> [0, 1] given by its breakpoints.

    `x` is strictly increasing, `y` non-decreasing, both of the same length >= 1. Between
    breakpoints the map interpolates linearly; outside [x[0], x[-1]] it is constant (the end
    values), exactly as scikit-learn's `IsotonicRegression(out_of_bounds="clip").predict`.
    """

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        xs = np.asarray(self.x, dtype=np.float64)
        ys = np.asarray(self.y, dtype=np.float64)
        if xs.ndim != 1 or xs.size < 1 or xs.shape != ys.shape:
            raise ValueError("an isotonic map needs x and y of the same length >= 1")
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
            raise ValueError("isotonic map breakpoints must be finite")
        if np.any(np.diff(xs) <= 0) or np.any(np.diff(ys) < 0):
            raise ValueError("isotonic map needs strictly increasing x and non-decreasing y")
        if ys.min() < 0.0 or ys.max() > 1.0:
            raise ValueError("isotonic map values must lie in [0, 1]")

    def __call__(self, values: npt.ArrayLike) -> FloatArray:
        """The map applied elementwise (NaN stays NaN)."""
        out: FloatArray = np.interp(
            np.asarray(values, dtype=np.float64),
            np.asarray(self.x, dtype=np.float64),
            np.asarray(self.y, dtype=np.float64),
        )
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicMap:
        x, y = data.get("x"), data.get("y")
        if not isinstance(x, list) or not isinstance(y, list):
            # ValueError, not TypeError: every malformed checkpoint raises the same error
            raise ValueError("an isotonic map needs lists 'x' and 'y'")  # noqa: TRY004
        return cls(tuple(_finite_float(v, "x") for v in x), tuple(_finite_float(v, "y") for v in y))


def fit_isotonic(x: npt.ArrayLike, y: npt.ArrayLike) -> IsotonicMap:
    """Least-squares non-decreasing fit of y on x, as scikit-learn's `IsotonicRegression`.

    Records with equal x are pooled first (mean y, weight = their count), the pooled means are
    fitted with `scipy.optimize.isotonic_regression` (PAVA) using those weights, and interior
    points whose fitted value equals both neighbours' are dropped: they change nothing in the
    linear interpolation, and dropping them keeps the map compact (at most two breakpoints
    per constant block).
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
        raise ValueError("x and y must be non-empty vectors of the same length")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("x and y must be finite")
    unique_x, inverse, counts = np.unique(xs, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=ys) / counts
    fitted = np.clip(isotonic_regression(means, weights=counts.astype(np.float64)).x, 0.0, 1.0)
    keep = np.ones(fitted.size, dtype=bool)
    keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return IsotonicMap(tuple(unique_x[keep].tolist()), tuple(fitted[keep].tolist()))


# --------------------------------------------------------------------------------------------
# Expected calibration error
# --------------------------------------------------------------------------------------------


def expected_calibration_error(
    scores: npt.ArrayLike, outcomes: npt.ArrayLike, n_bins: int = DEFAULT_ECE_BINS
) -> float | None:
    """ECE = sum_b (n_b / n) |mean(outcome in b) - mean(score in b)| over equal-width bins
    b = min(floor(score * B), B - 1) on [0, 1] (a score of 1 falls in the last bin).

    `outcomes` are 0/1 (or frequencies in [0, 1]). None when there are no scores.
    """
    s = np.asarray(scores, dtype=np.float64)
    o = np.asarray(outcomes, dtype=np.float64)
    if s.shape != o.shape or s.ndim != 1:
        raise ValueError("scores and outcomes must be vectors of the same length")
    if s.size == 0:
        return None
    idx = np.minimum((s * n_bins).astype(np.int64), n_bins - 1)
    # |sum outcomes - sum scores| per bin / n == sum_b (n_b / n) |mean_o - mean_s|
    gap = np.bincount(idx, weights=o - s, minlength=n_bins)
    return float(np.abs(gap).sum()) / s.size


def classwise_ece(
    probabilities: FloatArray, actual: IntArray, n_bins: int = DEFAULT_ECE_BINS
) -> float | None:
    """Mean over classes of the one-vs-rest ECE of p_k against 1[actual = k]; binary (K = 2):
    the ECE of the positive class (index 1) alone."""
    k = probabilities.shape[1]
    columns = [1] if k == 2 else range(k)
    values = [
        expected_calibration_error(probabilities[:, c], (actual == c).astype(np.float64), n_bins)
        for c in columns
    ]
    present = [v for v in values if v is not None]
    return None if not present else float(np.mean(present))


@dataclass(frozen=True, slots=True)
class CalibrationCheck:
    """The cross-fitted decision for one map: ECE of the raw scores and of the out-of-fold
    calibrated scores, both on the whole reference."""

    ece_raw: float
    ece_calibrated: float

    @property
    def improves(self) -> bool:
        return self.ece_calibrated < self.ece_raw - ECE_TOLERANCE

    def to_dict(self) -> dict[str, float]:
        return {"ece_raw": self.ece_raw, "ece_calibrated": self.ece_calibrated}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationCheck:
        return cls(
            _finite_float(data.get("ece_raw"), "ece_raw"),
            _finite_float(data.get("ece_calibrated"), "ece_calibrated"),
        )


# --------------------------------------------------------------------------------------------
# Calibrator
# --------------------------------------------------------------------------------------------


def _calibrate_rows(probabilities: FloatArray, maps: Sequence[IsotonicMap]) -> FloatArray:
    """Binary (one map, for class 1): [1 - g(p1), g(p1)]. K >= 3 (one map per class):
    g_k(p_k) renormalised to sum 1; a row whose calibrated values are all 0 keeps its raw
    probabilities (the maps say nothing about it)."""
    if len(maps) == 1:
        positive = maps[0](probabilities[:, 1])
        return np.column_stack([1.0 - positive, positive])
    calibrated = np.column_stack([m(probabilities[:, c]) for c, m in enumerate(maps)])
    sums = calibrated.sum(axis=1, keepdims=True)
    usable = sums > 0
    out: FloatArray = np.where(usable, calibrated / np.where(usable, sums, 1.0), probabilities)
    return out


def _fit_class_maps(probabilities: FloatArray, actual: IntArray) -> tuple[IsotonicMap, ...]:
    k = probabilities.shape[1]
    columns = [1] if k == 2 else range(k)
    return tuple(
        fit_isotonic(probabilities[:, c], (actual == c).astype(np.float64)) for c in columns
    )


def _folds(n: int) -> list[tuple[IntArray, IntArray]]:
    """Record i is held out in fold i mod 2: deterministic, and balanced even when the
    reference is sorted (by time, by class)."""
    index = np.arange(n, dtype=np.int64)
    return [(index[index % N_FOLDS != f], index[index % N_FOLDS == f]) for f in range(N_FOLDS)]


@dataclass(frozen=True, slots=True)
class Calibrator:
    """Calibration maps fit on labelled reference data; JSON-serialisable.

    - `class_maps`: None (identity) or the per-class isotonic maps: one map for the positive
      class (index 1) when K = 2, K maps (one-vs-rest, rows renormalised) when K >= 3.
    - `confidence_map`: None (identity) or the map "confidence of the predicted class ->
      P(prediction correct)", for logs that carry only that confidence.
    - `probability_check` / `confidence_check`: the cross-fitted ECEs behind each decision
      (None when no decision was made, e.g. too few reference records).
    """

    classes: tuple[str, ...]
    class_maps: tuple[IsotonicMap, ...] | None = None
    confidence_map: IsotonicMap | None = None
    probability_check: CalibrationCheck | None = None
    confidence_check: CalibrationCheck | None = None

    def __post_init__(self) -> None:
        k = len(self.classes)
        if k < 2:
            raise ValueError("a calibrator needs at least two classes")
        if self.class_maps is not None and len(self.class_maps) != (1 if k == 2 else k):
            raise ValueError(f"{k} classes need {1 if k == 2 else k} class maps")

    @classmethod
    def identity(cls, classes: Sequence[str]) -> Calibrator:
        return cls(tuple(classes))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def calibrated(self) -> bool:
        """True when `apply` changes probabilities (routing_ml_estimation_calibrated)."""
        return self.class_maps is not None

    @property
    def confidence_calibrated(self) -> bool:
        """True when `apply_confidence` changes confidences."""
        return self.confidence_map is not None

    def apply(self, probabilities: npt.ArrayLike) -> FloatArray:
        """Calibrated copy of an n x K probability array (rows summing to 1). An all-NaN row
        (no probabilities for that record) stays all-NaN."""
        p = _probability_matrix(probabilities, self.n_classes, allow_nan_rows=True)
        if self.class_maps is None:
            return p.copy()
        return _calibrate_rows(p, self.class_maps)

    def apply_confidence(self, confidence: npt.ArrayLike) -> FloatArray:
        """Calibrated copy of confidences in [0, 1]: the estimated P(correct) of each."""
        c = np.asarray(confidence, dtype=np.float64)
        if c.ndim != 1:
            raise ValueError(f"confidence must be one-dimensional, got shape {c.shape}")
        if not np.all((c >= 0.0) & (c <= 1.0)):
            raise ValueError("confidence must lie in [0, 1]")
        return c.copy() if self.confidence_map is None else self.confidence_map(c)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (plain lists, floats, strings and nulls)."""
        return {
            "format": FORMAT_VERSION,
            "classes": list(self.classes),
            "class_maps": None
            if self.class_maps is None
            else [m.to_dict() for m in self.class_maps],
            "confidence_map": None
            if self.confidence_map is None
            else self.confidence_map.to_dict(),
            "probability_check": None
            if self.probability_check is None
            else self.probability_check.to_dict(),
            "confidence_check": None
            if self.confidence_check is None
            else self.confidence_check.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        """Inverse of `to_dict`; raises ValueError on malformed input."""
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported calibrator format {data.get('format')!r}")
        classes = data.get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError("calibrator 'classes' must be a list of strings")
        raw_maps = data.get("class_maps")
        if raw_maps is not None and not isinstance(raw_maps, list):
            raise ValueError("calibrator 'class_maps' must be a list or null")
        conf = data.get("confidence_map")
        p_check = data.get("probability_check")
        c_check = data.get("confidence_check")
        return cls(
            tuple(classes),
            None if raw_maps is None else tuple(IsotonicMap.from_dict(m) for m in raw_maps),
            None if conf is None else IsotonicMap.from_dict(conf),
            None if p_check is None else CalibrationCheck.from_dict(p_check),
            None if c_check is None else CalibrationCheck.from_dict(c_check),
        )


def fit_calibrator(
    probabilities: npt.ArrayLike,
    actual: npt.ArrayLike,
    classes: Sequence[str],
    *,
    predicted: npt.ArrayLike | None = None,
    n_bins: int = DEFAULT_ECE_BINS,
    min_samples: int = DEFAULT_MIN_CALIBRATION_SAMPLES,
) -> Calibrator:
    """Fit both maps on labelled reference data and keep each only if it helps.

    `probabilities` is n x K (column k = class `classes[k]`), `actual` the n actual class
    indices, `predicted` the model's predicted indices (default: argmax of each row).

    Decision (per map, 2-fold cross-fitting): record i belongs to fold i mod 2; each fold is
    calibrated by maps fit on the other fold, and the ECE (`n_bins` equal-width bins) of these
    out-of-fold calibrated scores is compared with the ECE of the raw scores on all n records.
    The map is kept, refit on all records, only if it lowers the ECE. Probability map: the
    class-wise ECE (`classwise_ece`) of the calibrated rows. Confidence map: the ECE of the
    predicted class's probability p[i, predicted_i] against 1[predicted_i = actual_i].
    With fewer than `min_samples` records both maps are the identity.
    """
    k = len(classes)
    if k < 2:
        raise ValueError("calibration needs at least two classes")
    p = _probability_matrix(probabilities, k, allow_nan_rows=False)
    a = class_indices(actual, k, "actual")
    if a.size != p.shape[0]:
        raise ValueError(f"actual has {a.size} entries for {p.shape[0]} probability rows")
    pred = np.argmax(p, axis=1) if predicted is None else class_indices(predicted, k, "predicted")
    if pred.size != a.size:
        raise ValueError(f"predicted has {pred.size} entries for {a.size} records")
    n = a.size
    if n < max(min_samples, N_FOLDS):
        return Calibrator.identity(classes)

    confidence = p[np.arange(n), pred]
    correct = (pred == a).astype(np.float64)

    out_of_fold = np.empty_like(p)
    conf_out_of_fold = np.empty_like(confidence)
    for train, held_out in _folds(n):
        out_of_fold[held_out] = _calibrate_rows(p[held_out], _fit_class_maps(p[train], a[train]))
        conf_map = fit_isotonic(confidence[train], correct[train])
        conf_out_of_fold[held_out] = conf_map(confidence[held_out])

    probability_check = CalibrationCheck(
        _defined(classwise_ece(p, a, n_bins)), _defined(classwise_ece(out_of_fold, a, n_bins))
    )
    confidence_check = CalibrationCheck(
        _defined(expected_calibration_error(confidence, correct, n_bins)),
        _defined(expected_calibration_error(conf_out_of_fold, correct, n_bins)),
    )
    return Calibrator(
        tuple(classes),
        _fit_class_maps(p, a) if probability_check.improves else None,
        fit_isotonic(confidence, correct) if confidence_check.improves else None,
        probability_check,
        confidence_check,
    )


# --------------------------------------------------------------------------------------------
# Expected confusion and estimated metrics
# --------------------------------------------------------------------------------------------


def expected_confusion(
    predicted_idx: npt.ArrayLike, calibrated: npt.ArrayLike, n_classes: int
) -> FloatArray:
    """Expected confusion matrix of a batch: K x K floats, row = actual, column = predicted,
    E[k, j] = sum of calibrated[i, k] over the records i predicted as j.

    Additive: the matrix of a concatenation of batches is the sum of their matrices, so a time
    bucket keeps one K x K array and a window adds its buckets. Rows of `calibrated` that are
    entirely NaN (records without probabilities) count nowhere.
    """
    k = int(n_classes)
    if k < 2:
        raise ValueError("n_classes must be >= 2")
    pred = class_indices(predicted_idx, k, "predicted_idx")
    probs = _probability_matrix(calibrated, k, allow_nan_rows=True)
    if probs.shape[0] != pred.size:
        raise ValueError(f"{pred.size} predictions for {probs.shape[0]} probability rows")
    scored = ~np.all(np.isnan(probs), axis=1)
    pred, probs = pred[scored], probs[scored]
    return np.stack(
        [np.bincount(pred, weights=probs[:, actual], minlength=k) for actual in range(k)]
    ).astype(np.float64)


class EstimatedPerformance(NamedTuple):
    accuracy: float
    precision_weighted: float
    recall_weighted: float
    f1_weighted: float


def estimated_metrics(expected: npt.ArrayLike) -> EstimatedPerformance | None:
    """Accuracy and weighted precision / recall / F1 from a (expected) confusion matrix, by
    scikit-learn's formulas (`accuracy_score`, `precision_recall_fscore_support(
    average="weighted", zero_division=0)`) with counts allowed to be fractional.

    With C = expected, n = sum C, tp_k = C[k, k], actual_k = sum_j C[k, j] (row),
    predicted_k = sum_i C[i, k] (column):
    accuracy = sum_k tp_k / n; precision_k = tp_k / predicted_k (0 if predicted_k = 0);
    recall_k = tp_k / actual_k (0 if actual_k = 0); F1_k = 2 tp_k / (predicted_k + actual_k);
    each weighted average is sum_k actual_k metric_k / n. None when n = 0.
    """
    cm = np.asarray(expected, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected must be a square matrix, got shape {cm.shape}")
    if not np.all(np.isfinite(cm)) or np.any(cm < 0):
        raise ValueError("expected counts must be finite and >= 0")
    n = float(cm.sum())
    if n <= 0:
        return None
    tp = np.diag(cm)
    actual = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = predicted + actual
    f1 = np.divide(2.0 * tp, both, out=np.zeros_like(tp), where=both > 0)
    return EstimatedPerformance(
        accuracy=_unit(float(tp.sum()) / n),
        precision_weighted=_unit(float(precision @ actual) / n),
        recall_weighted=_unit(float(recall @ actual) / n),
        f1_weighted=_unit(float(f1 @ actual) / n),
    )


def estimated_accuracy_from_confidence(sum_calibrated_confidence: float, n: int) -> float | None:
    """Expected accuracy of n predictions from the sum of their calibrated confidences
    (`Calibrator.apply_confidence`): sum / n. None when n = 0."""
    if n < 0 or not math.isfinite(sum_calibrated_confidence) or sum_calibrated_confidence < 0:
        raise ValueError("n must be >= 0 and the confidence sum finite and >= 0")
    return None if n == 0 else _unit(sum_calibrated_confidence / n)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _unit(value: float) -> float:
    """Clamp float noise (1 + 1e-16) back into [0, 1]."""
    return min(max(value, 0.0), 1.0)


def _defined(value: float | None) -> float:
    if value is None:  # only reachable with no records, which callers exclude
        raise ValueError("ECE of an empty sample")
    return value


def _finite_float(value: Any, name: str) -> float:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    out = float(value) if is_number else math.nan
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


def _probability_matrix(
    values: npt.ArrayLike, n_classes: int, *, allow_nan_rows: bool
) -> FloatArray:
    p = np.asarray(values, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"probabilities must have shape (n, {n_classes}), got {p.shape}")
    nan_rows = np.all(np.isnan(p), axis=1) if allow_nan_rows else np.zeros(p.shape[0], bool)
    rest = p[~nan_rows]
    if not np.all((rest >= 0.0) & (rest <= 1.0)):
        raise ValueError(
            "probabilities must lie in [0, 1]"
            + (" (or be an all-NaN row)" if allow_nan_rows else "")
        )
    return p

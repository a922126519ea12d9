"""A model version's reference (what its inputs and outputs looked like when it was
trained or first served) and the bounded tallies of a window compared against it.

- `ModelReference`: a profile per feature (bins from reference quantiles, top-K
  categories), of the predicted class or output, of the confidence, the calibration
  for label-free estimation, and the reference latency.
- `DriftCounts`: one time bucket's counts over the reference's bins (fixed-size arrays,
  so memory never grows with the number of predictions), mergeable by `+=`.
- `drift_report`: drift, data quality and estimated performance of merged counts.

Pure numpy: no I/O, nothing about Prometheus."""

from __future__ import annotations

import functools
import itertools
import math
import operator
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from types import MappingProxyType
from typing import Any, Final, Literal, Self, TypeGuard, cast

import numpy as np
import numpy.typing as npt
from msgspec import to_builtins
from msgspec.structs import astuple

from model_health_exporter.stats import drift
from model_health_exporter.stats.compact import narrowest
from model_health_exporter.stats.estimation import (
    Calibrator,
    estimated_metrics,
    expected_confusion,
    fit_calibrator,
)
from model_health_exporter.stats.feature_stats import FeatureTable
from model_health_exporter.stats.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    build_categorical_profile,
    build_numeric_profile,
    category_key,
    profile_from_dict,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Value = str | int | float | None
Source = Literal["profile", "jsonl", "csv", "predictions"]
FORMAT: Final = 1
MAX_KNOWN_CATEGORIES: Final = 1000
"""Per categorical feature, at most this many reference categories are remembered for
the unseen-category ratio; a feature with more has no such ratio."""


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _build_profile(values: Sequence[Value], n_bins: int, top_k: int) -> Profile | None:
    """Numeric if every present value is a number (booleans are categories)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(_is_number(v) for v in present):
        return build_numeric_profile([float(v) if _is_number(v) else None for v in values], n_bins)
    return build_categorical_profile([category_key(v) for v in values], top_k)


@dataclass(frozen=True, slots=True, weakref_slot=True)  # shared: state.shared_references
class ModelReference:
    source: Source
    n: int  # rows
    features: Mapping[str, Profile]  # sorted by name
    prediction: Profile | None = None  # predicted class (categorical) or output (numeric)
    confidence: NumericProfile | None = None
    calibrator: Calibrator | None = None
    latency_mean: float | None = None  # seconds
    dropped_features: int = 0  # over the feature limit
    # categorical feature -> every category of the reference, sorted (absent: too many to
    # keep). A tuple: a frozenset of 30 strings takes 2 KiB, and lookups go through the
    # category codes (`_category_codes`), which hold every one of them.
    known_categories: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # [the categorical features' codes], built with the reference (`_category_codes`)
    _codes: list[_CategoryCodes] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    # [bin_sizes], once built
    _sizes: list[tuple[int, ...]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # The codes are built now so that their shared key tuples can stand in for
        # equal known-category tuples: versions of a model mostly know the same ones.
        codes = _category_codes(self)
        known = dict(self.known_categories)
        for name, positions in zip(codes.names, codes.positions, strict=True):
            if known.get(name) == positions.categories:
                known[name] = positions.categories
        object.__setattr__(self, "known_categories", MappingProxyType(known))

    @property
    def bin_sizes(self) -> tuple[int, ...]:
        """Bins per feature, in feature order: one tuple, shared by every bucket's counts."""
        if not self._sizes:
            self._sizes.append(tuple(p.n_bins for p in self.features.values()))
        return self._sizes[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "source": self.source,
            "n": self.n,
            "features": {k: p.to_dict() for k, p in self.features.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "confidence": None if self.confidence is None else self.confidence.to_dict(),
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
            "latency_mean": self.latency_mean,
            "dropped_features": self.dropped_features,
            "known_categories": {k: sorted(v) for k, v in self.known_categories.items()},
        }

    @property
    def feature_kinds(self) -> tuple[bool, ...]:
        """Whether each feature is numeric, in order."""
        return tuple(isinstance(p, NumericProfile) for p in self.features.values())

    def feature_schema(self) -> tuple[tuple[str, bool], ...]:
        """(name, numeric) of each feature, in order: what a typed decode of log lines
        against this reference declares (`records.typed_decoder`)."""
        return tuple((name, isinstance(p, NumericProfile)) for name, p in self.features.items())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Source | None = None) -> Self:
        """Raises ValueError (with the key) on anything malformed."""
        if data.get("format") != FORMAT:
            raise ValueError(f"format: expected {FORMAT}, got {data.get('format')!r}")
        try:
            features = {str(k): profile_from_dict(v) for k, v in dict(data["features"]).items()}
            prediction = data.get("prediction")
            confidence = data.get("confidence")
            calibrator = data.get("calibrator")
            latency = data.get("latency_mean")
            conf_profile = None if confidence is None else profile_from_dict(confidence)
            if conf_profile is not None and not isinstance(conf_profile, NumericProfile):
                raise ValueError("confidence: expected a numeric profile")
            return cls(
                source=source or data["source"],
                n=int(data["n"]),
                features=MappingProxyType(dict(sorted(features.items()))),
                prediction=None if prediction is None else profile_from_dict(prediction),
                confidence=conf_profile,
                calibrator=None if calibrator is None else Calibrator.from_dict(calibrator),
                latency_mean=None if latency is None else float(latency),
                dropped_features=int(data.get("dropped_features", 0)),
                known_categories=MappingProxyType(
                    {
                        str(k): tuple(sorted({sys.intern(str(c)) for c in v}))
                        for k, v in dict(data.get("known_categories", {})).items()
                    }
                ),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"reference profile: missing or malformed {exc}") from None


def build_reference(
    source: Source,
    features: Sequence[Mapping[str, Value]],
    *,
    labels: Sequence[str | None] = (),
    values: Sequence[float | None] = (),
    probabilities: Sequence[Mapping[str, float] | None] = (),
    confidences: Sequence[float | None] = (),
    actuals: Sequence[Value | bool] = (),
    latencies: Sequence[float | None] = (),
    n_bins: int = 20,
    top_k: int = 20,
    max_features: int = 50,
    max_classes: int = 10,
) -> ModelReference:
    """The reference of a sample, one entry per row in each sequence (shorter ones are
    read as absent). Features beyond `max_features` (by name) are left out and counted."""
    names = sorted({name for row in features for name in row})
    kept, dropped = names[:max_features], max(0, len(names) - max_features)
    profiles: dict[str, Profile] = {}
    known: dict[str, tuple[str, ...]] = {}
    for name in kept:
        column = [row.get(name) for row in features]
        profile = _build_profile(column, n_bins, top_k)
        if profile is None:
            continue
        profiles[name] = profile
        if isinstance(profile, CategoricalProfile):
            seen = {key for v in column if (key := category_key(v)) is not None}
            if len(seen) <= MAX_KNOWN_CATEGORIES:
                known[name] = tuple(sorted(map(sys.intern, seen)))  # shared, as the profile's
    prediction: Profile | None = None
    if any(v is not None for v in values):
        prediction = build_numeric_profile(list(values), n_bins)
    elif any(v is not None for v in labels):
        prediction = build_categorical_profile(list(labels), max_classes)
    confidence = (
        build_numeric_profile(list(confidences), n_bins)
        if any(c is not None for c in confidences)
        else None
    )
    known_latencies = [x for x in latencies if x is not None]
    return ModelReference(
        source=source,
        n=len(features),
        features=MappingProxyType(profiles),
        prediction=prediction,
        confidence=confidence,
        calibrator=_calibrator(labels, probabilities, confidences, actuals, max_classes),
        latency_mean=float(np.mean(known_latencies)) if known_latencies else None,
        dropped_features=dropped,
        known_categories=MappingProxyType(known),
    )


def _calibrator(
    labels: Sequence[str | None],
    probabilities: Sequence[Mapping[str, float] | None],
    confidences: Sequence[float | None],
    actuals: Sequence[Value | bool],
    max_classes: int,
) -> Calibrator | None:
    """Calibration from the labelled rows that carry probabilities (or at least the
    confidence of the predicted class); None without labelled classification rows."""
    rows = [
        (lab, probs, conf, act)
        for lab, probs, conf, act in zip(labels, probabilities, confidences, actuals, strict=False)
        if lab is not None and act is not None and (probs is not None or conf is not None)
    ]
    if len(rows) < 20:
        return None
    counts: dict[str, int] = {}
    for lab, probs, _, act in rows:
        for c in (lab, category_key(act), *(probs or {})):
            if c is not None:
                counts[c] = counts.get(c, 0) + 1
    classes = sorted(counts, key=lambda c: (-counts[c], c))[:max_classes]
    ordered = sorted(classes)
    index = {c: i for i, c in enumerate(ordered)}
    matrix = np.zeros((len(rows), len(ordered)))
    actual_idx = np.full(len(rows), -1, dtype=np.int64)
    predicted_idx = np.full(len(rows), -1, dtype=np.int64)
    for i, (lab, probs, conf, act) in enumerate(rows):
        actual_idx[i] = index.get(category_key(act) or "", -1)
        predicted_idx[i] = index.get(lab, -1)
        if probs is not None:
            for c, p in probs.items():
                if c in index:
                    matrix[i, index[c]] = p
        elif predicted_idx[i] >= 0 and conf is not None:
            # Only the top class's confidence: spread the rest evenly over the others.
            k = len(ordered)
            matrix[i, :] = (1.0 - conf) / max(k - 1, 1)
            matrix[i, predicted_idx[i]] = conf
    usable = (actual_idx >= 0) & (predicted_idx >= 0) & (matrix.sum(axis=1) > 0)
    if usable.sum() < 20 or len(ordered) < 2:
        return None
    matrix = matrix[usable] / matrix[usable].sum(axis=1, keepdims=True)
    return fit_calibrator(matrix, actual_idx[usable], ordered, predicted=predicted_idx[usable])


# --------------------------------------------------------------------------------------------
# Window tallies against a reference
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class DriftCounts:
    """One bucket's counts over a reference's bins. Arrays are per feature in the
    reference's (sorted) feature order. The features' bin counts are views into one
    flat array, so merging buckets is one addition, not one per feature.

    `compact` makes counts that will not change again small: integer arrays in the
    narrowest unsigned type that holds them, no views kept (a window's closed buckets,
    about 60 per version by default; `copy` gives int64 arrays again)."""

    flat: IntArray  # every feature's bin counts, one after the other
    sizes: tuple[int, ...]  # bins per feature (the reference's tuple, shared)
    missing: IntArray  # per feature: absent or null
    invalid_type: IntArray  # per feature: a string for a numeric feature
    unseen: IntArray  # per feature: a category the reference never had
    minmax: FloatArray  # per feature: [min, max] seen (numeric; NaN until seen)
    rows: int = 0  # predictions with features
    prediction_counts: IntArray | None = None
    prediction_sum: float = 0.0
    prediction_n: int = 0
    confidence_counts: IntArray | None = None
    confidence_sum: float = 0.0
    confidence_n: int = 0
    expected: FloatArray | None = None  # expected confusion (actual x predicted), CBPE
    expected_n: int = 0
    calibrated_confidence_sum: float = 0.0  # rows with a confidence only
    calibrated_confidence_n: int = 0
    _views: tuple[IntArray, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def feature_counts(self) -> tuple[IntArray, ...]:
        """Views of `flat`, one per feature (kept while the counts are not compacted)."""
        views = self._views
        if views is None:
            views = self._views = _views_of(self.flat, self.sizes)
        return views

    def compact(self) -> None:
        """Hold these counts, which will not change again, in less memory."""
        self._views = None
        self.flat = narrowest(self.flat)
        self.missing = narrowest(self.missing)
        self.invalid_type = narrowest(self.invalid_type)
        self.unseen = narrowest(self.unseen)
        if self.prediction_counts is not None:
            self.prediction_counts = narrowest(self.prediction_counts)
        if self.confidence_counts is not None:
            self.confidence_counts = narrowest(self.confidence_counts)

    @classmethod
    def empty(cls, reference: ModelReference) -> Self:
        n_features = len(reference.features)
        calibrator = reference.calibrator
        sizes = reference.bin_sizes
        return cls(
            flat=np.zeros(sum(sizes), np.int64),
            sizes=sizes,
            missing=np.zeros(n_features, np.int64),
            invalid_type=np.zeros(n_features, np.int64),
            unseen=np.zeros(n_features, np.int64),
            minmax=np.full((n_features, 2), np.nan),
            prediction_counts=(
                None
                if reference.prediction is None
                else np.zeros(reference.prediction.n_bins, np.int64)
            ),
            confidence_counts=(
                None
                if reference.confidence is None
                else np.zeros(reference.confidence.n_bins, np.int64)
            ),
            expected=(
                None
                if calibrator is None
                else np.zeros((len(calibrator.classes), len(calibrator.classes)))
            ),
        )

    # ---- adding -------------------------------------------------------------------------

    def add_rows(self, reference: ModelReference, rows: Sequence[Any]) -> None:
        """Tally successful predictions (`records.Prediction`), vectorised per column."""
        if not rows:
            return
        features = [r.features for r in rows if r.features is not None]
        self.rows += len(features)
        absent = len(rows) - len(features)  # rows without features miss every feature
        self.missing += absent
        columns, typed = _columns(features, list(reference.features))
        self.add_columns(reference, columns, typed)
        self._add_outputs(reference, rows)

    def add_columns(
        self, reference: ModelReference, columns: Sequence[Sequence[Value]], typed: bool = False
    ) -> None:
        """Add a block of feature values, one column per reference feature in its order.
        `typed`: the columns hold only what a typed decode lets through
        (`records.typed_decoder`): numbers or None for a numeric feature, strings or
        None for a categorical one, so no value needs a type check."""
        if typed and columns and len(columns[0]):
            self._add_typed(reference, columns)
            return
        for i, ((name, profile), column) in enumerate(
            zip(reference.features.items(), columns, strict=True)
        ):
            if isinstance(profile, NumericProfile):
                self._add_numeric(i, profile, column, typed)
            else:
                known = reference.known_categories.get(name)
                codes = _category_codes(reference).of(name)
                self._add_categorical(i, profile, column, codes, known, typed=typed)

    def _add_typed(self, reference: ModelReference, columns: Sequence[Sequence[Value]]) -> None:
        """`add_columns` of typed columns (all of one length), every numeric feature in
        one array and every categorical one in one count: numpy's per-call cost once a
        block, not once per feature. The same counts as feature by feature."""
        n = len(columns[0])
        layout = _typed_layout(reference.bin_sizes, reference.feature_kinds)
        profiles = list(reference.features.items())
        numeric = layout.numeric
        if numeric.size:
            # features x rows; None becomes NaN (JSON has none): missing
            values = np.array([columns[i] for i in layout.numeric_list], dtype=np.float64)
            absent = np.isnan(values).sum(axis=1)
            self.missing[numeric] += absent
            values.sort(axis=1)  # NaN last
            present = n - absent
            # per feature: how many of its values lie below each edge, then all of them
            cuts = [
                part
                for row, i, count in zip(values, layout.numeric_list, present.tolist(), strict=True)
                for part in (
                    row[:count].searchsorted(cast("NumericProfile", profiles[i][1]).edges),
                    (count,),
                )
            ]
            upper = np.concatenate(cuts)
            lower = np.empty_like(upper)
            lower[1:] = upper[:-1]
            lower[layout.first_bins] = 0
            self.flat[layout.numeric_bins] += upper - lower
            last = values[np.arange(numeric.size), np.maximum(present - 1, 0)]
            minmax = self.minmax[numeric]  # a copy (fancy index): set back below
            self.minmax[numeric] = np.stack(
                [np.fmin(minmax[:, 0], values[:, 0]), np.fmax(minmax[:, 1], last)], axis=1
            )
        categorical = layout.categorical_list
        if categorical:
            codes = _category_codes(reference)
            each_position = itertools.chain.from_iterable(
                map(p.__getitem__, columns[i])
                for i, p in zip(categorical, codes.positions, strict=True)
            )
            if codes.byte_positions:
                # positions under 256: bytes() packs each in C, without numpy's
                # conversion of every Python int (a third fewer instructions a value)
                packed: npt.NDArray[Any] = np.frombuffer(bytes(each_position), np.uint8)
            else:
                packed = np.fromiter(each_position, np.int64, n * len(categorical))
            # each feature's positions into its part of the table, its codes shifted
            # into its own range of one count
            coded = (
                codes.table[packed.reshape(len(categorical), n) + codes.starts]
                + layout.code_offsets
            )
            counted = np.bincount(coded.ravel(), minlength=layout.code_span)
            unseen = counted[layout.unseen_codes]
            self.flat[layout.categorical_bins] += counted[layout.seen_codes] + unseen
            self.unseen[layout.categorical] += np.add.reduceat(unseen, layout.unseen_starts)
            self.missing[layout.categorical] += counted[layout.missing_codes]

    def _add_numeric(
        self, i: int, profile: NumericProfile, column: Sequence[Value], typed: bool
    ) -> None:
        kinds = _NUMERIC_OR_NONE if typed else set(map(type, column))
        if kinds <= _NUMERIC_OR_NONE:  # the usual case, converted in one call
            values = np.array(column, dtype=np.float64)  # None becomes NaN (JSON has none)
            if type(None) in kinds:
                present = ~np.isnan(values)
                self.missing[i] += values.size - int(present.sum())
                values = values[present]
        else:  # strings or booleans for a numeric feature
            self.missing[i] += column.count(None)
            self.invalid_type[i] += sum(1 for v in column if v is not None and not _is_number(v))
            values = np.asarray([float(v) for v in column if _is_number(v)], dtype=np.float64)
        if values.size:
            bins = self.feature_counts[i]  # a view: added to in place
            bins += profile.bin_counts(values)
            low, high = self.minmax[i]
            self.minmax[i] = (np.fmin(low, values.min()), np.fmax(high, values.max()))

    def _add_categorical(
        self,
        i: int,
        profile: CategoricalProfile,
        column: Sequence[Value],
        codes: tuple[_Positions, npt.NDArray[np.signedinteger[Any]]],
        known: tuple[str, ...] | None,
        *,
        typed: bool,
    ) -> None:
        n = profile.n_bins
        positions, table = codes
        coded = table[np.fromiter(map(positions.__getitem__, column), np.int64, len(column))]
        # typed: strings and None only, each with a code
        counted = np.bincount(coded if typed else coded[coded >= 0], minlength=3 * n)
        counts = self.feature_counts[i]  # a view: added to in place
        counts += counted[:n] + counted[n : 2 * n]
        self.unseen[i] += int(counted[n : 2 * n].sum())
        self.missing[i] += int(counted[2 * n])
        uncoded = np.empty(0, np.intp) if typed else np.flatnonzero(coded < 0)
        if uncoded.size:  # numbers, booleans, strings the reference never had
            bins = [0] * n
            unseen = 0
            known_set = None if known is None else frozenset(known)
            for j in uncoded.tolist():
                key = category_key(column[j])
                if key is None:
                    continue  # NaN: neither counted nor missing
                bins[profile.index_of(key)] += 1
                unseen += known_set is not None and key not in known_set
            counts += np.asarray(bins, dtype=np.int64)
            self.unseen[i] += unseen

    def _add_outputs(self, reference: ModelReference, rows: Sequence[Any]) -> None:
        predicted = reference.prediction
        labels: Counter[str | None] = Counter(map(_LABEL, rows))
        if isinstance(predicted, NumericProfile) and self.prediction_counts is not None:
            values = np.asarray([r.value for r in rows if r.value is not None], dtype=float)
            if values.size:
                self.prediction_counts += predicted.bin_counts(values)
                self.prediction_sum += float(values.sum())
                self.prediction_n += int(values.size)
        elif isinstance(predicted, CategoricalProfile) and self.prediction_counts is not None:
            bins = [0] * predicted.n_bins
            for label, n in labels.items():
                if label is not None:
                    bins[predicted.index_of(label)] += n
            self.prediction_counts += np.asarray(bins, dtype=np.int64)
        column = list(map(_CONFIDENCE, rows))
        # None becomes NaN (a confidence never is one), so one pass finds the missing
        confidences = np.fromiter(column, np.float64, len(column))
        given = ~np.isnan(confidences)
        if not given.all():
            confidences = confidences[given]
        profile = reference.confidence
        if profile is not None and self.confidence_counts is not None and confidences.size:
            self.confidence_counts += profile.bin_counts(confidences)
        self.confidence_sum += float(confidences.sum())
        self.confidence_n += int(confidences.size)
        self._add_estimation(reference.calibrator, rows, labels, column)

    def _add_estimation(
        self,
        calibrator: Calibrator | None,
        rows: Sequence[Any],
        labels: Counter[str | None],
        confidences: list[float | None],
    ) -> None:
        """`labels` counts the rows' labels, `confidences` is the rows' column."""
        if calibrator is None or self.expected is None:
            # Uncalibrated: the model's own confidence is the estimate of being right.
            if None not in labels:
                estimates = list(filter(None, confidences))  # the given, non-zero ones
            elif len(labels) == 1:
                estimates = []  # no row with a class
            else:
                estimates = [
                    c
                    for label, c in zip(map(_LABEL, rows), confidences, strict=True)
                    if label and c
                ]
            self.calibrated_confidence_sum += float(sum(estimates))
            self.calibrated_confidence_n += len(estimates)
            return
        index = {c: i for i, c in enumerate(calibrator.classes)}
        with_probs = [r for r in rows if r.probabilities is not None and r.label in index]
        if with_probs:
            classes = calibrator.classes
            matrix = np.array(
                [[r.probabilities.get(c, 0.0) for c in classes] for r in with_probs],
                dtype=np.float64,
            ).reshape(len(with_probs), len(classes))
            total = matrix.sum(axis=1, keepdims=True)
            matrix = np.divide(matrix, total, out=np.zeros_like(matrix), where=total > 0)
            predicted = np.asarray([index[r.label] for r in with_probs], dtype=np.int64)
            self.expected += expected_confusion(predicted, calibrator.apply(matrix), len(index))
            self.expected_n += len(with_probs)
        only_confidence = [
            r.confidence
            for r in rows
            if r.probabilities is None and r.label is not None and r.confidence is not None
        ]
        if only_confidence:
            calibrated = calibrator.apply_confidence(np.asarray(only_confidence))
            self.calibrated_confidence_sum += float(calibrated.sum())
            self.calibrated_confidence_n += len(only_confidence)

    # ---- merging and checkpoints --------------------------------------------------------

    def __iadd__(self, other: DriftCounts) -> Self:
        # Written out field by field: merging 12 buckets of 1,000 versions makes this hot.
        self.flat += other.flat  # every feature's bins at once
        self.missing += other.missing
        self.invalid_type += other.invalid_type
        self.unseen += other.unseen
        low, high = self.minmax[:, 0], self.minmax[:, 1]  # views: updated in place
        np.fmin(low, other.minmax[:, 0], out=low)
        np.fmax(high, other.minmax[:, 1], out=high)
        if self.prediction_counts is not None and other.prediction_counts is not None:
            self.prediction_counts += other.prediction_counts
        if self.confidence_counts is not None and other.confidence_counts is not None:
            self.confidence_counts += other.confidence_counts
        if self.expected is not None and other.expected is not None:
            self.expected += other.expected
        self.rows += other.rows
        self.prediction_sum += other.prediction_sum
        self.prediction_n += other.prediction_n
        self.confidence_sum += other.confidence_sum
        self.confidence_n += other.confidence_n
        self.expected_n += other.expected_n
        self.calibrated_confidence_sum += other.calibrated_confidence_sum
        self.calibrated_confidence_n += other.calibrated_confidence_n
        return self

    def subtract_counts(self, other: DriftCounts) -> None:
        """Take the integer counts of `other`, merged in before, out again (exact); the
        rest (`set_inexact`) cannot be taken out."""
        self.flat -= other.flat
        self.missing -= other.missing
        self.invalid_type -= other.invalid_type
        self.unseen -= other.unseen
        if self.prediction_counts is not None and other.prediction_counts is not None:
            self.prediction_counts -= other.prediction_counts
        if self.confidence_counts is not None and other.confidence_counts is not None:
            self.confidence_counts -= other.confidence_counts
        self.rows -= other.rows
        self.prediction_n -= other.prediction_n
        self.confidence_n -= other.confidence_n
        self.expected_n -= other.expected_n
        self.calibrated_confidence_n -= other.calibrated_confidence_n

    def set_inexact(self, parts: Sequence[DriftCounts]) -> None:
        """Set what `subtract_counts` leaves (minima, maxima, sums of floats) to what
        adding `parts` in order to a copy of the first gives, as `+=` does."""
        first = parts[0]
        stacked = np.stack([p.minmax for p in parts])  # order-free: NaN until seen
        self.minmax = np.stack(
            (np.fmin.reduce(stacked[:, :, 0]), np.fmax.reduce(stacked[:, :, 1])), axis=1
        )
        if self.expected is not None and first.expected is not None:
            expected = first.expected.copy()
            for part in parts[1:]:
                if part.expected is not None:
                    expected += part.expected
            self.expected = expected
        prediction_sum, confidence_sum = first.prediction_sum, first.confidence_sum
        calibrated_sum = first.calibrated_confidence_sum
        for part in parts[1:]:
            prediction_sum += part.prediction_sum
            confidence_sum += part.confidence_sum
            calibrated_sum += part.calibrated_confidence_sum
        self.prediction_sum, self.confidence_sum = prediction_sum, confidence_sum
        self.calibrated_confidence_sum = calibrated_sum

    def copy(self) -> DriftCounts:
        """A copy that can be added to: int64 counts (astype copies)."""
        return DriftCounts(
            self.flat.astype(np.int64),
            self.sizes,
            self.missing.astype(np.int64),
            self.invalid_type.astype(np.int64),
            self.unseen.astype(np.int64),
            self.minmax.copy(),
            prediction_counts=None
            if self.prediction_counts is None
            else self.prediction_counts.astype(np.int64),
            confidence_counts=None
            if self.confidence_counts is None
            else self.confidence_counts.astype(np.int64),
            expected=None if self.expected is None else self.expected.copy(),
            **{name: getattr(self, name) for name in _SCALARS},
        )

    def to_dict(self) -> dict[str, Any]:
        def arr(a: npt.NDArray[Any] | None) -> Any:
            return None if a is None else a.tolist()

        return {
            # not `feature_counts`: compacted counts keep no views
            "feature_counts": [c.tolist() for c in _views_of(self.flat, self.sizes)],
            "missing": self.missing.tolist(),
            "invalid_type": self.invalid_type.tolist(),
            "unseen": self.unseen.tolist(),
            "minmax": [[None if math.isnan(x) else x for x in mm] for mm in self.minmax.tolist()],
            "prediction_counts": arr(self.prediction_counts),
            "confidence_counts": arr(self.confidence_counts),
            "expected": arr(self.expected),
            **{name: getattr(self, name) for name in _SCALARS},
        }

    @classmethod
    def from_dict(cls, reference: ModelReference, data: Mapping[str, Any]) -> Self:
        """Raises ValueError when the counts do not fit the reference's bins."""
        counts = cls.empty(reference)
        loaded = [np.asarray(c, dtype=np.int64) for c in data["feature_counts"]]
        if [c.shape for c in loaded] != [c.shape for c in counts.feature_counts]:
            raise ValueError("drift counts do not match the reference's bins")
        for view, values in zip(counts.feature_counts, loaded, strict=True):
            view[:] = values
        counts.missing = np.asarray(data["missing"], dtype=np.int64).reshape(counts.missing.shape)
        counts.invalid_type = np.asarray(data["invalid_type"], dtype=np.int64).reshape(
            counts.invalid_type.shape
        )
        counts.unseen = np.asarray(data["unseen"], dtype=np.int64).reshape(counts.unseen.shape)
        counts.minmax = np.asarray(
            [[np.nan if x is None else x for x in mm] for mm in data["minmax"]], dtype=float
        ).reshape(counts.minmax.shape)
        for name in ("prediction_counts", "confidence_counts", "expected"):
            mine, theirs = getattr(counts, name), data.get(name)
            if (mine is None) != (theirs is None):
                raise ValueError(f"drift counts: {name} does not match the reference")
            if mine is not None:
                setattr(counts, name, np.asarray(theirs, dtype=mine.dtype).reshape(mine.shape))
        for name in _SCALARS:
            setattr(counts, name, type(getattr(counts, name))(data[name]))
        return counts


_NUMERIC_OR_NONE: Final = frozenset({int, float, type(None)})
_LABEL: Final = operator.attrgetter("label")
_CONFIDENCE: Final = operator.attrgetter("confidence")


class _Positions(dict[Value, int]):
    """Where each value a categorical feature's code table has a code for sits in the
    table: each of `categories` (sorted strings) in turn, then None; any other string at
    `unknown_string`, any other value at `other`. One dict for every feature of every
    reference whose table has these keys (`_positions`): versions of a model mostly
    know the same categories in a different order of frequency, so each keeps only its
    table of codes (`_CategoryCodes`), a few bytes a category, and not a dict of its
    own. A dict, so that one C-level `map` over a column finds the positions. Unknown
    values are not added: the dict must not grow with traffic."""

    __slots__ = ("__weakref__", "categories", "other", "unknown_string")

    def __init__(self, categories: tuple[str, ...]) -> None:
        super().__init__({c: i for i, c in enumerate(categories)})
        self[None] = len(categories)
        self.categories = categories  # the key of `_positions_by_keys`, shared with it
        self.unknown_string = len(categories) + 1
        self.other = len(categories) + 2

    def __missing__(self, value: object) -> int:
        return self.unknown_string if type(value) is str else self.other


_positions_by_keys: weakref.WeakValueDictionary[tuple[str, ...], _Positions] = (
    weakref.WeakValueDictionary()
)
_positions_lock = threading.Lock()


def _positions(keys: tuple[str, ...]) -> _Positions:
    with _positions_lock:
        positions = _positions_by_keys.get(keys)
        if positions is None:
            positions = _Positions(keys)
            _positions_by_keys[keys] = positions
        return positions


@dataclass(frozen=True, slots=True)
class _CategoryCodes:
    """The codes of a reference's categorical features (in feature order): for each, the
    shared positions of the values it has a code for and, in one table, its code for
    each position (see `_category_codes`)."""

    names: tuple[str, ...]
    positions: tuple[_Positions, ...]
    table: npt.NDArray[np.signedinteger[Any]]
    starts: IntArray  # column: where each feature's codes start in the table
    byte_positions: bool  # every position fits a byte

    def of(self, name: str) -> tuple[_Positions, npt.NDArray[np.signedinteger[Any]]]:
        """A feature's positions and its part of the table."""
        j = self.names.index(name)
        start = int(self.starts[j, 0])
        positions = self.positions[j]
        return positions, self.table[start : start + positions.other + 1]


def _category_codes(reference: ModelReference) -> _CategoryCodes:
    """For each categorical feature, a code per value the reference knows: its bin b, or
    b + n_bins if it counts as unseen (a top-K category missing from the known ones),
    2 * n_bins for None; a string it never had is an unseen category of the "other" bin;
    any other value -1. Only strings and None are keys: True == 1 == 1.0 as dict keys
    while their categories differ, so other values are keyed one by one."""
    if reference._codes:
        return reference._codes[0]
    names: list[str] = []
    positions: list[_Positions] = []
    tables: list[list[int]] = []
    for name, profile in reference.features.items():
        if not isinstance(profile, CategoricalProfile):
            continue
        known = reference.known_categories.get(name)
        n = profile.n_bins
        offset = 0 if known is None else n
        bins = {c: b for b, c in enumerate(profile.categories)}  # as profile.index_of
        codes: dict[Value, int] = {c: b + offset for c, b in bins.items()}
        codes.update({c: bins.get(c, profile.other_index) for c in known or ()})
        codes[None] = 2 * n
        keys = tuple(sorted(c for c in codes if isinstance(c, str)))
        found = _positions(keys)
        table = [0] * (found.other + 1)
        for value, code in codes.items():
            table[found[value]] = code
        table[found.unknown_string] = profile.other_index + offset
        table[found.other] = -1
        names.append(name)
        positions.append(found)
        tables.append(table)
    flat = list(itertools.chain.from_iterable(tables))
    sizes = np.asarray([len(t) for t in tables], dtype=np.int64)
    built = _CategoryCodes(
        names=tuple(names),
        positions=tuple(positions),
        # codes are at most 2 n_bins: two bytes each unless a feature has 16,384 bins
        table=np.asarray(flat, dtype=np.int16 if max(flat, default=0) < 2**15 else np.int64),
        starts=(np.cumsum(sizes) - sizes)[:, None],
        byte_positions=max((p.other for p in positions), default=0) <= 255,
    )
    reference._codes.append(built)
    return built


@dataclass(frozen=True, slots=True)
class _TypedLayout:
    """Where `DriftCounts._add_typed` puts the features of references with these bin
    sizes and kinds: index arrays into the counts' vectors. Cached by layout, not kept
    per reference, so versions whose references differ only in their bins' edges and
    categories share one (memory per version counts)."""

    numeric: IntArray  # the numeric features' indices
    numeric_list: list[int]
    numeric_bins: IntArray  # their bins' positions in DriftCounts.flat, feature by feature
    first_bins: IntArray  # where each feature's bins start among those
    categorical: IntArray  # the categorical features' indices
    categorical_list: list[int]
    code_offsets: IntArray  # column: where each one's 3 x n_bins codes start in one count
    code_span: int
    seen_codes: IntArray  # in that count: each one's codes b, then b + n_bins, then 2 n_bins
    unseen_codes: IntArray
    missing_codes: IntArray
    unseen_starts: IntArray  # where each feature's starts among the unseen codes
    categorical_bins: IntArray  # their bins' positions in DriftCounts.flat


def _ranges(begins: IntArray, sizes: IntArray) -> IntArray:
    """begins[k], begins[k] + 1, ..., begins[k] + sizes[k] - 1, for each k in turn."""
    firsts = np.cumsum(sizes) - sizes
    out: IntArray = np.repeat(begins - firsts, sizes) + np.arange(int(sizes.sum()))
    return out


@functools.lru_cache(maxsize=256)
def _typed_layout(sizes: tuple[int, ...], numeric: tuple[bool, ...]) -> _TypedLayout:
    starts = np.cumsum((0, *sizes))[:-1]
    bins = np.asarray(sizes, dtype=np.int64)
    kinds = np.asarray(numeric, dtype=np.bool_)
    num = np.flatnonzero(kinds)
    cat = np.flatnonzero(~kinds)
    num_sizes, cat_sizes = bins[num], bins[cat]
    code_starts = np.cumsum(3 * cat_sizes) - 3 * cat_sizes
    seen = _ranges(code_starts, cat_sizes)
    return _TypedLayout(
        numeric=num,
        numeric_list=num.tolist(),
        numeric_bins=_ranges(starts[num], num_sizes),
        first_bins=np.cumsum(num_sizes) - num_sizes,
        categorical=cat,
        categorical_list=cat.tolist(),
        code_offsets=code_starts[:, None],
        code_span=int((3 * cat_sizes).sum()),
        seen_codes=seen,
        unseen_codes=seen + np.repeat(cat_sizes, cat_sizes),
        missing_codes=code_starts + 2 * cat_sizes,
        unseen_starts=np.cumsum(cat_sizes) - cat_sizes,
        categorical_bins=_ranges(starts[cat], cat_sizes),
    )


def _columns(features: list[Any], names: list[str]) -> tuple[list[Sequence[Value]], bool]:
    """Per name, its value in each of `features` (None where absent): dicts, or structs
    of a typed decode (`records.typed_decoder`), in any mix. True with them if every row
    was such a struct of these names (see `DriftCounts.add_columns`)."""
    if not names or not features:
        return [[] for _ in names], False
    kinds = set(map(type, features))
    if dict in kinds and len(kinds) == 1:
        return _dict_columns(features, names), False
    columns: list[Sequence[Value]] = [[] for _ in names]
    typed = False
    for kind in kinds:
        rows = features if len(kinds) == 1 else [f for f in features if type(f) is kind]
        if kind is dict:
            part = _dict_columns(cast("list[dict[str, Value]]", rows), names)
        elif (fields := getattr(kind, "__struct_encode_fields__", None)) == tuple(names):
            # a struct of this reference's features, in its order: one C-level call a row
            part = list(zip(*map(astuple, rows), strict=True))
            typed = len(kinds) == 1
        elif fields is not None and len(fields) == len(names) and set(fields) == set(names):
            # the same features in another order (the order the lines write them in)
            by_field = list(zip(*map(astuple, rows), strict=True))
            position = {f: i for i, f in enumerate(fields)}
            part = [by_field[position[name]] for name in names]
            typed = len(kinds) == 1
        else:  # a struct of another reference's features (it changed since the decode)
            part = _dict_columns([to_builtins(f) for f in rows], names)
        if len(kinds) == 1:
            return part, typed
        columns = [[*column, *values] for column, values in zip(columns, part, strict=True)]
    return columns, False


def _dict_columns(features: list[dict[str, Value]], names: list[str]) -> list[Sequence[Value]]:
    # Measured per row of 8 features: one itemgetter call and a transpose 0.30 µs,
    # checking the rows' key order and transposing their values 0.53 µs.
    if len(names) > 1:
        try:  # every row has every feature: one lookup call per row, then a transpose
            return list(zip(*map(operator.itemgetter(*names), features), strict=True))
        except KeyError:
            pass
    get = cast("Callable[[dict[str, Value], str], Value]", dict.get)  # C-level, no lambda
    return [list(map(get, features, repeat(name))) for name in names]


def _views_of(flat: IntArray, sizes: Sequence[int]) -> tuple[IntArray, ...]:
    """The views of each feature's bins in `flat`."""
    offsets = itertools.accumulate(sizes, initial=0)
    # a tuple of arrays: untracked by the cyclic GC after its first pass, unlike a list
    return tuple(flat[a:b] for a, b in itertools.pairwise(offsets))


_SCALARS: Final = (
    "rows",
    "prediction_sum",
    "prediction_n",
    "confidence_sum",
    "confidence_n",
    "expected_n",
    "calibrated_confidence_sum",
    "calibrated_confidence_n",
)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriftSettings:
    method: drift.DriftMethod = drift.DEFAULT_DRIFT_METHOD
    threshold: float | None = None  # the method's default
    correction: drift.Correction = drift.DEFAULT_CORRECTION
    min_samples: int = 100


@dataclass(frozen=True, slots=True)
class DriftReport:
    features: Mapping[str, Mapping[str, float]]  # feature -> statistic -> value
    metrics: Mapping[str, float]  # window-wide values
    rows: int


def _ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else float(part) / whole


_NumericJob = tuple[str, NumericProfile, IntArray, float | None, float | None]
_CategoricalJob = tuple[str, CategoricalProfile, IntArray]
# Keys of the model's outputs among the features' in one batch; no feature name has a NUL.
_PREDICTION_KEY: Final = "\0prediction"
_CONFIDENCE_KEY: Final = "\0confidence"


def drift_report(
    reference: ModelReference, counts: DriftCounts, settings: DriftSettings
) -> DriftReport:
    """Everything the window says against its reference; statistics from fewer than
    `settings.min_samples` rows are left out (sample counts are always there)."""
    return drift_reports([(reference, counts, settings)])[0]


def drift_reports(
    windows: Sequence[tuple[ModelReference, DriftCounts, DriftSettings]],
) -> list[DriftReport]:
    """`drift_report` of many windows, each against its own reference. The drift of every
    feature, prediction and confidence of all of them is computed in one batch per kind
    (`drift.numeric_drift_many`, `drift.categorical_drift_many`): numpy's cost per call,
    not the arithmetic, is what recomputing thousands of small windows spends."""
    return _reports(windows, None)


def drift_flag_reports(
    windows: Sequence[tuple[ModelReference, DriftCounts, DriftSettings]],
) -> list[DriftReport]:
    """What fast alerts read of each window, in batches like `drift_reports`: each
    feature's drift flag (its only statistic), the drift share and the label-free
    estimates. Each feature's test computes only what the window's drift method's flag
    reads (the KS or chi-squared p-value, a divergence or the Wasserstein distance), and
    neither the data-quality ratios nor the prediction's and confidence's drift."""
    reports: list[DriftReport | None] = [None] * len(windows)
    for method in dict.fromkeys(settings.method for _, _, settings in windows):
        indices = [i for i, (_, _, s) in enumerate(windows) if s.method == method]
        for i, report in zip(indices, _reports([windows[i] for i in indices], method), strict=True):
            reports[i] = report
    return [r for r in reports if r is not None]


def _reports(
    windows: Sequence[tuple[ModelReference, DriftCounts, DriftSettings]],
    only: drift.DriftMethod | None,
) -> list[DriftReport]:
    """`drift_reports` (`only` None), or `drift_flag_reports` of windows whose drift
    method is `only`."""
    if not windows:
        return []
    prepared = []
    numeric: list[_NumericJob] = []
    categorical: list[_CategoricalJob] = []
    for reference, counts, settings in windows:
        first_numeric, first_categorical = len(numeric), len(categorical)
        features = _quality_and_jobs(
            reference, counts, settings.min_samples, (numeric, categorical), quality=only is None
        )
        if only is None:
            _add_output_jobs(reference, counts, settings.min_samples, numeric, categorical)
        prepared.append((features, first_numeric, first_categorical))
    numeric_results, categorical_results = _run_jobs(numeric, categorical, only)
    bounds = [*prepared[1:], (None, len(numeric), len(categorical))]
    return [
        _report(
            reference,
            counts,
            settings,
            features,
            _named(numeric[n0:n1], numeric_results[n0:n1])
            | _named(categorical[c0:c1], categorical_results[c0:c1]),
            full=only is None,
        )
        for (reference, counts, settings), (features, n0, c0), (_, n1, c1) in zip(
            windows, prepared, bounds, strict=True
        )
    ]


def _named(
    jobs: Sequence[_NumericJob | _CategoricalJob], results: Sequence[drift.FeatureDrift | None]
) -> dict[str, drift.FeatureDrift]:
    return {job[0]: r for job, r in zip(jobs, results, strict=True) if r is not None}


def _report(
    reference: ModelReference,
    counts: DriftCounts,
    settings: DriftSettings,
    features: dict[str, dict[str, float | None]],
    results: Mapping[str, drift.FeatureDrift],
    *,
    full: bool = True,
) -> DriftReport:
    """`full`: every statistic; else the drift flags and share and the estimates only."""
    feature_results = {k: v for k, v in results.items() if k in features}
    for name, result in feature_results.items() if full else ():
        features[name] |= {
            "psi": result.psi,
            "js_distance": result.js_distance,
            "kl_divergence": result.kl_divergence,
            "ks_statistic": result.ks_statistic,
            "ks_statistic_error_bound": result.ks_error_bound,
            "drift_p_value": result.p_value,
            "wasserstein": result.wasserstein,
        }
    metrics: dict[str, float | None] = {}
    if feature_results:
        flags = drift.drift_flags(
            feature_results, settings.method, settings.threshold, settings.correction
        )
        for name, flag in flags.items():
            features[name]["drift_detected"] = 1.0 if flag else 0.0
        metrics["data_drift_share"] = drift.drift_share(flags)
    if full:
        metrics |= _prediction_drift(reference, counts, results, settings)
    metrics |= _estimation(reference, counts, settings)
    return DriftReport(
        # One object for every feature's statistics: compact, and one object for the
        # cyclic GC to track per report rather than one per feature (a refresh of 1,000
        # versions would otherwise leave 20,000 more behind, bringing full collections,
        # which walk every tracked object, on sooner).
        FeatureTable(features),
        MappingProxyType({k: float(v) for k, v in metrics.items() if v is not None}),
        counts.rows,
    )


def _quality_and_jobs(
    reference: ModelReference,
    counts: DriftCounts,
    minimum: int,
    jobs: tuple[list[_NumericJob], list[_CategoricalJob]],
    *,
    quality: bool = True,
) -> dict[str, dict[str, float | None]]:
    """Data-quality ratios per feature (if `quality`), from `minimum` values on (like
    every window statistic: a ratio of 1 in 3 is noise, and the health score would act on
    it); the features with enough rows for drift are appended to the numeric and
    categorical `jobs`."""
    numeric, categorical = jobs
    features: dict[str, dict[str, float | None]] = {}
    enough = counts.rows >= minimum
    bins_of = counts.feature_counts
    # Per-feature sums and edge bins in a few numpy calls, then plain Python numbers:
    # a numpy call per feature would cost more than the arithmetic.
    # (Every profile has at least one bin: "other", or under- and overflow.)
    observed_of: list[int] = []
    first_of: list[int] = []
    last_of: list[int] = []
    if bins_of:
        sizes = [b.size for b in bins_of]
        starts = np.cumsum([0, *sizes[:-1]])
        observed_of = np.add.reduceat(counts.flat, starts).tolist()
        first_of = counts.flat[starts].tolist()
        last_of = counts.flat[starts + np.asarray(sizes) - 1].tolist()
    missing_of, invalid_of = counts.missing.tolist(), counts.invalid_type.tolist()
    unseen_of, minmax_of = counts.unseen.tolist(), counts.minmax.tolist()
    for i, (name, profile) in enumerate(reference.features.items()):
        observed, missing, invalid = observed_of[i], missing_of[i], invalid_of[i]
        seen = observed + missing + invalid
        stats: dict[str, float | None] = {}
        features[name] = stats
        if quality and seen >= minimum:
            stats["missing_ratio"] = _ratio(missing, seen)
        if isinstance(profile, NumericProfile):
            if quality and seen >= minimum:
                stats["out_of_range_ratio"] = _ratio(first_of[i] + last_of[i] + invalid, seen)
            if enough and observed >= minimum:
                low, high = minmax_of[i]
                numeric.append(
                    (
                        name,
                        profile,
                        bins_of[i],
                        None if math.isnan(low) else low,
                        None if math.isnan(high) else high,
                    )
                )
            continue
        if quality and name in reference.known_categories and observed >= minimum:
            stats["unseen_category_ratio"] = _ratio(unseen_of[i], observed)
        if enough and observed >= minimum:
            categorical.append((name, profile, bins_of[i]))
    return features


def _add_output_jobs(
    reference: ModelReference,
    counts: DriftCounts,
    minimum: int,
    numeric: list[_NumericJob],
    categorical: list[_CategoricalJob],
) -> None:
    predicted, pc = reference.prediction, counts.prediction_counts
    if predicted is not None and pc is not None and pc.sum() >= minimum:
        if isinstance(predicted, NumericProfile):
            numeric.append((_PREDICTION_KEY, predicted, pc, None, None))
        else:
            categorical.append((_PREDICTION_KEY, predicted, pc))
    confidence, cc = reference.confidence, counts.confidence_counts
    if confidence is not None and cc is not None and cc.sum() >= minimum:
        numeric.append((_CONFIDENCE_KEY, confidence, cc, None, None))


def _run_jobs(
    numeric: list[_NumericJob],
    categorical: list[_CategoricalJob],
    only: drift.DriftMethod | None = None,
) -> tuple[list[drift.NumericDrift | None], list[drift.CategoricalDrift | None]]:
    return drift.numeric_drift_many(
        [job[1] for job in numeric],
        [job[2] for job in numeric],
        [job[3] for job in numeric],
        [job[4] for job in numeric],
        only=only,
    ), drift.categorical_drift_many(
        [job[1] for job in categorical], [job[2] for job in categorical], only=only
    )


def _prediction_drift(
    reference: ModelReference,
    counts: DriftCounts,
    results: Mapping[str, drift.FeatureDrift],
    settings: DriftSettings,
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    predicted = reference.prediction
    result = results.get(_PREDICTION_KEY)
    if predicted is not None and result is not None:
        if isinstance(predicted, NumericProfile) and counts.prediction_n:
            out["prediction_mean_shift"] = (
                counts.prediction_sum / counts.prediction_n - predicted.mean
            )
        flags = drift.drift_flags(
            {"prediction": result}, settings.method, settings.threshold, "none"
        )
        out |= {
            "prediction_psi": result.psi,
            "prediction_js_distance": result.js_distance,
            "prediction_drift_p_value": result.p_value,
            "prediction_drift_detected": 1.0 if flags.get("prediction") else 0.0,
        }
    conf, conf_result = reference.confidence, results.get(_CONFIDENCE_KEY)
    if conf is not None and conf_result is not None:
        out |= {
            "confidence_psi": conf_result.psi,
            "confidence_drift_p_value": conf_result.p_value,
        }
        if isinstance(predicted, CategoricalProfile) and counts.confidence_n:
            # For a classifier the mean shift is that of its confidence.
            out["prediction_mean_shift"] = counts.confidence_sum / counts.confidence_n - conf.mean
    return out


def _estimation(
    reference: ModelReference, counts: DriftCounts, settings: DriftSettings
) -> dict[str, float | None]:
    calibrator = reference.calibrator
    if counts.expected is not None and counts.expected_n >= settings.min_samples:
        estimate = estimated_metrics(counts.expected)
        if estimate is not None:
            return {
                "estimated_accuracy": estimate.accuracy,
                "estimated_precision_weighted": estimate.precision_weighted,
                "estimated_recall_weighted": estimate.recall_weighted,
                "estimated_f1_score": estimate.f1_weighted,
                "estimation_calibrated": float(calibrator is not None and calibrator.calibrated),
            }
    if counts.calibrated_confidence_n >= settings.min_samples:
        return {
            "estimated_accuracy": counts.calibrated_confidence_sum / counts.calibrated_confidence_n,
            "estimation_calibrated": float(
                calibrator is not None and calibrator.confidence_calibrated
            ),
        }
    return {}

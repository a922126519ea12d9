"""A closed bucket's confidence histogram and drift counts packed into two vectors.

A window keeps about 60 closed buckets per version. As objects, a closed bucket's
aggregates take about 3 KiB, most of it numpy's headers (about 100 bytes an array),
boxed floats and the objects around them rather than counts; packed, a bucket holds one
integer vector (every count, in the narrowest unsigned type that holds them all:
`compact.narrowest`) and one float64 vector (every float, exact), with their layout
shared by every bucket of that shape. A packed bucket is read back as aggregates whose
arrays are read-only views of the vectors (`Packed.confidence`, `Packed.drift`); what a
window re-merges after each bucket boundary (sums of floats, minima, maxima) is read
straight from the stacked float vectors (`set_drift_inexact`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from model_health_exporter.stats.compact import narrowest
from model_health_exporter.stats.performance import ConfidenceHistogram
from model_health_exporter.stats.reference import DriftCounts

_INT_HEAD = 6  # predictions, errors, invalid records, latencies, confidences, below threshold
_FLOAT_HEAD = 6  # latency sum, threshold, confidence sum, M2, minimum, maximum
_DRIFT_INTS: Final = (
    "rows",
    "prediction_n",
    "confidence_n",
    "expected_n",
    "calibrated_confidence_n",
)
_DRIFT_FLOATS: Final = ("prediction_sum", "confidence_sum", "calibrated_confidence_sum")


@dataclass(frozen=True, slots=True)
class PackedLayout:
    """Where each count and float of a packed bucket lies in its two vectors: fixed by
    the confidence bins and, with drift counts, the reference's bins (one object shared
    by the buckets of that shape, `layout_of`)."""

    confidence_bins: int
    # with drift counts: the reference's bins per feature, and the output and
    # confidence bins and expected-confusion side (0: none)
    sizes: tuple[int, ...] | None = None
    prediction_bins: int = 0
    confidence_counts_bins: int = 0
    expected_side: int = 0

    @property
    def drift_ints(self) -> int:
        """Where the drift counts start in the integer vector."""
        return _INT_HEAD + self.confidence_bins

    @property
    def minmax_at(self) -> int:
        """Where the drift minima and maxima start in the float vector."""
        return _FLOAT_HEAD + len(_DRIFT_FLOATS)


_LAYOUTS: dict[PackedLayout, PackedLayout] = {}


def layout_of(confidence: ConfidenceHistogram, drift: DriftCounts | None) -> PackedLayout:
    """The shared layout of a bucket holding `confidence` and `drift`."""
    if drift is None:
        key = PackedLayout(confidence.n_bins)
    else:
        key = PackedLayout(
            confidence.n_bins,
            drift.sizes,
            0 if drift.prediction_counts is None else len(drift.prediction_counts),
            0 if drift.confidence_counts is None else len(drift.confidence_counts),
            0 if drift.expected is None else len(drift.expected),
        )
    # bounded: a layout per confidence bin count and reference shape ever seen
    return _LAYOUTS.setdefault(key, key)


@dataclass(frozen=True, slots=True)
class Packed:
    """A closed bucket's tallies in two read-only vectors: every integer count in the
    narrowest unsigned type that holds them all (`narrowest`), every float in float64
    (exact). About a third of the memory of the aggregate objects they come from, whose
    numpy headers, boxed floats and object headers outweigh a small bucket's counts."""

    layout: PackedLayout
    ints: npt.NDArray[np.int64]
    floats: npt.NDArray[np.float64]

    @property
    def head(self) -> tuple[list[int], list[float]]:
        """(predictions, errors, invalid records, latencies, ...), (latency sum, ...)."""
        return self.ints[:_INT_HEAD].tolist(), self.floats[:_FLOAT_HEAD].tolist()

    def confidence(self) -> ConfidenceHistogram:
        """The confidence histogram (its counts a read-only view)."""
        ints, floats = self.head
        _, _, _, _, count, below = ints
        _, threshold, total, m2, minimum, maximum = floats
        counts = self.ints[_INT_HEAD : _INT_HEAD + self.layout.confidence_bins]
        return ConfidenceHistogram(
            counts,
            threshold=threshold,
            count=count,
            total=total,
            m2=m2,
            below=below,
            minimum=minimum,
            maximum=maximum,
        )

    def drift(self) -> DriftCounts | None:
        """The drift counts (read-only views), None if the bucket had none."""
        layout = self.layout
        sizes = layout.sizes
        if sizes is None:
            return None
        n_features = len(sizes)
        at = layout.drift_ints
        scalars = dict(
            zip(_DRIFT_INTS, self.ints[at : at + len(_DRIFT_INTS)].tolist(), strict=True)
        )
        at += len(_DRIFT_INTS)
        parts = []
        for size in (sum(sizes), n_features, n_features, n_features):
            parts.append(self.ints[at : at + size])
            at += size
        prediction_counts = confidence_counts = expected = None
        if layout.prediction_bins:
            prediction_counts = self.ints[at : at + layout.prediction_bins]
            at += layout.prediction_bins
        if layout.confidence_counts_bins:
            confidence_counts = self.ints[at : at + layout.confidence_counts_bins]
        floats_at = _FLOAT_HEAD
        sums = self.floats[floats_at : floats_at + len(_DRIFT_FLOATS)].tolist()
        scalars |= dict(zip(_DRIFT_FLOATS, sums, strict=True))
        at = layout.minmax_at
        minmax = self.floats[at : at + 2 * n_features].reshape(n_features, 2)
        side = layout.expected_side
        if side:
            at += 2 * n_features
            expected = self.floats[at : at + side * side].reshape(side, side)
        flat, missing, invalid_type, unseen = parts
        return DriftCounts(
            flat,
            sizes,
            missing,
            invalid_type,
            unseen,
            minmax,
            prediction_counts=prediction_counts,
            confidence_counts=confidence_counts,
            expected=expected,
            **scalars,
        )


def pack_bucket(
    head: tuple[int, int, int, int],
    latency_sum: float,
    confidence: ConfidenceHistogram,
    drift: DriftCounts | None,
) -> Packed:
    """A bucket's tallies packed: `head` its predictions, errors, invalid records and
    latencies counted, then its confidence histogram and drift counts."""
    layout = layout_of(confidence, drift)
    ints: list[Any] = [
        np.array([*head, confidence.count, confidence.below], np.int64),
        confidence.counts,
    ]
    floats: list[Any] = [
        np.array(
            [
                latency_sum,
                confidence.threshold,
                confidence.total,
                confidence.m2,
                confidence.minimum,
                confidence.maximum,
            ]
        )
    ]
    if drift is not None:
        ints.append(np.array([getattr(drift, name) for name in _DRIFT_INTS], np.int64))
        ints += (drift.flat, drift.missing, drift.invalid_type, drift.unseen)
        ints += [a for a in (drift.prediction_counts, drift.confidence_counts) if a is not None]
        floats.append(np.array([getattr(drift, name) for name in _DRIFT_FLOATS]))
        floats.append(drift.minmax.reshape(-1))
        if drift.expected is not None:
            floats.append(drift.expected.reshape(-1))
    packed_ints = narrowest(np.concatenate(ints).astype(np.int64, copy=False))
    packed_floats = np.concatenate(floats).astype(np.float64, copy=False)
    # views of these are handed out: changing one would change the bucket
    packed_ints.flags.writeable = False
    packed_floats.flags.writeable = False
    return Packed(layout, packed_ints, packed_floats)


def set_drift_inexact(
    drift: DriftCounts, layout: PackedLayout, rows: npt.NDArray[np.float64]
) -> None:
    """`drift.set_inexact` for parts packed with `layout`, given as the rows of their
    float vectors stacked in order (same operations in the same order, so the same
    result, bit for bit)."""
    assert layout.sizes is not None  # only buckets with drift counts come here
    n_features = len(layout.sizes)
    at = layout.minmax_at
    stacked = rows[:, at : at + 2 * n_features].reshape(len(rows), n_features, 2)
    drift.minmax = np.stack(
        (np.fmin.reduce(stacked[:, :, 0]), np.fmax.reduce(stacked[:, :, 1])), axis=1
    )
    side = layout.expected_side
    if side and drift.expected is not None:
        at += 2 * n_features
        block = rows[:, at : at + side * side]
        expected = block[0].copy()
        for row in block[1:]:
            expected += row
        drift.expected = expected.reshape(side, side)
    sums = rows[:, _FLOAT_HEAD : _FLOAT_HEAD + len(_DRIFT_FLOATS)].tolist()
    prediction_sum, confidence_sum, calibrated_sum = sums[0]
    for p, c, k in sums[1:]:
        prediction_sum += p
        confidence_sum += c
        calibrated_sum += k
    drift.prediction_sum, drift.confidence_sum = prediction_sum, confidence_sum
    drift.calibrated_confidence_sum = calibrated_sum

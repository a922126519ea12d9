"""A closed bucket's confidence histogram and drift counts packed into one `bytes`.

A window keeps about 60 closed buckets per version. As objects, a closed bucket's
aggregates take about 3 KiB, most of it numpy's headers (about 100 bytes an array),
boxed floats and the objects around them rather than counts. Packed, a bucket is one
`bytes` object (33 bytes of header): its tallies as int64, its floats as float64
(exact), then every other count in the narrowest unsigned type that holds them all
(`compact.narrowest`), deflated (zlib level 1, raw: a bucket's counts are mostly small
and often zero, about a third of their bytes once deflated). Where each lies is its
layout, one object shared by every bucket of that shape (`PackedLayout`). A packed
bucket is read back as aggregates whose arrays are read-only views of the bytes
(`confidence_of`, `drift_of`, the counts inflated on each read); what a window re-merges
after each bucket boundary (sums of floats, minima, maxima) is read from the floats of
all its buckets at once (`heads`, `set_drift_inexact`), which stay as they are, read
without inflating anything. A checkpoint holds the counts as they are before deflating
(`expanded`, `deflated`).

Minima and maxima are kept for the numeric features only: a categorical feature's are
never set (NaN)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from model_health_exporter.stats.compact import narrowest
from model_health_exporter.stats.performance import ConfidenceHistogram
from model_health_exporter.stats.reference import DriftCounts

# int64: predictions, errors, invalid records, latencies, confidences, below threshold
_HEAD_INTS: Final = 6
# float64: latency sum, threshold, confidence sum, M2, minimum, maximum
_HEAD_FLOATS: Final = 6
_HEAD_BYTES: Final = 8 * (_HEAD_INTS + _HEAD_FLOATS)
_DRIFT_INTS: Final = (
    "rows",
    "prediction_n",
    "confidence_n",
    "expected_n",
    "calibrated_confidence_n",
)
_DRIFT_FLOATS: Final = ("prediction_sum", "confidence_sum", "calibrated_confidence_sum")
# Raw deflate: no zlib header or checksum (6 bytes a bucket); level 1, the fastest
_WBITS: Final = -15
_LEVEL: Final = 1


@dataclass(frozen=True, slots=True)
class PackedLayout:
    """Where each count and float of a packed bucket lies: fixed by the confidence bins,
    the counts' integer type and, with drift counts, the reference's shape. One object
    per shape (`_shared`), so a bucket holds only a reference to it."""

    confidence_bins: int
    int_type: str  # numpy's name of the counts' type (uint8, ...)
    # With drift counts: the reference's bins per feature; the features whose minima and
    # maxima are kept (the numeric ones); the output and confidence bins and the
    # expected confusion's side (0: none).
    sizes: tuple[int, ...] | None = None
    numeric: tuple[int, ...] = ()
    prediction_bins: int = 0
    confidence_counts_bins: int = 0
    expected_side: int = 0

    @property
    def drift_floats(self) -> int:
        """Floats after the head: the drift sums, minima and maxima, expected confusion."""
        if self.sizes is None:
            return 0
        return len(_DRIFT_FLOATS) + 2 * len(self.numeric) + self.expected_side**2

    @property
    def float_key(self) -> tuple[object, ...]:
        """What places the floats: buckets with equal keys are re-merged together."""
        return (self.sizes, self.numeric, self.expected_side)

    @property
    def ints_at(self) -> int:
        """Where the narrow counts start, in bytes."""
        return _HEAD_BYTES + 8 * self.drift_floats


_LAYOUTS: dict[PackedLayout, PackedLayout] = {}


def _shared(layout: PackedLayout) -> PackedLayout:
    # bounded: one per confidence bin count, integer type and reference shape ever seen
    return _LAYOUTS.setdefault(layout, layout)


def pack_bucket(
    head: tuple[int, int, int, int],
    latency_sum: float,
    confidence: ConfidenceHistogram,
    drift: DriftCounts | None,
    numeric: Sequence[int] | None = None,
) -> tuple[PackedLayout, bytes]:
    """A bucket's tallies packed: `head` its predictions, errors, invalid records and
    latencies counted, then its confidence histogram and drift counts; `numeric`: the
    features whose minima and maxima are kept (None: all; any other whose are not NaN
    are kept too)."""
    ints: list[Any] = [confidence.counts]
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
    kept: tuple[int, ...] = ()
    if drift is not None:
        n_features = len(drift.sizes)
        kept = tuple(range(n_features)) if numeric is None else tuple(numeric)
        if len(kept) < n_features and not np.isnan(np.delete(drift.minmax, kept, axis=0)).all():
            kept = tuple(range(n_features))  # not what a reference's counts hold: keep all
        ints.append(np.array([getattr(drift, name) for name in _DRIFT_INTS], np.int64))
        ints += (drift.flat, drift.missing, drift.invalid_type, drift.unseen)
        ints += [a for a in (drift.prediction_counts, drift.confidence_counts) if a is not None]
        floats.append(np.array([getattr(drift, name) for name in _DRIFT_FLOATS]))
        floats.append(drift.minmax[list(kept)].reshape(-1))
        if drift.expected is not None:
            floats.append(drift.expected.reshape(-1))
    counts = narrowest(np.concatenate(ints).astype(np.int64, copy=False))
    layout = _shared(
        PackedLayout(
            confidence.n_bins,
            counts.dtype.name,
            None if drift is None else drift.sizes,
            kept,
            0 if drift is None or drift.prediction_counts is None else drift.prediction_counts.size,
            0 if drift is None or drift.confidence_counts is None else drift.confidence_counts.size,
            0 if drift is None or drift.expected is None else len(drift.expected),
        )
    )
    tallies = np.array([*head, confidence.count, confidence.below], np.int64)
    data = b"".join(
        (
            tallies.tobytes(),
            np.concatenate(floats).astype(np.float64, copy=False).tobytes(),
            _deflate(counts.tobytes()),
        )
    )
    return layout, data


def expanded(layout: PackedLayout, data: bytes) -> bytes:
    """A packed bucket's bytes with its counts inflated (`packed_size(layout)` of them):
    what a checkpoint holds."""
    at = layout.ints_at
    return data[:at] + zlib.decompress(data[at:], wbits=_WBITS)


def deflated(layout: PackedLayout, full: bytes) -> bytes:
    """`expanded`'s inverse: the bytes a closed bucket keeps."""
    at = layout.ints_at
    return full[:at] + _deflate(full[at:])


def _deflate(counts: bytes) -> bytes:
    return zlib.compress(counts, _LEVEL, wbits=_WBITS)


def head_of(data: bytes) -> tuple[list[int], list[float]]:
    """(predictions, errors, invalid records, latencies, confidences, below threshold),
    (latency sum, threshold, confidence sum, M2, minimum, maximum)."""
    ints: list[int] = np.frombuffer(data, np.int64, _HEAD_INTS).tolist()
    floats: list[float] = np.frombuffer(data, np.float64, _HEAD_FLOATS, 8 * _HEAD_INTS).tolist()
    return ints, floats


def heads(datas: Sequence[bytes]) -> tuple[list[list[int]], list[list[float]]]:
    """`head_of` of each packed bucket, read in a few calls."""
    block = np.frombuffer(b"".join([d[:_HEAD_BYTES] for d in datas]), np.int64)
    rows = block.reshape(len(datas), _HEAD_INTS + _HEAD_FLOATS)
    return rows[:, :_HEAD_INTS].tolist(), rows[:, _HEAD_INTS:].view(np.float64).tolist()


def _counts(layout: PackedLayout, data: bytes) -> npt.NDArray[np.int64]:
    """The narrow counts, inflated, a read-only view (typed as int64 for its readers, as
    `narrowest` is)."""
    raw = zlib.decompress(memoryview(data)[layout.ints_at :], wbits=_WBITS)
    counts: npt.NDArray[np.int64] = np.frombuffer(raw, layout.int_type)
    return counts


def confidence_of(layout: PackedLayout, data: bytes) -> ConfidenceHistogram:
    """The confidence histogram (its counts a read-only view)."""
    ints, floats = head_of(data)
    _, threshold, total, m2, minimum, maximum = floats
    return ConfidenceHistogram(
        _counts(layout, data)[: layout.confidence_bins],
        threshold=threshold,
        count=ints[4],
        total=total,
        m2=m2,
        below=ints[5],
        minimum=minimum,
        maximum=maximum,
    )


def drift_of(layout: PackedLayout, data: bytes) -> DriftCounts | None:
    """The drift counts (read-only views, minima and maxima a new array), None if the
    bucket had none."""
    sizes = layout.sizes
    if sizes is None:
        return None
    n_features = len(sizes)
    counts = _counts(layout, data)
    at = layout.confidence_bins
    scalars: dict[str, Any] = dict(
        zip(_DRIFT_INTS, counts[at : at + len(_DRIFT_INTS)].tolist(), strict=True)
    )
    at += len(_DRIFT_INTS)
    arrays = []
    for size in (sum(sizes), n_features, n_features, n_features, layout.prediction_bins):
        arrays.append(counts[at : at + size])
        at += size
    confidence_counts = counts[at : at + layout.confidence_counts_bins]
    floats = np.frombuffer(data, np.float64, layout.drift_floats, _HEAD_BYTES)
    scalars |= dict(zip(_DRIFT_FLOATS, floats[: len(_DRIFT_FLOATS)].tolist(), strict=True))
    at = len(_DRIFT_FLOATS)
    minmax = np.full((n_features, 2), np.nan)
    minmax[list(layout.numeric)] = floats[at : at + 2 * len(layout.numeric)].reshape(-1, 2)
    at += 2 * len(layout.numeric)
    side = layout.expected_side
    flat, missing, invalid_type, unseen, prediction_counts = arrays
    return DriftCounts(
        flat,
        sizes,
        missing,
        invalid_type,
        unseen,
        minmax,
        prediction_counts=prediction_counts if layout.prediction_bins else None,
        confidence_counts=confidence_counts if layout.confidence_counts_bins else None,
        expected=floats[at : at + side * side].reshape(side, side) if side else None,
        **scalars,
    )


def set_drift_inexact(drift: DriftCounts, layout: PackedLayout, datas: Sequence[bytes]) -> None:
    """`drift.set_inexact` for buckets packed with `layout` (with drift counts), in
    order: the same operations in the same order, so the same result, bit for bit."""
    assert layout.sizes is not None  # only buckets with drift counts come here
    n_floats = layout.drift_floats
    rows = np.frombuffer(
        b"".join([d[_HEAD_BYTES : _HEAD_BYTES + 8 * n_floats] for d in datas]), np.float64
    ).reshape(len(datas), n_floats)
    at = len(_DRIFT_FLOATS)
    n_kept = len(layout.numeric)
    stacked = rows[:, at : at + 2 * n_kept].reshape(len(datas), n_kept, 2)
    minmax = np.full((len(layout.sizes), 2), np.nan)
    minmax[list(layout.numeric)] = np.stack(
        (np.fmin.reduce(stacked[:, :, 0]), np.fmax.reduce(stacked[:, :, 1])), axis=1
    )
    drift.minmax = minmax
    side = layout.expected_side
    if side and drift.expected is not None:
        block = rows[:, at + 2 * n_kept :]
        expected = block[0].copy()
        for row in block[1:]:
            expected += row
        drift.expected = expected.reshape(side, side)
    sums = rows[:, :at].tolist()
    prediction_sum, confidence_sum, calibrated_sum = sums[0]
    for p, c, k in sums[1:]:
        prediction_sum += p
        confidence_sum += c
        calibrated_sum += k
    drift.prediction_sum, drift.confidence_sum = prediction_sum, confidence_sum
    drift.calibrated_confidence_sum = calibrated_sum


def confidence_dict(layout: PackedLayout, data: bytes) -> dict[str, Any]:
    """`confidence_of(layout, data).to_dict()`, without making the histogram (a
    checkpoint writes every closed bucket of every version)."""
    ints, floats = head_of(data)
    _, threshold, total, m2, minimum, maximum = floats
    count = ints[4]
    empty = count == 0
    return {
        "n_bins": layout.confidence_bins,
        "threshold": threshold,
        "counts": _counts(layout, data)[: layout.confidence_bins].tolist(),
        "count": count,
        "total": total,
        "m2": m2,
        "below": ints[5],
        "minimum": None if empty else minimum,
        "maximum": None if empty else maximum,
    }


def drift_dict(layout: PackedLayout, data: bytes) -> dict[str, Any] | None:
    """`drift_of(layout, data).to_dict()` (None without drift counts), without making
    the counts."""
    sizes = layout.sizes
    if sizes is None:
        return None
    n_features = len(sizes)
    counts: list[int] = _counts(layout, data)[layout.confidence_bins :].tolist()
    scalars = counts[: len(_DRIFT_INTS)]
    at = len(_DRIFT_INTS)
    feature_counts = []
    for size in sizes:
        feature_counts.append(counts[at : at + size])
        at += size
    lists = []
    for size in (n_features, n_features, n_features, layout.prediction_bins):
        lists.append(counts[at : at + size])
        at += size
    missing, invalid_type, unseen, prediction_counts = lists
    confidence_counts = counts[at : at + layout.confidence_counts_bins]
    floats: list[float] = np.frombuffer(data, np.float64, layout.drift_floats, _HEAD_BYTES).tolist()
    prediction_sum, confidence_sum, calibrated_sum = floats[: len(_DRIFT_FLOATS)]
    minmax: list[list[float | None]] = [[None, None] for _ in range(n_features)]
    at = len(_DRIFT_FLOATS)
    for i in layout.numeric:
        low, high = floats[at], floats[at + 1]
        minmax[i] = [None if math.isnan(low) else low, None if math.isnan(high) else high]
        at += 2
    side = layout.expected_side
    rows, prediction_n, confidence_n, expected_n, calibrated_n = scalars
    return {
        "feature_counts": feature_counts,
        "missing": missing,
        "invalid_type": invalid_type,
        "unseen": unseen,
        "minmax": minmax,
        "prediction_counts": prediction_counts if layout.prediction_bins else None,
        "confidence_counts": confidence_counts if layout.confidence_counts_bins else None,
        "expected": [floats[at + r * side : at + (r + 1) * side] for r in range(side)]
        if side
        else None,
        "rows": rows,
        "prediction_sum": prediction_sum,
        "prediction_n": prediction_n,
        "confidence_sum": confidence_sum,
        "confidence_n": confidence_n,
        "expected_n": expected_n,
        "calibrated_confidence_sum": calibrated_sum,
        "calibrated_confidence_n": calibrated_n,
    }


# ---- checkpoints: a packed bucket saved as its bytes and its layout ---------------------

_INT_TYPES: Final = frozenset(("uint8", "uint16", "uint32", "int64"))


def layout_json(layout: PackedLayout) -> list[object]:
    """`layout` as a JSON list (`layout_from_json` reads it back)."""
    return [
        layout.confidence_bins,
        layout.int_type,
        None if layout.sizes is None else list(layout.sizes),
        list(layout.numeric),
        layout.prediction_bins,
        layout.confidence_counts_bins,
        layout.expected_side,
    ]


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"packed layout: {what} {value!r} is not a count")
    return value


def layout_from_json(saved: object) -> PackedLayout:
    """The layout `layout_json` wrote (shared, as `pack_bucket`'s are); ValueError if it
    is not one."""
    if not isinstance(saved, list) or len(saved) != 7:
        raise ValueError(f"packed layout: expected a list of 7 items, got {saved!r:.80}")
    bins, int_type, sizes, numeric, prediction_bins, confidence_counts_bins, side = saved
    if int_type not in _INT_TYPES:
        raise ValueError(f"packed layout: unknown integer type {int_type!r}")
    if sizes is not None and not isinstance(sizes, list):
        raise ValueError(f"packed layout: bins per feature {sizes!r:.80} is not a list")
    if not isinstance(numeric, list):
        raise TypeError(f"packed layout: numeric features {numeric!r:.80} is not a list")
    n_features = 0 if sizes is None else len(sizes)
    kept = tuple(_count(i, "feature index") for i in numeric)
    if list(kept) != sorted(set(kept)) or any(i >= n_features for i in kept):
        raise ValueError(f"packed layout: numeric features {numeric!r:.80} out of place")
    return _shared(
        PackedLayout(
            _count(bins, "confidence bins"),
            int_type,
            None if sizes is None else tuple(_count(s, "bins") for s in sizes),
            kept,
            _count(prediction_bins, "prediction bins"),
            _count(confidence_counts_bins, "confidence count bins"),
            _count(side, "expected confusion side"),
        )
    )


def packed_size(layout: PackedLayout) -> int:
    """The bytes of a bucket packed with `layout`, its counts inflated (`expanded`)."""
    n_counts = layout.confidence_bins
    if layout.sizes is not None:
        n_counts += len(_DRIFT_INTS) + sum(layout.sizes) + 3 * len(layout.sizes)
        n_counts += layout.prediction_bins + layout.confidence_counts_bins
    return layout.ints_at + n_counts * np.dtype(layout.int_type).itemsize

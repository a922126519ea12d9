"""A closed bucket's tallies packed into one `bytes` (`stats.packed`) read back as the
aggregates they came from, whatever the counts' sizes, the parts present and the
features' minima and maxima; and the re-merge of packed floats equals the aggregates'
own `set_inexact`, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_health_exporter.stats.packed import (
    confidence_dict,
    confidence_of,
    deflated,
    drift_dict,
    drift_of,
    expanded,
    head_of,
    heads,
    pack_bucket,
    packed_size,
    set_drift_inexact,
)
from model_health_exporter.stats.performance import ConfidenceHistogram
from model_health_exporter.stats.reference import DriftCounts

SIZES = (4, 3, 5)  # bins of three features: numeric, categorical, numeric
NUMERIC = (0, 2)


def _confidence(rng: np.random.Generator, n: int) -> ConfidenceHistogram:
    histogram = ConfidenceHistogram.empty(10)
    if n:
        histogram.add_many(rng.uniform(0, 1, n))
    return histogram


def _drift(rng: np.random.Generator, high: int, *, outputs: bool, expected: bool) -> DriftCounts:
    def counts(n: int) -> np.ndarray:
        return rng.integers(0, high + 1, n).astype(np.int64)

    minmax = np.full((len(SIZES), 2), np.nan)
    for i in NUMERIC:
        if rng.random() < 0.8:  # a numeric feature with no value yet keeps NaN
            low = float(rng.normal())
            minmax[i] = (low, low + float(rng.uniform(0, 3)))
    return DriftCounts(
        counts(sum(SIZES)),
        SIZES,
        counts(3),
        counts(3),
        counts(3),
        minmax,
        rows=int(rng.integers(0, high + 1)),
        prediction_counts=counts(2) if outputs else None,
        prediction_sum=float(rng.normal()),
        prediction_n=int(rng.integers(0, 9)),
        confidence_counts=counts(6) if outputs else None,
        confidence_sum=float(rng.normal()),
        confidence_n=int(rng.integers(0, 9)),
        expected=rng.uniform(0, 5, (2, 2)) if expected else None,
        expected_n=int(rng.integers(0, 9)),
        calibrated_confidence_sum=float(rng.normal()),
        calibrated_confidence_n=int(rng.integers(0, 9)),
    )


def _same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN and -0.0 told from 0.0 (what `repr` would show)."""
    return repr(a) == repr(b)


@pytest.mark.parametrize("high", [0, 200, 60_000, 2**32 + 5])  # uint8 .. int64
@pytest.mark.parametrize("outputs", [False, True])
@pytest.mark.parametrize("expected", [False, True])
def test_a_packed_bucket_reads_back_as_its_aggregates(
    high: int, outputs: bool, expected: bool
) -> None:
    rng = np.random.default_rng(high + 2 * outputs + expected)
    confidence = _confidence(rng, 0 if high == 0 else 7)  # empty: infinite min and max
    drift = _drift(rng, high, outputs=outputs, expected=expected)
    layout, data = pack_bucket((5, 1, 2, 4), 0.125, confidence, drift, NUMERIC)
    assert layout.numeric == NUMERIC  # the categorical feature's NaNs are not kept
    tallies = [5, 1, 2, 4, confidence.count, confidence.below]
    moments = [confidence.total, confidence.m2, confidence.minimum, confidence.maximum]
    assert head_of(data) == (tallies, [0.125, confidence.threshold, *moments])
    back = confidence_of(layout, data)
    assert _same(back.to_dict(), confidence.to_dict())
    assert confidence_dict(layout, data) == confidence.to_dict()
    counts = drift_of(layout, data)
    assert counts is not None
    assert _same(counts.to_dict(), drift.to_dict())
    assert drift_dict(layout, data) == drift.to_dict()
    with pytest.raises(ValueError, match="read-only"):
        counts.flat += 1
    only = pack_bucket((5, 1, 2, 4), 0.125, confidence, None)
    assert drift_of(*only) is None and drift_dict(*only) is None
    assert only[0].sizes is None


def test_minima_of_a_feature_said_categorical_are_kept_if_set() -> None:
    """Minima and maxima that are not NaN where the reference has no numeric feature
    (not what a tally makes) are kept all the same: packing never loses a value."""
    rng = np.random.default_rng(1)
    drift = _drift(rng, 9, outputs=False, expected=False)
    drift.minmax[1] = (-1.5, 2.5)
    layout, data = pack_bucket((0, 0, 0, 0), 0.0, _confidence(rng, 3), drift, NUMERIC)
    assert layout.numeric == (0, 1, 2)
    counts = drift_of(layout, data)
    assert counts is not None and _same(counts.minmax.tolist(), drift.minmax.tolist())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 12),
    expected=st.booleans(),
    highs=st.lists(st.sampled_from([3, 300, 70_000]), min_size=12, max_size=12),
)
def test_packed_floats_merge_as_the_aggregates_do(
    seed: int, n: int, expected: bool, highs: list[int]
) -> None:
    """`set_drift_inexact` over packed buckets (of any integer type) and
    `DriftCounts.set_inexact` over their aggregates give the same bits; `heads` reads
    every bucket's head as `head_of` does."""
    rng = np.random.default_rng(seed)
    parts = [_drift(rng, highs[i], outputs=True, expected=expected) for i in range(n)]
    packed = [
        pack_bucket((i, 0, 0, i), float(rng.normal()), _confidence(rng, i), d, NUMERIC)
        for i, d in enumerate(parts)
    ]
    mine, theirs = parts[0].copy(), parts[0].copy()
    set_drift_inexact(mine, packed[0][0], [data for _, data in packed])
    theirs.set_inexact(parts)
    assert _same(mine.to_dict(), theirs.to_dict())
    ints, floats = heads([data for _, data in packed])
    assert [(a, b) for a, b in zip(ints, floats, strict=True)] == [
        head_of(data) for _, data in packed
    ]
    assert all(not math.isnan(f[0]) for f in floats)


def _format_bytes(
    head: tuple[int, ...], latency_sum: float, confidence: ConfidenceHistogram, drift: DriftCounts
) -> bytes:
    """A bucket's bytes as the checkpoint format lays them out, built here from the
    aggregates alone: six int64 tallies, the float64s (head, drift sums, the numeric
    features' minima and maxima, expected confusion), then every count in one type."""
    tallies = [*head, confidence.count, confidence.below]
    floats = [latency_sum, confidence.threshold, confidence.total, confidence.m2]
    floats += [confidence.minimum, confidence.maximum]
    floats += [drift.prediction_sum, drift.confidence_sum, drift.calibrated_confidence_sum]
    floats += drift.minmax[list(NUMERIC)].reshape(-1).tolist()
    if drift.expected is not None:
        floats += drift.expected.reshape(-1).tolist()
    scalars = [drift.rows, drift.prediction_n, drift.confidence_n, drift.expected_n]
    counts = [*confidence.counts.tolist(), *scalars, drift.calibrated_confidence_n]
    for part in (drift.flat, drift.missing, drift.invalid_type, drift.unseen):
        counts += part.tolist()
    for extra in (drift.prediction_counts, drift.confidence_counts):
        if extra is not None:
            counts += extra.tolist()
    high = max(counts)
    kind = next(t for t in ("uint8", "uint16", "uint32", "int64") if high <= np.iinfo(t).max)
    return b"".join(
        (
            np.array(tallies, np.int64).tobytes(),
            np.array(floats, np.float64).tobytes(),
            np.array(counts, kind).tobytes(),
        )
    )


@pytest.mark.parametrize("high", [0, 3, 200, 60_000, 2**32 + 5])
@pytest.mark.parametrize("outputs", [False, True])
def test_a_checkpoint_holds_the_counts_inflated_in_the_format_s_layout(
    high: int, outputs: bool
) -> None:
    """A closed bucket keeps its counts deflated; what a checkpoint writes (`expanded`)
    is every byte of the format's layout, in its order, and reads back (`deflated`) to
    the very bytes kept: nothing lost, moved or reordered."""
    rng = np.random.default_rng(high + outputs)
    confidence = _confidence(rng, 0 if high == 0 else 9)
    drift = _drift(rng, high, outputs=outputs, expected=outputs)
    layout, data = pack_bucket((7, 2, 1, 6), 0.375, confidence, drift, NUMERIC)
    full = expanded(layout, data)
    assert full == _format_bytes((7, 2, 1, 6), 0.375, confidence, drift)
    assert len(full) == packed_size(layout)
    assert deflated(layout, full) == data
    if high <= 3:  # small counts take fewer bytes kept than in the checkpoint
        assert len(data) < len(full)

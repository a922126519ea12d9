"""Closed buckets are held compactly (`stats.compact`): the same counts in the narrowest
unsigned type, no per-feature views, no lists for records; copies are int64 again, and a
window's summaries and checkpoints do not change."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_health_exporter.records import Feedback, Prediction, parse_line
from model_health_exporter.state.windows import LiveWindow, WindowConfig, _ClosedBucket
from model_health_exporter.stats.compact import narrowest
from model_health_exporter.stats.packed import confidence_dict, drift_dict
from model_health_exporter.stats.reference import build_reference

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("high", "dtype"),
    [
        (0, np.uint8),
        (255, np.uint8),
        (256, np.uint16),
        (65_535, np.uint16),
        (65_536, np.uint32),
        (2**32 - 1, np.uint32),
        (2**32, np.int64),
    ],
)
def test_narrowest_type_that_holds_the_counts(high: int, dtype: type) -> None:
    counts = np.array([0, 3, high], dtype=np.int64)
    narrow = narrowest(counts)
    assert narrow.dtype == dtype
    assert narrow.tolist() == counts.tolist()
    assert (np.zeros(3, np.int64) + narrow).dtype == np.int64  # arithmetic stays int64


def test_negative_or_empty_counts_stay_as_they_are() -> None:
    negative = np.array([-1, 5], dtype=np.int64)
    assert narrowest(negative) is negative
    empty = np.zeros(0, dtype=np.int64)
    assert narrowest(empty) is empty


def _prediction(i: int, rng: np.random.Generator) -> Prediction:
    x = float(rng.normal())
    p = float(rng.uniform(0.05, 0.95))
    record = {
        "id": f"r{i}",
        "features": {"x": x, "cat": str(rng.choice(["a", "b", "c"]))},
        "prediction": "yes" if p > 0.5 else "no",
        "probabilities": {"yes": p, "no": 1 - p},
        "latency_ms": 10,
    }
    parsed = parse_line(json.dumps(record).encode())
    assert isinstance(parsed, Prediction)
    return parsed


def test_closed_buckets_are_compact_and_say_the_same() -> None:
    rng = np.random.default_rng(3)
    rows = [_prediction(i, rng) for i in range(500)]
    reference = build_reference(
        "jsonl",
        [r.features or {} for r in rows],
        labels=[r.label for r in rows],
        probabilities=[r.probabilities for r in rows],
        confidences=[r.confidence for r in rows],
        actuals=[str(rng.choice(["yes", "no"])) for _ in rows],
    )
    config = WindowConfig(bucket_seconds=60, buckets=10, short_buckets=3, min_samples=20)
    window = LiveWindow(config)
    window.set_reference(reference)
    for minute in range(8):
        now = NOW + 60 * minute
        predictions = [_prediction(1000 * minute + i, rng) for i in range(60)]
        window.observe_predictions(predictions, now)
        window.observe_feedbacks(
            [Feedback(p.id or "", str(rng.choice(["yes", "no"]))) for p in predictions[::2]], now
        )
    now = NOW + 60 * 7 + 30
    *closed, newest = window._buckets
    for bucket in closed:
        drift, labelled = bucket.drift, bucket.labelled
        assert drift is not None and labelled is not None
        assert drift._views is None
        assert drift.flat.dtype == np.uint8  # at most 60 records a bucket
        assert labelled.confusion.dtype == np.uint8
        assert bucket.confidence.counts.dtype == np.uint8
        # packed: one read-only integer and one float vector, no lists for records
        assert isinstance(bucket, _ClosedBucket)
        assert not hasattr(bucket, "drift_rows") and not hasattr(bucket, "joined_actual")
        assert isinstance(bucket.data, bytes) and bucket.layout.int_type == "uint8"
        assert bucket.layout is window._buckets[0].layout  # one per shape, shared
        # the checkpoint reads the packed form directly: as the aggregates say
        assert drift.expected is not None and bucket.layout.numeric  # every part is there
        assert confidence_dict(bucket.layout, bucket.data) == bucket.confidence.to_dict()
        assert drift_dict(bucket.layout, bucket.data) == drift.to_dict()
        with pytest.raises(ValueError, match="read-only"):  # a closed bucket never changes
            drift.flat += 1
        assert drift.copy().flat.dtype == np.int64
        assert labelled.copy().confusion.dtype == np.int64
        with pytest.raises(AttributeError):  # a closed bucket takes no records
            bucket.drift_rows = []  # type: ignore[union-attr]
    window.flush_rows()
    assert newest.drift is not None and newest.drift.flat.dtype == np.int64
    # what a window loaded from the checkpoint says (its buckets merged afresh)
    checkpoint = window.to_dict()
    twin = LiveWindow(config)
    twin.load(json.loads(json.dumps(checkpoint)))
    assert twin.to_dict() == checkpoint
    mine, theirs = window.summary(now), twin.summary(now)
    assert dict(mine.metrics) == dict(theirs.metrics)
    assert dict(mine.samples) == dict(theirs.samples)
    assert {k: dict(v) for k, v in mine.features.items()} == {
        k: dict(v) for k, v in theirs.features.items()
    }
    assert mine.short is not None and theirs.short is not None
    assert dict(mine.short.metrics) == dict(theirs.short.metrics)
    # the model page's chart points, made from compact closed buckets, say the same too
    assert mine.series is not None and theirs.series is not None
    assert len(mine.series.points) == 8
    assert mine.series.points == theirs.series.points
    assert all(p.predictions == 60 and p.labelled == 30 for p in mine.series.points)

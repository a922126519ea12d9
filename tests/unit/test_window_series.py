"""The window's per-bucket points (the model page's charts): each bucket's own accuracy
equals scikit-learn's on that bucket's pairs, counts and latency are the bucket's, at most
one point per bucket of the window, and a closed bucket's point is kept, not recomputed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from model_health_exporter.records import Prediction
from model_health_exporter.state.series import BucketPoint, pack, unpack
from model_health_exporter.state.windows import LiveWindow, WindowConfig
from model_health_exporter.stats.reference import build_reference
from tests.unit.test_window_drift import NOW, _prediction, _window
from tests.unit.test_windows import classification_stream

CONFIG = WindowConfig(bucket_seconds=60, buckets=5, min_samples=50, pending_max_age=3600)


def fill(window: LiveWindow, bucket: int, n: int, seed: int) -> list[tuple[str, str]]:
    """n predictions and their feedback in minute `bucket`; the (actual, predicted) pairs."""
    predictions, feedback = classification_stream(n, seed)
    at = bucket * 60.0 + 10.0
    window.observe_predictions(predictions, now=at)
    window.observe_feedbacks(feedback, now=at + 5)
    return [(f.actual, p.label) for p, f in zip(predictions, feedback, strict=True)]  # type: ignore[misc]


def test_each_bucket_has_its_own_accuracy_and_counts() -> None:
    window = LiveWindow(CONFIG)
    pairs = {b: fill(window, b, 40 + 20 * b, seed=b) for b in (1, 2, 4)}
    series = window.summary(now=4 * 60 + 30.0).series
    assert series is not None
    assert (series.bucket_seconds, series.buckets) == (60, 5)
    assert [p.start for p in series.points] == [60.0, 120.0, 240.0]
    for point, (bucket, bucket_pairs) in zip(series.points, pairs.items(), strict=True):
        actual, predicted = zip(*bucket_pairs, strict=True)
        assert point.predictions == point.labelled == len(bucket_pairs) == 40 + 20 * bucket
        assert point.accuracy == pytest.approx(accuracy_score(actual, predicted))
        assert point.errors == 0
        assert point.latency_mean_seconds == pytest.approx(0.01)
    assert series.last_record_at == 4 * 60 + 15.0


def test_at_most_one_point_per_bucket_of_the_window() -> None:
    window = LiveWindow(CONFIG)
    for bucket in range(12):
        fill(window, bucket, 10, seed=bucket)
    series = window.summary(now=11 * 60 + 30.0).series
    assert series is not None
    assert [p.start / 60 for p in series.points] == [7, 8, 9, 10, 11]


def test_a_closed_buckets_point_is_kept_and_the_newest_is_renewed() -> None:
    window = LiveWindow(CONFIG)
    fill(window, 1, 30, seed=1)
    fill(window, 2, 30, seed=2)
    first = window.summary(now=150.0).series
    fill(window, 2, 30, seed=3)  # the newest bucket grows
    second = window.summary(now=160.0).series
    assert first is not None and second is not None
    assert second.packed[0] is first.packed[0]  # closed: the same object
    assert second.packed[1] is not first.packed[1]
    assert (first.points[1].predictions, second.points[1].predictions) == (30, 60)


def test_points_without_feedback_have_no_accuracy() -> None:
    window = LiveWindow(CONFIG)
    predictions, _ = classification_stream(20, seed=5)
    window.observe_predictions(predictions, now=70.0)
    series = window.summary(now=80.0).series
    assert series is not None
    (point,) = series.points
    assert (point.predictions, point.labelled, point.accuracy) == (20, 0, None)


def test_each_buckets_estimate_follows_that_buckets_realized_accuracy() -> None:
    """A calibrated binary model, P(yes | x) = sigmoid(2x): one bucket of inputs like the
    reference's, the next shifted towards the decision boundary. Each bucket's label-free
    estimate follows the accuracy realized in that bucket (the labels never reach the
    window)."""
    rng = np.random.default_rng(21)

    def rows(n: int, scale: float) -> tuple[list[Prediction], float]:
        xs = rng.normal(0.0, scale, n)
        p_yes = 1 / (1 + np.exp(-2 * xs))
        actual_yes = rng.random(n) < p_yes
        out = [
            _prediction(
                {
                    "id": f"r{i}",
                    "features": {"x": float(x)},
                    "prediction": "yes" if p >= 0.5 else "no",
                    "probabilities": {"yes": float(p), "no": float(1 - p)},
                }
            )
            for i, (x, p) in enumerate(zip(xs, p_yes, strict=True))
        ]
        realized = float(np.mean((p_yes >= 0.5) == actual_yes))
        return out, realized

    ref_rows, _ = rows(6000, 2.0)
    ref_actual = [
        "yes" if rng.random() < (p.probabilities or {})["yes"] else "no" for p in ref_rows
    ]
    reference = build_reference(
        "jsonl",
        [p.features or {} for p in ref_rows],
        labels=[p.label for p in ref_rows],
        probabilities=[p.probabilities for p in ref_rows],
        confidences=[p.confidence for p in ref_rows],
        actuals=ref_actual,
    )
    window = _window(reference, bucket_seconds=60, buckets=10)
    wide, wide_realized = rows(4000, 2.0)
    narrow, narrow_realized = rows(4000, 0.5)
    window.observe_predictions(wide, now=NOW)
    window.observe_predictions(narrow, now=NOW + 60)
    series = window.summary(NOW + 70).series
    assert series is not None
    first, second = series.points
    assert wide_realized - narrow_realized > 0.1  # the shift really hurts
    assert (first.estimated, second.estimated) == (4000, 4000)
    assert first.estimated_accuracy == pytest.approx(wide_realized, abs=0.03)
    assert second.estimated_accuracy == pytest.approx(narrow_realized, abs=0.03)


def test_a_point_packs_and_unpacks_to_itself() -> None:
    point = BucketPoint(1.8e9, 1200, 12, 0.0213, 600, 0.8716666666666667, None, 1188, None)
    assert unpack(pack(point)) == point
    assert len(pack(point)) == 72


def test_when_the_last_record_came_is_checkpointed() -> None:
    window = LiveWindow(CONFIG)
    fill(window, 2, 30, seed=4)
    saved = json.loads(json.dumps(window.to_dict()))
    assert saved["last_record_at"] == 2 * 60 + 15.0
    restored = LiveWindow(CONFIG)
    restored.load(saved)
    series = restored.summary(now=150.0).series
    assert series is not None and series.last_record_at == 2 * 60 + 15.0
    # a checkpoint from before it was saved still loads: the time is unknown until data
    # comes (the board then shows the end of the newest bucket with data)
    del saved["last_record_at"]
    older = LiveWindow(CONFIG)
    older.load(saved)
    series = older.summary(now=150.0).series
    assert series is not None and series.last_record_at is None
    assert [p.predictions for p in series.points] == [30]
    fill(older, 2, 10, seed=5)
    assert older.last_record_at == 2 * 60 + 15.0

"""Live windows: joined predictions and feedback give the numbers scikit-learn gives on
the same pairs; old buckets leave the window; state survives a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score

from model_health_exporter.records import Feedback, Prediction
from model_health_exporter.state.windows import LiveWindow, WindowConfig

CONFIG = WindowConfig(bucket_seconds=60, buckets=10, min_samples=50)
CLASSES = ["a", "b", "c"]


def predict(i: int, label: str, proba: dict[str, float] | None = None) -> Prediction:
    confidence = None if proba is None else proba[label]
    return Prediction(f"id{i}", label, None, proba, confidence, 0.01, None)


def classification_stream(n: int, seed: int) -> tuple[list[Prediction], list[Feedback]]:
    rng = np.random.default_rng(seed)
    predictions, feedback = [], []
    for i in range(n):
        p = rng.dirichlet([2, 1, 1])
        proba = dict(zip(CLASSES, p.round(6).tolist(), strict=True))
        predicted = CLASSES[int(np.argmax(p))]
        predictions.append(predict(i, predicted, proba))
        feedback.append(Feedback(f"id{i}", CLASSES[int(rng.choice(3, p=p / p.sum()))]))
    return predictions, feedback


def test_live_classification_metrics_equal_sklearn() -> None:
    window = LiveWindow(CONFIG)
    predictions, feedback = classification_stream(400, seed=1)
    for p in predictions:
        window.observe_prediction(p, now=1000.0)
    for f in feedback[:300]:  # a quarter never gets labelled
        window.observe_feedback(f, now=1010.0)
    summary = window.summary(now=1020.0)
    y_pred = [p.label for p in predictions[:300]]
    y_true = [f.actual for f in feedback[:300]]
    assert summary.samples == {
        "predictions": 400,
        "labelled": 300,
        "confidence": 400,
        "features": 0,
    }
    assert summary.metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert summary.metrics["f1_score"] == pytest.approx(
        f1_score(y_true, y_pred, average="weighted", zero_division=0)
    )
    assert summary.metrics["f1_macro"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    confidences = [p.confidence for p in predictions]
    assert summary.metrics["confidence_mean"] == pytest.approx(np.mean(confidences))
    assert summary.metrics["low_confidence_ratio"] == pytest.approx(
        np.mean(np.array(confidences) < 0.75)
    )
    assert window.matched == 300


def test_nothing_reported_below_min_samples() -> None:
    window = LiveWindow(CONFIG)
    predictions, feedback = classification_stream(49, seed=2)
    for p, f in zip(predictions, feedback, strict=True):
        window.observe_prediction(p, now=0.0)
        window.observe_feedback(f, now=0.0)
    summary = window.summary(now=0.0)
    assert summary.metrics == {}
    assert summary.samples["labelled"] == 49


def test_old_buckets_leave_the_window() -> None:
    window = LiveWindow(CONFIG)
    predictions, feedback = classification_stream(200, seed=3)
    for i, (p, f) in enumerate(zip(predictions, feedback, strict=True)):
        now = 0.0 if i < 100 else 700.0  # 10 buckets of 60 s: t=0 is gone by t=700
        window.observe_prediction(p, now)
        window.observe_feedback(f, now)
    summary = window.summary(now=700.0)
    assert summary.samples["labelled"] == 100
    y_true = [f.actual for f in feedback[100:]]
    y_pred = [p.label for p in predictions[100:]]
    assert summary.metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert window.summary(now=10_000.0).samples == {
        "predictions": 0,
        "labelled": 0,
        "confidence": 0,
        "features": 0,
    }


def test_regression_window() -> None:
    window = LiveWindow(CONFIG)
    rng = np.random.default_rng(4)
    y = rng.normal(100, 15, 120)
    y_hat = y + rng.normal(0, 5, 120)
    for i in range(120):
        window.observe_prediction(
            Prediction(f"r{i}", None, float(y_hat[i]), None, None, None, None), now=5.0
        )
        window.observe_feedback(Feedback(f"r{i}", float(y[i])), now=6.0)
    metrics = window.summary(now=6.0).metrics
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y, y_hat))
    assert metrics["r2"] == pytest.approx(r2_score(y, y_hat))
    assert "accuracy" not in metrics


def test_feedback_join_bounds() -> None:
    window = LiveWindow(WindowConfig(max_pending=10, pending_max_age=100, min_samples=1))
    for i in range(15):
        window.observe_prediction(predict(i, "a"), now=0.0)
    assert window.expired == 5  # the oldest five made room
    # already expired, and never predicted: both wait for a prediction that won't come
    window.observe_feedback(Feedback("id0", "a"), now=1.0)
    window.observe_feedback(Feedback("nope", "a"), now=1.0)
    assert (window.unmatched, window.feedback_waiting) == (0, 2)
    window.observe_prediction(predict(99, "a"), now=200.0)  # pushes out one more
    assert window.expired == 6
    window.summary(now=200.0)  # age limits apply at each summary and bucket change
    assert window.expired == 15
    assert (window.unmatched, window.feedback_waiting) == (2, 0)
    window.observe_feedback(Feedback("id99", "b"), now=201.0)
    assert window.matched == 1
    assert window.summary(now=201.0).metrics["accuracy"] == 0.0


def test_classes_beyond_the_cap_count_as_other() -> None:
    window = LiveWindow(WindowConfig(max_classes=2, min_samples=1))
    for i, label in enumerate(["a", "b", "c", "d"]):
        window.observe_prediction(predict(i, label), now=0.0)
        window.observe_feedback(Feedback(f"id{i}", label), now=0.0)
    assert window.classes == ["a", "b"]
    assert window.summary(now=0.0).metrics["accuracy"] == 1.0  # c and d are both "other"


def test_checkpoint_round_trip() -> None:
    window = LiveWindow(CONFIG)
    predictions, feedback = classification_stream(300, seed=5)
    for p in predictions:
        window.observe_prediction(p, now=50.0)
    for f in feedback[:200]:
        window.observe_feedback(f, now=60.0)
    restored = LiveWindow(CONFIG)
    restored.load(json.loads(json.dumps(window.to_dict())))
    for f in feedback[200:]:  # pending predictions survived the restart
        window.observe_feedback(f, now=70.0)
        restored.observe_feedback(f, now=70.0)
    assert restored.summary(now=80.0) == window.summary(now=80.0)
    assert restored.matched == 300


def test_live_auc_follows_every_new_label_and_bucket() -> None:
    """The AUC a refresh reuses is the right one: after more feedback in the newest bucket,
    after a bucket opens, and after old labels expire it equals scikit-learn's on the
    labels then in the window."""
    window = LiveWindow(CONFIG)  # 10 buckets of 60 s
    predictions, feedback = classification_stream(900, seed=4)
    for p in predictions:
        window.observe_prediction(p, now=0.0)
    proba = np.array([[p.probabilities[c] for c in CLASSES] for p in predictions])  # type: ignore[index]
    actual = np.array([f.actual for f in feedback])

    def check(labelled: slice, now: float) -> None:
        summary = window.summary(now)
        expected = roc_auc_score(actual[labelled], proba[labelled], multi_class="ovr")
        bound = summary.metrics["auc_roc_error_bound"]
        assert abs(summary.metrics["auc_roc"] - expected) <= bound + 1e-12
        assert bound <= 0.005

    for f in feedback[:300]:
        window.observe_feedback(f, now=10.0)
    check(slice(0, 300), 20.0)
    check(slice(0, 300), 21.0)  # unchanged: reused
    for f in feedback[300:400]:
        window.observe_feedback(f, now=30.0)  # the same bucket
    check(slice(0, 400), 40.0)
    for f in feedback[400:600]:
        window.observe_feedback(f, now=70.0)  # a new bucket
    check(slice(0, 600), 80.0)
    for f in feedback[600:900]:
        window.observe_feedback(f, now=650.0)  # the first bucket has left the window
    check(slice(400, 900), 655.0)


def test_feedback_before_its_prediction_waits_and_is_joined() -> None:
    window = LiveWindow(WindowConfig(max_pending=10, pending_max_age=100, min_samples=1))
    for i in range(4):
        window.observe_feedback(Feedback(f"id{i}", "a" if i % 2 else "b"), now=1.0)
    assert (window.matched, window.unmatched, window.feedback_waiting) == (0, 0, 4)
    for i in range(4):
        window.observe_prediction(predict(i, "a"), now=2.0)
    assert (window.matched, window.unmatched, window.feedback_waiting) == (4, 0, 0)
    # joined when the prediction came: predicted "a", actually a, b, a, b
    assert window.summary(now=2.0).metrics["accuracy"] == 0.5
    window.observe_feedback(Feedback("id0", "a"), now=3.0)  # its prediction was joined
    assert window.feedback_waiting == 1


def test_waiting_feedback_is_bounded_counted_and_checkpointed() -> None:
    config = WindowConfig(max_pending=3, pending_max_age=100, min_samples=1)
    window = LiveWindow(config)
    for i in range(5):
        window.observe_feedback(Feedback(f"id{i}", "a"), now=1.0)
    window.observe_feedback(Feedback("id4", "b"), now=1.0)  # the same id again
    # id0, id1 pushed out, the first id4 replaced: three unmatched, three waiting
    assert (window.unmatched, window.feedback_waiting) == (3, 3)
    saved = json.loads(json.dumps(window.to_dict()))  # as a checkpoint holds it
    restored = LiveWindow(config)
    restored.load(saved)
    assert restored.to_dict() == saved
    for i in range(5):
        restored.observe_prediction(predict(i, "b"), now=2.0)
    assert (restored.matched, restored.unmatched, restored.feedback_waiting) == (3, 3, 0)
    assert restored.summary(now=2.0).metrics["accuracy"] == pytest.approx(1 / 3)  # id4: b
    window.summary(now=200.0)  # waited longer than pending_max_age
    assert (window.unmatched, window.feedback_waiting) == (6, 0)


def test_checkpoint_with_pending_probabilities_as_dicts_still_loads() -> None:
    """Checkpoints written before the compact pending store held each waiting
    prediction's probabilities as a dict: they load, and join as they would have."""
    config = WindowConfig(min_samples=1)
    window = LiveWindow(config)
    window.observe_prediction(predict(0, "a", {"a": 0.7, "b": 0.3}), now=1.0)
    window.observe_prediction(predict(1, "b", {"a": 0.4, "b": 0.6}), now=1.0)
    saved = json.loads(json.dumps(window.to_dict()))
    assert saved["pending"] == [["id0", 1.0, 0, [0.7, 0.3]], ["id1", 1.0, 1, [0.4, 0.6]]]
    saved["pending"] = [
        ["id0", 1.0, 0, {"a": 0.7, "b": 0.3}],
        ["id1", 1.0, 1, {"b": 0.6, "a": 0.4}],
    ]
    old = LiveWindow(config)
    old.load(saved)
    for w in (window, old):
        w.observe_feedbacks([Feedback("id0", "b"), Feedback("id1", "b")], now=2.0)
    assert old.to_dict() == window.to_dict()
    assert old.summary(2.0) == window.summary(2.0)
    assert old.summary(2.0).metrics["log_loss"] == pytest.approx(-(np.log(0.3) + np.log(0.6)) / 2)


def test_short_horizon_covers_the_newest_buckets_only() -> None:
    """The short horizon merges the newest `short_buckets` buckets: its accuracy is
    scikit-learn's on the pairs joined there, the window's on all pairs."""
    config = WindowConfig(bucket_seconds=60, buckets=10, short_buckets=2, min_samples=50)
    window = LiveWindow(config)
    predictions, feedback = classification_stream(600, seed=7)
    # 200 pairs joined in each of the buckets 0, 5 and 6 (the newest two at t=400 s).
    for part, at in ((0, 30.0), (1, 330.0), (2, 390.0)):
        chunk = slice(200 * part, 200 * part + 200)
        for p in predictions[chunk]:
            window.observe_prediction(p, now=at)
        for f in feedback[chunk]:
            window.observe_feedback(f, now=at)
    summary = window.summary(now=400.0)
    assert summary.short is not None
    y_pred = [p.label for p in predictions]
    y_true = [f.actual for f in feedback]
    assert summary.metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert summary.short.metrics["accuracy"] == pytest.approx(
        accuracy_score(y_true[200:], y_pred[200:])
    )
    assert summary.short.samples["labelled"] == 400
    assert summary.short.short is None
    # One bucket later the older of the two leaves the short horizon, not the window.
    later = window.summary(now=450.0)
    assert later.short is not None
    assert later.short.samples["labelled"] == 200
    assert later.short.metrics["accuracy"] == pytest.approx(
        accuracy_score(y_true[400:], y_pred[400:])
    )
    assert later.samples["labelled"] == 600


def test_no_short_horizon_when_disabled() -> None:
    config = WindowConfig(bucket_seconds=60, buckets=10, short_buckets=0, min_samples=50)
    window = LiveWindow(config)
    predictions, feedback = classification_stream(200, seed=8)
    for p, f in zip(predictions, feedback, strict=True):
        window.observe_prediction(p, now=30.0)
        window.observe_feedback(f, now=30.0)
    summary = window.summary(now=40.0)
    assert summary.short is None
    assert summary.metrics["accuracy"] == pytest.approx(
        accuracy_score([f.actual for f in feedback], [p.label for p in predictions])
    )

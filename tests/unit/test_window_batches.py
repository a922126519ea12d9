"""Batches through a live window: probabilities over the known classes are read in one
call whatever their key order; the numbers equal scikit-learn's on the same pairs and
those of the general path (one class lookup per probability)."""

from __future__ import annotations

import json
import random

import pytest
from sklearn.metrics import log_loss

from model_health_exporter.records import Feedback, Prediction
from model_health_exporter.state import windows
from model_health_exporter.state.windows import LiveWindow, WindowConfig

CLASSES = ["a", "b", "c"]


def stream(
    seed: int, n: int, extra_class_at: int | None = None, without_probabilities: float = 0.1
) -> list[Prediction | Feedback]:
    rng = random.Random(seed)  # noqa: S311 - seeded test data
    out: list[Prediction | Feedback] = []
    for i in range(n):
        classes = [*CLASSES, "d"] if extra_class_at is not None and i >= extra_class_at else CLASSES
        weights = [rng.random() + 0.01 for _ in classes]
        total = sum(weights)
        proba = {c: w / total for c, w in zip(classes, weights, strict=True)}
        keys = list(proba)
        rng.shuffle(keys)  # any key order
        label = max(proba, key=proba.__getitem__)
        probabilities = (
            None if rng.random() < without_probabilities else {k: proba[k] for k in keys}
        )
        out.append(Prediction(f"r{i}", label, None, probabilities, proba[label], 0.01, None))
        if rng.random() < 0.8:
            out.append(Feedback(f"r{i}", rng.choice(classes)))
    return out


def feed(window: LiveWindow, records: list[Prediction | Feedback], run: int) -> None:
    """In runs of `run` records of one kind, as the ingest worker hands them on."""
    batch: list[Prediction | Feedback] = []
    for record in records:
        if batch and (len(batch) == run or type(batch[-1]) is not type(record)):
            _hand_on(window, batch)
            batch = []
        batch.append(record)
    _hand_on(window, batch)


def _hand_on(window: LiveWindow, batch: list[Prediction | Feedback]) -> None:
    if batch and isinstance(batch[0], Feedback):
        window.observe_feedbacks([r for r in batch if isinstance(r, Feedback)], 10.0)
    else:
        window.observe_predictions([r for r in batch if isinstance(r, Prediction)], 10.0)


def test_log_loss_equals_sklearn_with_probabilities_in_any_key_order() -> None:
    records = stream(1, 3000)
    window = LiveWindow(WindowConfig(min_samples=10))
    feed(window, records, run=500)
    predicted = {r.id: r for r in records if isinstance(r, Prediction)}
    pairs = [
        (f.actual, predicted[f.id].probabilities)
        for f in records
        if isinstance(f, Feedback) and predicted[f.id].probabilities is not None
    ]
    y_true = [actual for actual, _ in pairs]
    y_prob = [[p[c] for c in CLASSES] for _, p in pairs if p is not None]
    summary = window.summary(10.0)
    assert summary.metrics["log_loss"] == pytest.approx(
        log_loss(y_true, y_prob, labels=CLASSES), rel=1e-9
    )


@pytest.mark.parametrize("run", [1, 7, 1000])
@pytest.mark.parametrize("without_probabilities", [0.1, 0.0])
def test_batches_equal_the_general_path(
    run: int, without_probabilities: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = stream(2, 2000, 1500, without_probabilities)  # a class appears late
    # some feedback before its prediction, some ids twice
    records[100:100] = [Feedback("r120", "a"), Feedback("r130", "b")]
    records[200:200] = [Prediction("r150", "a", None, dict.fromkeys(CLASSES, 0.5), 0.5, 0.01, None)]
    fast = LiveWindow(WindowConfig(min_samples=10, max_pending=700))
    original = windows.LiveWindow._await_known_classes
    bulk: list[bool] = []

    def counted(self: LiveWindow, predictions: list[Prediction], now: float) -> bool:
        bulk.append(original(self, predictions, now))
        return bulk[-1]

    monkeypatch.setattr(windows.LiveWindow, "_await_known_classes", counted)
    feed(fast, records, run)
    if not without_probabilities and run > 1:
        assert bulk.count(True) > len(bulk) / 2  # the known classes' path ran
    monkeypatch.setattr(windows.LiveWindow, "_await_known_classes", lambda self, p, now: False)
    monkeypatch.setattr(windows.LiveWindow, "_join_known_classes", lambda self, *args: False)
    monkeypatch.setattr(
        windows._ProbabilityRows,
        "__call__",
        lambda self, p: None if p is None else self._window._proba_vector(p),
    )
    general = LiveWindow(WindowConfig(min_samples=10, max_pending=700))
    feed(general, records, run)
    assert fast.classes == general.classes
    assert sorted(fast.classes) == ["a", "b", "c", "d"]
    assert fast.summary(10.0) == general.summary(10.0)
    assert json.dumps(fast.to_dict()) == json.dumps(general.to_dict())

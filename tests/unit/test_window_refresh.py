"""The periodic refresh reuses a window's last summary while nothing it is made of moved,
and computes it again on each kind of change: a record tallied, a bucket leaving either
horizon as time passes, the reference replaced. Waits still expire on a reused summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from model_health_exporter.records import Feedback, Prediction
from model_health_exporter.state import windows as windows_module
from model_health_exporter.state.windows import LiveWindow, WindowConfig, WindowSummary, summaries
from model_health_exporter.stats.reference import build_reference
from tests.unit.test_windows import classification_stream

CONFIG = WindowConfig(
    bucket_seconds=60, buckets=10, short_buckets=1, min_samples=50, pending_max_age=3600
)


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many windows each call of the summary computation was given."""
    calls: list[int] = []
    compute = windows_module._compute_summaries

    def counting(windows: Sequence[LiveWindow], now: float) -> list[WindowSummary]:
        calls.append(len(windows))
        return compute(windows, now)

    monkeypatch.setattr(windows_module, "_compute_summaries", counting)
    return calls


def labelled_window(n: int = 100, at: float = 30.0) -> LiveWindow:
    window = LiveWindow(CONFIG)
    predictions, feedback = classification_stream(n, seed=3)
    window.observe_predictions(predictions, now=at)
    window.observe_feedbacks(feedback, now=at)
    return window


def test_a_refresh_with_nothing_new_computes_nothing(computed: list[int]) -> None:
    windows = [labelled_window(), labelled_window(), LiveWindow(CONFIG)]
    first = summaries(windows, now=40.0)
    assert computed == [3]
    # Later, in the same bucket, and again: the same objects, nothing computed.
    again = summaries(windows, now=55.0)
    assert computed == [3]
    assert all(a is b for a, b in zip(first, again, strict=True))
    # An empty window stays empty as time passes: nothing to compute either.
    summaries([windows[2]], now=10_000.0)
    assert computed == [3]


def test_a_new_record_is_picked_up(computed: list[int]) -> None:
    windows = [labelled_window(), labelled_window()]
    before = summaries(windows, now=40.0)
    windows[1].observe_prediction(Prediction("new", "a", None, None, 0.9, 0.01, None), now=41.0)
    after = summaries(windows, now=42.0)
    assert computed == [2, 1]  # only the window that took the record
    assert after[0] is before[0]
    assert after[1].samples["predictions"] == before[1].samples["predictions"] + 1
    assert after[1].short is not None
    assert after[1].short.samples["predictions"] == 101


def test_an_invalid_line_is_picked_up(computed: list[int]) -> None:
    window = labelled_window()
    summaries([window], now=40.0)
    window.observe_invalid(now=41.0)
    after = summaries([window], now=42.0)
    assert computed == [1, 1]
    assert after[0].metrics["invalid_record_ratio"] == pytest.approx(1 / 101)


def test_the_short_horizon_moves_on_with_time(computed: list[int]) -> None:
    """Nothing is logged, the newest bucket closes: it leaves the short horizon (its
    accuracy goes below the minimum samples), not the window."""
    window = labelled_window()
    first = summaries([window], now=40.0)[0]
    assert first.short is not None
    assert "accuracy" in first.short.metrics
    later = summaries([window], now=70.0)[0]  # the next bucket
    assert computed == [1, 1]
    assert later.short is not None
    assert later.short.samples["labelled"] == 0
    assert "accuracy" not in later.short.metrics
    assert later.metrics["accuracy"] == first.metrics["accuracy"]
    # and from then on, nothing to compute until the bucket leaves the window
    assert summaries([window], now=400.0)[0] is later
    assert computed == [1, 1]


def test_a_bucket_expiring_empties_the_window(computed: list[int]) -> None:
    window = labelled_window()
    first = summaries([window], now=40.0)[0]
    assert first.samples["labelled"] == 100
    assert summaries([window], now=599.0)[0] is not first  # the short horizon moved
    gone = summaries([window], now=600.0)[0]  # 10 buckets later: out of the window
    assert computed == [1, 1, 1]
    assert gone.samples == {"predictions": 0, "labelled": 0, "confidence": 0, "features": 0}
    assert "accuracy" not in gone.metrics


def test_below_min_samples_after_an_older_bucket_expires(computed: list[int]) -> None:
    """60 pairs in bucket 0, 40 in bucket 1: when bucket 0 leaves, 40 < 50 remain."""
    window = LiveWindow(CONFIG)
    predictions, feedback = classification_stream(100, seed=5)
    window.observe_predictions(predictions[:60], now=30.0)
    window.observe_feedbacks(feedback[:60], now=30.0)
    window.observe_predictions(predictions[60:], now=90.0)
    window.observe_feedbacks(feedback[60:], now=90.0)
    whole = summaries([window], now=200.0)[0]
    assert "accuracy" in whole.metrics
    assert summaries([window], now=599.0)[0] is whole
    fewer = summaries([window], now=600.0)[0]
    assert computed == [1, 1]
    assert fewer.samples["labelled"] == 40
    assert "accuracy" not in fewer.metrics


def test_a_new_reference_is_picked_up(computed: list[int]) -> None:
    window = LiveWindow(CONFIG)
    rows = [
        Prediction(f"r{i}", "a", None, None, None, None, None, features={"x": float(i)})
        for i in range(200)
    ]
    window.observe_predictions(rows, now=30.0)
    before = summaries([window], now=40.0)[0]
    assert before.reference_source is None
    reference = build_reference("jsonl", [{"x": float(i % 50)} for i in range(500)])
    window.set_reference(reference)
    after = summaries([window], now=41.0)[0]
    assert computed == [1, 1]
    assert after.reference_source == "jsonl"
    assert after.metrics["reference_samples"] == 500
    # the same reference again changes nothing
    window.set_reference(build_reference("jsonl", [{"x": float(i % 50)} for i in range(500)]))
    assert summaries([window], now=42.0)[0] is after


def test_waits_expire_while_the_summary_is_reused(computed: list[int]) -> None:
    window = LiveWindow(replace(CONFIG, pending_max_age=20.0))
    window.observe_prediction(Prediction("p", "a", None, None, 0.9, None, None), now=30.0)
    window.observe_feedback(Feedback("early", "a"), now=30.0)
    first = summaries([window], now=40.0)[0]
    assert (window.predictions_waiting, window.feedback_waiting) == (1, 1)
    # Past the longest wait, in the same bucket: the summary is reused, the waits expire.
    assert summaries([window], now=59.0)[0] is first
    assert computed == [1]
    assert (window.predictions_waiting, window.feedback_waiting) == (0, 0)
    assert (window.expired, window.unmatched) == (1, 1)
    assert first.samples["predictions"] == 1


def test_a_loaded_checkpoint_is_picked_up(computed: list[int]) -> None:
    """Another checkpoint's buckets at the same times as the window's own."""
    window = labelled_window(100)
    before = summaries([window], now=40.0)[0]
    window.load(labelled_window(60).to_dict())
    loaded = summaries([window], now=41.0)[0]
    assert computed == [1, 1]
    assert (before.samples["labelled"], loaded.samples["labelled"]) == (100, 60)

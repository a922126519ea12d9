"""Drift, data quality and label-free estimation of a live window against its reference,
through the real record parser and window, checked against scipy and hand counts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from model_health_exporter.records import Prediction, parse_line
from model_health_exporter.state import windows as windows_module
from model_health_exporter.state.windows import (
    LiveWindow,
    WindowConfig,
    WindowSummary,
    summaries,
)
from model_health_exporter.stats.reference import ModelReference, build_reference

NOW = 1_800_000_000.0


def _prediction(record: dict[str, object]) -> Prediction:
    parsed = parse_line(json.dumps(record).encode())
    assert isinstance(parsed, Prediction)
    return parsed


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[dict[str, object]]:
    xs = rng.normal(shift, 1.0, n)
    cats = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    return [
        {
            "id": f"r{i}",
            "features": {"x": float(x), "cat": str(c)},
            "prediction": "yes" if x > 0 else "no",
            "probabilities": {"yes": 0.8, "no": 0.2} if x > 0 else {"yes": 0.3, "no": 0.7},
            "latency_ms": 20,
        }
        for i, (x, c) in enumerate(zip(xs, cats, strict=True))
    ]


def _reference(
    rows: list[dict[str, object]], labels_from: np.random.Generator | None = None
) -> ModelReference:
    """A reference of `rows`; with `labels_from`, also their probabilities and random
    actual labels, so that a calibrator is fitted."""
    parsed = [_prediction(r) for r in rows]
    return build_reference(
        "jsonl",
        [p.features or {} for p in parsed],
        labels=[p.label for p in parsed],
        probabilities=[p.probabilities for p in parsed] if labels_from is not None else (),
        confidences=[p.confidence for p in parsed],
        actuals=[str(a) for a in labels_from.choice(["yes", "no"], len(parsed))]
        if labels_from is not None
        else (),
        latencies=[p.latency_seconds for p in parsed],
    )


def _window(reference: ModelReference | None, **config: int) -> LiveWindow:
    window = LiveWindow(WindowConfig(min_samples=100, **config))  # type: ignore[arg-type]  # test-only overrides
    window.set_reference(reference)
    return window


def test_no_drift_on_the_reference_distribution_and_drift_on_a_shift() -> None:
    rng = np.random.default_rng(7)
    reference = _reference(_rows(rng, 5000))
    same, shifted = _window(reference), _window(reference)
    current_same, current_shifted = _rows(rng, 3000), _rows(rng, 3000, shift=0.5)
    for record in current_same:
        same.observe_prediction(_prediction(record), NOW)
    for record in current_shifted:
        shifted.observe_prediction(_prediction(record), NOW)

    calm, drifted = same.summary(NOW), shifted.summary(NOW)
    assert calm.reference_source == "jsonl"
    assert calm.samples["features"] == 3000
    assert calm.features["x"]["drift_detected"] == 0.0
    assert calm.features["cat"]["drift_detected"] == 0.0
    assert calm.metrics["data_drift_share"] == 0.0
    assert drifted.features["x"]["drift_detected"] == 1.0
    assert drifted.features["cat"]["drift_detected"] == 0.0
    assert drifted.metrics["data_drift_share"] == 0.5
    # The binned KS statistic agrees with scipy on the raw samples (documented tolerance).
    raw_ref = [r["features"]["x"] for r in _rows(np.random.default_rng(7), 5000)]  # type: ignore[index]  # test data
    raw_cur = [r["features"]["x"] for r in current_shifted]  # type: ignore[index]  # test data
    expected = sps.ks_2samp(raw_ref, raw_cur).statistic
    assert drifted.features["x"]["ks_statistic"] == pytest.approx(expected, abs=0.02)
    assert drifted.features["x"]["ks_statistic"] <= expected + 1e-12
    # The predicted class moves with x: prediction drift is seen too.
    assert drifted.metrics["prediction_drift_detected"] == 1.0
    assert calm.metrics["prediction_drift_detected"] == 0.0


def test_data_quality_ratios_are_exact_counts() -> None:
    rng = np.random.default_rng(3)
    reference = _reference(_rows(rng, 2000))
    window = _window(reference)
    records = _rows(rng, 1000)
    maximum = max(r["features"]["x"] for r in _rows(np.random.default_rng(3), 2000))  # type: ignore[index]  # test data
    for i, record in enumerate(records):
        features = dict(record["features"])  # type: ignore[call-overload]  # test data
        if i < 100:
            features["x"] = None  # missing
        elif i < 150:
            features["x"] = maximum + 1.0  # above the reference range
        elif i < 160:
            features["x"] = "n/a"  # wrong type
        if i % 10 == 0:
            features["cat"] = "zzz"  # unseen category
        if i % 20 == 1:
            del features["cat"]  # absent
        window.observe_prediction(_prediction(record | {"features": features}), NOW)
    for _ in range(25):
        window.observe_invalid(NOW)
    summary = window.summary(NOW)
    assert summary.features["x"]["missing_ratio"] == pytest.approx(100 / 1000)
    assert summary.features["x"]["out_of_range_ratio"] == pytest.approx((50 + 10) / 1000)
    assert summary.features["cat"]["missing_ratio"] == pytest.approx(50 / 1000)
    assert summary.features["cat"]["unseen_category_ratio"] == pytest.approx(100 / 950)
    assert summary.metrics["invalid_record_ratio"] == pytest.approx(25 / 1025)


def test_first_predictions_become_the_reference() -> None:
    rng = np.random.default_rng(11)
    window = _window(None, reference_predictions=500)
    records = _rows(rng, 1500, shift=0.0)
    for record in records[:499]:
        window.observe_prediction(_prediction(record), NOW)
    assert window.reference is None
    assert window.summary(NOW).reference_source is None
    for record in records[499:]:
        window.observe_prediction(_prediction(record), NOW)
    summary = window.summary(NOW)
    assert summary.reference_source == "predictions"
    assert summary.metrics["reference_samples"] == 500
    assert summary.samples["features"] == 1000  # the reference rows are not compared to themselves
    assert summary.features["x"]["drift_detected"] == 0.0


def test_checkpoint_round_trip_keeps_reference_and_drift_counts() -> None:
    rng = np.random.default_rng(5)
    window = _window(_reference(_rows(rng, 2000)))
    for record in _rows(rng, 700, shift=0.3):
        window.observe_prediction(_prediction(record), NOW)
    data = json.loads(json.dumps(window.to_dict()))
    restored = LiveWindow(WindowConfig(min_samples=100))
    restored.load(data)
    assert restored.summary(NOW) == window.summary(NOW)
    # The same reference given again (read from its file after a restart) keeps the counts.
    assert restored.reference is not None
    restored.set_reference(ModelReference.from_dict(restored.reference.to_dict()))
    assert restored.summary(NOW).samples["features"] == 700


def test_a_different_reference_restarts_the_drift_counts() -> None:
    rng = np.random.default_rng(9)
    window = _window(_reference(_rows(rng, 2000)))
    for record in _rows(rng, 300):
        window.observe_prediction(_prediction(record), NOW)
    window.set_reference(_reference(_rows(rng, 2000, shift=1.0)))
    assert window.summary(NOW).samples["features"] == 0


def test_estimated_accuracy_tracks_a_calibrated_model_under_covariate_shift() -> None:
    """A calibrated binary model: P(yes | x) = sigmoid(2x), predictions as logged. Under a
    shift towards the decision boundary realized accuracy drops; the label-free estimate
    from the reference's calibration follows it."""
    rng = np.random.default_rng(21)

    def rows(n: int, scale: float) -> tuple[list[dict[str, object]], list[str]]:
        xs = rng.normal(0.0, scale, n)
        p_yes = 1 / (1 + np.exp(-2 * xs))
        actual = np.where(rng.random(n) < p_yes, "yes", "no")
        out = []
        for i, (x, p) in enumerate(zip(xs, p_yes, strict=True)):
            label = "yes" if p >= 0.5 else "no"
            out.append(
                {
                    "id": f"r{i}",
                    "features": {"x": float(x)},
                    "prediction": label,
                    "probabilities": {"yes": float(p), "no": float(1 - p)},
                }
            )
        return out, [str(a) for a in actual]

    ref_rows, ref_actual = rows(6000, 2.0)
    parsed = [_prediction(r) for r in ref_rows]
    reference = build_reference(
        "jsonl",
        [p.features or {} for p in parsed],
        labels=[p.label for p in parsed],
        probabilities=[p.probabilities for p in parsed],
        confidences=[p.confidence for p in parsed],
        actuals=ref_actual,
    )
    window = _window(reference)
    cur_rows, cur_actual = rows(6000, 0.5)
    for record in cur_rows:
        window.observe_prediction(_prediction(record), NOW)
    realized = np.mean([r["prediction"] == a for r, a in zip(cur_rows, cur_actual, strict=True)])
    reference_accuracy = np.mean(
        [r["prediction"] == a for r, a in zip(ref_rows, ref_actual, strict=True)]
    )
    estimated = window.summary(NOW).metrics["estimated_accuracy"]
    assert reference_accuracy - realized > 0.1  # the shift really hurts
    assert math.isclose(estimated, realized, abs_tol=0.03)


def test_categories_beyond_the_top_k_are_not_unseen() -> None:
    rows = [
        {"features": {"c": f"k{i % 30:02d}"}, "prediction": "a", "confidence": 0.9}
        for i in range(3000)
    ]
    reference = _reference(rows)
    window = _window(reference)
    for record in rows[:25] * 8 + [{"features": {"c": "new"}, "prediction": "a"}] * 50:
        window.observe_prediction(_prediction(record), NOW)
    stats = window.summary(NOW).features["c"]
    assert stats["unseen_category_ratio"] == pytest.approx(50 / 250)


def _assert_same_summary(mine: WindowSummary, other: WindowSummary) -> None:
    """Equal up to floating-point rounding (1e-6 relative), keys and counts exactly."""
    assert dict(mine.metrics) == pytest.approx(dict(other.metrics), rel=1e-6, abs=0)
    assert mine.features.keys() == other.features.keys()
    for name, stats in mine.features.items():
        assert dict(stats) == pytest.approx(dict(other.features[name]), rel=1e-6, abs=0)
    assert (mine.samples, mine.reference_source) == (other.samples, other.reference_source)


@pytest.mark.parametrize("batch", [1, 4, windows_module.SUMMARY_BATCH])
def test_batched_summaries_equal_each_windows_own(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`summaries` computes the drift of many windows in batches; each result must be
    what that window says alone, whatever the mix: its own reference (with and without
    calibration), shifted, too few rows for drift, no reference yet, no records; and in
    the windows' order whatever the size of the batches (4: a batch and part of one)."""
    monkeypatch.setattr(windows_module, "SUMMARY_BATCH", batch)
    computed = windows_module._compute_summaries
    sizes: list[int] = []

    def spy(windows: list[LiveWindow], now: float) -> list[WindowSummary]:
        sizes.append(len(windows))
        return computed(windows, now)

    monkeypatch.setattr(windows_module, "_compute_summaries", spy)
    rng = np.random.default_rng(11)
    plain, calibrated = _reference(_rows(rng, 2000)), _reference(_rows(rng, 2000), labels_from=rng)
    windows = [
        _window(plain),
        _window(calibrated),
        _window(plain),
        _window(calibrated),
        _window(None),
        _window(plain),
    ]
    for window, n, shift in zip(
        windows, [800, 900, 50, 700, 300, 0], [0, 0.4, 0, 1, 0, 0], strict=True
    ):
        for record in _rows(rng, n, shift):
            window.observe_prediction(_prediction(record), NOW)
    batched = summaries(windows, NOW)
    alone = [w.summary(NOW) for w in windows]
    for mine, own in zip(batched, alone, strict=True):
        # far in the tail, p-values may differ in the 9th digit: numpy's matrix products
        # round differently over a batch of another shape
        _assert_same_summary(mine, own)
    assert batched[1].metrics["data_drift_share"] > 0  # the batch held real drift
    assert "estimated_accuracy" in batched[3].metrics
    assert not batched[2].features["x"].keys() & {"psi", "drift_detected"}  # 50 rows
    assert batched[5].samples["predictions"] == 0
    assert summaries([], NOW) == []
    # never more windows' totals and drift arrays at once than a batch
    assert sizes == [min(batch, 6 - start) for start in range(0, 6, batch)]


def test_merged_closed_buckets_follow_every_change_of_the_window() -> None:
    """The merge of the closed buckets is kept between summaries. After every step, a
    window summarised at each step must say what a copy of its twin, loaded from a
    checkpoint (so merging afresh), says: inside a bucket, when a bucket opens, when
    buckets expire with no record arriving, after a new reference and after loading an
    older checkpoint."""
    rng = np.random.default_rng(5)
    first, second = _reference(_rows(rng, 2000)), _reference(_rows(rng, 2000, shift=0.2))
    watched, twin = _window(first, buckets=3), _window(first, buckets=3)
    step = WindowConfig().bucket_seconds / 2  # two steps per bucket
    sizes = [150, 120, 110, 130, 140, 160, 170, 100, 180, 190, 0, 0, 0, 120]
    seen_counts = []
    for i, size in enumerate(sizes):
        now = NOW + i * step
        for record in _rows(rng, size, shift=0.1 * i):
            watched.observe_prediction(_prediction(record), now)
            twin.observe_prediction(_prediction(record), now)
        if i == 3:
            older = twin.to_dict()
        if i == 5:  # back to the end of step 3: one closed bucket, not two
            watched.summary(now)
            watched.load(older)
            twin.load(older)
        if i == 7:  # inside a bucket: no bucket opens to reset the merge
            watched.set_reference(second)
            twin.set_reference(second)
        fresh = _window(None, buckets=3)
        fresh.load(twin.to_dict())
        seen = watched.summary(now)
        _assert_same_summary(seen, fresh.summary(now))  # sums flushed in other batches
        seen_counts.append(seen.samples["predictions"])
    # the rollback drops steps 4 and 5; three buckets of two steps each stay in the window
    assert seen_counts[5] == sum(sizes[0:4])
    assert seen_counts[6] == sum(sizes[2:4]) + sizes[6]
    assert seen_counts[9] == sum(sizes[6:10])
    assert seen_counts[13] == sum(sizes[8:14])


def test_short_horizon_flags_a_recent_shift_the_window_dilutes() -> None:
    """Five minutes of traffic shifted by one standard deviation after 55 calm ones: the
    short horizon (its 500 rows only) flags x, its drift share is 1 of 2 features, and the
    short summary carries the flags only."""
    rng = np.random.default_rng(21)
    window = LiveWindow(
        WindowConfig(bucket_seconds=60, buckets=60, short_buckets=5, min_samples=100)
    )
    window.set_reference(_reference(_rows(rng, 5000)))
    start = NOW - 3600
    calm, shifted = _rows(rng, 5500), _rows(rng, 500, shift=1.0)
    for minute in range(60):
        rows = (
            calm[minute * 100 : minute * 100 + 100]
            if minute < 55
            else shifted[(minute - 55) * 100 : (minute - 54) * 100]
        )
        window.observe_predictions([_prediction(r) for r in rows], now=start + 60 * minute + 1)
    summary = window.summary(now=start + 60 * 59 + 30)
    short = summary.short
    assert short is not None
    assert short.samples["features"] == 500
    assert set(short.features["x"]) == {"drift_detected"}
    assert short.features["x"]["drift_detected"] == 1.0
    assert short.metrics["data_drift_share"] == pytest.approx(0.5)
    assert summary.samples["features"] == 6000  # the window holds the calm hour too

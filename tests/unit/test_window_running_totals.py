"""The merges a window keeps between refreshes (its closed buckets, and those of the short
horizon) must equal merging its buckets from scratch, exactly, after any sequence of
records, bucket openings, expiries, idle gaps, a new reference and a checkpoint load:
integer counts are taken out of the kept merge when a bucket expires, and the rest
(float sums, M2, minima and maxima, the ROC AUC sketch) merged again in bucket order."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model_health_exporter.records import Feedback, Prediction, parse_line
from model_health_exporter.state.windows import LiveWindow, WindowConfig, _Totals
from model_health_exporter.stats.reference import ModelReference, build_reference

NOW = 1_800_000_000.0
BUCKET = 60.0
CLASSES = ("a", "b", "c")


def _prediction(i: int, rng: np.random.Generator, kind: str) -> Prediction:
    features = {"x": round(float(rng.normal()), 4), "cat": str(rng.choice(["u", "v", "w", "z"]))}
    if rng.random() < 0.1:
        del features["x"]
    record: dict[str, Any] = {"id": f"p{i}", "features": features}
    record["latency_ms"] = round(float(rng.uniform(1, 90)), 3)
    if kind == "classification":
        raw = rng.random(3) + 0.01
        proba = {c: round(float(p), 6) for c, p in zip(CLASSES, raw / raw.sum(), strict=True)}
        record["prediction"] = max(proba, key=proba.__getitem__)
        record["probabilities"] = proba
    else:
        record["prediction"] = round(float(rng.normal(10, 3)), 5)
    if rng.random() < 0.05:
        record["error"] = "timeout"
    parsed = parse_line(json.dumps(record).encode())
    assert isinstance(parsed, Prediction)
    return parsed


def _reference(rng: np.random.Generator, kind: str, shift: float = 0.0) -> ModelReference:
    rows = [_prediction(i, rng, kind) for i in range(300)]
    rows = [r for r in rows if r.error is None]
    return build_reference(
        "jsonl",
        [{k: v + shift if k == "x" else v for k, v in (r.features or {}).items()} for r in rows],
        labels=[r.label for r in rows],
        values=[r.value for r in rows],
        probabilities=[r.probabilities for r in rows],
        confidences=[r.confidence for r in rows],
        actuals=[str(rng.choice(CLASSES)) for _ in rows] if kind == "classification" else (),
        latencies=[r.latency_seconds for r in rows],
    )


def _from_scratch(buckets: list[Any]) -> _Totals:
    totals = _Totals()
    for bucket in buckets:
        totals.add(bucket)
    return totals


def _same_array(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))


def _same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _assert_same(kept: _Totals, fresh: _Totals) -> None:
    for name in ("predictions", "errors", "invalid_records", "latency_n", "latency_sum"):
        assert getattr(kept, name) == getattr(fresh, name), name
    for name in ("confidence", "labelled", "regression", "drift"):
        mine, theirs = getattr(kept, name), getattr(fresh, name)
        if mine is None or theirs is None:
            assert mine is None and theirs is None, name
            continue
        if name == "labelled":
            _assert_same_labelled(mine, theirs)
        elif name == "confidence":
            assert _same_array(mine.counts, theirs.counts)
            for a in ("count", "below", "total", "m2", "minimum", "maximum"):
                assert _same_float(getattr(mine, a), getattr(theirs, a)), a
        elif name == "regression":
            assert mine.to_dict() == theirs.to_dict()
        else:
            for a in (
                "flat",
                "missing",
                "invalid_type",
                "unseen",
                "minmax",
                "prediction_counts",
                "confidence_counts",
                "expected",
            ):
                assert _same_array(getattr(mine, a), getattr(theirs, a)), a
            for a in (
                "rows",
                "prediction_sum",
                "prediction_n",
                "confidence_sum",
                "confidence_n",
                "expected_n",
                "calibrated_confidence_sum",
                "calibrated_confidence_n",
            ):
                assert getattr(mine, a) == getattr(theirs, a), a


def _assert_same_labelled(mine: Any, theirs: Any) -> None:
    for a in ("confusion", "pos", "neg"):
        assert _same_array(getattr(mine, a), getattr(theirs, a)), a
    assert mine.log_loss_sum == theirs.log_loss_sum
    assert mine.log_loss_count == theirs.log_loss_count
    s1, s2 = mine.sketch, theirs.sketch
    assert (s1 is None) == (s2 is None)
    if s1 is not None and s2 is not None:
        assert s1.level == s2.level
        for a in ("codes", "pos", "neg"):
            assert _same_array(getattr(s1, a), getattr(s2, a)), a


# One step: how far time moves (in quarter buckets), how many predictions and feedback
# records arrive, invalid lines, and an event (none, new reference, checkpoint load).
_STEP = st.tuples(
    st.integers(0, 12),
    st.integers(0, 40),
    st.integers(0, 30),
    st.integers(0, 2),
    st.sampled_from(["", "", "", "", "", "", "", "", "reference", "load"]),
)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["classification", "regression"]),
    buckets=st.integers(1, 8),
    short=st.integers(0, 4),
    steps=st.lists(_STEP, min_size=1, max_size=40),
)
def test_kept_merges_equal_merges_from_scratch(
    seed: int, kind: str, buckets: int, short: int, steps: list[tuple[int, int, int, int, str]]
) -> None:
    rng = np.random.default_rng(seed)
    config = WindowConfig(
        bucket_seconds=BUCKET,
        buckets=buckets,
        short_buckets=min(short, buckets),
        auc_cells=81,  # the least allowed: the sketches coarsen under this traffic
        min_samples=5,
    )
    window = LiveWindow(config)
    window.set_reference(_reference(rng, kind))
    now, n = NOW, 0
    waiting: list[str] = []
    for quarters, n_predictions, n_feedback, invalid, event in steps:
        now += quarters * BUCKET / 4
        predictions = [_prediction(n + i, rng, kind) for i in range(n_predictions)]
        n += n_predictions
        window.observe_predictions(predictions, now)
        waiting += [p.id for p in predictions if p.id is not None]
        for _ in range(invalid):
            window.observe_invalid(now)
        answered, waiting = waiting[:n_feedback], waiting[n_feedback:]
        actual: Any = (lambda: str(rng.choice(CLASSES))) if kind == "classification" else None
        window.observe_feedbacks(
            [
                Feedback(key, actual() if actual else round(float(rng.normal(10, 3)), 5))
                for key in answered
            ],
            now,
        )
        if event == "reference":
            window.set_reference(_reference(rng, kind, shift=0.5))
        elif event == "load":
            window.load(json.loads(json.dumps(window.to_dict())))
        window.flush_rows()
        kept = window._totals(now)
        assert window._buckets or kept.predictions == 0
        _assert_same(kept, _from_scratch(list(window._buckets)))
        if config.short_buckets:
            first = math.floor(now / BUCKET) - config.short_buckets + 1
            recent = [b for b in window._buckets if b.index >= first]
            _assert_same(window._short_totals(now), _from_scratch(recent))

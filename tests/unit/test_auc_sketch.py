"""ROC AUC from the bounded sketch against scikit-learn's `roc_auc_score` on the raw scores:
within 0.005 (and within the sketch's own stated bound) on peaked, bimodal and
near-constant score distributions, binary and one-vs-rest multi-class, with the records
spread over buckets that are merged as a window merges them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]  # no stubs

from model_health_exporter.stats import performance as perf
from model_health_exporter.stats.auc_sketch import DEFAULT_MAX_CELLS, AucSketch

ROWS = 30_000
CHUNK = 1024  # the window's flush size
BUCKETS = 12
TOLERANCE = 0.005


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1 / (1 + np.exp(-x))
    return out


def _binary_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(31)
    z = rng.standard_normal(ROWS)
    actual = (rng.random(ROWS) < _sigmoid(1.5 * z)).astype(np.int64)
    mixture = rng.random(ROWS) < _sigmoid(2 * z)  # bimodal, the mode tied to the label
    bimodal = np.where(mixture, rng.beta(8, 0.3, ROWS), rng.beta(0.3, 8, ROWS))
    return {
        "sigmoid(6z)": (_sigmoid(6 * z), actual),
        "sigmoid(10z)": (_sigmoid(10 * z), actual),
        "sigmoid(20z)": (_sigmoid(20 * z), actual),
        "bimodal": (bimodal, actual),
        "near-constant 0.5 +- 0.01": (np.clip(0.5 + 0.01 * z, 0, 1), actual),
        "near-constant 0.9 +- 0.002": (np.clip(0.9 + 0.002 * z, 0, 1), actual),
        "near-constant 0.3 +- 1e-6": (0.3 + 1e-6 * z, actual),
        "two values": (np.where(z > 0.5, 0.8, 0.2), actual),
    }


def _window(proba: np.ndarray, actual: np.ndarray) -> perf.ClassificationCounts:
    """Counts as a window builds them: chunks into buckets, the buckets merged."""
    k = proba.shape[1]
    buckets = [
        perf.ClassificationCounts.empty(k, sketch_cells=DEFAULT_MAX_CELLS) for _ in range(BUCKETS)
    ]
    for i, start in enumerate(range(0, len(actual), CHUNK)):
        rows = slice(start, start + CHUNK)
        buckets[i % BUCKETS].add_many(actual[rows], proba[rows].argmax(axis=1), proba[rows])
    total = perf.ClassificationCounts.empty(k, sketch_cells=DEFAULT_MAX_CELLS)
    for bucket in buckets:
        total.merge(bucket)
    return total


@pytest.mark.parametrize("case", list(_binary_cases()))
def test_binary_roc_auc_within_0_005_of_scikit_learn(case: str) -> None:
    scores, actual = _binary_cases()[case]
    counts = _window(np.column_stack([1 - scores, scores]), actual)
    ours, bound = perf.roc_auc(counts), perf.roc_auc_error_bound(counts)
    assert ours is not None and bound is not None
    exact = float(roc_auc_score(actual, scores))
    assert abs(ours - exact) <= min(TOLERANCE, bound + 1e-12), (case, ours, exact, bound)
    if case != "two values":  # equal scores share a cell: exact, but the bound can't tell
        assert bound <= TOLERANCE, (case, bound)


def test_one_vs_rest_roc_auc_within_0_005_of_scikit_learn() -> None:
    rng = np.random.default_rng(32)
    k = 4
    actual = rng.integers(0, k, ROWS)
    logits = 8 * (rng.standard_normal((ROWS, k)) + 1.2 * np.eye(k)[actual])  # confident
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    counts = _window(proba, actual)
    for average in ("macro", "weighted"):
        exact = float(roc_auc_score(actual, proba, multi_class="ovr", average=average))
        ours = perf.roc_auc(counts, average)
        bound = perf.roc_auc_error_bound(counts, average)
        assert ours is not None and bound is not None
        assert abs(ours - exact) <= min(TOLERANCE, bound + 1e-12), (average, ours, exact)


def test_the_fixed_bins_were_biased_for_confident_models() -> None:
    """What the sketch replaces: 50 equal-width bins put most of sigmoid(6z) in the two outer
    bins and missed scikit-learn's AUC by several hundredths."""
    scores, actual = _binary_cases()["sigmoid(10z)"]
    binned = perf.ClassificationCounts.empty(2, 50)
    binned.add_many(actual, (scores > 0.5).astype(np.int64), np.column_stack([1 - scores, scores]))
    ours = perf.roc_auc(binned)
    assert ours is not None
    assert abs(ours - float(roc_auc_score(actual, scores))) > 0.02


def test_memory_is_bounded_and_merging_equals_counting_at_once() -> None:
    rng = np.random.default_rng(33)
    scores = rng.random((200_000, 3))
    scores /= scores.sum(axis=1, keepdims=True)
    actual = rng.integers(0, 3, 200_000)
    whole = AucSketch(3, 256)
    whole.add(scores, actual)
    parts = [AucSketch(3, 256) for _ in range(5)]
    for i, part in enumerate(parts):
        part.add(scores[i::5], actual[i::5])
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    assert np.bincount(whole.codes >> 32).max() <= 256
    assert merged.level == whole.level
    assert np.array_equal(merged.codes, whole.codes)
    assert np.array_equal(merged.pos, whole.pos) and np.array_equal(merged.neg, whole.neg)
    assert int(whole.pos.sum()) == 200_000 and int(whole.neg.sum()) == 400_000


def test_checkpoint_round_trip_and_bad_data() -> None:
    rng = np.random.default_rng(34)
    counts = perf.ClassificationCounts.empty(3, sketch_cells=128)
    proba = rng.dirichlet([1, 1, 1], 5_000)
    counts.add_many(rng.integers(0, 3, 5_000), proba.argmax(axis=1), proba)
    again = perf.ClassificationCounts.from_dict(json.loads(json.dumps(counts.to_dict())))
    assert again.sketch is not None and counts.sketch is not None
    assert again.sketch.level == counts.sketch.level
    assert perf.roc_auc(again) == perf.roc_auc(counts)
    data = counts.to_dict()
    broken = data | {
        "auc_sketch": data["auc_sketch"] | {"codes": data["auc_sketch"]["codes"][::-1]}
    }
    with pytest.raises(ValueError, match="increase strictly"):
        perf.ClassificationCounts.from_dict(broken)
    with pytest.raises(ValueError, match="malformed"):
        perf.ClassificationCounts.from_dict(data | {"auc_sketch": {"codes": []}})


def test_counts_from_an_older_checkpoint_keep_their_auc() -> None:
    """Equal-width bins (checkpoints from before the sketch) move into the sketch at their
    midpoints: the bins keep their order, so the AUC is unchanged, and merging works."""
    rng = np.random.default_rng(35)
    proba = rng.dirichlet([1, 1, 1], 3_000)
    actual = rng.integers(0, 3, 3_000)
    binned = perf.ClassificationCounts.empty(3, 50)
    binned.add_many(actual, proba.argmax(axis=1), proba)
    converted = binned.with_sketch(DEFAULT_MAX_CELLS)
    assert perf.roc_auc(converted) == pytest.approx(perf.roc_auc(binned), abs=1e-12)
    assert perf.accuracy(converted) == perf.accuracy(binned)
    newer = perf.ClassificationCounts.empty(3, sketch_cells=DEFAULT_MAX_CELLS)
    newer.add_many(actual, proba.argmax(axis=1), proba)
    assert converted.merge(newer).n_samples == 6_000


def _cells(scores: np.ndarray, actual: np.ndarray, level: int) -> tuple[np.ndarray, ...]:
    """Every (record, class) in its cell at `level`, counted by np.unique: the reference."""
    with np.errstate(divide="ignore"):
        logit = np.clip(np.log(scores) - np.log1p(-scores), -40.0, 40.0)
    keys = (np.floor(logit * 2.0**level) + 40.0 * 2.0**level).astype(np.int64)
    k = scores.shape[1]
    codes = ((np.arange(k) << 32) | keys).ravel()
    positive = (actual[:, None] == np.arange(k)[None, :]).ravel()
    cells, cell_of = np.unique(codes, return_inverse=True)
    pos = np.bincount(cell_of, weights=positive, minlength=cells.size)
    return cells, pos, np.bincount(cell_of, minlength=cells.size) - pos


@pytest.mark.parametrize("cells", [DEFAULT_MAX_CELLS, 81])
def test_classes_scored_zero_in_every_row_land_in_the_lowest_cell(cells: int) -> None:
    """Rows padded with classes the window may still learn (all zero), counted by class
    without a logit per score: the same cells and counts as one per record and class."""
    rng = np.random.default_rng(35)
    n, k = 3_000, 11
    scores = np.zeros((n, k))
    scores[:, [0, 1, 4]] = rng.dirichlet([1.0, 2.0, 3.0], n)
    scores[:5, 7] = 0.0  # a class scored 0 once, seen as a class scored 0 throughout
    actual = rng.choice([0, 1, 4, 9], n)  # 9: positives of a class scored 0
    sketch = AucSketch(k, cells)
    sketch.add(scores, actual)
    expected = _cells(scores, actual, sketch.level)
    assert np.array_equal(sketch.codes, expected[0])
    assert np.array_equal(sketch.pos, expected[1]) and np.array_equal(sketch.neg, expected[2])
    auc, _, _ = sketch.per_class()
    assert auc[9] == pytest.approx(roc_auc_score(actual == 9, scores[:, 9]))  # 0.5
    assert auc[0] == pytest.approx(roc_auc_score(actual == 0, scores[:, 0]), abs=TOLERANCE)

"""Performance aggregates against scikit-learn / numpy on the same data."""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
import sklearn.metrics as skm

from model_health_exporter.stats import performance as perf
from model_health_exporter.stats.performance import (
    ClassificationCounts,
    ConfidenceHistogram,
    RegressionSums,
)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


class Labelled(NamedTuple):
    name: str
    k: int
    actual: Ints
    predicted: Ints
    proba: Floats


def _softmax(logits: Floats) -> Floats:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: Floats = z / z.sum(axis=1, keepdims=True)
    return out


def _labelled(
    name: str,
    seed: int,
    k: int,
    priors: list[float],
    n: int = 3000,
    *,
    suppress: tuple[int, ...] = (),
    force_predicted: int | None = None,
) -> Labelled:
    """Scores informative about the actual class; `suppress` classes are never predicted."""
    rng = np.random.default_rng(seed)
    actual = rng.choice(k, size=n, p=priors).astype(np.int64)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[actual]
    for c in suppress:
        logits[:, c] -= 12.0
    proba = _softmax(logits)
    predicted = proba.argmax(axis=1).astype(np.int64)
    if force_predicted is not None:
        predicted[rng.random(n) < 0.05] = force_predicted
    return Labelled(name, k, actual, predicted, proba)


_SCENARIO_ARGS: dict[str, dict[str, Any]] = {
    "binary": {"seed": 1, "k": 2, "priors": [0.7, 0.3]},
    "binary-imbalanced": {"seed": 2, "k": 2, "priors": [0.95, 0.05]},
    "three-imbalanced": {"seed": 3, "k": 3, "priors": [0.85, 0.1, 0.05]},
    # class 4 occurs as actual but the model never predicts it (its probabilities are tiny)
    "five-never-predicted": {
        "seed": 4,
        "k": 5,
        "priors": [0.3, 0.3, 0.2, 0.1, 0.1],
        "suppress": (4,),
    },
    # class 2 is configured but neither actual nor predicted (e.g. an empty "other")
    "six-absent-class": {
        "seed": 5,
        "k": 6,
        "priors": [0.3, 0.2, 0.0, 0.2, 0.2, 0.1],
        "suppress": (2,),
    },
    # class 3 is predicted now and then but never actual
    "four-predicted-not-actual": {
        "seed": 6,
        "k": 4,
        "priors": [0.5, 0.3, 0.2, 0.0],
        "suppress": (3,),
        "force_predicted": 3,
    },
}
SCENARIOS: dict[str, Callable[[], Labelled]] = {
    name: functools.partial(_labelled, name, **args) for name, args in _SCENARIO_ARGS.items()
}


@pytest.fixture(params=list(SCENARIOS), ids=list(SCENARIOS))
def labelled(request: pytest.FixtureRequest) -> Labelled:
    return SCENARIOS[request.param]()


def _counts(data: Labelled, n_bins: int = 1000) -> ClassificationCounts:
    counts = ClassificationCounts.empty(data.k, n_bins)
    counts.add_many(data.actual, data.predicted, data.proba)
    return counts


def _sk_log_loss(actual: Ints, proba: Floats, labels: list[int]) -> float:
    # scikit-learn 1.9 renamed y_pred to y_proba (the old name warns, warnings are errors)
    if "y_proba" in inspect.signature(skm.log_loss).parameters:
        return float(skm.log_loss(actual, y_proba=proba, labels=labels))
    return float(skm.log_loss(actual, proba, labels=labels))


def _sk_roc_auc(actual: Ints, proba: Floats, k: int, average: str) -> float:
    """scikit-learn's ROC AUC; one-vs-rest over the classes occurring in `actual` (its
    default labels) when some configured class never occurs."""
    if k == 2:
        return float(skm.roc_auc_score(actual, proba[:, 1]))
    present = np.unique(actual)
    if present.size == k:
        return float(
            skm.roc_auc_score(
                actual, proba, multi_class="ovr", average=average, labels=list(range(k))
            )
        )
    per_class = [float(skm.roc_auc_score(actual == c, proba[:, c])) for c in present]
    weights = [int((actual == c).sum()) for c in present] if average == "weighted" else None
    return float(np.average(per_class, weights=weights))


def _split(rng: np.random.Generator, n: int, parts: int) -> list[slice]:
    """Contiguous buckets with random sizes, one of them empty."""
    cuts = np.sort(rng.choice(np.arange(1, n), size=parts - 2, replace=False))
    edges = [0, *cuts.tolist(), n, n]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def test_scenarios_have_the_intended_shape() -> None:
    never = SCENARIOS["five-never-predicted"]()
    assert (never.actual == 4).any() and not (never.predicted == 4).any()
    absent = SCENARIOS["six-absent-class"]()
    assert not (absent.actual == 2).any() and not (absent.predicted == 2).any()
    extra = SCENARIOS["four-predicted-not-actual"]()
    assert not (extra.actual == 3).any() and (extra.predicted == 3).any()


def test_confusion_matrix_is_sklearns(labelled: Labelled) -> None:
    counts = _counts(labelled)
    expected = skm.confusion_matrix(labelled.actual, labelled.predicted, labels=range(labelled.k))
    np.testing.assert_array_equal(counts.confusion, expected)
    assert counts.n_samples == counts.n_scored == labelled.actual.size


def test_accuracy_precision_recall_f1_match_sklearn(labelled: Labelled) -> None:
    counts = _counts(labelled)
    assert perf.accuracy(counts) == pytest.approx(
        skm.accuracy_score(labelled.actual, labelled.predicted), abs=1e-12
    )
    for average in ("weighted", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            labelled.actual, labelled.predicted, average=average, zero_division=0
        )
        ours = perf.precision_recall_f1(counts, average)
        assert ours is not None
        assert ours.precision == pytest.approx(p, abs=1e-12), average
        assert ours.recall == pytest.approx(r, abs=1e-12), average
        assert ours.f1 == pytest.approx(f, abs=1e-12), average


def test_log_loss_matches_sklearn(labelled: Labelled) -> None:
    counts = _counts(labelled)
    expected = _sk_log_loss(labelled.actual, labelled.proba, list(range(labelled.k)))
    assert perf.log_loss(counts) == pytest.approx(expected, rel=1e-12)


def test_log_loss_clips_a_zero_probability_at_1e_15() -> None:
    counts = ClassificationCounts.empty(3, 10)
    counts.add(0, 1, np.array([0.0, 1.0, 0.0]))
    counts.add(1, 1, np.array([0.0, 0.5, 0.5]))
    expected = (-math.log(1e-15) - math.log(0.5)) / 2
    assert perf.log_loss(counts) == pytest.approx(expected, rel=1e-15)
    assert perf.log_loss(counts) == pytest.approx((34.538776394910684 + 0.6931471805599453) / 2)
    vectorised = ClassificationCounts.empty(3, 10)
    vectorised.add_many([0, 1], [1, 1], [[0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    assert perf.log_loss(vectorised) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_roc_auc_within_the_stated_bound_on_continuous_scores(
    labelled: Labelled, average: perf.Average
) -> None:
    counts = _counts(labelled, n_bins=1000)
    ours = perf.roc_auc(counts, average)
    bound = perf.roc_auc_error_bound(counts, average)
    expected = _sk_roc_auc(labelled.actual, labelled.proba, labelled.k, average)
    assert ours is not None and bound is not None
    assert abs(ours - expected) <= bound + 1e-12
    if labelled.name == "five-never-predicted":
        # class 4 only ever gets probabilities < 1/B: one bin, AUC 0.5 instead of about 0.89,
        # its bound 1/2 (weight 1/5 in the macro average, about 0.1 in the weighted one)
        assert counts.pos[4, 1:].sum() == counts.neg[4, 1:].sum() == 0
        assert bound > 0.04
        assert abs(ours - expected) > 0.03
    else:
        assert bound < 0.01  # 1000 bins make the bound small on these spread-out scores
    assert 0.6 < expected < 1.0  # the scores are informative, so the check is not trivial


def test_binary_roc_auc_bound_is_about_l_over_2b_for_bounded_densities() -> None:
    """Positive scores ~ Beta(3, 2), negative ~ Beta(2, 3): densities <= 16/9."""
    rng = np.random.default_rng(7)
    n_pos, n_neg, n_bins = 40_000, 60_000, 1000
    scores = np.concatenate([rng.beta(3, 2, n_pos), rng.beta(2, 3, n_neg)])
    actual = np.concatenate([np.ones(n_pos, np.int64), np.zeros(n_neg, np.int64)])
    counts = ClassificationCounts.empty(2, n_bins)
    counts.add_many(actual, (scores >= 0.5).astype(np.int64), np.c_[1 - scores, scores])
    ours, bound = perf.roc_auc(counts), perf.roc_auc_error_bound(counts)
    expected = skm.roc_auc_score(actual, scores)
    assert ours is not None and bound is not None
    assert abs(ours - expected) <= bound + 1e-12
    assert bound <= 1.1 * (16 / 9) / (2 * n_bins)


def test_binary_roc_auc_uses_the_positive_class_scores() -> None:
    """Class 0's probabilities are noise here: using them would give about 0.5."""
    rng = np.random.default_rng(8)
    n = 2000
    actual = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * actual + rng.random(n) * 0.7, 0, 1)
    p0 = rng.random(n)  # not 1 - p1: the function must not read this column
    counts = ClassificationCounts.empty(2, 1000)
    counts.add_many(actual, (p1 > 0.5).astype(np.int64), np.c_[p0, p1])
    ours, bound = perf.roc_auc(counts), perf.roc_auc_error_bound(counts)
    assert ours is not None and bound is not None
    assert abs(ours - skm.roc_auc_score(actual, p1)) <= bound + 1e-12
    assert ours > 0.7


def _on_bin_positions(seed: int, k: int, priors: list[float], n_bins: int) -> Labelled:
    """Probabilities (m_k + 1/K) / B with sum m_k = B - 1: rows sum to 1 and every score in
    a bin is the same value (bin centres for K = 2)."""
    rng = np.random.default_rng(seed)
    n = 4000
    actual = rng.choice(k, size=n, p=priors).astype(np.int64)
    pvals = _softmax(rng.normal(size=(n, k)) + 1.2 * np.eye(k)[actual])
    m = rng.multinomial(n_bins - 1, pvals)
    proba = (m + 1.0 / k) / n_bins
    return Labelled("on-bin", k, actual, proba.argmax(axis=1).astype(np.int64), proba)


@pytest.mark.parametrize(
    ("k", "priors"),
    [(2, [0.6, 0.4]), (3, [0.7, 0.2, 0.1]), (4, [0.4, 0.3, 0.2, 0.1]), (4, [0.5, 0.3, 0.2, 0.0])],
    ids=["binary", "three", "four", "four-one-absent"],
)
@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_roc_auc_is_exact_when_scores_in_a_bin_are_equal(
    k: int, priors: list[float], average: perf.Average
) -> None:
    n_bins = 20  # coarse: many ties, each counted 1/2 by both
    data = _on_bin_positions(11 + k, k, priors, n_bins)
    counts = _counts(data, n_bins)
    if k == 2:  # centres exactly
        assert set(np.unique(data.proba * n_bins % 1).round(12)) == {0.5}
    expected = _sk_roc_auc(data.actual, data.proba, k, average)
    assert perf.roc_auc(counts, average) == pytest.approx(expected, abs=1e-12)
    bound = perf.roc_auc_error_bound(counts, average)
    assert bound is not None and bound > 0.01  # the bound is loose here, the value exact


def test_roc_auc_error_reaches_the_bound_when_all_scores_share_a_bin() -> None:
    pos_scores = np.array([0.56, 0.57, 0.58])
    neg_scores = np.array([0.51, 0.52])
    scores = np.concatenate([pos_scores, neg_scores])
    actual = np.array([1, 1, 1, 0, 0])
    counts = ClassificationCounts.empty(2, 10)
    counts.add_many(actual, np.ones(5, np.int64), np.c_[1 - scores, scores])
    assert skm.roc_auc_score(actual, scores) == 1.0
    assert perf.roc_auc(counts) == 0.5
    assert perf.roc_auc_error_bound(counts) == 0.5


def test_multiclass_roc_auc_skips_classes_without_positives() -> None:
    """sklearn with labels=range(K) gives NaN here; we average over the classes present."""
    data = SCENARIOS["six-absent-class"]()
    counts = _counts(data)
    present = [c for c in range(data.k) if (data.actual == c).any()]
    per_class = [skm.roc_auc_score(data.actual == c, data.proba[:, c]) for c in present]
    # what counting the absent class as 0.5 would give: must differ
    everything = np.mean([*per_class, 0.5])
    ours = perf.roc_auc(counts, "macro")
    assert ours is not None
    assert ours == pytest.approx(np.mean(per_class), abs=2e-3)
    assert abs(ours - everything) > 0.02


def test_add_one_by_one_equals_add_many(labelled: Labelled) -> None:
    many = _counts(labelled, 50)
    one = ClassificationCounts.empty(labelled.k, 50)
    for a, p, row in zip(labelled.actual, labelled.predicted, labelled.proba, strict=True):
        one.add(int(a), int(p), row)
    np.testing.assert_array_equal(one.confusion, many.confusion)
    np.testing.assert_array_equal(one.pos, many.pos)
    np.testing.assert_array_equal(one.neg, many.neg)
    assert one.log_loss_count == many.log_loss_count
    assert one.log_loss_sum == pytest.approx(many.log_loss_sum, rel=1e-12)


def test_histograms_split_scores_by_actual_class() -> None:
    counts = ClassificationCounts.empty(3, 4)
    counts.add(2, 0, np.array([0.1, 0.3, 0.6]))
    counts.add(0, 0, np.array([1.0, 0.0, 0.0]))
    np.testing.assert_array_equal(counts.pos, [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]])
    np.testing.assert_array_equal(counts.neg, [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(counts.confusion, [[1, 0, 0], [0, 0, 0], [1, 0, 0]])


def test_records_without_probabilities_count_in_the_confusion_matrix_only() -> None:
    data = SCENARIOS["three-imbalanced"]()
    proba = data.proba.copy()
    proba[::3] = np.nan  # every third record came without probabilities
    counts = ClassificationCounts.empty(data.k, 1000)
    counts.add_many(data.actual, data.predicted, proba)
    counts.add(0, 1, None)
    scored = ~np.isnan(proba[:, 0])
    assert counts.n_samples == data.actual.size + 1
    assert counts.n_scored == int(scored.sum())
    assert int(counts.pos.sum() + counts.neg.sum()) == data.k * int(scored.sum())
    expected = _sk_log_loss(data.actual[scored], data.proba[scored], list(range(data.k)))
    assert perf.log_loss(counts) == pytest.approx(expected, rel=1e-12)
    assert perf.accuracy(counts) == pytest.approx(
        (np.sum(data.actual == data.predicted) + 0) / (data.actual.size + 1)
    )


def test_merged_buckets_equal_the_whole(labelled: Labelled) -> None:
    rng = np.random.default_rng(99)
    whole = _counts(labelled, 200)
    buckets = []
    for part in _split(rng, labelled.actual.size, 6):
        bucket = ClassificationCounts.empty(labelled.k, 200)
        bucket.add_many(labelled.actual[part], labelled.predicted[part], labelled.proba[part])
        buckets.append(bucket)
    snapshots = [b.to_dict() for b in buckets]
    window = functools.reduce(operator.add, buckets)
    assert [b.to_dict() for b in buckets] == snapshots  # `+` leaves its operands alone
    in_place = ClassificationCounts.empty(labelled.k, 200)
    for bucket in buckets:
        in_place += bucket
    for merged in (window, in_place):
        np.testing.assert_array_equal(merged.confusion, whole.confusion)
        np.testing.assert_array_equal(merged.pos, whole.pos)
        np.testing.assert_array_equal(merged.neg, whole.neg)
        assert merged.log_loss_count == whole.log_loss_count
        assert merged.log_loss_sum == pytest.approx(whole.log_loss_sum, rel=1e-12)
        assert perf.roc_auc(merged) == perf.roc_auc(whole)
        assert perf.precision_recall_f1(merged, "macro") == perf.precision_recall_f1(whole, "macro")
    assert min(b.n_samples for b in buckets) == 0  # an empty bucket merges too


def test_add_does_not_mutate_operands_and_copy_is_independent() -> None:
    data = SCENARIOS["binary"]()
    a = _counts(data, 10)
    before = a.to_dict()
    b = a.copy()
    total = a + b
    assert a.to_dict() == before
    assert total.n_samples == 2 * a.n_samples
    b.add(0, 0, None)
    assert a.to_dict() == before


def test_undefined_classification_metrics_are_none() -> None:
    empty = ClassificationCounts.empty(3, 10)
    assert perf.accuracy(empty) is None
    assert perf.precision_recall_f1(empty) is None
    assert perf.roc_auc(empty) is None
    assert perf.roc_auc_error_bound(empty) is None
    assert perf.log_loss(empty) is None

    one_class = ClassificationCounts.empty(3, 10)
    one_class.add_many([1, 1, 1], [1, 0, 1], np.full((3, 3), 1 / 3))
    assert perf.roc_auc(one_class) is None  # class 1 has no negatives
    assert perf.roc_auc(one_class, "weighted") is None
    assert perf.accuracy(one_class) == pytest.approx(2 / 3)

    binary_one_class = ClassificationCounts.empty(2, 10)
    binary_one_class.add_many([0, 0], [0, 1], np.array([[0.9, 0.1], [0.4, 0.6]]))
    assert perf.roc_auc(binary_one_class) is None

    unscored = ClassificationCounts.empty(2, 10)
    unscored.add_many([0, 1], [0, 1], None)
    assert perf.roc_auc(unscored) is None
    assert perf.log_loss(unscored) is None
    assert perf.accuracy(unscored) == 1.0


def test_classification_checkpoint_round_trips_through_json(labelled: Labelled) -> None:
    counts = _counts(labelled, 64)
    restored = ClassificationCounts.from_dict(json.loads(json.dumps(counts.to_dict())))
    assert restored.to_dict() == counts.to_dict()
    assert restored.log_loss_sum == counts.log_loss_sum  # bit for bit
    assert perf.roc_auc(restored) == perf.roc_auc(counts)
    empty = ClassificationCounts.empty(2, 5)
    assert ClassificationCounts.from_dict(empty.to_dict()).to_dict() == empty.to_dict()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("confusion", [[1, 0], [0, 1]], "confusion has shape"),
        ("pos", [[-1] * 5] * 3, "negative count"),
        ("neg", [[0.5] * 5] * 3, "must hold integers"),
        ("log_loss_count", -1, "log_loss_count"),
        ("log_loss_sum", "x", "log_loss_sum"),
        ("n_bins", 0, "n_bins"),
    ],
)
def test_malformed_classification_checkpoint_is_rejected(
    field: str, value: Any, message: str
) -> None:
    data = ClassificationCounts.empty(3, 5).to_dict()
    data[field] = value
    with pytest.raises(ValueError, match=message):
        ClassificationCounts.from_dict(data)


def test_invalid_classification_input_is_rejected() -> None:
    counts = ClassificationCounts.empty(3, 10)
    with pytest.raises(ValueError, match="outside"):
        counts.add_many([0, 3], [0, 0], None)
    with pytest.raises(ValueError, match="integer class indices"):
        counts.add_many([0.0, 1.0], [0, 0], None)
    with pytest.raises(ValueError, match="shape"):
        counts.add_many([0, 1], [0, 0], np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        counts.add_many([0], [0], [[1.2, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        counts.add_many([0], [0], [[np.nan, 0.5, 0.5]])  # partly missing is not missing
    with pytest.raises(ValueError, match="outside"):
        counts.add(0, 5, None)
    with pytest.raises(ValueError, match="cannot merge"):
        counts.merge(ClassificationCounts.empty(3, 11))
    assert counts.n_samples == 0  # nothing half-applied


# --------------------------------------------------------------------------------------------
# Regression
# --------------------------------------------------------------------------------------------


def _regression(seed: int, n: int = 5000, offset: float = 0.0) -> tuple[Floats, Floats]:
    rng = np.random.default_rng(seed)
    y = offset + rng.gamma(2.0, 3.0, n) * rng.choice([-1.0, 1.0], n)
    y_pred = y + rng.normal(0.0, 1.5, n)
    return y, y_pred


def _sums(y: Floats, y_pred: Floats) -> RegressionSums:
    sums = RegressionSums.empty()
    sums.add_many(y, y_pred)
    return sums


def _smape_reference(y: Floats, y_pred: Floats) -> float:
    denom = np.abs(y) + np.abs(y_pred)
    terms = [2 * abs(p - t) / d if d > 0 else 0.0 for t, p, d in zip(y, y_pred, denom, strict=True)]
    return float(np.mean(terms))


@pytest.mark.parametrize("offset", [0.0, 1e9], ids=["centred", "offset-1e9"])
def test_regression_metrics_match_sklearn(offset: float) -> None:
    """The 1e9 offset makes sum y² - (sum y)² / n cancel away; the M2 merge must not."""
    y, y_pred = _regression(21, offset=offset)
    assert (y != 0).all()
    sums = _sums(y, y_pred)
    assert perf.mae(sums) == pytest.approx(skm.mean_absolute_error(y, y_pred), rel=1e-9)
    assert perf.mse(sums) == pytest.approx(skm.mean_squared_error(y, y_pred), rel=1e-9)
    assert perf.rmse(sums) == pytest.approx(math.sqrt(skm.mean_squared_error(y, y_pred)), rel=1e-9)
    assert perf.r2(sums) == pytest.approx(skm.r2_score(y, y_pred), rel=1e-9)
    assert perf.mape(sums) == pytest.approx(skm.mean_absolute_percentage_error(y, y_pred), rel=1e-9)
    assert perf.smape(sums) == pytest.approx(_smape_reference(y, y_pred), rel=1e-9)


def test_mape_and_smape_with_zeros_by_hand() -> None:
    y = np.array([0.0, 2.0, -4.0, 0.0])
    y_pred = np.array([1.0, 1.0, -4.0, 0.0])
    sums = _sums(y, y_pred)
    # y != 0: |-1|/2 and 0/4
    assert perf.mape(sums) == pytest.approx(0.25)
    # 2·1/(0+1), 2·1/(2+1), 0, and 0 for y = y_pred = 0
    assert perf.smape(sums) == pytest.approx((2 + 2 / 3) / 4)
    assert perf.mae(sums) == pytest.approx(0.5)
    assert perf.mse(sums) == pytest.approx(0.5)
    assert perf.r2(sums) == pytest.approx(1 - 2 / 19)  # mean y = -0.5, SS_tot = 19
    assert perf.r2(sums) == pytest.approx(skm.r2_score(y, y_pred))
    # sklearn divides by machine epsilon instead of skipping y = 0
    assert skm.mean_absolute_percentage_error(y, y_pred) > 1e14
    assert sums.n_ape == 2 and sums.n == 4


def test_merged_regression_buckets_equal_the_whole() -> None:
    y, y_pred = _regression(22, offset=1e9)
    rng = np.random.default_rng(5)
    whole = _sums(y, y_pred)
    window = RegressionSums.empty()
    for part in _split(rng, y.size, 7):
        window += _sums(y[part], y_pred[part])
    assert window.n == whole.n and window.n_ape == whole.n_ape
    for name in ("mae", "mse", "rmse", "r2", "mape", "smape"):
        metric: Callable[[RegressionSums], float | None] = getattr(perf, name)
        assert metric(window) == pytest.approx(metric(whole), rel=1e-9), name
    assert perf.r2(window) == pytest.approx(skm.r2_score(y, y_pred), rel=1e-9)


def test_add_one_pair_at_a_time() -> None:
    y, y_pred = _regression(23, n=200)
    one = RegressionSums.empty()
    for t, p in zip(y, y_pred, strict=True):
        one.add(float(t), float(p))
    many = _sums(y, y_pred)
    for key, value in many.to_dict().items():
        assert one.to_dict()[key] == pytest.approx(value, rel=1e-9), key


def test_r2_for_a_constant_target_follows_sklearn() -> None:
    y = np.full(5, 3.0)
    assert perf.r2(_sums(y, y)) == skm.r2_score(y, y) == 1.0
    assert perf.r2(_sums(y, y + 1)) == skm.r2_score(y, y + 1) == 0.0


def test_undefined_regression_metrics_are_none() -> None:
    empty = RegressionSums.empty()
    for name in ("mae", "mse", "rmse", "r2", "mape", "smape"):
        assert getattr(perf, name)(empty) is None, name
    single = _sums(np.array([2.0]), np.array([3.0]))
    assert perf.r2(single) is None  # sklearn: NaN and a warning
    assert perf.mae(single) == 1.0
    zeros = _sums(np.zeros(3), np.array([0.0, 1.0, 2.0]))
    assert perf.mape(zeros) is None
    assert perf.smape(zeros) == pytest.approx(4 / 3)


def test_regression_checkpoint_round_trips_and_rejects_garbage() -> None:
    y, y_pred = _regression(24, n=100)
    sums = _sums(y, y_pred)
    restored = RegressionSums.from_dict(json.loads(json.dumps(sums.to_dict())))
    assert restored.to_dict() == sums.to_dict()
    assert perf.r2(restored) == perf.r2(sums)
    bad = sums.to_dict() | {"n": -1}
    with pytest.raises(ValueError, match="n must be"):
        RegressionSums.from_dict(bad)
    with pytest.raises(ValueError, match="n_ape exceeds n"):
        RegressionSums.from_dict(sums.to_dict() | {"n_ape": sums.n + 1})
    with pytest.raises(ValueError, match="non-finite"):
        sums.add_many([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="differ in length"):
        sums.add_many([1.0], [1.0, 2.0])


# --------------------------------------------------------------------------------------------
# Confidence
# --------------------------------------------------------------------------------------------


def _confidences(seed: int, n: int = 5000) -> Floats:
    """Skewed towards 1 like softmax confidences, plus both ends and values at the threshold."""
    rng = np.random.default_rng(seed)
    edges = [0.0, 1.0, 0.75, 0.75, 0.74999999, 0.5]
    return rng.permutation(np.concatenate([rng.beta(8, 2, n - len(edges)), edges]))


def _hist(c: Floats, **kwargs: Any) -> ConfidenceHistogram:
    hist = ConfidenceHistogram.empty(**kwargs)
    hist.add_many(c)
    return hist


def test_confidence_summary_matches_numpy() -> None:
    c = _confidences(31)
    hist = _hist(c)
    assert hist.n_bins == 100 and hist.threshold == 0.75
    assert perf.mean(hist) == pytest.approx(np.mean(c), rel=1e-12)
    assert perf.std(hist) == pytest.approx(np.std(c), rel=1e-9)
    assert perf.low_confidence_ratio(hist) == np.mean(c < 0.75)  # exact
    assert hist.minimum == c.min() and hist.maximum == c.max()
    # 0.75 is a bin edge: the histogram alone gives the same count
    assert int(hist.counts[:75].sum()) == hist.below


@pytest.mark.parametrize("n_bins", [10, 100, 1000])
def test_median_and_quantiles_within_one_bin_width(n_bins: int) -> None:
    c = _confidences(32)
    hist = _hist(c, n_bins=n_bins)
    assert perf.median(hist) == pytest.approx(np.median(c), abs=1 / n_bins)
    for q in (0.0, 0.01, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0):
        assert perf.quantile(hist, q) == pytest.approx(np.quantile(c, q), abs=1 / n_bins), q


def test_median_of_two_distant_values() -> None:
    """The middle pair sits in different bins: the estimate must interpolate between them."""
    hist = _hist(np.array([0.1, 0.9]))
    assert perf.median(hist) == pytest.approx(0.5, abs=0.01)
    odd = _hist(np.array([0.1, 0.42, 0.9]))
    assert perf.median(odd) == pytest.approx(0.42, abs=0.01)
    assert perf.median(_hist(np.array([0.3]))) == pytest.approx(0.3, abs=1e-12)  # clamped


def test_low_confidence_is_strictly_below_the_threshold() -> None:
    hist = _hist(np.array([0.75, 0.7499, 0.9, 0.2]))
    assert perf.low_confidence_ratio(hist) == 0.5
    custom = _hist(np.array([0.75, 0.7499, 0.9, 0.2]), n_bins=10, threshold=0.95)
    assert perf.low_confidence_ratio(custom) == 1.0


def test_merged_confidence_buckets_equal_the_whole() -> None:
    c = _confidences(33)
    rng = np.random.default_rng(6)
    whole = _hist(c)
    buckets = [_hist(c[part]) for part in _split(rng, c.size, 5)]
    window = functools.reduce(operator.add, buckets)
    np.testing.assert_array_equal(window.counts, whole.counts)
    assert (window.count, window.below) == (whole.count, whole.below)
    assert (window.minimum, window.maximum) == (whole.minimum, whole.maximum)
    assert perf.mean(window) == pytest.approx(perf.mean(whole), rel=1e-12)
    assert perf.std(window) == pytest.approx(np.std(c), rel=1e-9)
    assert perf.median(window) == perf.median(whole)
    with pytest.raises(ValueError, match="cannot merge"):
        window.merge(ConfidenceHistogram.empty(threshold=0.8))


def test_std_of_constant_confidences_is_zero() -> None:
    buckets = [_hist(np.full(n, 0.9)) for n in (3, 7, 1000)]
    window = functools.reduce(operator.add, buckets)
    assert perf.std(window) == pytest.approx(0.0, abs=1e-12)


def test_undefined_confidence_metrics_are_none() -> None:
    hist = ConfidenceHistogram.empty()
    hist.add_many(np.array([]))
    for fn in (perf.mean, perf.std, perf.median, perf.low_confidence_ratio):
        assert fn(hist) is None
    assert perf.quantile(hist, 0.9) is None


def test_confidence_checkpoint_round_trips_and_rejects_garbage() -> None:
    hist = _hist(_confidences(34))
    restored = ConfidenceHistogram.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert restored.to_dict() == hist.to_dict()
    empty = ConfidenceHistogram.empty(n_bins=20, threshold=0.6)
    assert empty.to_dict()["minimum"] is None
    json.dumps(empty.to_dict(), allow_nan=False)  # strict JSON: no Infinity
    again = ConfidenceHistogram.from_dict(empty.to_dict())
    assert again.to_dict() == empty.to_dict()
    again.add(0.3)
    assert again.minimum == again.maximum == 0.3
    with pytest.raises(ValueError, match="disagree"):
        ConfidenceHistogram.from_dict(hist.to_dict() | {"count": hist.count + 1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hist.add_many([1.5])

"""Label-free performance estimation (CBPE), checked against scikit-learn and simulated labels."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from model_health_exporter.stats.estimation import (
    Calibrator,
    IsotonicMap,
    estimated_accuracy_from_confidence,
    estimated_metrics,
    expected_calibration_error,
    expected_confusion,
    fit_calibrator,
    fit_isotonic,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# --------------------------------------------------------------------------------------------
# (a) metrics from a confusion matrix agree with scikit-learn
# --------------------------------------------------------------------------------------------


def _labels_from(cm: IntArray) -> tuple[IntArray, IntArray]:
    k = cm.shape[0]
    actual = np.repeat(np.repeat(np.arange(k), k), cm.ravel())
    predicted = np.repeat(np.tile(np.arange(k), k), cm.ravel())
    return actual, predicted


@pytest.mark.parametrize("seed", range(8))
def test_estimated_metrics_equal_sklearn_on_integer_confusion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    cm = rng.integers(0, 30, size=(k, k))
    if seed % 3 == 0:
        cm[0, :] = 0  # a class never actual (precision defined, support 0)
    if seed % 4 == 1:
        cm[:, k - 1] = 0  # a class never predicted (precision 0 by zero_division)
    actual, predicted = _labels_from(cm)
    est = estimated_metrics(cm)
    assert est is not None
    p, r, f, _ = precision_recall_fscore_support(
        actual, predicted, average="weighted", zero_division=0
    )
    assert est.accuracy == pytest.approx(accuracy_score(actual, predicted), abs=1e-12)
    assert est.precision_weighted == pytest.approx(p, abs=1e-12)
    assert est.recall_weighted == pytest.approx(r, abs=1e-12)
    assert est.f1_weighted == pytest.approx(f, abs=1e-12)


def test_estimated_metrics_hand_computed_fractional_counts() -> None:
    # rows actual, columns predicted
    cm = np.array([[3.5, 0.5], [1.0, 5.0]])
    est = estimated_metrics(cm)
    assert est is not None
    n = 10.0
    prec = np.array([3.5 / 4.5, 5.0 / 5.5])
    rec = np.array([3.5 / 4.0, 5.0 / 6.0])
    f1 = np.array([7.0 / 8.5, 10.0 / 11.5])
    support = np.array([4.0, 6.0])
    assert est.accuracy == pytest.approx(8.5 / n)
    assert est.precision_weighted == pytest.approx(prec @ support / n)
    assert est.recall_weighted == pytest.approx(rec @ support / n)
    assert est.f1_weighted == pytest.approx(f1 @ support / n)


def test_estimated_metrics_none_without_counts() -> None:
    assert estimated_metrics(np.zeros((3, 3))) is None
    with pytest.raises(ValueError, match="square"):
        estimated_metrics(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=">= 0"):
        estimated_metrics(np.array([[1.0, -1.0], [0.0, 1.0]]))


# --------------------------------------------------------------------------------------------
# expected confusion
# --------------------------------------------------------------------------------------------


def test_expected_confusion_hand_computed() -> None:
    predicted = np.array([0, 0, 1])
    calibrated = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    expected = expected_confusion(predicted, calibrated, 2)
    np.testing.assert_allclose(expected, [[1.5, 0.2], [0.5, 0.8]])


def test_expected_confusion_is_additive_and_skips_unscored_rows() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4), size=500)
    predicted = rng.integers(0, 4, size=500)
    probs[[7, 100, 499]] = np.nan
    whole = expected_confusion(predicted, probs, 4)
    parts = sum(
        expected_confusion(predicted[i : i + 37], probs[i : i + 37], 4) for i in range(0, 500, 37)
    )
    np.testing.assert_allclose(whole, parts)
    assert whole.sum() == pytest.approx(497.0)


def test_estimated_accuracy_from_confidence() -> None:
    assert estimated_accuracy_from_confidence(7.5, 10) == pytest.approx(0.75)
    assert estimated_accuracy_from_confidence(0.0, 0) is None
    with pytest.raises(ValueError, match="n must be"):
        estimated_accuracy_from_confidence(1.0, -1)


# --------------------------------------------------------------------------------------------
# (b) isotonic fit agrees with scikit-learn
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_isotonic_fit_equals_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    x = np.round(rng.random(n), 2)  # rounding creates ties, which both pool by mean
    if seed % 2:
        y = (rng.random(n) < x**2).astype(np.float64)
    else:
        y = np.clip(x + rng.normal(0.0, 0.2, size=n), 0.0, 1.0)
    ours = fit_isotonic(x, y)
    ref = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    np.testing.assert_allclose(ours.x, ref.X_thresholds_, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ours.y, ref.y_thresholds_, rtol=0, atol=1e-12)
    grid = np.linspace(-0.1, 1.1, 241)
    np.testing.assert_allclose(ours(grid), ref.predict(grid), rtol=0, atol=1e-12)


def test_isotonic_map_rejects_non_monotone_breakpoints() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        IsotonicMap((0.1, 0.5), (0.6, 0.2))
    with pytest.raises(ValueError, match="same length"):
        IsotonicMap((0.1,), (0.1, 0.2))


# --------------------------------------------------------------------------------------------
# ECE and the keep-or-identity decision
# --------------------------------------------------------------------------------------------


def test_expected_calibration_error_hand_computed() -> None:
    # bins of width 0.5: scores {0.2, 0.4} -> bin 0 (mean 0.3, outcome mean 0.5),
    # scores {0.8, 1.0} -> bin 1 (mean 0.9, outcome mean 0.5); ECE = 0.5 * 0.2 + 0.5 * 0.4
    ece = expected_calibration_error([0.2, 0.4, 0.8, 1.0], [1, 0, 0, 1], n_bins=2)
    assert ece == pytest.approx(0.3)
    assert expected_calibration_error([], [], n_bins=2) is None


def _exactly_calibrated_binary() -> tuple[FloatArray, IntArray]:
    """Scores 0.25, 0.5, 0.75, each on 40 records with 10, 20, 30 positives placed so that
    the even and the odd records (the two folds) each hold exactly that frequency."""
    rows: list[float] = []
    actual: list[int] = []
    for value in (0.25, 0.5, 0.75):
        positives_per_fold = round(20 * value)
        for i in range(20):
            for _fold in range(2):  # consecutive records land in different folds
                rows.append(value)
                actual.append(1 if i < positives_per_fold else 0)
    p1 = np.array(rows)
    return np.column_stack([1.0 - p1, p1]), np.array(actual)


def test_calibration_dropped_when_it_cannot_lower_ece() -> None:
    probabilities, actual = _exactly_calibrated_binary()
    cal = fit_calibrator(probabilities, actual, ["no", "yes"])
    assert cal.calibrated is False
    assert cal.confidence_calibrated is False
    assert cal.probability_check is not None
    assert cal.probability_check.ece_raw == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_array_equal(cal.apply(probabilities), probabilities)


def test_calibration_kept_when_it_lowers_ece() -> None:
    # the model says 0.9 for the positive class, but only every other record is positive
    n = 200
    probabilities = np.tile([0.1, 0.9], (n, 1))
    actual = np.arange(n) % 4 // 2  # 0, 0, 1, 1, ...: each fold half positive
    cal = fit_calibrator(probabilities, actual, ["no", "yes"])
    assert cal.calibrated is True
    assert cal.confidence_calibrated is True
    assert cal.probability_check is not None
    assert cal.probability_check.ece_raw == pytest.approx(0.4)
    assert cal.probability_check.ece_calibrated == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(cal.apply(probabilities[:1]), [[0.5, 0.5]])
    np.testing.assert_allclose(cal.apply_confidence([0.9]), [0.5])


def test_too_few_reference_records_give_identity() -> None:
    probabilities = np.tile([0.1, 0.9], (50, 1))
    cal = fit_calibrator(probabilities, np.zeros(50, dtype=np.int64), ["a", "b"])
    assert cal == Calibrator.identity(["a", "b"])
    assert cal.probability_check is None


def test_calibrator_json_round_trip() -> None:
    rng = np.random.default_rng(11)
    probs = rng.dirichlet(np.ones(3) * 0.5, size=600)
    actual = np.array([rng.choice(3, p=np.sqrt(row) / np.sqrt(row).sum()) for row in probs])
    cal = fit_calibrator(probs, actual, ["x", "y", "z"])
    assert cal.calibrated  # sqrt-flattened outcomes: the raw scores are overconfident
    restored = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert restored == cal
    np.testing.assert_allclose(restored.apply(probs), cal.apply(probs))
    np.testing.assert_allclose(cal.apply(probs).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="format"):
        Calibrator.from_dict({**cal.to_dict(), "format": 99})


def test_apply_keeps_all_nan_rows_and_validates() -> None:
    cal = Calibrator.identity(["a", "b", "c"])
    out = cal.apply(np.array([[np.nan] * 3, [0.2, 0.3, 0.5]]))
    assert np.all(np.isnan(out[0]))
    with pytest.raises(ValueError, match="shape"):
        cal.apply(np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cal.apply_confidence([1.5])


# --------------------------------------------------------------------------------------------
# (c) acceptance: accuracy estimated without labels under covariate shift
# --------------------------------------------------------------------------------------------

TRUE_W = np.array([2.0, -1.5, 1.0])
TRUE_B = -0.5


def _binary_sample(
    rng: np.random.Generator, n: int, mean: list[float], scale: float
) -> tuple[FloatArray, IntArray]:
    """Labels from a logistic P(y = 1 | x) that never changes (no concept shift)."""
    x = rng.normal(mean, scale, size=(n, 3))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(x @ TRUE_W + TRUE_B)))).astype(np.int64)
    return x, y


def _proba(model: LogisticRegression, x: FloatArray, temperature: float) -> FloatArray:
    """The fitted model's probabilities; temperature > 1 makes it overconfident."""
    z = temperature * model.decision_function(x)
    p1 = 1.0 / (1.0 + np.exp(-z))
    return np.column_stack([1.0 - p1, p1])


@pytest.fixture(scope="module")
def binary_world() -> dict[str, FloatArray | IntArray | LogisticRegression]:
    rng = np.random.default_rng(20240601)
    x_train, y_train = _binary_sample(rng, 20_000, [0.0, 0.0, 0.0], 1.5)
    x_ref, y_ref = _binary_sample(rng, 20_000, [0.0, 0.0, 0.0], 1.5)
    # production: concentrated around the decision boundary w.x + b = 0
    x_prod, y_prod = _binary_sample(rng, 20_000, [0.25, 0.0, 0.0], 0.5)
    model = LogisticRegression().fit(x_train, y_train)
    return {"model": model, "x_ref": x_ref, "y_ref": y_ref, "x_prod": x_prod, "y_prod": y_prod}


def _estimate(cal: Calibrator, probs: FloatArray) -> float:
    est = estimated_metrics(expected_confusion(probs.argmax(axis=1), cal.apply(probs), 2))
    assert est is not None
    return est.accuracy


@pytest.mark.parametrize("temperature", [1.0, 3.0], ids=["calibrated", "overconfident"])
def test_cbpe_accuracy_within_003_under_covariate_shift(
    binary_world: dict[str, FloatArray | IntArray | LogisticRegression], temperature: float
) -> None:
    model = binary_world["model"]
    assert isinstance(model, LogisticRegression)
    p_ref = _proba(model, np.asarray(binary_world["x_ref"]), temperature)
    p_prod = _proba(model, np.asarray(binary_world["x_prod"]), temperature)
    y_ref, y_prod = np.asarray(binary_world["y_ref"]), np.asarray(binary_world["y_prod"])
    ref_accuracy = accuracy_score(y_ref, p_ref.argmax(axis=1))
    realized = accuracy_score(y_prod, p_prod.argmax(axis=1))
    assert ref_accuracy - realized > 0.10  # the shift really costs accuracy

    raw_estimate = _estimate(Calibrator.identity(["0", "1"]), p_prod)
    cal = fit_calibrator(p_ref, y_ref, ["0", "1"])
    estimate = _estimate(cal, p_prod)
    assert abs(estimate - realized) <= 0.03

    confidence = cal.apply_confidence(p_prod.max(axis=1))
    from_confidence = estimated_accuracy_from_confidence(float(confidence.sum()), confidence.size)
    assert from_confidence is not None
    assert abs(from_confidence - realized) <= 0.03

    if temperature > 1.0:
        assert abs(raw_estimate - realized) > 0.10  # without calibration the estimate fails
        assert cal.calibrated is True
        assert cal.confidence_calibrated is True
    else:
        assert abs(raw_estimate - realized) <= 0.03  # already calibrated: raw works too


def test_cbpe_multiclass_metrics_within_003_under_covariate_shift() -> None:
    rng = np.random.default_rng(77)
    weights = np.array([[1.5, 0.0], [-1.0, 1.2], [-0.5, -1.5]])

    def sample(n: int, mean: list[float], scale: float) -> tuple[FloatArray, IntArray]:
        x = rng.normal(mean, scale, size=(n, 2))
        logits = x @ weights.T
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        return x, y.astype(np.int64)

    x_train, y_train = sample(20_000, [0.0, 0.0], 2.0)
    x_ref, y_ref = sample(20_000, [0.0, 0.0], 2.0)
    x_prod, y_prod = sample(20_000, [0.2, 0.1], 0.6)  # near the point where classes meet
    model = LogisticRegression().fit(x_train, y_train)
    # overconfident on purpose: calibration has to repair it
    logits = 2.5 * model.decision_function(x_prod)
    ref_logits = 2.5 * model.decision_function(x_ref)

    def softmax(z: FloatArray) -> FloatArray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out: FloatArray = e / e.sum(axis=1, keepdims=True)
        return out

    p_ref, p_prod = softmax(ref_logits), softmax(logits)
    cal = fit_calibrator(p_ref, y_ref, ["a", "b", "c"])
    assert cal.calibrated is True
    predicted = p_prod.argmax(axis=1)
    est = estimated_metrics(expected_confusion(predicted, cal.apply(p_prod), 3))
    assert est is not None
    realized_accuracy = accuracy_score(y_prod, predicted)
    assert accuracy_score(y_ref, p_ref.argmax(axis=1)) - realized_accuracy > 0.10
    assert abs(est.accuracy - realized_accuracy) <= 0.03
    assert abs(est.f1_weighted - f1_score(y_prod, predicted, average="weighted")) <= 0.03
    raw = estimated_metrics(expected_confusion(predicted, p_prod, 3))
    assert raw is not None
    assert abs(raw.accuracy - realized_accuracy) > 0.10  # calibration is what makes it work

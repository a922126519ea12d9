"""Drift statistics from counts against scipy and hand-computed cases; detection quality."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pytest
import scipy.stats as sps
from scipy.spatial.distance import jensenshannon

from model_health_exporter.stats import drift
from model_health_exporter.stats.drift import (
    KS_EXACT_BELOW,
    KS_P_VALUE_TOLERANCE,
    CategoricalDrift,
    NumericDrift,
    adjust_p_values,
    categorical_drift,
    chi2_p_value,
    drift_flags,
    drift_share,
    js_distance,
    kl_divergence,
    ks_error_bound,
    ks_from_counts,
    numeric_drift,
    psi,
    wasserstein_from_counts,
)
from model_health_exporter.stats.profile import (
    CategoricalProfile,
    NumericProfile,
    build_categorical_profile,
    build_numeric_profile,
    category_key,
    profile_from_dict,
)
from model_health_exporter.stats.reference import DriftCounts, _category_codes, build_reference

Floats = npt.NDArray[np.float64]
T = TypeVar("T")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _defined(value: T | None) -> T:
    assert value is not None
    return value


def _draw(rng: np.random.Generator, family: str, size: int) -> Floats:
    if family == "normal":
        return rng.standard_normal(size)
    if family == "lognormal":
        return rng.lognormal(size=size)
    if family == "exponential":
        return rng.standard_exponential(size)
    assert family == "uniform"
    return rng.random(size)


# --------------------------------------------------------------------------------------------
# Hand-computed PSI and KL on 3 bins
# --------------------------------------------------------------------------------------------

REF_3 = [50, 30, 20]  # proportions .5 .3 .2
CUR_3 = [30, 30, 40]  # proportions .3 .3 .4


def test_psi_three_bins_by_hand() -> None:
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + 0.0 + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert expected == pytest.approx(0.240794, abs=1e-6)
    assert psi(REF_3, CUR_3) == pytest.approx(expected, rel=1e-12)
    assert psi(CUR_3, REF_3) == pytest.approx(expected, rel=1e-12)  # symmetric


def test_kl_three_bins_by_hand_is_current_given_reference() -> None:
    # KL(P || Q) = Σ P ln(P / Q) with P the current window, Q the reference
    expected = 0.3 * math.log(0.3 / 0.5) + 0.3 * math.log(1.0) + 0.4 * math.log(0.4 / 0.2)
    reverse = 0.5 * math.log(0.5 / 0.3) + 0.3 * math.log(1.0) + 0.2 * math.log(0.2 / 0.4)
    assert kl_divergence(REF_3, CUR_3) == pytest.approx(expected, rel=1e-12)
    assert kl_divergence(CUR_3, REF_3) == pytest.approx(reverse, rel=1e-12)
    assert expected != pytest.approx(reverse)


def test_empty_bin_smoothing_by_hand() -> None:
    # reference [10, 0, 10] -> [.5, 0, .5], floored at eps = 0.01 -> [.5, .01, .5] / 1.01
    eps = 0.01
    r = [0.5 / 1.01, 0.01 / 1.01, 0.5 / 1.01]
    c = [0.25, 0.25, 0.5]  # current [5, 5, 10] has no empty bin: unchanged
    expected_psi = sum((ci - ri) * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))
    expected_kl = sum(ci * math.log(ci / ri) for ri, ci in zip(r, c, strict=True))
    assert psi([10, 0, 10], [5, 5, 10], eps=eps) == pytest.approx(expected_psi, rel=1e-12)
    assert kl_divergence([10, 0, 10], [5, 5, 10], eps=eps) == pytest.approx(expected_kl, rel=1e-12)


def test_psi_is_the_symmetrised_kl() -> None:
    rng = _rng(3)
    for _ in range(20):
        ref, cur = rng.integers(0, 50, 12), rng.integers(0, 50, 12)
        ref[rng.integers(12)] = 0
        total = _defined(kl_divergence(ref, cur)) + _defined(kl_divergence(cur, ref))
        assert psi(ref, cur) == pytest.approx(total, rel=1e-10)


# --------------------------------------------------------------------------------------------
# Jensen-Shannon against scipy
# --------------------------------------------------------------------------------------------


def test_js_distance_matches_scipy_base_2() -> None:
    rng = _rng(4)
    for size in (2, 3, 10, 22, 60):
        for _ in range(10):
            ref, cur = rng.integers(0, 100, size), rng.integers(0, 100, size)
            ref[0], cur[-1] = 0, 0  # zeros on either side
            if ref.sum() == 0 or cur.sum() == 0:
                continue
            expected = float(jensenshannon(ref, cur, base=2))
            assert js_distance(ref, cur) == pytest.approx(expected, abs=1e-12)


def test_js_distance_of_disjoint_supports_is_one() -> None:
    assert js_distance([10, 0, 0], [0, 0, 7]) == pytest.approx(1.0, abs=1e-12)
    assert jensenshannon([10, 0, 0], [0, 0, 7], base=2) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------------
# KS against scipy's ks_2samp on the raw samples
# --------------------------------------------------------------------------------------------


def test_ks_equals_ks_2samp_when_every_value_has_its_own_bin() -> None:
    # integer data: one bin per distinct value, each value on its bin's left edge
    rng = _rng(5)
    for trial in range(10):
        ref = rng.integers(0, 10, 3_000).astype(float)  # every value is a 5% quantile
        weights = np.linspace(1.0, 1.0 + 0.05 * trial, 10)
        cur = rng.choice(10, 1_200 + 100 * trial, p=weights / weights.sum()).astype(float)
        profile = build_numeric_profile(ref)
        assert tuple(profile.edges[:-1]) == tuple(float(v) for v in range(10))
        result = ks_from_counts(profile.counts, profile.bin_counts(cur))
        assert result is not None
        raw = sps.ks_2samp(ref, cur, method="asymp")
        assert result[0] == pytest.approx(float(raw.statistic), abs=1e-12)
        # ks_2samp's p-value is kstwo.sf's; ours is within the documented tolerance of it
        assert result[1] == pytest.approx(float(raw.pvalue), abs=KS_P_VALUE_TOLERANCE)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.1, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("family", ["normal", "lognormal", "exponential"])
def test_binned_ks_is_within_tolerance_of_raw_ks_and_conservative(
    shift: float, family: str
) -> None:
    rng = _rng(6)
    for _ in range(5):
        ref, cur = _draw(rng, family, 10_000), _draw(rng, family, 5_000) + shift
        profile = build_numeric_profile(ref)
        counts = profile.bin_counts(cur)
        result = ks_from_counts(profile.counts, counts)
        assert result is not None
        statistic, p_value = result
        raw = sps.ks_2samp(ref, cur, method="asymp")
        gap = float(raw.statistic) - statistic
        # never above the raw statistic, so the p-value is conservative; below it by at most
        # the largest bin's mass (the bound) ...
        largest_bin = max(max(profile.counts) / profile.n, counts.max() / cur.size)
        assert -1e-12 <= gap <= largest_bin
        assert p_value >= float(raw.pvalue) - KS_P_VALUE_TOLERANCE
        # ... and by less than 0.01 where the CDF difference peaks smoothly; a shifted
        # exponential's moved support edge is a sharp peak inside a bin
        if family != "exponential" or shift <= 0.1:
            assert gap <= 0.01


def test_ks_p_value_uses_scipy_two_sample_asymptotics() -> None:
    # the p-value is kstwo.sf(D, round(n m / (n + m))), the distribution of ks_2samp's
    # "asymp", within KS_P_VALUE_TOLERANCE; exactly so below KS_EXACT_BELOW
    ref, cur = [40, 30, 30, 0], [10, 20, 30, 40]
    statistic, p_value = _defined(ks_from_counts(ref, cur))
    assert statistic == pytest.approx(max(abs(0.4 - 0.1), abs(0.7 - 0.3), abs(1.0 - 0.6)))
    assert p_value == pytest.approx(float(sps.kstwo.sf(0.4, 50)), abs=KS_P_VALUE_TOLERANCE)
    small_ref, small_cur = [4, 3, 3, 0], [1, 2, 3, 4]  # effective n = 5
    assert KS_EXACT_BELOW > 5
    statistic, p_value = _defined(ks_from_counts(small_ref, small_cur))
    assert p_value == pytest.approx(float(sps.kstwo.sf(statistic, 5)), rel=1e-12)
    # in the bulk, where the approximation is least exact
    ref, cur = [300, 300, 400, 0], [280, 310, 410, 0]  # effective n = 500, D = 0.02
    statistic, p_value = _defined(ks_from_counts(ref, cur))
    assert p_value == pytest.approx(float(sps.kstwo.sf(statistic, 500)), abs=KS_P_VALUE_TOLERANCE)
    assert p_value == pytest.approx(float(sps.kstwo.sf(statistic, 500)), rel=1e-5)


def test_ks_error_bound_brackets_the_raw_sample_statistic() -> None:
    """binned D <= ks_2samp's D on the raw values <= binned D + ks_error_bound, on smooth,
    skewed, heavy-tailed and discrete data, shifted and scaled, and the bound is at most
    the largest bin mass; numeric_drift_many serves the same bound."""
    rng = _rng(40)
    draws = {
        "normal": lambda n: rng.normal(0.0, 1.0, n),
        "exponential": lambda n: rng.exponential(size=n),
        "lognormal": lambda n: rng.lognormal(size=n),
        "integers": lambda n: rng.integers(0, 5, n).astype(float),
    }
    largest = 0.0
    for name, draw in draws.items():
        reference = draw(10_000)
        profile = build_numeric_profile(reference)
        for shift, scale in ((0.0, 1.0), (0.1, 1.0), (0.5, 1.0), (0.0, 1.5), (1.0, 0.5)):
            window = draw(5_000) * scale + shift
            counts = profile.bin_counts(window)
            binned = ks_from_counts(profile.counts, counts)
            bound = ks_error_bound(profile.counts, counts)
            assert binned is not None and bound is not None
            raw = float(sps.ks_2samp(reference, window).statistic)
            assert binned[0] - 1e-12 <= raw <= binned[0] + bound + 1e-12, (name, shift, scale)
            mass = max(np.max(profile.counts) / profile.n, np.max(counts) / counts.sum())
            assert bound <= mass + 1e-12
            largest = max(largest, bound)
            (batch,) = drift.numeric_drift_many([profile], [counts], [None], [None])
            assert batch is not None and batch.ks_error_bound == pytest.approx(bound, abs=1e-12)
    assert largest > 0


# --------------------------------------------------------------------------------------------
# Chi-square against scipy.stats.chi2_contingency
# --------------------------------------------------------------------------------------------


def test_chi2_p_value_matches_chi2_contingency() -> None:
    rng = _rng(7)
    for size in (2, 3, 5, 21):
        for _ in range(10):
            # every expected count well above CHI2_MIN_EXPECTED: nothing is pooled
            ref = rng.integers(60, 400, size)
            cur = rng.integers(60, 400, size)
            if size > 2:
                ref[1], cur[1] = 0, 0  # a column empty on both sides: dropped
            table = np.vstack([ref, cur])
            table = table[:, table.sum(axis=0) > 0]
            if table.shape[1] < 2 or ref.sum() == 0 or cur.sum() == 0:
                continue
            expected = sps.chi2_contingency(table, correction=False).pvalue
            assert chi2_p_value(ref, cur) == pytest.approx(float(expected), rel=1e-9, abs=1e-300)


def test_chi2_p_value_pools_sparse_columns_into_the_smallest_other() -> None:
    # n = 1,000, m = 100: a column needs a total of 5 x 1,100 / 100 = 55 for an expected
    # count of 5 in the window. The last two (13 and 12) are pooled; at 25 the pool is still
    # short, so it joins the smallest remaining column (the second).
    ref, cur = [500, 480, 10, 10], [50, 45, 3, 2]
    by_hand = np.array([[500, 480 + 10 + 10], [50, 45 + 3 + 2]])
    expected = float(sps.chi2_contingency(by_hand, correction=False).pvalue)
    assert chi2_p_value(ref, cur) == pytest.approx(expected, rel=1e-12)
    # a pool that reaches the limit stands alone as one more column
    ref, cur = [500, 400, 30, 30, 40], [50, 40, 3, 3, 4]
    by_hand = np.array([[500, 400, 100], [50, 40, 10]])
    expected = float(sps.chi2_contingency(by_hand, correction=False).pvalue)
    assert chi2_p_value(ref, cur) == pytest.approx(expected, rel=1e-12)
    # everything sparse: one column, nothing to compare
    assert chi2_p_value([600, 400], [3, 1]) == 1.0


def test_chi2_p_value_has_no_yates_correction_for_two_columns() -> None:
    ref, cur = [30, 70], [45, 55]
    uncorrected = sps.chi2_contingency(np.array([ref, cur]), correction=False).pvalue
    yates = sps.chi2_contingency(np.array([ref, cur]), correction=True).pvalue
    assert chi2_p_value(ref, cur) == pytest.approx(float(uncorrected), rel=1e-12)
    assert float(yates) != pytest.approx(float(uncorrected), rel=1e-3)


# --------------------------------------------------------------------------------------------
# Wasserstein against scipy.stats.wasserstein_distance
# --------------------------------------------------------------------------------------------


def _locations(profile: NumericProfile, lo: float, hi: float) -> Floats:
    """The documented mass locations: under/overflow midpoints, inner-bin reference means."""
    under = (min(lo, profile.minimum) + profile.minimum) / 2
    over = (profile.maximum + max(hi, profile.maximum)) / 2
    return np.array([under, *profile.bin_means, over])


def test_wasserstein_is_the_exact_distance_between_the_binned_distributions() -> None:
    rng = _rng(8)
    ref, cur = rng.standard_normal(10_000), 1.3 * rng.standard_normal(4_000) + 0.4
    profile = build_numeric_profile(ref)
    counts = profile.bin_counts(cur)
    x = _locations(profile, float(cur.min()), float(cur.max()))
    expected = sps.wasserstein_distance(x, x, profile.counts, counts) / profile.std
    got = wasserstein_from_counts(profile, counts, float(cur.min()), float(cur.max()))
    assert got == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.25, 0.5])
@pytest.mark.parametrize("family", ["normal", "exponential", "uniform"])
def test_wasserstein_is_within_tolerance_of_scipy_on_raw_samples(shift: float, family: str) -> None:
    rng = _rng(9)
    for _ in range(5):
        ref = _draw(rng, family, 10_000)
        cur = _draw(rng, family, 5_000) + shift * ref.std()
        profile = build_numeric_profile(ref)
        got = wasserstein_from_counts(
            profile, profile.bin_counts(cur), float(cur.min()), float(cur.max())
        )
        expected = sps.wasserstein_distance(ref, cur) / ref.std()
        assert got == pytest.approx(expected, abs=0.03)  # documented: 0.03 std up to 0.5 std


def test_wasserstein_without_current_extremes_is_a_lower_bound() -> None:
    rng = _rng(10)
    ref, cur = rng.standard_normal(5_000), rng.standard_normal(2_000) * 2
    profile = build_numeric_profile(ref)
    counts = profile.bin_counts(cur)
    bounded = wasserstein_from_counts(profile, counts, float(cur.min()), float(cur.max()))
    unbounded = wasserstein_from_counts(profile, counts)
    assert bounded is not None and unbounded is not None
    assert unbounded < bounded


def test_wasserstein_is_none_for_a_constant_reference() -> None:
    profile = build_numeric_profile([3.0] * 50)
    assert profile.std == 0 and profile.n_bins == 3
    assert wasserstein_from_counts(profile, [1, 5, 2]) is None


# --------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------


def test_identical_distributions() -> None:
    counts = [0, 12, 30, 0, 7, 0]
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-15)
    assert kl_divergence(counts, counts) == pytest.approx(0.0, abs=1e-15)
    assert js_distance(counts, counts) == pytest.approx(0.0, abs=1e-7)
    assert ks_from_counts(counts, counts) == (0.0, 1.0)
    assert chi2_p_value(counts, counts) == pytest.approx(1.0)
    doubled = [2 * c for c in counts]  # same proportions, other sample size
    assert ks_from_counts(counts, doubled) == (0.0, 1.0)
    assert chi2_p_value(counts, doubled) == pytest.approx(1.0)


def test_identical_samples_give_zero_wasserstein_and_p_one() -> None:
    rng = _rng(11)
    ref = rng.standard_normal(2_000)
    profile = build_numeric_profile(ref)
    result = numeric_drift(profile, profile.bin_counts(ref), float(ref.min()), float(ref.max()))
    assert result.wasserstein == pytest.approx(0.0, abs=1e-12)
    assert result.psi == pytest.approx(0.0, abs=1e-12)
    assert result.ks_statistic == 0.0 and result.p_value == 1.0


def test_all_mass_in_one_bin() -> None:
    ref, cur = [100, 0, 0], [0, 0, 50]
    value = _defined(psi(ref, cur))
    # smoothed proportions [1, eps, eps] and [eps, eps, 1], renormalised
    r = np.array([1.0, 1e-4, 1e-4]) / 1.0002
    c = r[::-1]
    assert value == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-12)
    assert math.isfinite(value) and value > 10
    assert js_distance(ref, cur) == pytest.approx(1.0)
    statistic, p_value = _defined(ks_from_counts(ref, cur))
    assert statistic == 1.0 and p_value < 1e-20
    assert _defined(chi2_p_value(ref, cur)) < 1e-20
    # both sides entirely in the same single bin: nothing to test, p = 1
    assert chi2_p_value([0, 40, 0], [0, 9, 0]) == 1.0
    assert psi([0, 40, 0], [0, 9, 0]) == pytest.approx(0.0, abs=1e-15)


def test_empty_current_window_gives_none() -> None:
    ref = [5, 10, 5]
    for fn in (psi, kl_divergence, js_distance, ks_from_counts, chi2_p_value):
        assert fn(ref, [0, 0, 0]) is None
    profile = build_numeric_profile(np.arange(100.0), n_bins=4)
    empty = numeric_drift(profile, np.zeros(profile.n_bins, dtype=np.int64))
    assert empty == NumericDrift(0, None, None, None, None, None, None)
    cat = build_categorical_profile(["a", "b", "b"])
    assert categorical_drift(cat, [0, 0, 0]) == CategoricalDrift(0, None, None, None, None)


def test_bad_count_vectors_raise() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=">= 0"):
        psi([1, -2], [1, 2])
    with pytest.raises(ValueError, match="non-empty vector"):
        js_distance([], [])
    profile = build_numeric_profile(np.arange(10.0), n_bins=2)
    with pytest.raises(ValueError, match="must hold 4 bins"):
        numeric_drift(profile, [1, 2, 3])


# --------------------------------------------------------------------------------------------
# Multiple testing, flags, share
# --------------------------------------------------------------------------------------------


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = _rng(12)
    for size in (1, 2, 5, 15, 40):
        p = rng.random(size) ** 3
        p[0] = p[-1]  # a tie
        expected = sps.false_discovery_control(p, method="bh")
        assert adjust_p_values(list(p), "bh") == pytest.approx(list(expected), rel=1e-12)


def test_bonferroni_and_none() -> None:
    p = [0.001, 0.02, 0.5]
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.003, 0.06, 1.0])
    assert adjust_p_values(p, "none") == p
    assert adjust_p_values([], "bh") == []
    with pytest.raises(ValueError, match="correction must be one of"):
        adjust_p_values(p, "holm")  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        adjust_p_values([1.5], "bh")


def _numeric(p_value: float | None, **stats: float) -> NumericDrift:
    values: dict[str, Any] = {
        "psi": 0.0, "kl_divergence": 0.0, "js_distance": 0.0, "ks_statistic": 0.0,
        "wasserstein": 0.0,
    } | stats  # fmt: skip
    return NumericDrift(n_current=1000, p_value=p_value, **values)


def test_drift_flags_by_adjusted_p_value() -> None:
    features = {"a": _numeric(0.004), "b": _numeric(0.006), "c": _numeric(0.2)}
    # BH: 0.004 * 3 / 1 = 0.012 but step-up min(0.012, 0.006 * 3 / 2 = 0.009) = 0.009
    assert drift_flags(features, "p_value", 0.01, "bh") == {"a": True, "b": True, "c": False}
    # Bonferroni: 0.012, 0.018, 0.6
    assert drift_flags(features, "p_value", 0.01, "bonferroni") == dict.fromkeys("abc", False)
    assert drift_flags(features, "p_value", 0.01, "none") == {"a": True, "b": True, "c": False}
    assert drift_flags(features) == {"a": True, "b": True, "c": False}  # defaults p_value/.01/bh


def test_drift_flags_by_statistic_and_undefined_features() -> None:
    features: dict[str, drift.FeatureDrift] = {
        "a": _numeric(0.5, psi=0.25, wasserstein=0.1),
        "b": _numeric(0.5, psi=0.2, wasserstein=0.05),
        "c": _numeric(None, psi=0.05),
        "empty": NumericDrift(0, None, None, None, None, None, None),
        "cat": CategoricalDrift(1000, psi=0.3, kl_divergence=0.1, js_distance=0.2, p_value=0.9),
    }
    assert drift_flags(features, "psi", 0.2) == {"a": True, "b": True, "c": False, "cat": True}
    assert drift_flags(features, "psi") == drift_flags(features, "psi", drift.PSI_DRIFT)
    # Wasserstein does not apply to a categorical feature: it gets no flag
    assert drift_flags(features, "wasserstein") == {"a": True, "b": False, "c": False}
    flags = drift_flags(features, "p_value")
    assert flags == {"a": False, "b": False, "cat": False}
    with pytest.raises(ValueError, match="method must be one of"):
        drift_flags(features, "chi2")  # type: ignore[arg-type]  # the point of the test


def test_drift_share() -> None:
    assert drift_share({}) is None
    assert drift_share({"a": True, "b": False, "c": False, "d": True}) == 0.5


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------


def test_numeric_bins_by_hand() -> None:
    profile = build_numeric_profile(np.arange(1.0, 101.0), n_bins=4)
    # inverted-CDF quantiles at 0, .25, .5, .75 are 1, 25, 50, 75; last edge just above 100
    assert tuple(profile.edges) == (1.0, 25.0, 50.0, 75.0, math.nextafter(100.0, math.inf))
    assert tuple(profile.counts) == (0, 24, 25, 25, 26, 0)
    assert tuple(profile.bin_means) == (12.5, 37.0, 62.0, 87.5)
    assert (profile.n, profile.minimum, profile.maximum, profile.missing) == (100, 1.0, 100.0, 0)
    assert profile.mean == 50.5 and profile.std == pytest.approx(np.arange(1, 101).std())
    values = np.array([-5.0, 0.999, 1.0, 24.999, 25.0, 99.0, 100.0, 100.001, math.inf, -math.inf])
    assert profile.bin_indices(values).tolist() == [0, 0, 1, 1, 2, 4, 4, 5, 5, 0]
    assert profile.bin_indices(values).dtype == np.int64
    assert profile.bin_counts(values).tolist() == [3, 2, 1, 0, 2, 2]
    with pytest.raises(ValueError, match="NaN"):
        profile.bin_indices(np.array([1.0, math.nan]))
    with pytest.raises(ValueError, match="NaN"):
        profile.bin_counts(np.array([1.0, math.nan]))
    assert profile.bin_counts(np.array([])).tolist() == [0] * 6


def test_bin_counts_count_each_value_in_its_bin() -> None:
    """bin_counts (the values sorted once) counts what bin_indices puts in each bin,
    values equal to an edge and beyond the outer edges included."""
    rng = np.random.default_rng(5)
    profile = build_numeric_profile(rng.normal(0, 3, 1000), n_bins=20)
    edges = np.asarray(profile.edges)
    for values in (
        rng.normal(0, 3, 3000),
        rng.normal(5, 10, 777),
        np.concatenate([edges, edges, [-math.inf, math.inf, edges[0] - 1]]),
        rng.choice(edges, 50),
    ):
        expected = np.bincount(profile.bin_indices(values), minlength=profile.n_bins)
        assert profile.bin_counts(values).tolist() == expected.tolist()


def test_numeric_profile_of_discrete_data_has_a_bin_per_value() -> None:
    values = [0] * 70 + [1] * 30  # binary: quantiles repeat and are deduplicated
    profile = build_numeric_profile(values)
    assert tuple(profile.edges) == (0.0, 1.0, math.nextafter(1.0, math.inf))
    assert tuple(profile.counts) == (0, 70, 30, 0)
    # a value with much mass starts its own bin (bins are left-closed)
    spiky = build_numeric_profile([*range(50), *([25] * 200)], n_bins=10)
    assert spiky.counts[spiky.bin_indices(np.array([25.0]))[0]] >= 200


def test_numeric_profile_counts_missing() -> None:
    profile = build_numeric_profile([1.0, None, 2.0, math.nan, 3.0])
    assert (profile.n, profile.missing) == (3, 2)
    with pytest.raises(ValueError, match="without any non-missing value"):
        build_numeric_profile([None, math.nan])
    with pytest.raises(ValueError, match="finite"):
        build_numeric_profile([1.0, math.inf])
    with pytest.raises(ValueError, match="numbers or None"):
        build_numeric_profile(["a", 1.0])  # type: ignore[list-item]  # the point of the test


def test_numeric_profile_json_round_trip() -> None:
    profile = build_numeric_profile(_rng(13).lognormal(size=1_000))
    text = json.dumps(profile.to_dict())
    again = NumericProfile.from_dict(json.loads(text))
    assert again == profile and tuple(again.bin_means) == tuple(profile.bin_means)
    assert profile_from_dict(json.loads(text)) == profile
    x = _rng(14).lognormal(size=500)
    assert np.array_equal(again.bin_indices(x), profile.bin_indices(x))


def test_numeric_profile_arrays_are_read_only_and_compare_as_values() -> None:
    """Edges, counts and bin means are held as read-only arrays; profiles compare and hash
    by value as they did with tuples, and `to_dict` gives plain Python numbers."""
    profile = build_numeric_profile(np.arange(1.0, 101.0), n_bins=4)
    for array in (profile.edges, profile.counts, profile.bin_means):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    as_lists = NumericProfile(
        edges=list(profile.edges),
        counts=list(profile.counts),
        n=100,
        mean=profile.mean,
        std=profile.std,
        minimum=1.0,
        maximum=100.0,
        bin_means=list(profile.bin_means),
    )
    assert as_lists == profile and hash(as_lists) == hash(profile)
    assert as_lists != dataclasses.replace(profile, bin_means=())
    assert as_lists != dataclasses.replace(profile, counts=(0, 25, 24, 25, 26, 0))
    data = profile.to_dict()
    assert all(type(v) is float for v in data["edges"] + data["bin_means"])
    assert all(type(v) is int for v in data["counts"])
    assert json.loads(json.dumps(data)) == data


def _numeric_dict(**changes: Any) -> dict[str, Any]:
    data = build_numeric_profile(np.arange(1.0, 101.0), n_bins=4).to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"counts": [0, 24, 25, 25, 26]}, "counts must hold len"),
        ({"counts": [0, 24, 25, 25, 27, 0]}, "counts sum to"),
        ({"counts": [1, 23, 25, 25, 26, 0]}, "underflow and overflow"),
        ({"counts": [0, 24, -25, 25, 26, 0]}, r"counts\[2\] must be an integer"),
        ({"edges": [1.0, 50.0, 25.0, 75.0, 100.5]}, "strictly increasing"),
        ({"edges": "1,25,50"}, "list of numbers"),
        ({"edges": [1.0, None, 50.0, 75.0, 100.5]}, r"edges\[1\] must be a finite number"),
        ({"n": True}, "n must be an integer"),
        ({"n": 0}, "n must be an integer >= 1"),
        ({"std": math.nan}, "std must be a finite number"),
        ({"minimum": 0.0}, "must equal the first edge"),
        ({"maximum": 200.0}, "must lie in the last inner bin"),
        ({"bin_means": [1.0, 2.0]}, "one value per inner bin"),
        ({"bin_means": [30.0, 37.0, 62.0, 87.5]}, "inside its bin"),
        ({"kind": "categorical"}, "expected a profile of kind 'numeric'"),
    ],
)
def test_numeric_profile_rejects_bad_data(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NumericProfile.from_dict(_numeric_dict(**changes))


def test_numeric_profile_rejects_missing_keys_and_non_objects() -> None:
    data = _numeric_dict()
    del data["edges"], data["std"]
    with pytest.raises(ValueError, match="lacks edges, std"):
        NumericProfile.from_dict(data)
    with pytest.raises(ValueError, match="JSON object"):
        NumericProfile.from_dict([1, 2])  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(ValueError, match="profile kind must be"):
        profile_from_dict({"kind": "histogram"})


def test_categorical_profile_top_k_other_and_missing() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + ["d", "e", None, math.nan]
    profile = build_categorical_profile(values, top_k=3)
    # 5 categories for 3 bins: chosen on the values at even positions (b b b a a c c e: b,
    # then a and c tied, by name), counted over all, and over the odd positions
    # (b b a a a c d) for the chi-square test
    assert profile.categories == ("b", "a", "c")
    assert profile.counts == (5, 5, 3, 2)  # then "other": d, e
    assert profile.test_counts == (2, 3, 1, 1)
    everything = build_categorical_profile(values, top_k=5)  # room for all: nothing chosen
    assert everything.categories == ("a", "b", "c", "d", "e")  # ties by name
    assert (everything.counts, everything.test_counts) == ((5, 5, 3, 1, 1, 0), ())
    assert everything.reference_test_counts == everything.counts
    assert (profile.n, profile.missing, profile.n_bins, profile.other_index) == (15, 2, 4, 3)
    assert [profile.index_of(c) for c in ("b", "a", "c", "d", "never")] == [0, 1, 2, 3, 3]
    assert profile.bin_counts(["a", "zzz", None, "c", "c"]).tolist() == [0, 1, 2, 1]
    with pytest.raises(ValueError, match="without any non-missing value"):
        build_categorical_profile([None])


def test_category_key_spelling() -> None:
    assert [category_key(v) for v in ("x", True, False, 3, 3.0, 2.5, None, math.nan)] == [
        "x", "true", "false", "3", "3", "2.5", None, None,
    ]  # fmt: skip


def test_categorical_profile_json_round_trip_and_bad_data() -> None:
    profile = build_categorical_profile(["x", "y", "y", 1, True])
    again = CategoricalProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile and again.index_of("y") == profile.index_of("y") == 0
    assert profile_from_dict(profile.to_dict()) == profile
    good = profile.to_dict()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"counts": [1, 2]}, "counts must hold len"),
        ({"counts": [2, 1, 1, 1, 1]}, "counts sum to"),
        ({"categories": ["y", "y", "1", "true"]}, "distinct"),
        ({"categories": ["y", 1, "true", "x"]}, "strings"),
        ({"categories": "yx1"}, "list of strings"),
        ({"missing": -1}, "missing must be an integer"),
        ({"kind": "numeric"}, "kind 'categorical'"),
        ({"test_counts": [1, 1]}, "test_counts must be empty or hold 5"),
        ({"test_counts": [3, 0, 0, 0, 0]}, "at most the bin's count"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            CategoricalProfile.from_dict(good | changes)
    chosen = build_categorical_profile(["x", "y", "y", 1, True, "z"], top_k=2)
    assert chosen.test_counts  # more categories than bins
    assert CategoricalProfile.from_dict(json.loads(json.dumps(chosen.to_dict()))) == chosen


def test_categorical_drift_against_scipy() -> None:
    rng = _rng(15)
    ref = rng.choice(["a", "b", "c", "d"], 4_000, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    cur = rng.choice(["a", "b", "c", "e"], 1_500, p=[0.35, 0.3, 0.2, 0.15]).tolist()
    profile = build_categorical_profile(ref, top_k=3)  # "d" and "e" land in "other"
    counts = profile.bin_counts(cur)
    result = categorical_drift(profile, counts)
    # the test compares the window with the reference values that did not choose the bins
    tested = np.vstack([profile.test_counts, counts])
    assert result.p_value == pytest.approx(
        float(sps.chi2_contingency(tested, correction=False).pvalue), rel=1e-9
    )
    table = np.vstack([profile.counts, counts])
    assert result.js_distance == pytest.approx(float(jensenshannon(*table, base=2)), abs=1e-12)
    assert result.ks_statistic is None and result.wasserstein is None
    assert result.n_current == 1_500


# --------------------------------------------------------------------------------------------
# Detection quality on synthetic streams (defaults: binned KS p-value, BH, adjusted p < 0.01)
# --------------------------------------------------------------------------------------------

TRIALS = 200
FEATURES = 15
REFERENCE_ROWS = 10_000
WINDOW_ROWS = 5_000
SHIFT = 0.25  # in reference standard deviations (the features are standard normal)


def test_detection_power_and_false_alarm_rate_with_the_defaults() -> None:
    detected = 0  # trials whose shifted feature was flagged
    false_alarms = 0  # no-drift trials with any feature flagged
    for trial in range(TRIALS):
        rng = _rng(10_000 + trial)
        reference = rng.standard_normal((FEATURES, REFERENCE_ROWS))
        window = rng.standard_normal((FEATURES, WINDOW_ROWS))
        shifted_feature = trial % FEATURES
        profiles = [build_numeric_profile(column) for column in reference]
        counts = [p.bin_counts(column) for p, column in zip(profiles, window, strict=True)]
        extremes = np.stack([window.min(axis=1), window.max(axis=1)], axis=1)

        no_drift = {
            f"f{i}": numeric_drift(p, c, float(lo), float(hi))
            for i, (p, c, (lo, hi)) in enumerate(zip(profiles, counts, extremes, strict=True))
        }
        false_alarms += any(drift_flags(no_drift).values())

        moved = window[shifted_feature] + SHIFT
        drifted = dict(no_drift)  # the same window, one feature's values shifted
        drifted[f"f{shifted_feature}"] = numeric_drift(
            profiles[shifted_feature],
            profiles[shifted_feature].bin_counts(moved),
            float(moved.min()),
            float(moved.max()),
        )
        detected += drift_flags(drifted)[f"f{shifted_feature}"]

    assert detected / TRIALS >= 0.95, f"detected {detected} of {TRIALS}"
    assert false_alarms / TRIALS <= 0.02, f"{false_alarms} false alarms in {TRIALS}"


@pytest.mark.parametrize("top_k", [3, 200])
@pytest.mark.parametrize("rows", [1, 7, 1024])
def test_typed_columns_are_tallied_as_feature_by_feature(rows: int, top_k: int) -> None:
    """`add_columns` of typed columns counts every numeric feature in one array and every
    categorical one in one bincount: the same counts as the per-feature path, with
    missing values, values on the edges, a feature missing throughout, categories the
    reference never had and a categorical feature whose categories are not all kept;
    with top_k 3 and 200 (every position in the shared tables fits a byte with both:
    `test_typed_columns_with_positions_over_a_byte` has those that do not)."""
    rng = np.random.default_rng(41)
    many = [f"k{i}" for i in range(1200)]  # more than the reference keeps as known
    sample = [
        {
            "a": float(rng.normal()),
            "b": int(rng.integers(0, 5)),
            "c": str(rng.choice(["x", "y", "z", "w", "v"])),
            "d": many[i],
            "e": float(rng.random()),
        }
        for i in range(len(many))
    ]
    reference = build_reference("sample", sample, n_bins=6, top_k=top_k)
    assert "c" in reference.known_categories and "d" not in reference.known_categories
    assert _category_codes(reference).byte_positions
    edges = cast_numeric(reference.features["a"]).edges.tolist()
    columns = {
        "a": [rng.choice([*edges, None, 1e9, -1e9, float(rng.normal())]) for _ in range(rows)],
        "b": [rng.choice([0, 1, 2, 3, 4, 7, None]) for _ in range(rows)],
        "c": [rng.choice(["x", "y", "z", "w", "v", "new", None]) for _ in range(rows)],
        "d": [rng.choice([*many[:5], "never", None]) for _ in range(rows)],
        "e": [None] * rows,
    }
    ordered = [columns[name] for name in reference.features]
    typed, plain = DriftCounts.empty(reference), DriftCounts.empty(reference)
    for _ in range(2):  # the second block adds to the first's counts and extremes
        typed.add_columns(reference, ordered, typed=True)
        plain.add_columns(reference, ordered)
    for name in ("flat", "missing", "invalid_type", "unseen", "minmax"):
        assert np.array_equal(getattr(typed, name), getattr(plain, name), equal_nan=True), name
    assert typed.missing.sum() >= 2 * rows and (rows == 1 or typed.unseen.sum() > 0)


def cast_numeric(profile: object) -> NumericProfile:
    assert isinstance(profile, NumericProfile)
    return profile

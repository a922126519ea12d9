"""Batch drift statistics (`numeric_drift_many`, `categorical_drift_many`) against the scalar
per-feature functions, which are tested against scipy in test_drift_stats.py; and the fast KS
p-value (`ks_p_value`) against scipy's exact `kstwo.sf` within its documented tolerance."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt
import pytest
import scipy.stats as sps

from model_health_exporter.stats.drift import (
    KS_EXACT_BELOW,
    KS_P_VALUE_TOLERANCE,
    CategoricalDrift,
    NumericDrift,
    categorical_drift,
    categorical_drift_many,
    ks_from_counts,
    ks_p_value,
    numeric_drift,
    numeric_drift_many,
)
from model_health_exporter.stats.profile import (
    CategoricalProfile,
    NumericProfile,
    build_categorical_profile,
    build_numeric_profile,
)

Counts = npt.NDArray[np.float64]
REL = 1e-9  # the batch and scalar paths sum in different orders: rounding only
ABS = 1e-12  # for statistics that are 0 up to rounding (identical distributions)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _assert_same(batch: object, scalar: NumericDrift | CategoricalDrift) -> None:
    """`batch` equals the scalar result; an empty window is None in batch."""
    if scalar.n_current == 0:
        assert batch is None
        assert all(v is None for k, v in dataclasses.asdict(scalar).items() if k != "n_current")
        return
    assert batch is not None and type(batch) is type(scalar)
    got, want = dataclasses.asdict(batch), dataclasses.asdict(scalar)
    assert got["n_current"] == want["n_current"]
    for name, expected in want.items():
        if expected is None:
            assert got[name] is None, name
        else:
            assert got[name] == pytest.approx(expected, rel=REL, abs=ABS), name


# --------------------------------------------------------------------------------------------
# Numeric features
# --------------------------------------------------------------------------------------------


def _numeric_profile(rng: np.random.Generator, kind: int) -> NumericProfile:
    """Profiles of varied shapes and bin counts (3 to 42 counters)."""
    size = int(rng.integers(50, 3_000))
    if kind == 0:
        return build_numeric_profile(rng.standard_normal(size), n_bins=int(rng.integers(1, 41)))
    if kind == 1:  # discrete: one bin per distinct value
        return build_numeric_profile(rng.integers(0, int(rng.integers(2, 8)), size).astype(float))
    if kind == 2:  # skewed, default 20 bins
        return build_numeric_profile(rng.lognormal(size=size))
    if kind == 3:  # constant: 3 counters, std 0, so no Wasserstein
        return build_numeric_profile(np.full(size, float(rng.integers(-5, 5))))
    # no bin means: the Wasserstein estimate puts inner mass at the bins' midpoints
    built = build_numeric_profile(rng.exponential(size=size), n_bins=int(rng.integers(2, 25)))
    return dataclasses.replace(built, bin_means=())


def _current_counts(
    rng: np.random.Generator, profile: NumericProfile | CategoricalProfile
) -> Counts:
    """Window counts: sampled, sparse, concentrated in one bin, fractional, or empty."""
    bins = profile.n_bins
    style = int(rng.integers(0, 6))
    if style == 0:
        return np.zeros(bins)
    if style == 1:
        one = np.zeros(bins)
        one[rng.integers(bins)] = rng.integers(1, 500)
        return one
    if style == 2:  # zeros here and there, under/overflow included
        counts = rng.integers(0, 40, bins).astype(float)
        counts[rng.random(bins) < 0.4] = 0
        return counts
    if style == 3:
        return rng.random(bins) * 100  # fractional counts are allowed
    if style == 4:  # the reference's own proportions, scaled: identical distribution
        return np.asarray(profile.counts, dtype=float) * int(rng.integers(1, 4))
    weights = rng.dirichlet(np.ones(bins))
    return rng.multinomial(int(rng.integers(1, 5_000)), weights).astype(float)


def _extremes(
    rng: np.random.Generator, profile: NumericProfile
) -> tuple[float | None, float | None]:
    spread = profile.maximum - profile.minimum + 1
    low = None if rng.random() < 0.3 else profile.minimum - spread * float(rng.random())
    high = None if rng.random() < 0.3 else profile.maximum + spread * float(rng.random()) - 0.5
    return low, high


def _numeric_case(
    rng: np.random.Generator, features: int
) -> tuple[list[NumericProfile], list[Counts], list[float | None], list[float | None]]:
    profiles = [_numeric_profile(rng, int(rng.integers(0, 5))) for _ in range(features)]
    counts = [_current_counts(rng, p) for p in profiles]
    lows, highs = zip(*(_extremes(rng, p) for p in profiles), strict=True)
    return profiles, counts, list(lows), list(highs)


@pytest.mark.parametrize("seed", range(40))
def test_numeric_batch_equals_the_scalar_function(seed: int) -> None:
    rng = _rng(100 + seed)
    profiles, counts, lows, highs = _numeric_case(rng, int(rng.integers(1, 25)))
    eps = float(rng.choice([1e-4, 1e-6, 0.01]))
    batch = numeric_drift_many(profiles, counts, lows, highs, eps=eps)
    assert len(batch) == len(profiles)
    for result, profile, c, low, high in zip(batch, profiles, counts, lows, highs, strict=True):
        _assert_same(result, numeric_drift(profile, c, low, high, eps=eps))


def test_numeric_batch_on_real_windows() -> None:
    # the daemon's case: 20-bin profiles of continuous data, windows of a few thousand rows
    rng = _rng(1)
    references = [rng.standard_normal(10_000) * (i + 1) for i in range(15)]
    windows = [rng.standard_normal(int(rng.integers(100, 6_000))) * (i + 1) + 0.1 * i
               for i in range(15)]  # fmt: skip
    profiles = [build_numeric_profile(r) for r in references]
    counts = [p.bin_counts(w) for p, w in zip(profiles, windows, strict=True)]
    lows, highs = [float(w.min()) for w in windows], [float(w.max()) for w in windows]
    batch = numeric_drift_many(profiles, counts, lows, highs)
    for result, p, c, lo, hi in zip(batch, profiles, counts, lows, highs, strict=True):
        _assert_same(result, numeric_drift(p, c, lo, hi))
        assert result is not None and result.p_value is not None


def test_padding_changes_nothing() -> None:
    # a feature alone, and beside much wider ones, gets the same statistics
    rng = _rng(2)
    narrow = build_numeric_profile([0.0, 1.0] * 50)  # 4 counters
    wide = build_numeric_profile(rng.standard_normal(5_000), n_bins=40)  # 42 counters
    narrow_counts, wide_counts = np.array([3.0, 10, 20, 0]), wide.bin_counts(rng.random(900))
    (alone,) = numeric_drift_many([narrow], [narrow_counts], [None], [None])
    beside = numeric_drift_many(
        [wide, narrow, wide], [wide_counts, narrow_counts, wide_counts], [-4.0, None, 0.0],
        [None, 2.0, 9.0],
    )  # fmt: skip
    assert alone is not None and beside[1] is not None
    for name, value in dataclasses.asdict(alone).items():
        assert getattr(beside[1], name) == pytest.approx(value, rel=1e-12, abs=1e-15), name
    _assert_same(beside[0], numeric_drift(wide, wide_counts, -4.0, None))
    _assert_same(beside[2], numeric_drift(wide, wide_counts, 0.0, 9.0))


def test_numeric_edge_cases() -> None:
    constant = build_numeric_profile([2.0] * 30)
    binary = build_numeric_profile([0.0] * 70 + [1.0] * 30)
    profiles = [constant, constant, binary, binary, binary]
    counts = [
        np.array([1.0, 5, 2]),  # std 0: no Wasserstein, the rest defined
        np.zeros(3),  # empty window
        np.array([0.0, 0, 0, 9]),  # all above the reference maximum
        np.array([0.0, 70, 30, 0]),  # identical to the reference
        np.array([0.0, 0, 5, 0]),  # all in one reference bin
    ]
    lows, highs = [0.0, None, None, None, 0.5], [9.0, None, 4.0, None, None]
    batch = numeric_drift_many(profiles, counts, lows, highs)
    for result, p, c, lo, hi in zip(batch, profiles, counts, lows, highs, strict=True):
        _assert_same(result, numeric_drift(p, c, lo, hi))
    first, empty, above, same, _ = batch
    assert first is not None and first.wasserstein is None and first.psi is not None
    assert empty is None
    assert above is not None and above.ks_statistic == 1.0 and above.p_value == 0.0
    # the same counts, but inside a bin of 70% the raw values could differ by up to 0.7
    assert same == NumericDrift(100, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.7)
    assert numeric_drift_many([], [], [], []) == []


# --------------------------------------------------------------------------------------------
# Categorical features
# --------------------------------------------------------------------------------------------


def _categorical_profile(rng: np.random.Generator) -> CategoricalProfile:
    """Profiles of 1 to 30 bins, some with a category the reference never saw (count 0)."""
    style = rng.random()
    if style < 0.1:  # no kept category: a single "other" bin
        total = int(rng.integers(1, 100))
        return CategoricalProfile(categories=(), counts=(total,), n=total)
    names = [f"c{i}" for i in range(int(rng.integers(1, 40)))]
    weights = rng.dirichlet(np.ones(len(names)) * 0.5)
    values = rng.choice(names, int(rng.integers(20, 3_000)), p=weights)
    built = build_categorical_profile(values.tolist(), top_k=int(rng.integers(1, 30)))
    if style < 0.4:  # a known category with no reference rows (the window may lack it too)
        return CategoricalProfile(("never", *built.categories), (0, *built.counts), built.n)
    return built


@pytest.mark.parametrize("seed", range(40))
def test_categorical_batch_equals_the_scalar_function(seed: int) -> None:
    rng = _rng(200 + seed)
    profiles = [_categorical_profile(rng) for _ in range(int(rng.integers(1, 12)))]
    counts = [_current_counts(rng, p) for p in profiles]
    for p, c in zip(profiles, counts, strict=True):
        if p.counts[0] == 0 and rng.random() < 0.7:
            c[0] = 0.0  # a column empty on both sides: dropped from the chi-square table
    eps = float(rng.choice([1e-4, 1e-3]))
    batch = categorical_drift_many(profiles, counts, eps=eps)
    assert len(batch) == len(profiles)
    for result, p, c in zip(batch, profiles, counts, strict=True):
        _assert_same(result, categorical_drift(p, c, eps=eps))


def test_categorical_edge_cases() -> None:
    single = CategoricalProfile(categories=(), counts=(40,), n=40)
    # "a", then "other"; chosen on half the reference, tested on the other (150, 50)
    two = build_categorical_profile(["a"] * 300 + ["b"] * 100, top_k=1)
    profiles = [single, two, two, two, single]
    counts = [np.array([7.0]), np.array([0.0, 90]), np.array([30.0, 10]), np.zeros(2),
              np.zeros(1)]  # fmt: skip
    batch = categorical_drift_many(profiles, counts)
    for result, p, c in zip(batch, profiles, counts, strict=True):
        _assert_same(result, categorical_drift(p, c))
    assert batch[0] == CategoricalDrift(7, 0.0, 0.0, 0.0, 1.0)  # one bin: nothing to test
    assert batch[2] == CategoricalDrift(40, 0.0, 0.0, 0.0, 1.0)
    assert batch[3] is None and batch[4] is None
    expected = sps.chi2_contingency(np.array([[150, 50], [0, 90]]), correction=False).pvalue
    assert batch[1] is not None and batch[1].p_value == pytest.approx(float(expected), rel=1e-12)
    assert categorical_drift_many([], []) == []


# --------------------------------------------------------------------------------------------
# Bad input raises as the scalar functions do
# --------------------------------------------------------------------------------------------


def test_bad_input_raises() -> None:
    profile = build_numeric_profile(np.arange(10.0), n_bins=2)  # 4 counters
    good = [np.array([1.0, 2, 3, 4])]
    with pytest.raises(ValueError, match="must hold 4 bins"):
        numeric_drift_many([profile], [[1, 2, 3]], [None], [None])
    with pytest.raises(ValueError, match="must hold 4 bins"):
        numeric_drift_many([profile], [np.ones((2, 2))], [None], [None])
    with pytest.raises(ValueError, match="count vectors for 1 profiles"):
        numeric_drift_many([profile], [*good, *good], [None], [None])
    with pytest.raises(ValueError, match="one value per profile"):
        numeric_drift_many([profile], good, [None, None], [None])
    for bad in ([1.0, -2, 3, 4], [1.0, math.nan, 3, 4], [1.0, math.inf, 3, 4]):
        with pytest.raises(ValueError, match="finite counts >= 0"):
            numeric_drift_many([profile], [bad], [None], [None])
    with pytest.raises(ValueError, match="eps must be > 0"):
        numeric_drift_many([profile], good, [None], [None], eps=0.0)
    with pytest.raises(ValueError, match="must be finite"):
        numeric_drift_many([profile], good, [-math.inf], [None])
    # as numeric_drift: extremes are only looked at where Wasserstein is computed
    assert numeric_drift_many([profile], [np.zeros(4)], [math.nan], [None]) == [None]
    constant = build_numeric_profile([1.0] * 5)  # std 0: no Wasserstein, extremes unused
    assert numeric_drift_many([constant], [[1, 2, 3]], [-math.inf], [math.inf])[0] == (
        numeric_drift(constant, [1, 2, 3], -math.inf, math.inf)
    )
    assert numeric_drift_many([profile], [np.zeros(4)], [-math.inf], [math.inf]) == [None]
    cat = build_categorical_profile(["a", "b", "b"])
    with pytest.raises(ValueError, match="must hold 3 bins"):
        categorical_drift_many([cat], [[1, 2]])
    with pytest.raises(ValueError, match="finite counts >= 0"):
        categorical_drift_many([cat], [[1, -1, 0]])


# --------------------------------------------------------------------------------------------
# The KS p-value against scipy's exact distribution
# --------------------------------------------------------------------------------------------

# effective sizes around every switch in ks_p_value and in scipy's kstwo (n <= 140 exact
# algorithms, Pelz-Good and 2 smirnov above), up to the thousands of a large window
GRID_N = (1, 2, 7, 30, 49, 50, 51, 64, 99, 100, 140, 141, 200, 545, 1_000, 2_500)


def _grid_d(n: int) -> Counts:
    # dense in z = sqrt(n) D where p moves (z up to 4.5, p ~ 1e-17), plus all of (0, 1) and
    # the switches at n D = 0.5 and n D² = 18
    z = np.linspace(0.01, 4.5, 120) / math.sqrt(n)
    switches = [0.5 / n, math.sqrt(18 / n), 1 - 1 / n]
    d = np.concatenate([z, np.linspace(0.0, 1.0, 41), switches, np.nextafter(switches, 0)])
    return np.unique(np.clip(d, 0.0, 1.0))


@pytest.mark.parametrize("n", GRID_N)
def test_ks_p_value_is_within_tolerance_of_kstwo(n: int) -> None:
    d = _grid_d(n)
    expected = sps.kstwo.sf(d, n)
    got = ks_p_value(d, np.full(d.shape, n))
    assert got.shape == d.shape and np.all((got >= 0) & (got <= 1))
    assert np.max(np.abs(got - expected)) < KS_P_VALUE_TOLERANCE
    if n < KS_EXACT_BELOW:
        assert got == pytest.approx(expected, rel=1e-12, abs=0.0)
    # where flags are decided (adjusted p < 0.01 over tens of features: p from 1e-4 to
    # 0.05) the error is also small relative to p: documented as below 0.5%
    deciding = (expected > 1e-4) & (expected < 0.05)
    assert np.all(np.abs(got - expected)[deciding] <= 0.005 * expected[deciding])
    # non-increasing in D, up to rounding at the switch to the far-tail formula
    assert np.all(np.diff(got) <= 1e-12)


def test_ks_p_value_exact_ends_and_shapes() -> None:
    assert ks_p_value(0.0, 500) == 1.0 and ks_p_value(1.0, 500) == 0.0
    assert ks_p_value(0.5 / 500, 500) == 1.0  # n D <= 1/2: D_n is never below that
    assert ks_p_value(1.0, 3) == 0.0 and ks_p_value(0.0, 3) == 1.0
    assert ks_p_value(0.999, 10_000) == 0.0  # far tail: underflows, as kstwo.sf's
    assert ks_p_value([[0.1, 0.2], [0.3, 0.4]], 300).shape == (2, 2)
    mixed = ks_p_value([0.3, 0.3, 0.05], [10, 300, 2_000])  # exact and fast in one call
    assert mixed == pytest.approx(
        [
            float(sps.kstwo.sf(0.3, 10)),
            float(sps.kstwo.sf(0.3, 300)),
            float(sps.kstwo.sf(0.05, 2_000)),
        ],
        abs=KS_P_VALUE_TOLERANCE,
    )


def test_scalar_ks_uses_the_same_p_value() -> None:
    rng = _rng(3)
    for _ in range(30):
        ref, cur = rng.integers(0, 300, 22), rng.integers(0, 300, 22)
        result = ks_from_counts(ref, cur)
        assert result is not None
        statistic, p_value = result
        n, m = int(ref.sum()), int(cur.sum())
        assert p_value == float(ks_p_value(statistic, round(n * m / (n + m))))

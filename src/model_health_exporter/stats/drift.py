"""Data drift of a feature from counts: reference counts against current-window counts.

Both sides are count vectors over the same bins, the bins of the feature's reference profile
(`stats.profile`). Nothing here sees raw values, so the window's memory stays fixed. Every
function returns None (never NaN) when its statistic is undefined, e.g. for an empty window.
Formulas, smoothing, defaults and tolerances: docs/statistics.md, "Data drift".

Notation: r_i, c_i the reference and current counts, n = Σ r_i, m = Σ c_i, and R_i = r_i / n,
C_i = c_i / m the proportions. Pure numpy/scipy: no I/O, nothing about Prometheus.

`numeric_drift` / `categorical_drift` take one feature; `numeric_drift_many` /
`categorical_drift_many` compute the same statistics for all features of a window at once,
10 to 25 times faster, and are what a per-version report should call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import special as spc  # type: ignore[import-untyped]  # scipy has no stubs here
from scipy import stats as sps  # (the ignore above covers the scipy package)

from model_health_exporter.stats.profile import CategoricalProfile, NumericProfile

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

DEFAULT_EPS: Final = 1e-4
"""Floor for empty-bin proportions in PSI and KL (then renormalised): see `smoothed`."""

PSI_WARNING: Final = 0.1
PSI_DRIFT: Final = 0.2

Correction = Literal["bonferroni", "bh", "none"]
DriftMethod = Literal["p_value", "psi", "js", "wasserstein", "kl"]

# Binned KS / chi-square p-values, BH-adjusted, < 0.01: calibrated at any window size and they
# find a 0.25-std shift in a 5,000-row window, which PSI >= 0.2 or JS >= 0.1 do not. With very
# large references and windows p-values flag negligible shifts; then prefer "wasserstein" or
# "js" (docs/statistics.md, "Why these defaults" and "The trade-off").
DEFAULT_DRIFT_METHOD: Final[DriftMethod] = "p_value"
DEFAULT_CORRECTION: Final[Correction] = "bh"
DEFAULT_THRESHOLDS: Final[Mapping[DriftMethod, float]] = {
    "p_value": 0.01,  # flag when the adjusted p-value < 0.01
    "psi": PSI_DRIFT,  # the statistics flag when >= threshold
    "js": 0.1,
    "wasserstein": 0.1,
    "kl": 0.3,  # KL > 0.3 is significant drift
}
"""Per-method default thresholds; `drift_flags(threshold=None)` picks the method's."""


# --------------------------------------------------------------------------------------------
# Count vectors
# --------------------------------------------------------------------------------------------


def _counts(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty vector of counts, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or (arr < 0).any():
        raise ValueError(f"{name} must hold finite counts >= 0")
    return arr


def _pair(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[FloatArray, FloatArray] | None:
    """Validated count vectors of equal length; None if either side is empty (sum 0)."""
    r = _counts(ref, "reference counts")
    c = _counts(cur, "current counts")
    if r.shape != c.shape:
        raise ValueError(f"reference and current counts differ in length: {r.size} != {c.size}")
    if r.sum() == 0 or c.sum() == 0:
        return None
    return r, c


def smoothed(counts: FloatArray, eps: float = DEFAULT_EPS) -> FloatArray:
    """Proportions with empty bins floored: p_i = max(count_i / total, eps), renormalised to
    sum 1. Only (near-)empty bins change, and the result stays a distribution, so KL >= 0."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    p = np.maximum(counts / counts.sum(), eps)
    out: FloatArray = p / p.sum()
    return out


# --------------------------------------------------------------------------------------------
# Divergences
# --------------------------------------------------------------------------------------------


def psi(ref: npt.ArrayLike, cur: npt.ArrayLike, eps: float = DEFAULT_EPS) -> float | None:
    """Population stability index Σ (C'_i - R'_i) ln(C'_i / R'_i) over smoothed proportions
    (`smoothed`). 0 identical; >= 0.1 warning, >= 0.2 drift (the usual bands)."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    r, c = smoothed(pair[0], eps), smoothed(pair[1], eps)
    return float(np.sum((c - r) * np.log(c / r)))


def kl_divergence(ref: npt.ArrayLike, cur: npt.ArrayLike, eps: float = DEFAULT_EPS) -> float | None:
    """KL(current || reference) = Σ C'_i ln(C'_i / R'_i) in nats, over smoothed proportions.

    That is KL(P || Q) = Σ P log(P / Q) with P = the current window and Q = the reference:
    how surprising the live data is under the reference. PSI = KL(C || R) + KL(R || C)."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    r, c = smoothed(pair[0], eps), smoothed(pair[1], eps)
    return float(np.sum(c * np.log(c / r)))


def js_distance(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float | None:
    """Jensen-Shannon distance in base 2, in [0, 1]: sqrt(JSD), JSD = ½ KL(R || M) +
    ½ KL(C || M) with M = ½ (R + C) and 0 log 0 = 0 (no smoothing needed: M > 0 wherever R or
    C is). Equals `scipy.spatial.distance.jensenshannon(ref, cur, base=2)`."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    r, c = pair[0] / pair[0].sum(), pair[1] / pair[1].sum()
    m = 0.5 * (r + c)

    def kl_to_m(p: FloatArray) -> float:
        nz = p > 0
        return float(np.sum(p[nz] * np.log2(p[nz] / m[nz])))

    jsd = 0.5 * kl_to_m(r) + 0.5 * kl_to_m(c)
    return math.sqrt(min(max(jsd, 0.0), 1.0))


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


KS_EXACT_BELOW: Final = 50
"""`ks_p_value` takes scipy's exact but slow `kstwo.sf` for effective sizes below this (rare:
drift needs 100 rows by default, n m / (n + m) >= 50 with a reference of 100 or more)."""

KS_P_VALUE_TOLERANCE: Final = 5e-5
"""Bound on |ks_p_value(D, n) - scipy.stats.kstwo.sf(D, n)| for D in [0, 1], integer n >= 1
(tests/unit/test_drift_batch.py checks it on a grid). Measured on D grids for n = 50 ..
100,000: at most 2.5e-5 (at n = 50, p near 0.9), 3e-6 at n = 140, 1e-7 at n = 500; 0 below
KS_EXACT_BELOW. See docs/statistics.md, "Data drift", KS."""

_FAR_TAIL: Final = 18.0  # n D² from which p < 1e-15: 1 - CDF would be rounding noise


def _pelz_good_tables() -> tuple[FloatArray, FloatArray, FloatArray]:
    """Constants of `_pelz_good_cdf`: the exponents of q, the sums' weights, and the
    coefficients of the K_j as polynomials in 1 / z."""
    # Sums over k = 1 .. 22: scipy takes ceil(16 z / pi) terms, 22 for the largest z used
    # (sqrt(18)); further terms underflow to 0. With q = exp(-pi² / 8z²) the sums run over
    # q^(m²), m = 2k - 1 odd, and q^(4k²) (scipy's q'^(k²), q' = exp(-pi² / 2z²)).
    k = np.arange(1.0, 23.0)
    m2 = (2 * k - 1) ** 2
    exponents = np.concatenate([m2, 4 * k * k])
    # the sums S0..S3 = Σ m^(2j) q^(m²) and T1, T2 = Σ k^2 q^(4k²), Σ k^4 q^(4k²)
    weights = np.zeros((6, exponents.size))
    for j in range(4):
        weights[j, : k.size] = m2**j
    weights[4, k.size :], weights[5, k.size :] = k**2, k**4
    # coefficients[sum, power of 1/z, power of n^(-1/2)]: K0 + K1/√n + K2/n + K3/n^1.5 with
    # scipy's K_j (`_kolmogn_PelzGood`) expanded, e.g. K1 = (pi²/4 S1 - z² S0) / (6 z⁴)
    pi2 = math.pi**2
    pi4, pi6 = pi2**2, pi2**3
    c = np.zeros((6, 11, 4))
    s0, s1, s2, s3, t1, t2 = range(6)
    c[s0, 1, 0] = 1.0
    c[s1, 4, 1], c[s0, 2, 1] = pi2 / 24, -1 / 6
    c[s0, 1, 2], c[s0, 3, 2] = 6 / 72, 2 / 72
    c[s1, 3, 2], c[s1, 5, 2] = 2 * pi2 / 288, -5 * pi2 / 288
    c[s2, 7, 2], c[s2, 5, 2] = pi4 / 1152, -2 * pi4 / 1152
    c[t1, 3, 2] = -pi2 / 36
    c[s0, 4, 3], c[s0, 2, 3] = -30 / 6480, -90 / 6480
    c[s1, 6, 3], c[s1, 4, 3] = 135 * pi2 / 25920, -96 * pi2 / 25920
    c[s2, 8, 3], c[s2, 6, 3] = -60 * pi4 / 103680, 212 * pi4 / 103680
    c[s3, 10, 3], c[s3, 8, 3] = 5 * pi6 / 414720, -30 * pi6 / 414720
    c[t1, 4, 3], c[t2, 6, 3] = pi2 / 72, -pi4 / 216
    return exponents, weights, c.reshape(66, 4) * math.sqrt(2 * math.pi)


_PG_EXPONENTS, _PG_WEIGHTS, _PG_COEFFICIENTS = _pelz_good_tables()
_PG_Z_POWERS = np.arange(11.0)[:, None]
_PG_N_POWERS = -np.arange(4.0)[:, None] / 2


def _pelz_good_cdf(z: FloatArray, n: FloatArray) -> FloatArray:
    """Pelz and Good's (1976) expansion P(D_n <= z / sqrt(n)) = K0 + K1 / sqrt(n) + K2 / n +
    K3 / n^1.5, as scipy's `_kolmogn_PelzGood` computes it per element in a Python loop;
    here for a vector of 0 < z <= sqrt(18) in a few matrix operations. Each K_j is a sum
    over the series S0..S3, T1, T2 times polynomials in 1 / z (`_pelz_good_tables`)."""
    q_powers = np.exp(np.multiply.outer(_PG_EXPONENTS, -(math.pi**2) / 8 / (z * z)))
    sums = _PG_WEIGHTS @ q_powers  # 6 x elements
    terms = (sums[:, None, :] * (1 / z) ** _PG_Z_POWERS).reshape(66, -1)
    out: FloatArray = np.sum((_PG_COEFFICIENTS @ n**_PG_N_POWERS) * terms, axis=0)
    return out


def ks_p_value(statistic: npt.ArrayLike, effective_n: npt.ArrayLike) -> FloatArray:
    """P(D_n >= D) under the two-sided one-sample KS distribution, elementwise: scipy's
    `kstwo.sf(D, n)` within KS_P_VALUE_TOLERANCE, for whole arrays at C speed.

    `kstwo.sf` evaluates each element in Python, 0.2 to 3 ms apiece for n in the hundreds.
    Here: exact `kstwo.sf` for n < KS_EXACT_BELOW; 1 where n D <= 0.5 and 0 where D >= 1, as
    exactly; otherwise 1 - Pelz-Good's expansion of the CDF (which `kstwo` itself uses at
    n > 140 for most p > 0.02), and where n D² >= 18 (p < 1e-15, beyond which that
    difference is rounding noise) Maag and Dicaire's tail 2 exp(-(6 n D + 1)² / 18 n)."""
    d_in, n_in = np.broadcast_arrays(
        np.asarray(statistic, dtype=np.float64), np.asarray(effective_n, dtype=np.float64)
    )
    d, n = d_in.ravel(), n_in.ravel()
    nd = n * d
    far = nd * d >= _FAR_TAIL
    # every element through both formulas (z kept where Pelz-Good is defined), then pick
    z = np.clip(np.sqrt(n) * d, 0.05, math.sqrt(_FAR_TAIL))  # below 0.05 the CDF is < 1e-200
    bulk = 1 - _pelz_good_cdf(z, n)
    tail = 2 * np.exp(-((6 * nd + 1) ** 2) / (18 * n))
    p = np.where(nd <= 0.5, 1.0, np.where(d >= 1, 0.0, np.where(far, tail, bulk)))
    exact = n < KS_EXACT_BELOW
    if exact.any():
        p[exact] = sps.kstwo.sf(d[exact], n[exact])
    out: FloatArray = np.clip(p, 0.0, 1.0).reshape(d_in.shape)
    return out


def ks_from_counts(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, float] | None:
    """Binned two-sample Kolmogorov-Smirnov test: (statistic, p-value).

    D = max_k |Σ_{i<=k} R_i - Σ_{i<=k} C_i|, the largest CDF difference at the bin edges; the
    bins must be ordered (numeric features). p = ks_p_value(D, round(n m / (n + m))), which is
    scipy.stats.kstwo.sf, the distribution `scipy.stats.ks_2samp(method="asymp")` uses for
    two-sided tests, within KS_P_VALUE_TOLERANCE.

    D never exceeds the raw-sample statistic and misses at most the largest single-bin mass, so
    the p-value is conservative (>= ks_2samp's on the raw samples, less the tolerance); D is
    equal to it when every value sits on a bin's left edge (discrete data with a bin per
    value). `numeric_drift_many` computes the same D and p."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    r, c = pair
    n, m = float(r.sum()), float(c.sum())
    d = float(np.max(np.abs(np.cumsum(r) / n - np.cumsum(c) / m)))
    d = min(d, 1.0)
    effective_n = max(1, round(n * m / (n + m)))
    return d, float(ks_p_value(d, effective_n))


CHI2_MIN_EXPECTED: Final = 5.0
"""Smallest expected count the chi-square test lets a cell have: columns too sparse for it
are pooled (`chi2_p_value`). Below about 5 the chi-square distribution overstates how rare a
large statistic is, and sparse windows were flagged as drifted far more often than alpha."""


def ks_error_bound(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float | None:
    """How far the two-sample KS statistic of the raw values can exceed the binned one,
    from the counts alone: raw >= binned always, and raw <= binned + this.

    Inside bin i, with R_i, C_i its masses and g_(i-1), g_i the CDF gaps F_R - F_C at its
    edges, F_R - F_C <= min(g_(i-1) + R_i, g_i + C_i) (F_R cannot rise more than R_i, nor F_C
    fall below its left value) and F_C - F_R <= min(C_i - g_(i-1), R_i - g_i). The largest
    of these over the bins, less the binned D, is the bound: at most the largest bin mass,
    0 when no bin holds mass on both sides with a gap that could grow inside it."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    r, c = pair[0] / pair[0].sum(), pair[1] / pair[1].sum()
    right = np.cumsum(r) - np.cumsum(c)
    return float(_ks_error_bounds(r[None], c[None], right[None])[0])


def _ks_error_bounds(r: FloatArray, c: FloatArray, right: FloatArray) -> FloatArray:
    """`ks_error_bound` per row of proportions r, c and CDF gaps at the right edges."""
    left = np.concatenate([np.zeros((right.shape[0], 1)), right[:, :-1]], axis=1)
    up = np.minimum(left + r, right + c)
    down = np.minimum(c - left, r - right)
    binned = np.abs(right).max(axis=1)
    upper = np.minimum(np.maximum(np.maximum(up, down).max(axis=1), binned), 1.0)
    out: FloatArray = np.maximum(upper - np.minimum(binned, 1.0), 0.0)
    return out


def chi2_p_value(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float | None:
    """Pearson chi-square test of homogeneity on the 2 x bins table [ref; cur], with sparse
    columns pooled so that every expected count is at least CHI2_MIN_EXPECTED.

    A column's smaller expected count is min(n, m) t / N for its total t (N = n + m), so the
    columns with t < T = CHI2_MIN_EXPECTED N / min(n, m) are pooled into one column; if that
    pool is still below T it joins the smallest of the other columns. The pooling looks at
    the column totals only, which under no drift carry no information about the test (the
    test is conditional on them), so it keeps the p-value calibrated. Then the statistic
    Σ (O - E)² / E with E the products of the margins over N, df = columns - 1, no Yates
    correction: equals `scipy.stats.chi2_contingency(pooled table, correction=False)`.
    1.0 when a single column is left (nothing to compare)."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    table = np.vstack(pair)
    table = table[:, table.sum(axis=0) > 0]
    table = pool_sparse_columns(table)
    if table.shape[1] < 2:
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    p = float(spc.chdtrc(table.shape[1] - 1, statistic))  # = chi2.sf, without its overhead
    return min(max(p, 0.0), 1.0)


def pool_sparse_columns(table: FloatArray) -> FloatArray:
    """The 2 x k table with its sparse columns pooled as `chi2_p_value` describes: columns in
    their order, the pool (if it stands alone) last."""
    totals = table.sum(axis=0)
    rows = table.sum(axis=1)
    limit = CHI2_MIN_EXPECTED * totals.sum() / rows.min()
    sparse = totals < limit
    if not sparse.any():
        return table
    pool = table[:, sparse].sum(axis=1)
    kept = table[:, ~sparse]
    if pool.sum() >= limit or kept.shape[1] == 0:
        return np.column_stack([kept, pool])
    kept = kept.copy()
    kept[:, int(np.argmin(kept.sum(axis=0)))] += pool
    return kept


# --------------------------------------------------------------------------------------------
# Wasserstein
# --------------------------------------------------------------------------------------------


def _mass_locations(
    profile: NumericProfile, current_min: float | None, current_max: float | None
) -> FloatArray:
    """Where the Wasserstein estimate puts each bin's mass (see `wasserstein_from_counts`)."""
    edges = np.asarray(profile.edges, dtype=np.float64)
    if len(profile.bin_means):
        inner = np.asarray(profile.bin_means, dtype=np.float64)
    else:
        right = np.append(edges[1:-1], profile.maximum)
        inner = (edges[:-1] + right) / 2
    lo = profile.minimum if current_min is None else min(float(current_min), profile.minimum)
    hi = profile.maximum if current_max is None else max(float(current_max), profile.maximum)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("current_min and current_max must be finite")
    under = (lo + profile.minimum) / 2
    over = (profile.maximum + hi) / 2
    out: FloatArray = np.concatenate(([under], inner, [over]))
    return out


def wasserstein_from_counts(
    profile: NumericProfile,
    cur_counts: npt.ArrayLike,
    current_min: float | None = None,
    current_max: float | None = None,
) -> float | None:
    """Wasserstein-1 distance between reference and current, divided by the reference std.

    Each bin's mass, on both sides, is put at one point x_k: an inner bin's at its reference
    mean (`profile.bin_means`; the bin's midpoint if unknown), the underflow bin's at the
    midpoint of [current_min, minimum], the overflow bin's at the midpoint of
    [maximum, current_max]; without the window's observed extremes these are the reference's
    minimum and maximum. Then W = Σ_k |F_ref(k) - F_cur(k)| (x_(k+1) - x_k), the exact W1 of
    the two discrete distributions, which is `scipy.stats.wasserstein_distance` applied to
    the bin locations weighted by the counts. It equals the W1 of the raw samples when the
    window's shape inside each inner bin is the reference's and the two CDFs do not cross
    inside a bin (the underflow and overflow bins aside). None for an empty
    window or a reference std of 0. Tolerance vs wasserstein_distance(raw samples) / std:
    docs/statistics.md.
    """
    pair = _pair(profile.counts, cur_counts)
    if pair is None or profile.std <= 0:
        return None
    r, c = pair
    x = _mass_locations(profile, current_min, current_max)
    cdf_gap = np.cumsum(r)[:-1] / r.sum() - np.cumsum(c)[:-1] / c.sum()
    return float(np.sum(np.abs(cdf_gap) * np.diff(x))) / profile.std


# --------------------------------------------------------------------------------------------
# Per-feature results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NumericDrift:
    """All drift statistics of a numeric feature's window (None when undefined).

    `p_value` is the binned KS test's; `n_current` the window's non-missing values;
    `ks_error_bound` bounds how far the raw samples' KS statistic can lie above
    `ks_statistic` (`ks_error_bound`)."""

    n_current: int
    psi: float | None
    kl_divergence: float | None
    js_distance: float | None
    ks_statistic: float | None
    p_value: float | None
    wasserstein: float | None
    ks_error_bound: float | None = None


@dataclass(frozen=True, slots=True)
class CategoricalDrift:
    """All drift statistics of a categorical feature's window (None when undefined).

    `p_value` is the chi-square test's; KS and Wasserstein do not apply (always None)."""

    n_current: int
    psi: float | None
    kl_divergence: float | None
    js_distance: float | None
    p_value: float | None

    @property
    def ks_statistic(self) -> None:
        return None

    @property
    def ks_error_bound(self) -> None:
        return None

    @property
    def wasserstein(self) -> None:
        return None


FeatureDrift = NumericDrift | CategoricalDrift


def numeric_drift(
    profile: NumericProfile,
    cur_counts: npt.ArrayLike,
    current_min: float | None = None,
    current_max: float | None = None,
    eps: float = DEFAULT_EPS,
) -> NumericDrift:
    """Every statistic of a numeric feature; `cur_counts` over `profile`'s n_bins bins,
    `current_min` / `current_max` the window's observed extremes (for Wasserstein)."""
    cur = _counts(cur_counts, "current counts")
    if cur.size != profile.n_bins:
        raise ValueError(f"current counts must hold {profile.n_bins} bins, got {cur.size}")
    ks = ks_from_counts(profile.counts, cur)
    return NumericDrift(
        n_current=int(cur.sum()),
        psi=psi(profile.counts, cur, eps),
        kl_divergence=kl_divergence(profile.counts, cur, eps),
        js_distance=js_distance(profile.counts, cur),
        ks_statistic=None if ks is None else ks[0],
        p_value=None if ks is None else ks[1],
        wasserstein=wasserstein_from_counts(profile, cur, current_min, current_max),
        ks_error_bound=ks_error_bound(profile.counts, cur),
    )


def categorical_drift(
    profile: CategoricalProfile, cur_counts: npt.ArrayLike, eps: float = DEFAULT_EPS
) -> CategoricalDrift:
    """Every statistic of a categorical feature; `cur_counts` over `profile`'s bins."""
    cur = _counts(cur_counts, "current counts")
    if cur.size != profile.n_bins:
        raise ValueError(f"current counts must hold {profile.n_bins} bins, got {cur.size}")
    return CategoricalDrift(
        n_current=int(cur.sum()),
        psi=psi(profile.counts, cur, eps),
        kl_divergence=kl_divergence(profile.counts, cur, eps),
        js_distance=js_distance(profile.counts, cur),
        p_value=chi2_p_value(profile.reference_test_counts, cur),
    )


# --------------------------------------------------------------------------------------------
# Many features at once
# --------------------------------------------------------------------------------------------
#
# The scalar functions above spend most of their time in per-call overhead (validation, many
# tiny numpy calls, scipy's per-element KS distribution). The `*_many` functions compute the
# same statistics for every feature of a window at once, over a 2 x features x width array
# (reference, current) zero-padded to the widest feature; `real` marks each feature's own
# bins, and every operation is arranged so the padding changes nothing. They agree with the
# scalar functions up to rounding (tests/unit/test_drift_batch.py).


@dataclass(frozen=True, slots=True)
class _Rows:
    """Reference and current counts of several features, zero-padded to a common width."""

    counts: FloatArray  # 2 x features x width: [0] reference, [1] current
    real: BoolArray  # features x width, True on each feature's own bins
    lengths: IntArray  # bins per feature
    totals: FloatArray  # 2 x features: n (>= 1, profiles hold a value) and m (0: empty)
    safe_totals: FloatArray  # the same with m = 0 replaced by 1: no 0 / 0 for empty windows

    @property
    def m(self) -> FloatArray:
        out: FloatArray = self.totals[1]
        return out


def _rows(
    profiles: Sequence[NumericProfile] | Sequence[CategoricalProfile],
    counts: Sequence[npt.ArrayLike],
) -> _Rows:
    if len(counts) != len(profiles):
        raise ValueError(f"got {len(counts)} count vectors for {len(profiles)} profiles")
    lengths = [profile.n_bins for profile in profiles]
    for i, (values, length) in enumerate(zip(counts, lengths, strict=True)):
        shape = values.shape if isinstance(values, np.ndarray) else np.shape(values)
        if shape != (length,):
            raise ValueError(
                f"current counts of feature {i} must hold {length} bins, got shape {shape}"
            )
    current = np.concatenate(counts, dtype=np.float64)
    if not (current.min() >= 0 and current.max() < math.inf):  # also False for NaN
        raise ValueError("current counts must hold finite counts >= 0")
    lengths_array = np.asarray(lengths)
    real = np.arange(max(lengths)) < lengths_array[:, None]
    both = np.zeros((2, *real.shape))
    # boolean-mask assignment fills row by row, left to right: the concatenation's order
    both[0][real] = np.fromiter(
        # a numeric profile's counts are an array: as Python ints, iterated at C speed
        itertools.chain.from_iterable(
            p.counts.tolist() if isinstance(p.counts, np.ndarray) else p.counts for p in profiles
        ),
        dtype=np.float64,
        count=int(lengths_array.sum()),
    )
    both[1][real] = current
    totals = both.sum(axis=2)
    safe = totals.copy()
    safe[1][safe[1] == 0] = 1.0
    return _Rows(both, real, lengths_array, totals, safe)


def _divergences(rows: _Rows, eps: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """PSI, KL(current || reference) and JS distance of every row (as `psi`, `kl_divergence`,
    `js_distance`), and the 2 x features x width proportions."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    proportions = rows.counts / rows.safe_totals[:, :, None]
    # `smoothed` over each row's real bins; padded cells become 1 on both sides, so their
    # log-ratio is 0 and they add nothing to PSI or KL
    floored = np.where(rows.real, np.maximum(proportions, eps), 0.0)
    smooth = np.where(rows.real, floored / floored.sum(axis=2, keepdims=True), 1.0)
    log_ratio = np.log(smooth[1] / smooth[0])
    psi_rows = ((smooth[1] - smooth[0]) * log_ratio).sum(axis=1)
    kl_rows = (smooth[1] * log_ratio).sum(axis=1)
    # JS: 0 log 0 = 0, so where a proportion is 0 (padding too) its ratio to M stays 1;
    # M > 0 wherever either proportion is
    mid = 0.5 * (proportions[0] + proportions[1])
    ratio = np.divide(proportions, mid, out=np.ones_like(proportions), where=proportions > 0)
    to_mid = (proportions * np.log2(ratio)).sum(axis=2)
    jsd = 0.5 * to_mid[0] + 0.5 * to_mid[1]
    return psi_rows, kl_rows, np.sqrt(np.clip(jsd, 0.0, 1.0)), proportions


def _inner_locations(profile: NumericProfile) -> Sequence[float]:
    """Where `_mass_locations` puts the inner bins' mass: bin means, else midpoints."""
    if len(profile.bin_means):
        means: list[float] = profile.bin_means.tolist()
        return means
    edges: list[float] = profile.edges.tolist()
    right = (*edges[1:-1], profile.maximum)
    return [(a + b) / 2 for a, b in zip(edges[:-1], right, strict=True)]


def _wasserstein_rows(
    profiles: Sequence[NumericProfile],
    rows: _Rows,
    cdf_gaps: FloatArray,
    current_min: Sequence[float | None],
    current_max: Sequence[float | None],
) -> FloatArray:
    """`wasserstein_from_counts` of every row; NaN where undefined (empty window, std 0)."""
    if not len(current_min) == len(current_max) == len(profiles):
        raise ValueError("current_min and current_max must hold one value per profile")
    # as `_mass_locations`: None -> the reference's extreme; NaN stays NaN (and raises)
    low = [
        p.minimum if v is None else min(float(v), p.minimum)
        for p, v in zip(profiles, current_min, strict=True)
    ]
    high = [
        p.maximum if v is None else max(float(v), p.maximum)
        for p, v in zip(profiles, current_max, strict=True)
    ]
    std = np.array([p.std for p in profiles])
    defined = (rows.m > 0) & (std > 0)
    finite = np.isfinite(low) & np.isfinite(high)
    if (defined & ~finite).any():
        raise ValueError("current_min and current_max must be finite")
    if not finite.all():  # rows whose distance is not computed: keep inf - inf out of diff
        low = [lo if math.isfinite(lo) else p.minimum for p, lo in zip(profiles, low, strict=True)]
        high = [
            hi if math.isfinite(hi) else p.maximum for p, hi in zip(profiles, high, strict=True)
        ]
    # each bin's mass location: underflow midpoint, the inner bins', overflow midpoint
    x = np.zeros(rows.real.shape)
    x[rows.real] = np.fromiter(
        itertools.chain.from_iterable(
            ((lo + p.minimum) / 2, *_inner_locations(p), (p.maximum + hi) / 2)
            for p, lo, hi in zip(profiles, low, high, strict=True)
        ),
        dtype=np.float64,
        count=int(rows.lengths.sum()),
    )
    steps = np.where(rows.real[:, 1:], np.diff(x, axis=1), 0.0)  # pairs of real bins only
    distance = (np.abs(cdf_gaps[:, :-1]) * steps).sum(axis=1) / np.where(defined, std, 1.0)
    out: FloatArray = np.where(defined, distance, np.nan)
    return out


def numeric_drift_many(
    profiles: Sequence[NumericProfile],
    counts: Sequence[npt.ArrayLike],
    current_min: Sequence[float | None],
    current_max: Sequence[float | None],
    eps: float = DEFAULT_EPS,
    *,
    only: DriftMethod | None = None,
) -> list[NumericDrift | None]:
    """`numeric_drift` of many features at once, in a few numpy operations over all of them.

    `counts[i]` holds the window's counts over `profiles[i]`'s bins, `current_min[i]` /
    `current_max[i]` the window's observed extremes (None if unknown). None where a window is
    empty; otherwise the same values as `numeric_drift(profiles[i], counts[i], ...)`, up to
    floating-point rounding. With `only`, just what that method's drift flag reads is
    computed (the rest is None): the KS statistic and p-value, the three divergences, or
    the Wasserstein distance."""
    if not profiles:
        return []
    rows = _rows(profiles, counts)
    if only is not None:
        return _numeric_statistic_many(profiles, rows, (current_min, current_max), eps, only)
    psi_rows, kl_rows, js_rows, proportions = _divergences(rows, eps)
    # as `ks_from_counts`; on padded cells the cumulative sums repeat the row's last value
    cdf = np.cumsum(rows.counts, axis=2) / rows.safe_totals[:, :, None]
    cdf_gaps = cdf[0] - cdf[1]
    statistic = np.minimum(np.abs(cdf_gaps).max(axis=1), 1.0)
    bound_rows = _ks_error_bounds(proportions[0], proportions[1], cdf_gaps)
    n, m = rows.totals
    effective_n = np.maximum(1.0, np.round(n * m / (n + rows.safe_totals[1])))
    p_rows = ks_p_value(statistic, effective_n)
    w_rows = _wasserstein_rows(profiles, rows, cdf_gaps, current_min, current_max)
    columns = (psi_rows, kl_rows, js_rows, statistic, p_rows, w_rows, bound_rows)
    return [
        None
        if m == 0
        else NumericDrift(int(m), psi_, kl, js, d, p, None if math.isnan(w) else w, bound)
        for m, psi_, kl, js, d, p, w, bound in zip(
            rows.m.tolist(), *(column.tolist() for column in columns), strict=True
        )
    ]


def _numeric_statistic_many(
    profiles: Sequence[NumericProfile],
    rows: _Rows,
    extremes: tuple[Sequence[float | None], Sequence[float | None]],
    eps: float,
    method: DriftMethod,
) -> list[NumericDrift | None]:
    """`numeric_drift_many` reduced to what `method`'s flag reads (`extremes`: the
    windows' observed minima and maxima)."""
    m_rows = rows.m.tolist()
    nones: list[float | None] = [None] * len(m_rows)
    psi_rows = kl_rows = js_rows = d_rows = p_rows = w_rows = nones
    if method in ("psi", "kl", "js"):
        psi, kl, js, _ = _divergences(rows, eps)
        psi_rows, kl_rows, js_rows = psi.tolist(), kl.tolist(), js.tolist()
    else:
        cdf = np.cumsum(rows.counts, axis=2) / rows.safe_totals[:, :, None]
        cdf_gaps = cdf[0] - cdf[1]
        if method == "p_value":
            statistic = np.minimum(np.abs(cdf_gaps).max(axis=1), 1.0)
            n, m = rows.totals
            effective_n = np.maximum(1.0, np.round(n * m / (n + rows.safe_totals[1])))
            d_rows = statistic.tolist()
            p_rows = ks_p_value(statistic, effective_n).tolist()
        else:
            w = _wasserstein_rows(profiles, rows, cdf_gaps, *extremes)
            w_rows = [None if math.isnan(x) else x for x in w.tolist()]
    return [
        None if m == 0 else NumericDrift(int(m), psi_, kl_, js_, d, p, w_)
        for m, psi_, kl_, js_, d, p, w_ in zip(
            m_rows, psi_rows, kl_rows, js_rows, d_rows, p_rows, w_rows, strict=True
        )
    ]


def _chi2_p_value_rows(rows: _Rows) -> FloatArray:
    """`chi2_p_value` of every row: columns empty on both sides (and padding) are dropped,
    sparse ones pooled (`pool_sparse_columns`), the pool in an extra last column."""
    counts = rows.counts
    column = counts[0] + counts[1]
    n, m = rows.safe_totals
    limit = CHI2_MIN_EXPECTED * (n + m) / np.minimum(n, m)
    sparse = (column > 0) & (column < limit[:, None])
    kept = (column > 0) & ~sparse
    pool = np.where(sparse, counts, 0.0).sum(axis=2)  # 2 x features
    pool_total = pool.sum(axis=0)
    alone = (pool_total >= limit) | ~kept.any(axis=1)
    table = np.where(kept, counts, 0.0)
    # a pool too small to stand alone joins the row's smallest kept column
    joins = np.flatnonzero(~alone & (pool_total > 0))
    host = np.argmin(np.where(kept, column, np.inf), axis=1)
    table[:, joins, host[joins]] += pool[:, joins]
    table = np.concatenate([table, np.where(alone, pool, 0.0)[:, :, None]], axis=2)
    pooled_column = table[0] + table[1]
    used = pooled_column > 0
    # E = margin x column / total; safe totals: an empty window divides without warnings
    expected = rows.safe_totals[:, :, None] * (
        pooled_column / rows.safe_totals.sum(axis=0)[:, None]
    )
    cells = np.divide((table - expected) ** 2, expected, out=np.zeros_like(expected), where=used)
    statistic = cells.sum(axis=(0, 2))
    df = used.sum(axis=1) - 1.0
    p = np.where(df >= 1, spc.chdtrc(np.maximum(df, 1.0), statistic), 1.0)
    out: FloatArray = np.clip(p, 0.0, 1.0)
    return out


def _with_test_counts(rows: _Rows, profiles: Sequence[CategoricalProfile]) -> _Rows:
    """`rows` with each profile's `reference_test_counts` as the reference side."""
    if not any(profile.test_counts for profile in profiles):
        return rows
    both = rows.counts.copy()
    both[0][rows.real] = np.fromiter(
        itertools.chain.from_iterable(p.reference_test_counts for p in profiles),
        dtype=np.float64,
        count=int(rows.lengths.sum()),
    )
    totals = both.sum(axis=2)
    safe = totals.copy()
    safe[1][safe[1] == 0] = 1.0
    return _Rows(both, rows.real, rows.lengths, totals, safe)


def categorical_drift_many(
    profiles: Sequence[CategoricalProfile],
    counts: Sequence[npt.ArrayLike],
    eps: float = DEFAULT_EPS,
    *,
    only: DriftMethod | None = None,
) -> list[CategoricalDrift | None]:
    """`categorical_drift` of many features at once; None where a window is empty, otherwise
    the same values as `categorical_drift(profiles[i], counts[i], eps)` up to rounding. With
    `only`, just what that method's drift flag reads is computed (the rest is None): the
    chi-squared p-value or the three divergences (Wasserstein: nothing, it is undefined)."""
    if not profiles:
        return []
    rows = _rows(profiles, counts)
    nones: list[float | None] = [None] * len(profiles)
    psi_rows = kl_rows = js_rows = p_rows = nones
    if only is None or only in ("psi", "kl", "js"):
        psi, kl, js, _ = _divergences(rows, eps)
        psi_rows, kl_rows, js_rows = psi.tolist(), kl.tolist(), js.tolist()
    if only is None or only == "p_value":
        p_rows = _chi2_p_value_rows(_with_test_counts(rows, profiles)).tolist()
    return [
        None if m == 0 else CategoricalDrift(int(m), psi_, kl_, js_, p)
        for m, psi_, kl_, js_, p in zip(
            rows.m.tolist(), psi_rows, kl_rows, js_rows, p_rows, strict=True
        )
    ]


# --------------------------------------------------------------------------------------------
# Detection across features
# --------------------------------------------------------------------------------------------


def adjust_p_values(
    p_values: Sequence[float], method: Correction = DEFAULT_CORRECTION
) -> list[float]:
    """p-values adjusted for testing len(p_values) features at once, in the input order.

    "bonferroni": min(1, m p). "bh" (Benjamini-Hochberg): the k-th smallest becomes
    min over j >= k of m p_(j) / j, capped at 1 (as `scipy.stats.false_discovery_control`).
    "none": unchanged. Flag where adjusted p < alpha: Bonferroni bounds the chance of any false
    flag by alpha, BH the expected share of false flags among flagged features (and also the
    chance of any false flag when nothing drifts)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p_values must be a list of numbers in [0, 1]")
    m = p.size
    if m == 0:
        return []
    if method == "none":
        return [float(x) for x in p]
    if method == "bonferroni":
        return [float(x) for x in np.minimum(p * m, 1.0)]
    if method == "bh":
        order = np.argsort(p, kind="stable")
        scaled = p[order] * m / np.arange(1, m + 1)
        step_up = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty(m, dtype=np.float64)
        out[order] = np.minimum(step_up, 1.0)
        return [float(x) for x in out]
    raise ValueError(f"correction must be one of {get_args(Correction)}, got {method!r}")


def _statistic(drift: FeatureDrift, method: DriftMethod) -> float | None:
    if method == "p_value":
        return drift.p_value
    if method == "psi":
        return drift.psi
    if method == "js":
        return drift.js_distance
    if method == "kl":
        return drift.kl_divergence
    return drift.wasserstein


def drift_flags(
    values_by_feature: Mapping[str, FeatureDrift],
    method: DriftMethod = DEFAULT_DRIFT_METHOD,
    threshold: float | None = None,
    correction: Correction = DEFAULT_CORRECTION,
) -> dict[str, bool]:
    """Drift flag per feature whose statistic for `method` is defined.

    "p_value": flag when the p-value, adjusted with `correction` over the features that have
    one, is < threshold. "psi", "js", "wasserstein", "kl": flag when the statistic >= threshold
    (`correction` does not apply). `threshold=None` takes DEFAULT_THRESHOLDS[method]. Features
    whose statistic is None (empty window; Wasserstein of a categorical feature) get no flag,
    so `drift_share` counts only the features that were evaluated."""
    if method not in DEFAULT_THRESHOLDS:
        raise ValueError(f"method must be one of {get_args(DriftMethod)}, got {method!r}")
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    if not math.isfinite(limit) or limit < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    defined = {
        name: value
        for name, drift in values_by_feature.items()
        if (value := _statistic(drift, method)) is not None
    }
    if method != "p_value":
        return {name: value >= limit for name, value in defined.items()}
    adjusted = adjust_p_values(list(defined.values()), correction)
    return {name: p < limit for name, p in zip(defined, adjusted, strict=True)}


def drift_share(flags: Mapping[str, bool]) -> float | None:
    """Share of flagged features among those evaluated; None when none was."""
    return None if not flags else sum(flags.values()) / len(flags)

"""Data drift of a feature from counts: reference counts against current-window counts.

Both sides are count vectors over the same bins, the bins of the feature's reference profile
(`stats.profile`). Nothing here sees raw values, so the window's memory stays fixed. Every
function returns None (never NaN) when its statistic is undefined, e.g. for an empty window.
Formulas, smoothing, defaults and tolerances: docs/statistics.md, "Data drift".

Notation: r_i, c_i the reference and current counts, n = Σ r_i, m = Σ c_i, and R_i = r_i / n,
C_i = c_i / m the proportions. Pure numpy/scipy: no I/O, nothing about Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import stats as sps  # type: ignore[import-untyped]  # scipy has no stubs here

from model_health_exporter.stats.profile import CategoricalProfile, NumericProfile

FloatArray = npt.NDArray[np.float64]

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
    "kl": 0.3,  # seeds/001: KL > 0.3 is significant drift
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

    The seeds' KL(P || Q) = Σ P log(P / Q) with P = the current window and Q = the reference:
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


def ks_from_counts(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, float] | None:
    """Binned two-sample Kolmogorov-Smirnov test: (statistic, p-value).

    D = max_k |Σ_{i<=k} R_i - Σ_{i<=k} C_i|, the largest CDF difference at the bin edges; the
    bins must be ordered (numeric features). p = scipy.stats.kstwo.sf(D, round(n m / (n + m))),
    the distribution `scipy.stats.ks_2samp(method="asymp")` uses for two-sided tests.

    D never exceeds the raw-sample statistic and misses at most the largest single-bin mass, so
    the p-value is conservative (>= ks_2samp's on the raw samples); both are equal when every
    value sits on a bin's left edge (discrete data with a bin per value)."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    r, c = pair
    n, m = float(r.sum()), float(c.sum())
    d = float(np.max(np.abs(np.cumsum(r) / n - np.cumsum(c) / m)))
    d = min(d, 1.0)
    effective_n = max(1, round(n * m / (n + m)))
    p = float(sps.kstwo.sf(d, effective_n))
    return d, min(max(p, 0.0), 1.0)


def chi2_p_value(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float | None:
    """Pearson chi-square test of homogeneity on the 2 x bins table [ref; cur].

    Columns empty on both sides are dropped; statistic Σ (O - E)² / E with E the products of
    the margins over the total, df = (columns - 1), no Yates continuity correction (equals
    `scipy.stats.chi2_contingency(table, correction=False)`). 1.0 when a single column is
    left (both sides all in one bin)."""
    pair = _pair(ref, cur)
    if pair is None:
        return None
    table = np.vstack(pair)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    p = float(sps.chi2.sf(statistic, table.shape[1] - 1))
    return min(max(p, 0.0), 1.0)


# --------------------------------------------------------------------------------------------
# Wasserstein
# --------------------------------------------------------------------------------------------


def _mass_locations(
    profile: NumericProfile, current_min: float | None, current_max: float | None
) -> FloatArray:
    """Where the Wasserstein estimate puts each bin's mass (see `wasserstein_from_counts`)."""
    edges = np.asarray(profile.edges, dtype=np.float64)
    if profile.bin_means:
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

    `p_value` is the binned KS test's; `n_current` the window's non-missing values."""

    n_current: int
    psi: float | None
    kl_divergence: float | None
    js_distance: float | None
    ks_statistic: float | None
    p_value: float | None
    wasserstein: float | None


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
        p_value=chi2_p_value(profile.counts, cur),
    )


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

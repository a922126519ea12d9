"""Trend of a quality metric across model versions (by generated_at)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

SECONDS_PER_DAY: Final = 86_400.0


def slope_per_day(
    times_seconds: Sequence[float], values: Sequence[float], *, min_points: int = 2
) -> float | None:
    """Least-squares slope of `values` against `times_seconds` (each version's generated_at,
    Unix seconds), in value units per day:

        slope = 86400 * sum (t_i - mean t)(v_i - mean v) / sum (t_i - mean t)²

    (scipy.stats.linregress's slope, times centred first so epoch-sized times lose no
    precision). None with fewer than `min_points` points or fewer than 2 distinct times
    (min_points = 10 gives a reliable trend).
    """
    t = np.asarray(times_seconds, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or t.shape != v.shape:
        raise ValueError("times_seconds and values must be vectors of the same length")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
        raise ValueError("times_seconds and values must be finite")
    if t.size < max(min_points, 2) or np.unique(t).size < 2:
        return None
    dt = t - t.mean()
    slope = float(dt @ (v - v.mean()) / (dt @ dt)) * SECONDS_PER_DAY
    return slope if math.isfinite(slope) else None

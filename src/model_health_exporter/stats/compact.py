"""Counts that will not change again, held in the narrowest integer type that fits.

A window keeps about 60 closed buckets per version, mostly small counts in int64 arrays;
unsigned 8-, 16- or 32-bit arrays hold the same values in an eighth to a half of the
memory. Arithmetic with them goes through int64 (`copy` methods give int64 arrays)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_TYPES = (np.uint8, np.uint16, np.uint32)


def narrowest(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`counts` (non-negative) in the narrowest unsigned type of at most 32 bits that
    holds them; unchanged when none does (or a count is negative). Typed as int64 for
    its readers: every value is the same, and numpy promotes it to int64 in any
    arithmetic with int64 (uint64, which would promote to float64, is never used)."""
    if counts.size == 0:
        return counts
    low, high = int(counts.min()), int(counts.max())
    if low < 0:
        return counts
    for kind in _TYPES:
        if high <= np.iinfo(kind).max:
            return counts.astype(kind)
    return counts

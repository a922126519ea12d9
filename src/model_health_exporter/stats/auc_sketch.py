"""Per-class score counts for ROC AUC in bounded memory, exact up to a stated bound.

Each class k keeps (positives, negatives) per cell of the score's logit,
logit(p) = ln p - ln(1 - p), cut into cells of width 2^-level (clipped to ±LOGIT_LIMIT).
Cells nest: a cell at level l is the union of two at level l + 1, so sketches of different
buckets merge exactly after bringing them to the coarser level. A sketch starts at
MAX_LEVEL (cells of 6e-8 in logit: distinct scores practically never share one) and halves
its resolution only when a class holds more than `max_cells` occupied cells, so memory is
at most classes x max_cells cells, whatever the traffic, and resolution goes where the
scores are: a near-constant model keeps fine cells, a confident one is not crowded into
the outer bins of a fixed grid.

Pairs in different cells are ordered as their raw scores are (the logit is monotone, and
so is its floating-point evaluation); a pair in one cell counts 1/2 where the raw scores
give 0, 1/2 or 1. So |AUC_k - exact| <= 1/2 sum_cells pos neg / (P N), `error_bound`.
Pure numpy: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt

from model_health_exporter.stats.compact import narrowest

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

LOGIT_LIMIT: Final = 40.0
"""Logits are clipped to ±40 (p within 4e-18 of 0 or 1 share the outermost cells)."""
MAX_LEVEL: Final = 24
"""Finest cells: 2^-24 in logit. Cell keys stay below 2^32 (80 x 2^24 < 2^32)."""
DEFAULT_MAX_CELLS: Final = 512
"""Occupied cells per class before the resolution halves; 24 bytes each."""
_CLASS_SHIFT: Final = 32


def _keys(scores: FloatArray, level: int) -> IntArray:
    """Cell key of each score at `level`: floor(logit * 2^level) + LIMIT * 2^level >= 0."""
    with np.errstate(divide="ignore"):
        logit = np.log(scores) - np.log1p(-scores)
    scale = float(2**level)
    clipped = np.clip(logit, -LOGIT_LIMIT, LOGIT_LIMIT)
    keys: IntArray = (np.floor(clipped * scale) + LOGIT_LIMIT * scale).astype(np.int64)
    return keys


class AucSketch:
    """Sorted occupied cells of all classes: code = class << 32 | key, with positive and
    negative counts per cell."""

    __slots__ = ("codes", "level", "max_cells", "n_classes", "neg", "pos")

    def __init__(
        self,
        n_classes: int,
        max_cells: int = DEFAULT_MAX_CELLS,
        *,
        level: int = MAX_LEVEL,
        codes: IntArray | None = None,
        pos: IntArray | None = None,
        neg: IntArray | None = None,
    ) -> None:
        if n_classes < 2 or max_cells < 2 * LOGIT_LIMIT + 1 or not 0 <= level <= MAX_LEVEL:
            raise ValueError(
                f"need n_classes >= 2, max_cells >= {2 * LOGIT_LIMIT + 1:.0f} and a level in "
                f"0..{MAX_LEVEL}, got {n_classes}, {max_cells}, {level}"
            )
        self.n_classes = n_classes
        self.max_cells = max_cells
        self.level = level
        empty = np.zeros(0, dtype=np.int64)
        self.codes: IntArray = empty if codes is None else codes
        self.pos: IntArray = empty.copy() if pos is None else pos
        self.neg: IntArray = empty.copy() if neg is None else neg
        if not self.codes.shape == self.pos.shape == self.neg.shape or self.codes.ndim != 1:
            raise ValueError("codes, pos and neg must be vectors of one length")
        if self.codes.size and (
            np.any(np.diff(self.codes) <= 0)
            or self.codes[0] < 0
            or (self.codes[-1] >> _CLASS_SHIFT) >= n_classes
            or self.pos.min() < 0
            or self.neg.min() < 0
        ):
            raise ValueError("codes must increase strictly within the classes; counts >= 0")

    def add(self, scores: FloatArray, actual: IntArray) -> None:
        """Count n records: `scores` n x K probabilities in [0, 1], `actual` class indices."""
        k = self.n_classes
        scored = scores.any(axis=0)  # NaN counts as scored: it goes through the logit
        if scored.all():
            codes = (np.arange(k, dtype=np.int64) << _CLASS_SHIFT) | _keys(scores, self.level)
            is_pos = actual[:, None] == np.arange(k)[None, :]
            self._absorb(codes.ravel(), is_pos.ravel().astype(np.int64), (~is_pos).ravel())
            return
        # Classes scored 0 in every row (a window pads its rows with the classes it may
        # still learn) put all their records in one cell, the lowest (key 0 at every
        # level): counted per class, without a logit per score.
        classes = np.flatnonzero(scored)
        unscored = np.flatnonzero(~scored)
        codes = (classes << _CLASS_SHIFT) | _keys(scores[:, classes], self.level)
        is_pos = actual[:, None] == classes[None, :]
        positives = np.bincount(actual, minlength=k)[unscored]
        self._absorb(
            np.concatenate([codes.ravel(), unscored << _CLASS_SHIFT]),
            np.concatenate([is_pos.ravel().astype(np.int64), positives]),
            np.concatenate([(~is_pos).ravel().astype(np.int64), actual.size - positives]),
        )

    def add_counts(self, scores: FloatArray, pos: IntArray, neg: IntArray) -> None:
        """Add K x B counts of positives and negatives whose class-k score is `scores[b]`."""
        k = self.n_classes
        codes = (np.arange(k, dtype=np.int64)[:, None] << _CLASS_SHIFT) | _keys(scores, self.level)[
            None, :
        ]
        self._absorb(codes.ravel(), pos.ravel(), neg.ravel())

    def merge(self, other: AucSketch) -> Self:
        """Add `other` (same classes) into this sketch; returns self."""
        return self.merge_many([other])

    def merge_many(self, others: Sequence[AucSketch]) -> Self:
        """Add every sketch of `others` (same classes) into this one in one pass."""
        if not others:
            return self
        if any(other.n_classes != self.n_classes for other in others):
            raise ValueError(f"cannot merge sketches of other class counts into {self.n_classes}")
        level = min(self.level, *(other.level for other in others))
        if level < self.level:
            self._coarsen(level)
        self._absorb(
            np.concatenate([_coarser(o.codes, o.level - level) for o in others]),
            np.concatenate([o.pos for o in others]),
            np.concatenate([o.neg for o in others]),
        )
        return self

    def copy(self) -> AucSketch:
        """An independent copy, with int64 counts whatever `compact` did."""
        out = AucSketch.__new__(AucSketch)  # valid already: no checks on the hot path
        out.n_classes, out.max_cells, out.level = self.n_classes, self.max_cells, self.level
        out.codes = self.codes.copy()
        out.pos, out.neg = self.pos.astype(np.int64), self.neg.astype(np.int64)
        return out

    def compact(self) -> None:
        """Hold counts that will not change again in less memory (merging copies them)."""
        self.pos, self.neg = narrowest(self.pos), narrowest(self.neg)

    def _absorb(self, codes: IntArray, pos: npt.ArrayLike, neg: npt.ArrayLike) -> None:
        all_codes = np.concatenate([self.codes, codes])
        # both parts are often sorted already: a stable sort finds the runs and merges them
        order = np.argsort(all_codes, kind="stable")
        self._set_grouped(
            all_codes[order],
            np.concatenate([self.pos, np.asarray(pos, dtype=np.int64)])[order],
            np.concatenate([self.neg, np.asarray(neg, dtype=np.int64)])[order],
        )
        while self.level > 0 and self._most_cells() > self.max_cells:
            self._coarsen(self.level - 1)

    def _set_grouped(self, codes: IntArray, pos: IntArray, neg: IntArray) -> None:
        """Take sorted `codes` (repeats allowed) with their counts, summing repeats."""
        if not codes.size:
            self.codes, self.pos, self.neg = codes, pos, neg
            return
        first = np.empty(codes.size, dtype=np.bool_)
        first[0] = True
        np.not_equal(codes[1:], codes[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        self.codes = codes[starts]
        self.pos = np.add.reduceat(pos, starts)
        self.neg = np.add.reduceat(neg, starts)

    def _most_cells(self) -> int:
        if self.codes.size <= self.max_cells:  # no class can hold more than all cells
            return int(self.codes.size)
        return int(np.bincount(self.codes >> _CLASS_SHIFT).max())

    def _coarsen(self, level: int) -> None:
        # coarser keys keep the order: the codes stay sorted, equal ones now adjacent
        codes = _coarser(self.codes, self.level - level)
        self.level = level
        self._set_grouped(codes, self.pos, self.neg)

    def per_class(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(AUC, error bound, positive count) per class; NaN where undefined."""
        k = self.n_classes
        classes = self.codes >> _CLASS_SHIFT
        pos = self.pos.astype(np.float64)
        neg = self.neg.astype(np.float64)
        n_pos: FloatArray = np.bincount(classes, weights=pos, minlength=k).astype(np.float64)
        n_neg: FloatArray = np.bincount(classes, weights=neg, minlength=k).astype(np.float64)
        # negatives in lower cells of the same class, plus half those in the cell: the
        # running sum over all cells (in class order) less the classes before
        half_ties = 0.5 * neg
        below = np.cumsum(neg) - half_ties - (np.cumsum(n_neg) - n_neg)[classes]
        score = np.bincount(classes, weights=pos * below, minlength=k)  # wins + ties / 2
        ties_half = np.bincount(classes, weights=pos * half_ties, minlength=k)
        pairs = n_pos * n_neg
        with np.errstate(divide="ignore", invalid="ignore"):
            auc: FloatArray = np.where(pairs > 0, score / pairs, np.nan)
            bound: FloatArray = np.where(pairs > 0, ties_half / pairs, np.nan)
        return auc, bound, n_pos

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_cells": self.max_cells,
            "level": self.level,
            "codes": self.codes.tolist(),
            "pos": self.pos.tolist(),
            "neg": self.neg.tolist(),
        }

    @classmethod
    def from_dict(cls, n_classes: int, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; raises ValueError on malformed data."""
        try:
            codes, pos, neg = (
                np.asarray(data[key], dtype=np.int64).reshape(-1) for key in ("codes", "pos", "neg")
            )
            return cls(
                n_classes,
                int(data["max_cells"]),
                level=int(data["level"]),
                codes=codes,
                pos=pos,
                neg=neg,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"ROC AUC sketch: missing or malformed {exc}") from None


def _coarser(codes: IntArray, steps: int) -> IntArray:
    """Codes `steps` levels coarser: the key halves per level, the class stays."""
    if steps == 0:
        return codes
    classes = codes >> _CLASS_SHIFT
    keys = codes & ((1 << _CLASS_SHIFT) - 1)
    out: IntArray = (classes << _CLASS_SHIFT) | (keys >> steps)
    return out

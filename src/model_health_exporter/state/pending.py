"""Predictions waiting for their feedback, in a few numpy arrays rather than an object
per prediction: when each came, what it predicted (a class index, or a regression
output: `predicted` holds classes as int, outputs as float) and its probabilities as a
row over the window's class indices (NaN: none).

Per waiting prediction that is its id (kept as given), one dict entry and
8 x (2 + classes seen) bytes of arrays, instead of a struct, a dict of floats and their
float objects: a fifth of the memory, and nothing that pins the allocator's pools after
a backlog (a few hundred small objects per prediction, each freed at a different time).

A ring in arrival order: beyond `capacity` the oldest makes room, as in an ordered dict;
slots whose prediction was joined stay in the ring until it is compacted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

_SLOT_INTS: list[int] = list(range(1024))


def _slot_int(slot: int) -> int:
    """`slot` as an int object shared by every store: a dict value of its own would be 28
    bytes more per waiting prediction (CPython shares only the ints up to 256)."""
    ints = _SLOT_INTS
    if slot >= len(ints):
        ints.extend(range(len(ints), 2 * slot + 1))
    return ints[slot]


class PendingPredictions:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # Slots: a third more than capacity, so that the joined slots a compaction drops
        # are at least a quarter of them (compactions cost O(slots), amortised O(1)).
        self._max_slots = capacity + max(1, capacity // 3)
        self._slot_of: dict[str, int] = {}
        self._keys: list[str | None] = []  # per slot, in ring order from _head; None: gone
        self._head = 0
        self._size = 0  # slots in the ring from _head on, waiting or gone
        self._at = np.empty(0, np.float64)
        self._predicted = np.empty(0, np.float64)
        self._is_class = np.empty(0, np.bool_)
        self._proba = np.empty((0, 0), np.float64)

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, key: str) -> bool:
        return key in self._slot_of

    @property
    def width(self) -> int:
        """Class indices a probability row holds."""
        return int(self._proba.shape[1])

    # ---- adding ---------------------------------------------------------------------------

    def add(
        self,
        keys: Sequence[str],
        at: float,
        predicted: Sequence[int | float],
        rows: Sequence[Sequence[float] | None],
    ) -> int:
        """Predictions in arrival order, all at `at`, with their probability rows by
        class index (None: no probabilities; a shorter row has 0 for the classes after
        it). A key already waiting is replaced and moves to the end. Returns how many of
        the oldest were pushed out beyond capacity."""
        if len(keys) > self.capacity:  # so that no slot is taken twice in one pass
            cut = len(keys) - self.capacity
            return self.add(keys[:cut], at, predicted[:cut], rows[:cut]) + self.add(
                keys[cut:], at, predicted[cut:], rows[cut:]
            )
        width = max((len(r) for r in rows if r is not None), default=0)
        if width > self.width:
            self._widen(width)
        pushed_out = 0
        slots: list[int] = []
        done = 0  # keys before this one have their values in the arrays
        # The ring's state in locals: this loop runs once per prediction.
        slot_of, ring, capacity = self._slot_of, self._keys, self.capacity
        n_slots, head, size = len(ring), self._head, self._size
        for i, key in enumerate(keys):
            old = slot_of.pop(key, None)
            if old is not None:
                ring[old] = None
            if len(slot_of) >= capacity:  # the oldest waiting (and joined before it) go
                while size:
                    gone = ring[head]
                    ring[head] = None
                    head = head + 1 if head + 1 < n_slots else 0
                    size -= 1
                    if gone is not None:
                        del slot_of[gone]
                        pushed_out += 1
                        break
            if size >= n_slots:
                # No free slot: grow, or drop the joined ones (at least a quarter of the
                # ring, which is a third larger than capacity). Slots move: the values of
                # those taken so far go in first.
                self._head, self._size = head, size
                self._fill(slots, at, predicted[done:i], rows[done:i])
                slots, done = [], i
                # by half: the arrays take 41+ bytes a slot; doubling left up to half unused
                self._relayout(min(self._max_slots, max(64, n_slots + n_slots // 2)))
                slot_of, ring = self._slot_of, self._keys
                n_slots, head, size = len(ring), self._head, self._size
            slot = head + size
            if slot >= n_slots:
                slot -= n_slots
            ring[slot] = key
            slot_of[key] = _slot_int(slot)
            size += 1
            slots.append(slot)
        self._head, self._size = head, size
        self._fill(slots, at, predicted[done:], rows[done:])
        return pushed_out

    def _fill(
        self,
        slots: list[int],
        at: float,
        predicted: Sequence[int | float],
        rows: Sequence[Sequence[float] | None],
    ) -> None:
        if not slots:
            return
        index = np.asarray(slots, np.intp)
        self._at[index] = at
        self._predicted[index] = predicted
        self._is_class[index] = [type(p) is int for p in predicted]
        width = self.width
        if None not in rows and {len(r) for r in rows if r is not None} == {width}:
            self._proba[index] = rows  # the usual case: every row over the same classes
            return
        block = np.zeros((len(rows), width))
        for i, row in enumerate(rows):
            if row is None:
                block[i] = np.nan
            elif row:
                block[i, : len(row)] = row
        self._proba[index] = block

    def _push_out_oldest(self) -> int:
        """Let the oldest waiting prediction go (and the joined slots before it); 1."""
        while self._size:
            key = self._keys[self._head]
            self._keys[self._head] = None
            self._head = (self._head + 1) % len(self._keys)
            self._size -= 1
            if key is not None:
                del self._slot_of[key]
                return 1
        return 0

    def _relayout(self, size: int) -> None:
        """Live slots in ring order at 0.., in arrays of `size` slots."""
        order = [self._slot(i) for i in range(self._size)]
        live = [s for s in order if self._keys[s] is not None]
        index = np.asarray(live, np.intp)
        at = np.empty(size, np.float64)
        predicted = np.empty(size, np.float64)
        is_class = np.empty(size, np.bool_)
        proba = np.empty((size, self.width), np.float64)
        at[: len(live)] = self._at[index]
        predicted[: len(live)] = self._predicted[index]
        is_class[: len(live)] = self._is_class[index]
        proba[: len(live)] = self._proba[index]
        keys: list[str | None] = [self._keys[s] for s in live]
        keys += [None] * (size - len(keys))
        self._at, self._predicted, self._proba, self._keys = at, predicted, proba, keys
        self._is_class = is_class
        self._slot_of = {
            key: _slot_int(i) for i, key in enumerate(keys[: len(live)]) if key is not None
        }
        self._head, self._size = 0, len(live)

    def _slot(self, i: int) -> int:
        return (self._head + i) % len(self._keys)

    def _widen(self, width: int) -> None:
        proba = np.full((len(self._keys), width), np.nan)
        old = self.width
        proba[:, :old] = self._proba
        proba[:, old:] = 0.0  # a row given over fewer classes has 0 for the rest
        nan_rows = np.isnan(self._proba).all(axis=1) if old else np.ones(len(self._keys), bool)
        proba[nan_rows] = np.nan
        self._proba = proba

    # ---- taking out -----------------------------------------------------------------------

    def pop(self, key: str) -> int | None:
        """The slot of `key`, no longer waiting (its arrays stay readable until the next
        `add`), or None."""
        slot = self._slot_of.pop(key, None)
        if slot is not None:
            self._keys[slot] = None
        return slot

    def predicted(self, slots: Sequence[int]) -> list[int | float]:
        """What the predictions of `slots` predicted: class indices as int."""
        index = np.asarray(slots, np.intp)
        values: list[float] = self._predicted[index].tolist()
        is_class: list[bool] = self._is_class[index].tolist()
        return [int(v) if c else v for v, c in zip(values, is_class, strict=True)]

    def rows(self, slots: Sequence[int], width: int) -> np.ndarray:
        """Probability rows of `slots`, `width` wide (0 beyond the classes they have)."""
        rows = np.zeros((len(slots), width))
        have = min(width, self.width)
        rows[:, :have] = self._proba[np.asarray(slots, np.intp), :have]
        if self.width == 0:
            rows[:] = np.nan
        else:
            rows[np.isnan(rows[:, :have]).all(axis=1)] = np.nan
        return rows

    def expire(self, oldest: float) -> int:
        """Let predictions that came before `oldest` go; returns how many."""
        gone = 0
        while self._size:
            key = self._keys[self._head]
            if key is not None:
                if self._at[self._head] >= oldest:
                    break
                del self._slot_of[key]
                self._keys[self._head] = None
                gone += 1
            self._head = (self._head + 1) % len(self._keys)
            self._size -= 1
        return gone

    # ---- checkpoint -----------------------------------------------------------------------

    def items(self) -> Iterator[tuple[str, float, int | float, list[float] | None]]:
        """(key, at, predicted, probability row or None), oldest first."""
        for i in range(self._size):
            slot = self._slot(i)
            key = self._keys[slot]
            if key is None:
                continue
            row = self._proba[slot]
            none = self.width == 0 or bool(np.isnan(row).all())
            value = float(self._predicted[slot])
            predicted = int(value) if self._is_class[slot] else value
            if none:
                yield key, float(self._at[slot]), predicted, None
                continue
            values: list[float] = row.tolist()
            while values and values[-1] == 0.0:  # however wide the arrays have grown
                values.pop()
            yield key, float(self._at[slot]), predicted, values

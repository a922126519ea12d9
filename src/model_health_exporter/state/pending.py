"""Predictions waiting for their feedback, in a few numpy arrays rather than an object
per prediction: when each came, what it predicted (a class index, or a regression
output: `predicted` holds classes as int, outputs as float) and its probabilities as a
row over the window's class indices (NaN: none).

The ids are not Python strings either: each slot keeps the id's UTF-8 bytes in a
fixed-width byte array (ids longer than `_MAX_INLINE_ID` bytes, rare, in a small dict)
and its 64-bit hash; an index of the waiting slots sorted by hash finds an id by binary
search. A join is exact: a slot whose hash matches is taken only if its bytes and length
equal the id's, so two ids with the same hash (a collision) are told apart, never joined
to each other's prediction. The checkpoint keeps the ids as given.

Per waiting prediction that is about 24 bytes, 2 to 8 a class seen (`_ROW_TYPES`) and
the id's length in bytes, against about 190 bytes more for a `str`, a dict entry and a
list slot per id.

A ring in arrival order: beyond `capacity` the oldest makes room, as in an ordered dict;
slots whose prediction was joined stay in the ring until it is compacted."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from typing import Any, cast

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
Hasher = Callable[[Sequence[str]], Int64Array]

_MAX_INLINE_ID = 64
"""Longer ids (in UTF-8 bytes) are kept in a dict: the byte array is as wide as the
longest id it holds, so one long id must not widen every slot."""


def python_hash(keys: Sequence[str]) -> Int64Array:
    """Python's own string hash: computed in C, cached on each string, and keyed per
    process (an adversary cannot aim ids at one index position); never saved."""
    return np.fromiter(map(hash, keys), np.int64, len(keys))


HashArray = npt.NDArray[np.int32]
_HASH_TYPE = np.int32
"""What the store keeps of each id's hash: its low 32 bits. Ids are told apart by their
bytes anyway (a shared hash only costs a comparison); among the few thousand ids a store
holds, two share 32 bits rarely, and the 4 more bytes a slot would buy nothing else."""


def _kept_hashes(hashes: Int64Array) -> HashArray:
    return hashes.astype(_HASH_TYPE)  # wraps: the low 32 bits


# Probability rows: one per prediction (None: none), or all of them as one 2-D array.
Rows = Sequence[Sequence[float] | None] | npt.NDArray[np.float64]


def _width(rows: Rows) -> int:
    """Class indices the widest of `rows` holds (C-level passes: run per batch)."""
    if isinstance(rows, np.ndarray):
        return int(rows.shape[1]) if rows.ndim == 2 else 0  # rows x classes
    given = cast("Sequence[Sequence[float]]", rows if None not in rows else [r for r in rows if r])
    return max(map(len, given), default=0)


_LENGTH_CAP = 255
"""Byte lengths are kept up to this (uint8); ids this long are compared whole anyway
(`_MAX_INLINE_ID`)."""

_CLASS_TYPE = np.int16
"""What predicted values are held in while they are all class indices that fit it (a
window's are below its maximum classes + 1); a value that does not (a regression
output) turns the array into float64 for good."""

_DECIMALS = 10_000.0
"""Probabilities given with at most four decimals (k / 10^4, as many models round them)
are held as k in int16 while every one is (`_ROW_TYPES`)."""

_NAN_CODE = np.iinfo(np.int16).min
"""An int16-held row's NaN (a prediction without probabilities)."""

_INT16_LIMIT = np.iinfo(np.int16).max / _DECIMALS
_FLOAT32_LIMIT = float(np.finfo(np.float32).max)

_ROW_TYPES = (np.dtype(np.int16), np.dtype(np.float32), np.dtype(np.float64))
"""What probability rows are held in, narrowest first: each value as k / 10^4 (int16),
as float32, or as given. A store moves to the next that holds every value bit for bit
(float64 holds any), never back: a row read back is always the float64 given."""


def _decoded_rows(held: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Probability rows as float64, from what they are held in."""
    if held.dtype == np.int16:
        rows: npt.NDArray[np.float64] = held / _DECIMALS  # correctly rounded: the value parsed
        rows[held == _NAN_CODE] = np.nan
        return rows
    return held.astype(np.float64)


def _encoded_rows(rows: npt.NDArray[np.float64], dtype: np.dtype[Any]) -> npt.NDArray[Any] | None:
    """`rows` held in `dtype`, or None if any value would not read back with the same bits
    (-0.0, a NaN other than numpy's, digits beyond the type's, a value out of its range:
    clipped first, so that no cast overflows, and then read back as another)."""
    if dtype == np.float64:
        return rows
    # (ufuncs rather than np.clip and np.nan_to_num: a fraction of their call overhead,
    # paid on every add)
    limit = _INT16_LIMIT if dtype == np.int16 else _FLOAT32_LIMIT
    clipped = np.minimum(rows, limit)  # NaN stays NaN
    np.maximum(clipped, -limit, out=clipped)
    if dtype == np.int16:
        clipped *= _DECIMALS
        np.rint(clipped, out=clipped)
        np.copyto(clipped, _NAN_CODE, where=np.isnan(clipped))
    held = clipped.astype(dtype)
    back = _decoded_rows(held)
    if not (back.view(np.int64) == rows.view(np.int64)).all():
        return None
    return held


_TIME_CODE = np.uint16
"""Arrival times are held as codes into a table of the distinct times the waiting ids
came at (a batch read at once shares one); beyond 65,536 distinct ones waiting, as
float64 for good."""

_MAX_TIMES = int(np.iinfo(_TIME_CODE).max) + 1


_SMALL = 8
"""Batches of at most this many ids are looked up and indexed one id at a time."""


def _search(index: HashArray, hashes: HashArray, order: Int64Array | None = None) -> Int64Array:
    """`np.searchsorted(index, hashes)`, faster for many hashes: numpy's binary search
    starts from the last one's bounds when the keys come in order, and random hashes
    mispredict a branch at every step (measured, 3,000 hashes in 5,000: 87 µs, sorted
    first 53 µs). `order`: the hashes' sorting order, if known."""
    if len(hashes) <= _SORT_FIRST:
        return np.searchsorted(index, hashes)
    if order is None:
        order = np.argsort(hashes)
    pos = np.empty(len(hashes), np.int64)
    pos[order] = np.searchsorted(index, hashes[order])
    return pos


_SORT_FIRST = 256


def _fits_class_type(values: npt.NDArray[np.float64]) -> bool:
    limits = np.iinfo(_CLASS_TYPE)
    return not len(values) or (limits.min <= values.min() and values.max() <= limits.max)


def _decoded(raw: bytes, length: int) -> str:
    """An id from its stored bytes and byte length: numpy drops trailing NULs."""
    if len(raw) != length:
        raw += b"\0" * (length - len(raw))
    return raw.decode("utf-8", "surrogatepass")


def _interleave(
    array: npt.NDArray[Any], cuts: list[int], values: npt.NDArray[Any]
) -> npt.NDArray[Any]:
    """`array` with `values[i]` inserted before its element `cuts[i + 1]` (cuts sorted,
    starting with 0 and ending with len(array))."""
    pieces: list[npt.NDArray[Any]] = []
    for i, (start, end) in enumerate(itertools.pairwise(cuts)):
        pieces.append(array[start:end])
        if i < len(values):
            pieces.append(values[i : i + 1])
    return np.concatenate(pieces)


class _Encoded:
    """A batch of ids as the store compares them: bytes (for ids up to
    `_MAX_INLINE_ID` bytes; empty for longer ones), byte lengths and hashes."""

    __slots__ = ("_order", "bytes", "hashes", "keys", "lengths", "long")

    def __init__(self, keys: Sequence[str], hasher: Hasher) -> None:
        self.keys = keys
        self.hashes = _kept_hashes(hasher(keys))
        n = len(keys)
        lengths = np.fromiter(map(len, keys), np.int64, n)
        raw = "".join(keys).encode("utf-8", "surrogatepass")
        widest = int(lengths.max()) if n else 0
        if len(raw) == int(lengths.sum()) and widest <= _MAX_INLINE_ID:
            # The usual case, ASCII ids (one byte a character): cut from one buffer.
            encoded = _fixed_width(raw, lengths, max(1, widest))
        else:
            each = [k.encode("utf-8", "surrogatepass") for k in keys]
            lengths = np.fromiter(map(len, each), np.int64, n)
            encoded = np.array([b if len(b) <= _MAX_INLINE_ID else b"" for b in each], "S")
            if encoded.dtype.itemsize == 0:
                encoded = encoded.astype("S1")
            # the store keeps lengths in a byte: longer ids are told apart by the dict
            lengths = np.minimum(lengths, _LENGTH_CAP)
        self.bytes = encoded
        self.lengths = lengths
        self.long = lengths > _MAX_INLINE_ID
        self._order: Int64Array | None = None

    @property
    def order(self) -> Int64Array:
        """The hashes' stable sorting order (computed once: lookups and the index use it)."""
        if self._order is None:
            self._order = np.argsort(self.hashes, kind="stable")
        return self._order

    def all_different(self) -> bool:
        """No id twice: no two hashes equal, or (hashes shared) no two keys equal."""
        ordered = self.hashes[self.order]
        return not (ordered[1:] == ordered[:-1]).any() or len(set(self.keys)) == len(self.keys)


def _fixed_width(raw: bytes, lengths: Int64Array, width: int) -> npt.NDArray[np.bytes_]:
    """The ids concatenated in `raw`, `lengths` bytes each, as a byte-string array of
    `width`: a view of `raw` when every id has that length (ids of one format, as
    UUIDs or numbered requests), else each copied into its row."""
    n = len(lengths)
    if n and int(lengths.min()) == width:
        return np.frombuffer(raw, f"S{width}", n)
    out = np.zeros((n, width), np.uint8)
    starts = np.cumsum(lengths) - lengths
    row = np.repeat(np.arange(n), lengths)
    out[row, np.arange(len(raw)) - np.repeat(starts, lengths)] = np.frombuffer(raw, np.uint8)
    return out.view(f"S{width}").reshape(n)


class PendingPredictions:
    def __init__(self, capacity: int, hasher: Hasher = python_hash) -> None:
        """`hasher`: a 64-bit hash per id (tests give a poor one to force collisions)."""
        self.capacity = capacity
        self._hasher = hasher
        # Slots: a third more than capacity, so that the joined slots a compaction drops
        # are at least a quarter of them (compactions cost O(slots), amortised O(1)).
        self._max_slots = capacity + max(1, capacity // 3)
        self._head = 0
        self._size = 0  # slots in the ring from _head on, waiting or gone
        self._waiting = 0
        self._live = np.zeros(0, np.bool_)  # per slot: waiting
        self._hash = np.zeros(0, _HASH_TYPE)  # see _HASH_TYPE
        self._ids = np.zeros(0, "S1")  # UTF-8 bytes (trailing NULs dropped: see _id_len)
        self._id_len = np.zeros(0, np.uint8)  # up to _LENGTH_CAP
        self._long_ids: dict[int, str] = {}  # slot -> id, for ids over _MAX_INLINE_ID
        # Arrival times: codes into _times[:_n_times], or the times (float64) when _times
        # is None (_TIME_CODE). Only waiting slots' codes are read.
        self._at: npt.NDArray[Any] = np.zeros(0, _TIME_CODE)
        self._times: npt.NDArray[np.float64] | None = np.empty(8, np.float64)
        self._n_times = 0
        self._predicted: npt.NDArray[Any] = np.empty(0, _CLASS_TYPE)  # or float64: _fill
        self._is_class = np.empty(0, np.bool_)
        self._proba: npt.NDArray[Any] = np.empty((0, 0), _ROW_TYPES[0])  # see _ROW_TYPES
        # The waiting slots, sorted by their ids' hashes (read through _hash: a copy of
        # the hashes in index order would take 4 more bytes a waiting id).
        self._index_slot = np.zeros(0, np.int32)
        # Added to since the last `expire`: a store that was not is idle, and gives
        # back the ring's spare slots (`_trim_if_idle`).
        self._added = False

    def __len__(self) -> int:
        return self._waiting

    def __contains__(self, key: str) -> bool:
        return bool(self._find(_Encoded([key], self._hasher))[0] >= 0)

    @property
    def width(self) -> int:
        """Class indices a probability row holds."""
        return int(self._proba.shape[1])

    # ---- finding ids ----------------------------------------------------------------------

    def _matches(
        self, slots: npt.NDArray[np.integer[Any]], ids: _Encoded, which: Int64Array
    ) -> npt.NDArray[np.bool_]:
        """Whether each of `slots` holds the id `which` of `ids` (bytes and length)."""
        same: npt.NDArray[np.bool_] = (self._id_len[slots] == ids.lengths[which]) & (
            self._ids[slots] == ids.bytes[which]
        )
        long = ids.long[which]
        if long.any():
            for i in np.flatnonzero(long & same):
                same[i] = self._long_ids.get(int(slots[i])) == ids.keys[int(which[i])]
        return same

    def _index_hashes(self) -> HashArray:
        """The waiting ids' hashes in index order (sorted), made for one lookup."""
        return self._hash[self._index_slot]

    def _find(self, ids: _Encoded) -> Int64Array:
        """The waiting slot of each id, or -1."""
        n = len(ids.keys)
        found = np.full(n, -1, np.int64)
        m = len(self._index_slot)
        if not m or not n:
            return found
        index_hash = self._index_hashes()
        if n <= _SMALL:
            return self._find_few(ids, found, index_hash)
        pos = _search(index_hash, ids.hashes, ids.order if n > _SORT_FIRST else None)
        at = np.minimum(pos, m - 1)
        hit = (pos < m) & (index_hash[at] == ids.hashes)
        which = np.flatnonzero(hit)
        slots = self._index_slot[at[which]]
        same = self._matches(slots, ids, which)
        found[which[same]] = slots[same]
        # Another id with the same hash came first in the index: look on along the run.
        for i in which[~same]:
            p = int(pos[i]) + 1
            while p < m and index_hash[p] == ids.hashes[i]:
                slot = self._index_slot[p : p + 1]
                if self._matches(slot, ids, np.array([i]))[0]:
                    found[i] = slot[0]
                    break
                p += 1
        return found

    def _find_few(self, ids: _Encoded, found: Int64Array, index_hash: HashArray) -> Int64Array:
        """`_find` for a few ids, one at a time: a dozen numpy calls cost more than a
        binary search and a comparison each."""
        index_slot, m = self._index_slot, len(self._index_slot)
        for i, (h, key) in enumerate(zip(ids.hashes.tolist(), ids.keys, strict=True)):
            p = int(index_hash.searchsorted(h))
            while p < m and index_hash[p] == h:
                slot = int(index_slot[p])
                if self._key(slot) == key:
                    found[i] = slot
                    break
                p += 1
        return found

    def _index_add(
        self, hashes: HashArray, slots: Int64Array, order: Int64Array | None = None
    ) -> None:
        """`order`: the hashes' stable sorting order, if known."""
        if len(hashes) > 1:
            if order is None:
                order = np.argsort(hashes, kind="stable")
            hashes, slots = hashes[order], slots[order]
        at = np.searchsorted(self._index_hashes(), hashes)
        if len(at) <= _SMALL:  # np.insert's own checks cost more than the copy
            cuts = [0, *at.tolist(), len(self._index_slot)]
            self._index_slot = _interleave(self._index_slot, cuts, slots.astype(np.int32))
            return
        self._index_slot = np.insert(self._index_slot, at, slots.astype(np.int32))

    def _forget(self, slots: Int64Array) -> None:
        """`slots` (waiting) are waiting no more."""
        if not len(slots):
            return
        self._live[slots] = False
        # the index holds the waiting slots only: keep those still live (one gather,
        # where finding each slot's entry by its hash took a sort and a search)
        keep = self._live[self._index_slot]
        self._index_slot = self._index_slot[keep]
        self._waiting -= len(slots)
        if self._long_ids:
            for s in slots.tolist():
                self._long_ids.pop(s, None)

    # ---- adding ---------------------------------------------------------------------------

    def add(
        self,
        keys: Sequence[str],
        at: float | npt.ArrayLike,
        predicted: Sequence[int | float],
        rows: Rows,
    ) -> int:
        """Predictions in arrival order, all at `at` (or one time each), with their
        probability rows by class index (None: no probabilities; a shorter row has 0 for
        the classes after it), or all rows as one 2-D array. A key already waiting is
        replaced and moves to the end. Returns how many of the oldest were pushed out
        beyond capacity."""
        if not keys:
            return 0
        if isinstance(at, int | float):
            ats = np.full(len(keys), at, np.float64)
        else:
            ats = np.asarray(at, np.float64)
        if len(keys) > self.capacity:  # so that no slot is taken twice in one pass
            cut = len(keys) - self.capacity
            return self.add(keys[:cut], ats[:cut], predicted[:cut], rows[:cut]) + self.add(
                keys[cut:], ats[cut:], predicted[cut:], rows[cut:]
            )
        width = _width(rows)
        if width > self.width:
            self._widen(width)
        ids = _Encoded(keys, self._hasher)
        if ids.all_different() and not (self._find(ids) >= 0).any():
            return self._add_new(ids, ats, predicted, rows)
        # A repeated id: one at a time, as an ordered dict would take them (an id waiting
        # may be pushed out by the ones before it in the batch, then come back).
        pushed_out = 0
        for i, key in enumerate(keys):
            one = _Encoded([key], self._hasher)
            found = self._find(one)
            if found[0] >= 0:
                self._forget(found)
            pushed_out += self._add_new(one, ats[i : i + 1], predicted[i : i + 1], rows[i : i + 1])
        return pushed_out

    def _add_new(
        self,
        ids: _Encoded,
        ats: npt.NDArray[np.float64],
        predicted: Sequence[int | float],
        rows: Rows,
    ) -> int:
        """Ids not waiting, all different, at most `capacity` of them."""
        n = len(ids.keys)
        pushed_out = max(0, self._waiting + n - self.capacity)
        if pushed_out:
            self._push_out_oldest(pushed_out)
        n_slots = len(self._live)
        if n_slots - self._size < n:
            # No free slot: grow, or drop the joined ones (at least a quarter of the
            # ring, which is a third larger than capacity). By half: the arrays take
            # 50+ bytes a slot, and doubling left up to half of them unused.
            self._relayout(min(self._max_slots, max(64, n_slots + n_slots // 2, self._waiting + n)))
            n_slots = len(self._live)
        self._added = True
        slots = (self._head + self._size + np.arange(n)) % n_slots
        self._size += n
        self._waiting += n
        self._live[slots] = True
        self._hash[slots] = ids.hashes
        if ids.bytes.dtype.itemsize > self._ids.dtype.itemsize:
            self._ids = self._ids.astype(ids.bytes.dtype)
        self._ids[slots] = ids.bytes
        self._id_len[slots] = ids.lengths
        if ids.long.any():
            for i in np.flatnonzero(ids.long):
                self._long_ids[int(slots[i])] = ids.keys[int(i)]
        self._set_arrivals(slots, ats)
        self._fill(slots, predicted, rows)
        self._index_add(ids.hashes, slots, ids.order if len(slots) > 1 else None)
        return pushed_out

    def _fill(self, index: Int64Array, predicted: Sequence[int | float], rows: Rows) -> None:
        n = len(index)
        kinds = set(map(type, predicted))
        if kinds == {int}:  # classes: C-level passes, no per-value Python
            values = np.fromiter(predicted, np.float64, n)
            if self._predicted.dtype != np.float64 and not _fits_class_type(values):
                self._predicted = self._predicted.astype(np.float64)
            self._predicted[index] = values
            self._is_class[index] = True
        else:
            if self._predicted.dtype != np.float64:
                self._predicted = self._predicted.astype(np.float64)
            self._predicted[index] = predicted
            self._is_class[index] = list(map(operator.is_, map(type, predicted), repeat(int)))
        width = self.width
        if isinstance(rows, np.ndarray):  # every row over the classes of its width
            block = np.zeros((n, width))
            block[:, : rows.shape[1]] = rows
        elif None not in rows and set(map(len, cast("Sequence[Sequence[float]]", rows))) == {width}:
            # the usual case, every row over the same classes: one flat pass
            given = cast("Sequence[Sequence[float]]", rows)
            flat = np.fromiter(itertools.chain.from_iterable(given), np.float64, n * width)
            block = flat.reshape(n, width)
        else:
            block = np.zeros((len(rows), width))
            for i, row in enumerate(rows):
                if row is None:
                    block[i] = np.nan
                elif row:
                    block[i, : len(row)] = row
        self._store_rows(index, block)

    def _store_rows(self, index: Int64Array, block: npt.NDArray[np.float64]) -> None:
        """Rows written at `index`, in the store's type for them or, if they do not fit it,
        in the next one that holds them and every row already held."""
        held = _encoded_rows(block, self._proba.dtype)
        if held is None:
            current = _decoded_rows(self._proba)
            for dtype in _ROW_TYPES[_ROW_TYPES.index(self._proba.dtype) + 1 :]:
                held = _encoded_rows(block, dtype)
                whole = None if held is None else _encoded_rows(current, dtype)
                if held is not None and whole is not None:
                    self._proba = whole
                    break
        self._proba[index] = held

    def _arrivals(self, slots: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
        """When the predictions of `slots` (waiting) came."""
        if self._times is None:
            return cast("npt.NDArray[np.float64]", self._at[slots])
        times: npt.NDArray[np.float64] = self._times[self._at[slots]]
        return times

    def _arrival(self, slot: int) -> float:
        """When the prediction of `slot` (waiting) came: `_arrivals` for one slot."""
        if self._times is None:
            return float(self._at[slot])
        return float(self._times[self._at[slot]])

    def _set_arrivals(self, slots: Int64Array, ats: npt.NDArray[np.float64]) -> None:
        """`ats` (in arrival order) for `slots`: runs of one time (same bits) share a code,
        the first with the table's last time if it is the same."""
        if self._times is not None:
            bits = ats.view(np.int64)
            n = self._n_times
            # the first time continues the table's last run if it has the same bits
            continues = bool(n) and bits[0] == self._times[n - 1 : n].view(np.int64)[0]
            if bits[0] == bits[-1] and (len(ats) < 3 or (bits == bits[0]).all()):
                # the usual case: the batch came at one time, the last one held or a new
                # one with room for it in the table
                if continues:
                    self._at[slots] = n - 1
                    return
                if n < len(self._times):
                    self._times[n] = ats[0]
                    self._n_times = n + 1
                    self._at[slots] = n
                    return
            new = np.empty(len(ats), np.bool_)
            new[0] = not continues
            np.not_equal(bits[1:], bits[:-1], out=new[1:])
            need = int(np.count_nonzero(new))
            if n + need > _MAX_TIMES:
                self._at[slots] = 0  # (live already: no stale code of theirs in the way)
                self._compact_times()
                n = self._n_times
                new[0] = True
                need = int(np.count_nonzero(new))
            if n + need <= _MAX_TIMES:
                if n + need > len(self._times):
                    grown = np.empty(min(_MAX_TIMES, 2 * (n + need)), np.float64)
                    grown[:n] = self._times[:n]
                    self._times = grown
                self._times[n : n + need] = ats[new]
                self._n_times = n + need
                self._at[slots] = n - 1 + np.cumsum(new)
                return
            # more distinct times waiting than codes: the times themselves, for good
            times = np.zeros(len(self._live))
            live = np.flatnonzero(self._live)
            times[live] = self._arrivals(live)
            self._at, self._times = times, None
        self._at[slots] = ats

    def _compact_times(self) -> None:
        """The time table cut to the times of waiting slots."""
        assert self._times is not None
        live = np.flatnonzero(self._live)
        used, codes = np.unique(self._at[live], return_inverse=True)
        self._at[live] = codes
        times = np.empty(max(8, len(used) + len(used) // 2), np.float64)
        times[: len(used)] = self._times[used]
        self._times, self._n_times = times, len(used)

    def _rows_at(self, slots: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.float64]:
        """The probability rows of `slots`, as given (float64)."""
        return _decoded_rows(self._proba[slots])

    def _ring(self) -> Int64Array:
        """The ring's slots from the head, waiting or gone."""
        return (self._head + np.arange(self._size)) % max(1, len(self._live))

    def _push_out_oldest(self, count: int) -> None:
        """Let the `count` oldest waiting predictions go (and the joined slots before
        and between them)."""
        ring = self._ring()
        live = self._live[ring]
        through = int(np.searchsorted(np.cumsum(live), count)) + 1
        self._forget(ring[:through][live[:through]])
        self._advance(through)

    def _advance(self, count: int) -> None:
        self._head = (self._head + count) % max(1, len(self._live))
        self._size -= count

    def _relayout(self, size: int) -> None:
        """Waiting slots in ring order at 0.., in arrays of `size` slots."""
        ring = self._ring()
        live = ring[self._live[ring]]
        n = len(live)
        moved = np.full(len(self._live), -1, np.int64)
        moved[live] = np.arange(n)

        def resized(old: npt.NDArray[Any], fill: object = 0) -> npt.NDArray[Any]:
            new = np.full((size, *old.shape[1:]), fill, old.dtype)
            new[:n] = old[live]
            return new

        self._live = resized(self._live, fill=False)
        self._hash = resized(self._hash)
        self._ids = resized(self._ids, fill=b"")
        self._id_len = resized(self._id_len)
        self._at = resized(self._at)
        if self._times is not None:
            self._compact_times()
        self._predicted = resized(self._predicted)
        self._is_class = resized(self._is_class, fill=False)
        self._proba = resized(self._proba)
        self._long_ids = {int(moved[s]): key for s, key in self._long_ids.items()}
        self._index_slot = moved[self._index_slot].astype(np.int32)
        self._head, self._size = 0, n

    def _widen(self, width: int) -> None:
        n_slots = len(self._live)
        proba = np.full((n_slots, width), np.nan)
        old = self.width
        given = _decoded_rows(self._proba)
        proba[:, :old] = given
        proba[:, old:] = 0.0  # a row given over fewer classes has 0 for the rest
        nan_rows = np.isnan(given).all(axis=1) if old else np.ones(n_slots, bool)
        proba[nan_rows] = np.nan
        # only zeros and numpy's NaN added: every type holds them
        self._proba = cast("npt.NDArray[Any]", _encoded_rows(proba, self._proba.dtype))

    # ---- taking out -----------------------------------------------------------------------

    def pop_many(self, keys: Sequence[str]) -> list[int | None]:
        """The slot of each of `keys` in turn (None: not waiting), no longer waiting; an
        id repeated finds its prediction gone the second time. The slots' arrays stay
        readable until the next `add` or `expire`."""
        if not self._waiting or not keys:
            return [None] * len(keys)
        if len(keys) <= _SMALL:
            return self._pop_few(keys)
        found = self._find(_Encoded(keys, self._hasher))
        hit = np.flatnonzero(found >= 0)
        slots = found[hit]
        ordered = np.sort(slots)
        if (ordered[1:] == ordered[:-1]).any():  # a repeated id: its first finds the slot
            ordered, first = np.unique(slots, return_index=True)
            again = np.ones(len(slots), bool)
            again[first] = False
            found[hit[again]] = -1
        self._forget(ordered)
        out: list[int | None] = found.tolist()
        if len(hit) < len(out):
            out = [None if s < 0 else s for s in found.tolist()]
        return out

    def _pop_few(self, keys: Sequence[str]) -> list[int | None]:
        """`pop_many` for a few ids, one binary search each (see `_find_few`)."""
        index_hash, index_slot, m = self._index_hashes(), self._index_slot, len(self._index_slot)
        out: list[int | None] = []
        positions: list[int] = []  # in the index, of the slots taken
        for h, key in zip(_kept_hashes(self._hasher(keys)).tolist(), keys, strict=True):
            p = int(index_hash.searchsorted(h))
            slot = None
            while p < m and index_hash[p] == h:
                if self._key(int(index_slot[p])) == key:
                    if p not in positions:  # else a repeated id: taken by the first
                        slot = int(index_slot[p])
                        positions.append(p)
                    break
                p += 1
            out.append(slot)
        if positions:
            taken = index_slot[positions]
            keep = np.ones(m, np.bool_)
            keep[positions] = False
            self._index_slot = index_slot[keep]
            self._live[taken] = False
            self._waiting -= len(positions)
            if self._long_ids:
                for slot in taken.tolist():
                    self._long_ids.pop(slot, None)
        return out

    def pop(self, key: str) -> int | None:
        """The slot of `key`, no longer waiting (its arrays stay readable until the next
        `add`), or None."""
        return self.pop_many([key])[0]

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
        rows[:, :have] = self._rows_at(np.asarray(slots, np.intp))[:, :have]
        if self.width == 0:
            rows[:] = np.nan
        else:
            rows[np.isnan(rows[:, :have]).all(axis=1)] = np.nan
        return rows

    def _trim_if_idle(self) -> None:
        """Give back the spare slots of a ring not added to since the last call (the
        ring grows by half, so up to a third of it may be spare): most versions of a
        large fleet are idle at any moment, and a busy one grows it again."""
        if not self._added:
            fits = max(64, self._waiting + self._waiting // 32)
            if len(self._live) > fits + fits // 32:
                self._relayout(fits)
        self._added = False

    def expire(self, oldest: float) -> int:
        """Let predictions that came before `oldest` go; returns how many. Called
        periodically, it also gives back the spare slots of an idle store."""
        self._trim_if_idle()
        if not self._size:
            return 0
        head = self._head
        if self._live[head] and self._arrival(head) >= oldest:
            return 0  # the usual case: nothing waited that long
        ring = self._ring()
        live = self._live[ring]
        stays = live.copy()
        stays[live] = self._arrivals(ring[live]) >= oldest
        through = int(np.argmax(stays)) if stays.any() else len(ring)
        gone = ring[:through][live[:through]]
        self._forget(gone)
        self._advance(through)
        return len(gone)

    # ---- checkpoint -----------------------------------------------------------------------

    def _key(self, slot: int) -> str:
        long = self._long_ids.get(slot)
        if long is not None:
            return long
        return _decoded(bytes(self._ids[slot]), int(self._id_len[slot]))

    def saved(self) -> list[list[Any]]:
        """`items()` as lists, made by operations on whole arrays: what a checkpoint
        writes of every waiting prediction, at each save (a loop over the slots took
        microseconds each, most of a save)."""
        ring = self._ring()
        slots = ring[self._live[ring]]
        long_ids = self._long_ids
        keys = []
        for slot, raw, length in zip(
            slots.tolist(), self._ids[slots].tolist(), self._id_len[slots].tolist(), strict=True
        ):
            key = long_ids.get(slot)
            keys.append(_decoded(raw, length) if key is None else key)
        ats: list[float] = self._arrivals(slots).tolist()
        values: list[float] = self._predicted[slots].astype(np.float64).tolist()
        predicted = [
            int(v) if c else v for v, c in zip(values, self._is_class[slots].tolist(), strict=True)
        ]
        if self.width == 0:
            return [[k, at, p, None] for k, at, p in zip(keys, ats, predicted, strict=True)]
        proba = self._rows_at(slots)
        none: list[bool] = np.isnan(proba).all(axis=1).tolist()  # type: ignore[assignment]
        # each row without its trailing zeros, however wide the arrays have grown
        nonzero = proba != 0.0
        ends: list[int] = np.where(
            nonzero.any(axis=1), proba.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0
        ).tolist()
        return [
            [k, at, p, None if n else row[:end]]
            for k, at, p, row, n, end in zip(
                keys, ats, predicted, proba.tolist(), none, ends, strict=True
            )
        ]

    def items(self) -> Iterator[tuple[str, float, int | float, list[float] | None]]:
        """(key, at, predicted, probability row or None), oldest first."""
        ring = self._ring()
        for slot in ring[self._live[ring]].tolist():
            row = self._rows_at(np.array([slot]))[0]
            none = self.width == 0 or bool(np.isnan(row).all())
            value = float(self._predicted[slot])
            predicted = int(value) if self._is_class[slot] else value
            at = self._arrival(slot)
            if none:
                yield self._key(slot), at, predicted, None
                continue
            values: list[float] = row.tolist()
            while values and values[-1] == 0.0:  # however wide the arrays have grown
                values.pop()
            yield self._key(slot), at, predicted, values

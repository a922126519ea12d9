"""The compact pending store behaves as an ordered dict of predictions with the oldest
pushed out beyond capacity: checked against one, over random additions (repeated ids
included), joins and expiries that make it grow, compact and wrap around."""

from __future__ import annotations

import json
import math
import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_health_exporter.state.pending import Hasher, PendingPredictions, python_hash

Row = list[float] | None


@pytest.mark.parametrize("capacity", [1, 5, 64, 300])
def test_equals_an_ordered_dict_with_the_oldest_pushed_out(capacity: int) -> None:  # noqa: PLR0912 - one random walk over every operation
    rng = random.Random(capacity)  # noqa: S311 - seeded test data
    store = PendingPredictions(capacity)
    model: OrderedDict[str, tuple[float, int | float, Row]] = OrderedDict()
    pushed_out = expected_pushed_out = 0
    now = 0.0
    for _ in range(400):
        now += 1.0
        action = rng.random()
        if action < 0.6:
            keys, values, rows = [], [], []
            for _ in range(rng.randrange(1, 2 * capacity + 3)):
                key = f"id{rng.randrange(3 * capacity + 5)}"
                value: int | float = rng.randrange(4) if rng.random() < 0.8 else rng.random()
                width = rng.randrange(0, 5)
                row = None if width == 0 else [round(rng.random(), 3) for _ in range(width)]
                keys.append(key)
                values.append(value)
                rows.append(row)
                model.pop(key, None)
                model[key] = (now, value, row)
                while len(model) > capacity:
                    model.popitem(last=False)
                    expected_pushed_out += 1
            pushed_out += store.add(keys, now, values, rows)
        elif action < 0.9:
            keys = [f"id{rng.randrange(3 * capacity + 5)}" for _ in range(rng.randrange(8))]
            slots = []
            expected = []
            for key in keys:
                slot = store.pop(key)
                entry = model.pop(key, None)
                assert (slot is None) == (entry is None)
                if slot is not None and entry is not None:
                    slots.append(slot)
                    expected.append(entry)
            if slots:
                assert store.predicted(slots) == [value for _, value, _ in expected]
                for got, (_, _, row) in zip(store.rows(slots, 6).tolist(), expected, strict=True):
                    if row is None:
                        assert all(math.isnan(p) for p in got)
                    else:
                        assert got == row + [0.0] * (6 - len(row))
        else:
            oldest = now - rng.randrange(1, 30)
            gone = store.expire(oldest)
            expected_gone = [k for k, (at, _, _) in model.items() if at < oldest]
            # ordered by arrival, so only a prefix can be old enough
            assert list(model)[: len(expected_gone)] == expected_gone
            for key in expected_gone:
                del model[key]
            assert gone == len(expected_gone)
        assert len(store) == len(model)
        assert pushed_out == expected_pushed_out
    items = list(store.items())
    assert [key for key, *_ in items] == list(model)
    for (key, at, value, row), (m_at, m_value, m_row) in zip(items, model.values(), strict=True):
        assert (at, value) == (m_at, m_value), key
        trimmed = None if m_row is None else list(m_row)
        while trimmed and trimmed[-1] == 0.0:
            trimmed.pop()
        assert row == trimmed


# ---- ids kept as hashes and bytes -------------------------------------------------------

# Ids that numpy's byte strings or a poor hash could confuse: prefixes of each other,
# trailing NULs (numpy drops them), non-ASCII and lone surrogates, ids longer than the
# inline width, the empty id.
ODD_IDS = [
    "a",
    "a\0",
    "a\0\0",
    "\0",
    "",
    "ab",
    "é",
    "e\u0301",
    "\ud800",
    "x" * 64,
    "x" * 65,
    "x" * 65 + "\0",
    "y" * 300,
    "日本",
]


def colliding_hash(keys: Sequence[str]) -> npt.NDArray[np.int64]:
    """Two hash values for every id: each lookup must tell ids apart by their bytes."""
    return np.array([len(k) % 2 for k in keys], np.int64)


def constant_hash(keys: Sequence[str]) -> npt.NDArray[np.int64]:
    return np.zeros(len(keys), np.int64)


key_strategy = st.one_of(
    st.sampled_from(ODD_IDS), st.integers(0, 40).map(lambda i: f"id{i}"), st.text(max_size=8)
)
# (a row of zeros only is saved as an empty row and read back as none: not generated)
row_strategy = st.one_of(
    st.none(),
    st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.125]), min_size=1, max_size=4).filter(any),
)
operation = st.one_of(
    st.tuples(
        st.just("add"),
        st.lists(
            st.tuples(key_strategy, st.one_of(st.integers(0, 5), st.floats(-3, 3)), row_strategy),
            min_size=1,
            max_size=30,
        ),
    ),
    st.tuples(st.just("pop"), st.lists(key_strategy, max_size=12)),
    st.tuples(st.just("expire"), st.integers(0, 20)),
    st.tuples(st.just("checkpoint"), st.just(0)),
)


@pytest.mark.parametrize("hasher", [python_hash, colliding_hash, constant_hash])
@pytest.mark.parametrize("capacity", [1, 4, 25])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operation, max_size=40))
def test_equals_a_dict_reference_with_any_hash(  # noqa: PLR0912 - one random walk over every operation
    hasher: Hasher, capacity: int, operations: list[tuple[str, Any]]
) -> None:
    """Random adds (repeated and odd ids), joins, expiries, evictions at the bound and
    checkpoint round trips against an ordered dict keyed by the ids themselves; with
    Python's hash, and with hashes that collide for every id (a join then rests on the
    ids' bytes alone)."""
    store = PendingPredictions(capacity, hasher)
    model: OrderedDict[str, tuple[float, int | float, Row]] = OrderedDict()
    pushed_out = expected_pushed_out = 0
    now = 0.0
    for name, arg in operations:
        now += 1.0
        if name == "add":
            keys = [k for k, _, _ in arg]
            for key, value, row in arg:
                model.pop(key, None)
                model[key] = (now, value, row)
                while len(model) > capacity:
                    model.popitem(last=False)
                    expected_pushed_out += 1
            rows: list[Row] = [row for _, _, row in arg]
            pushed_out += store.add(keys, now, [v for _, v, _ in arg], rows)
        elif name == "pop":
            slots = store.pop_many(arg)
            expected = [model.pop(key, None) for key in arg]
            assert [s is None for s in slots] == [e is None for e in expected]
            found = [(s, e) for s, e in zip(slots, expected, strict=True) if s is not None]
            if found:
                assert store.predicted([s for s, _ in found]) == [e[1] for _, e in found if e]
                got_rows = store.rows([s for s, _ in found], 5).tolist()
                for got, (_, entry) in zip(got_rows, found, strict=True):
                    row = entry[2] if entry else None
                    if row is None:
                        assert all(math.isnan(p) for p in got)
                    else:
                        assert got == row + [0.0] * (5 - len(row))
        elif name == "expire":
            oldest = now - arg
            gone = [k for k, (at, _, _) in model.items() if at < oldest]
            assert store.expire(oldest) == len(gone)
            for key in gone:
                del model[key]
        else:  # saved and loaded as a checkpoint does: ids as given, in one batch
            saved = json.loads(json.dumps(store.saved()))
            store = PendingPredictions(capacity, hasher)
            if saved:
                keys, ats, values, rows = (list(c) for c in zip(*saved, strict=True))
                assert store.add(keys, ats, values, rows) == 0
        assert len(store) == len(model)
        assert all((key in store) for key in model)
        assert pushed_out == expected_pushed_out
        # what a checkpoint writes, made by whole-array operations, says what items() do
        assert json.dumps(store.saved()) == json.dumps([list(i) for i in store.items()])
    items = list(store.items())
    assert [key for key, *_ in items] == list(model)
    for (_, at, value, row), (m_at, m_value, m_row) in zip(items, model.values(), strict=True):
        assert (at, value) == (m_at, m_value)
        trimmed = None if m_row is None else list(m_row)
        while trimmed and trimmed[-1] == 0.0:
            trimmed.pop()
        assert row == trimmed


def test_a_saved_list_with_a_repeated_id_loads_as_added_one_by_one() -> None:
    """A checkpoint list holding an id twice (written by hand, or by an older version)
    loads in one batch as it did one entry at a time: the later entry replaces the
    first, and what the bound pushes out is counted the same."""
    saved = [("a", 1.0, 0, None), ("b", 2.0, 1, [0.5, 0.5]), ("a", 3.0, 1, None)]
    one_by_one = PendingPredictions(2)
    pushed = sum(one_by_one.add([k], at, [v], [r]) for k, at, v, r in saved)
    batch = PendingPredictions(2)
    keys, ats, values, rows = (list(c) for c in zip(*saved, strict=True))
    assert batch.add(keys, ats, values, rows) == pushed
    assert (
        list(batch.items())
        == list(one_by_one.items())
        == [
            ("b", 2.0, 1, [0.5, 0.5]),
            ("a", 3.0, 1, None),
        ]
    )


def test_batches_as_arrays_or_uniform_rows_equal_predictions_added_one_by_one() -> None:
    """The batch paths (class predictions with every row over the same classes, as lists
    or as one 2-D array; regression outputs; a batch wider than the ones before) hold
    what adding each prediction alone holds."""
    rng = random.Random(7)  # noqa: S311 - seeded test data
    batched, single = PendingPredictions(50), PendingPredictions(50)
    for step in range(30):
        n = rng.randrange(1, 20)
        width = 2 if step < 10 else 3  # the classes grow once
        keys = [f"r{step}-{i}" for i in range(n)]
        rows = [[round(rng.random(), 3) for _ in range(width)] for _ in range(n)]
        values: list[int | float] = [rng.randrange(width) for _ in range(n)]
        if step % 3 == 0:
            batch_rows: Any = np.array(rows)
        elif step % 3 == 1:
            batch_rows = rows
        else:  # regression outputs, no probabilities
            values = [rng.random() for _ in range(n)]
            batch_rows = rows = [None] * n
        assert batched.add(keys, float(step), values, batch_rows) == sum(
            single.add([k], float(step), [v], [r])
            for k, v, r in zip(keys, values, rows, strict=True)
        )
        for key in rng.sample(keys, n // 3):
            assert (batched.pop(key) is None) == (single.pop(key) is None)
    assert list(batched.items()) == list(single.items())
    assert len(batched) == len(single) == 50


def test_an_idle_store_gives_back_its_spare_slots_and_holds_the_same() -> None:
    """The ring grows by half while predictions arrive; once a periodic `expire` finds
    nothing added since the last one, it holds about as many slots as ids wait, and
    what it holds and finds is unchanged."""
    store = PendingPredictions(5000)
    for start in range(0, 1000, 17):  # as a window's buckets receive them
        keys = [f"req-{i:010d}" for i in range(start, min(1000, start + 17))]
        store.add(
            keys, float(start), [int(k[-3:]) % 3 for k in keys], [[0.2, 0.3, 0.5]] * len(keys)
        )
    assert store.pop_many(["req-0000000005", "req-0000000500"]) == [5, 500]
    before = list(store.items())
    grown = len(store._live)
    assert grown > 1.08 * len(store)  # the test means something: spare slots to give back
    store.expire(-math.inf)  # added to since the last call: busy, nothing given back
    assert len(store._live) == grown
    store.expire(-math.inf)
    assert len(store) == 998 and len(store._live) <= 998 + 998 // 32
    assert list(store.items()) == before
    assert "req-0000000006" in store and "req-0000000005" not in store
    assert store.pop_many(["req-0000000999"]) == [997]
    assert store.predicted([997]) == [999 % 3]
    store.add(["next"], 2000.0, [1], [None])  # and it grows again
    assert list(store.items())[-1] == ("next", 2000.0, 1, None)


def test_class_indices_held_narrow_until_an_output_comes() -> None:
    """Class indices are held in 16 bits; a regression output, or a class index that
    does not fit, turns the store's values into float64 without changing any."""
    store = PendingPredictions(10)
    store.add(["a", "b"], 1.0, [0, 7], [None, None])
    assert store._predicted.dtype == np.int16
    store.add(["c"], 2.0, [2.5], [None])
    store.add(["d"], 3.0, [40_000], [None])
    assert store._predicted.dtype == np.float64
    assert [(k, v) for k, _, v, _ in store.items()] == [
        ("a", 0),
        ("b", 7),
        ("c", 2.5),
        ("d", 40_000),
    ]
    wide = PendingPredictions(10)
    wide.add(["e"], 1.0, [70_000], [None])
    assert wide._predicted.dtype == np.float64
    assert wide.predicted(wide.pop_many(["e"])) == [70_000]  # type: ignore[arg-type]


def test_ids_longer_than_a_byte_counts_are_told_apart() -> None:
    """Lengths are kept in a byte: ids of 300 and 301 bytes sharing a prefix and a hash
    still find their own predictions."""
    first, second = "x" * 300, "x" * 301

    def same_hash(keys: Sequence[str]) -> npt.NDArray[np.int64]:
        return np.zeros(len(keys), np.int64)

    store = PendingPredictions(10, hasher=same_hash)
    store.add([first, second], 1.0, [0, 1], [None, None])
    assert store.pop_many([second, first, second]) == [1, 0, None]


@pytest.mark.parametrize("hasher", [python_hash, colliding_hash])
def test_full_store_under_large_batches_equals_an_ordered_dict(hasher: Hasher) -> None:
    """Batches of hundreds of new ids into a store at capacity (each pushes the oldest
    out, through the index's merge and its removal of whole runs), a third joined one
    batch later by `pop_many`, ids of mixed lengths, non-ASCII and over the inline
    width: the same as an ordered dict, and the index sorted by hash holding exactly
    the waiting slots."""
    rng = random.Random(11)  # noqa: S311 - seeded test data
    capacity = 700
    store = PendingPredictions(capacity, hasher)
    model: OrderedDict[str, int] = OrderedDict()
    pushed_out = expected_pushed_out = 0
    last: list[str] = []
    for step in range(25):
        n = rng.randrange(257, 600)
        keys = [
            rng.choice([f"req-{step}-{i}", f"é{step}.{i}", f"{'x' * 70}{step}-{i}", f"{i}/{step}"])
            for i in range(n)
        ]
        values = [rng.randrange(3) for _ in range(n)]
        rows = np.round(np.random.default_rng(step).random((n, 3)), 3)
        for key, value in zip(keys, values, strict=True):
            model[key] = value
            while len(model) > capacity:
                model.popitem(last=False)
                expected_pushed_out += 1
        pushed_out += store.add(keys, float(step), values, rows)
        joined = [*rng.sample(last, len(last) // 3), "never-added"]
        slots = store.pop_many(joined)
        expected = [model.pop(key, None) for key in joined]
        assert [s is None for s in slots] == [e is None for e in expected]
        assert store.predicted([s for s in slots if s is not None]) == [
            e for e in expected if e is not None
        ]
        last = keys
        assert pushed_out == expected_pushed_out
        assert len(store) == len(model)
        index_slot = store._index_slot
        assert (np.diff(store._hash[index_slot]) >= 0).all()
        assert sorted(index_slot.tolist()) == np.flatnonzero(store._live).tolist()
    assert [key for key, *_ in store.items()] == list(model)
    assert [value for _, _, value, _ in store.items()] == list(model.values())


def test_the_index_holds_a_slot_per_waiting_id_and_nothing_more() -> None:
    """The arrays take their bytes per ring slot plus 4 per waiting id (the index's
    slot numbers, sorted by hash through the slots' own hashes), and that index lists
    exactly the waiting slots, in hash order, after adds, joins and pushes out with
    colliding hashes."""

    def poor_hash(keys: Sequence[str]) -> npt.NDArray[np.int64]:
        return np.array([len(k) % 5 for k in keys], np.int64)

    store = PendingPredictions(120, hasher=poor_hash)
    rng = random.Random(7)  # noqa: S311 - seeded test data
    for step in range(60):
        keys = [f"id-{rng.randrange(400)}{'x' * rng.randrange(4)}" for _ in range(9)]
        store.add(keys, float(step), [rng.randrange(3) for _ in keys], [[0.1, 0.2, 0.7]] * 9)
        store.pop_many([f"id-{rng.randrange(400)}" for _ in range(4)])
        waiting = np.flatnonzero(store._live)
        index = store._index_slot
        assert sorted(index.tolist()) == waiting.tolist()
        hashes = store._hash[index]
        assert (hashes[1:] >= hashes[:-1]).all()
        per_slot = sum(
            a.nbytes // len(store._live)
            for a in (store._live, store._hash, store._ids, store._id_len, store._at)
        ) + sum(
            a.nbytes // len(store._live) for a in (store._predicted, store._is_class, store._proba)
        )
        arrays = [v for k, v in vars(store).items() if isinstance(v, np.ndarray) and k != "_times"]
        assert sum(a.nbytes for a in arrays) == per_slot * len(store._live) + 4 * len(store)


# ---- probability rows held narrow ---------------------------------------------------------


def _bits(values: Sequence[float]) -> list[int]:
    return np.array(values, np.float64).view(np.int64).tolist()


# Values that a narrower type could lose: -0.0 (equal to 0.0, other bits), a NaN with other
# bits than numpy's, digits beyond four decimals or float32, the int16 range's ends.
_NEGATIVE_NAN = float(np.array(-np.nan))
proba_value = st.one_of(
    st.integers(0, 10_000).map(lambda k: k / 10_000),  # four decimals, as parsed
    st.integers(-32_767, 32_767).map(lambda k: k / 10_000),
    st.sampled_from([-0.0, 3.2768, -3.2768, 3.2767, 1e-5, 0.12345, 1 / 3, 1e300, math.inf]),
    st.floats(0, 1, width=32),  # float32 values
    st.floats(allow_nan=False),
)
proba_row = st.one_of(st.none(), st.lists(proba_value, min_size=1, max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.tuples(st.lists(proba_row, min_size=1, max_size=12), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_probability_rows_read_back_bit_for_bit(batches: list[tuple[list[Row], bool]]) -> None:
    """However the rows are held (four decimals in 16 bits, float32, float64, a store
    moving from one to the next as values come), `rows`, `saved` and `items` give back
    the float64 values given, bit for bit (-0.0 included), and a row of none as NaN; a
    checkpoint reloads to the same."""
    store = PendingPredictions(1000)
    given_rows: dict[str, Row] = {}
    for b, (rows, as_array) in enumerate(batches):
        keys = [f"{b}-{i}" for i in range(len(rows))]
        width = max((len(r) for r in rows if r), default=0)
        batch: Any = rows
        if as_array and width and None not in rows:
            batch = np.array([list(r or []) + [0.0] * (width - len(r or [])) for r in rows])
        store.add(keys, float(b), [0] * len(keys), batch)
        given_rows |= dict(zip(keys, rows, strict=True))
    width = max((len(r) for r in given_rows.values() if r), default=0)

    def expected(row: Row, wide: int, *, reloaded: bool) -> list[int]:
        if row is None:
            return _bits([np.nan] * wide)
        if reloaded:  # a checkpoint drops trailing zeros, -0.0 too
            row = list(row)
            while row and row[-1] == 0.0:
                row.pop()
        return _bits(list(row) + [0.0] * (wide - len(row)))

    # (a row of zeros only is saved as an empty row, read back as none or zeros: not
    # what is checked here)
    zeros_only = {k for k, r in given_rows.items() if r is not None and not any(r)}
    saved = store.saved()
    reloaded = PendingPredictions(1000)
    for key, at, value, row in saved:
        reloaded.add([key], at, [value], [row])
    for source in (store, reloaded):
        keys = [k for k in given_rows if source is store or k not in zeros_only]
        slots = source.pop_many(keys)
        assert None not in slots
        got = source.rows(cast("list[int]", slots), width + 1)
        for key, row_got in zip(keys, got, strict=True):
            want = expected(given_rows[key], width + 1, reloaded=source is reloaded)
            assert row_got.view(np.int64).tolist() == want, key
    for key, _, _, row_saved in saved:
        row = given_rows[key]
        if row is None or key in zeros_only:
            assert row_saved is None or not any(row_saved)
            continue
        trimmed = list(row)
        while trimmed[-1] == 0.0:
            trimmed.pop()
        assert row_saved is not None
        assert _bits(row_saved) == _bits(trimmed), key


def test_rows_of_four_decimals_take_two_bytes_a_class() -> None:
    """Probabilities of at most four decimals (as the memory benchmark's, and as many
    models log them) are held in 16 bits; a value with more digits moves the whole store
    to float32 if every value fits it, else to float64, every row reading back the same."""
    rows: list[Row] = [[0.1234, 0.5, 0.3766], [0.0, 1.0], None]
    store = PendingPredictions(100)
    store.add(["a", "b", "c"], 1.0, [0, 0, 1], rows)
    assert store._proba.dtype == np.int16
    assert store._proba.nbytes == 2 * 3 * len(store._live)
    as_float32 = float(np.float32(0.1))
    store.add(["d"], 2.0, [1], [[as_float32, 0.9]])
    assert store._proba.dtype == np.float64  # 0.1234 is no float32
    assert [row for *_, row in store.items()] == [*rows, [as_float32, 0.9]]

    narrow = PendingPredictions(100)
    narrow.add(["a", "b"], 1.0, [0, 1], [[0.5, 0.25], None])
    narrow.add(["c"], 2.0, [1], [[as_float32, 0.75]])
    assert narrow._proba.dtype == np.float32
    narrow.add(["d"], 3.0, [1], [[1 / 3, 0.5]])
    assert narrow._proba.dtype == np.float64
    assert [row for *_, row in narrow.items()] == [
        [0.5, 0.25],
        None,
        [as_float32, 0.75],
        [1 / 3, 0.5],
    ]


def test_hashes_kept_in_32_bits_still_tell_ids_apart() -> None:
    """The store keeps each hash's low 32 bits: ids whose hashes differ only above them
    (here every one) share a kept hash, and each still finds its own prediction, by its
    bytes; the ring's hashes take 4 bytes a slot."""

    def high_bits_only(keys: Sequence[str]) -> npt.NDArray[np.int64]:
        return np.array([(len(k) + 7 * ord(k[-1])) << 32 for k in keys], np.int64)

    store = PendingPredictions(100, hasher=high_bits_only)
    keys = [f"k{i}" for i in range(40)]
    store.add(keys, 1.0, list(range(40)), [None] * 40)
    assert store._hash.itemsize == 4
    assert len(set(store._hash.tolist())) == 1
    order = keys[::-1]
    slots = store.pop_many([*order[:20], "absent", *order[20:]])
    assert slots[20] is None
    found = [s for s in slots if s is not None]
    assert store.predicted(found) == [int(k[1:]) for k in order]


def test_arrival_times_held_as_codes_into_the_distinct_times() -> None:
    """A batch's arrival time is held once, each slot a 2-byte code to it; times given one
    per prediction (as a checkpoint loads them), equal ones sharing a code by their bits
    (-0.0 and 0.0 apart), read back bit for bit; beyond 65,536 distinct times waiting the
    store holds the times themselves, and expiry lets the same predictions go."""
    store = PendingPredictions(100_000)
    for b in range(50):
        store.add([f"b{b}-{i}" for i in range(20)], 1000.0 + b, [0] * 20, [None] * 20)
    assert store._at.itemsize == 2
    assert store._times is not None and store._n_times == 50
    odd = [0.0, -0.0, -0.0, 5e-324, 1999.0, 1000.0, 1000.0]
    store.add([f"odd{i}" for i in range(len(odd))], np.array(odd), [0] * len(odd), [None] * 7)
    ats = [at for _, at, _, _ in store.items()]
    expected = [1000.0 + b for b in range(50) for _ in range(20)] + odd
    assert _bits(ats) == _bits(expected)
    many = 70_000
    store.add(
        [f"t{i}" for i in range(many)], 2000.0 + np.arange(many) / 8, [0] * many, [None] * many
    )
    assert store._times is None and store._at.dtype == np.float64
    ats = [at for _, at, _, _ in store.items()]
    assert _bits(ats) == _bits(expected + (2000.0 + np.arange(many) / 8).tolist())
    assert store.expire(2000.0 + 60_000 / 8) == 1000 + len(odd) + 60_000
    assert next(key for key, *_ in store.items()) == "t60000"


def test_a_full_time_table_is_cut_to_the_times_still_waiting() -> None:
    """Once 65,536 distinct times were given, the table is cut to the times of the ids
    still waiting (slots joined and pushed out had codes of their own), and the times
    stay codes while the ones waiting fit."""
    store = PendingPredictions(30_000)
    for b in range(4):
        n = 20_000
        keys = [f"{b}-{i}" for i in range(n)]
        ats = 100_000.0 * b + np.arange(n)
        store.add(keys, ats, [0] * n, [None] * n)
        store.pop_many(keys[: n // 2])
    assert store._times is not None and store._at.itemsize == 2
    expected = [(f"{b}-{i}", 100_000.0 * b + i) for b in range(4) for i in range(10_000, 20_000)][
        -len(store) :
    ]
    assert [(k, at) for k, at, _, _ in store.items()] == expected

"""The compact pending store behaves as an ordered dict of predictions with the oldest
pushed out beyond capacity: checked against one, over random additions (repeated ids
included), joins and expiries that make it grow, compact and wrap around."""

from __future__ import annotations

import math
import random
from collections import OrderedDict

import pytest

from model_health_exporter.state.pending import PendingPredictions

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

"""A reference's categorical codes: one positions dict shared by every reference with
the same categories, a small table of codes per reference. Counts are checked against an
independent tally (each value's category key, its bin by `index_of`, unseen when the
reference keeps its categories and does not know it), not against the code tables."""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from model_health_exporter.state.shared_references import shared
from model_health_exporter.stats.profile import CategoricalProfile, NumericProfile, category_key
from model_health_exporter.stats.reference import (
    DriftCounts,
    ModelReference,
    _category_codes,
    build_reference,
)


def tally(
    reference: ModelReference, columns: Sequence[Sequence[Any]]
) -> dict[str, tuple[list[int], int, int]]:
    """Per categorical feature: bin counts, unseen, missing, as `add_columns` defines them
    (None missing; NaN neither counted nor missing)."""
    out = {}
    for (name, profile), column in zip(reference.features.items(), columns, strict=True):
        if not isinstance(profile, CategoricalProfile):
            continue
        known = reference.known_categories.get(name)
        bins, unseen, missing = [0] * profile.n_bins, 0, 0
        for value in column:
            if value is None:
                missing += 1
                continue
            key = category_key(value)
            if key is None:
                continue
            bins[profile.index_of(key)] += 1
            unseen += known is not None and key not in known
        out[name] = (bins, unseen, missing)
    return out


def counted(
    reference: ModelReference, counts: DriftCounts
) -> dict[str, tuple[list[int], int, int]]:
    return {
        name: (
            counts.feature_counts[i].tolist(),
            int(counts.unseen[i]),
            int(counts.missing[i]),
        )
        for i, (name, profile) in enumerate(reference.features.items())
        if isinstance(profile, CategoricalProfile)
    }


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - seeded test data


def sample(rng: random.Random, rows: int, categories: int, seed_order: int) -> list[dict[str, Any]]:
    """Numeric `x`, categorical `c` over `categories` strings weighted differently for
    each `seed_order` (so the top-K order differs between references)."""
    names = [f"c{i:04d}" for i in range(categories)]
    weights = seeded(seed_order).sample(range(10, categories + 10), categories)
    return [
        {"x": rng.gauss(0, 1), "c": rng.choices(names, weights)[0], "d": f"d{rng.randrange(4)}"}
        for _ in range(rows)
    ]


@pytest.mark.parametrize("categories", [30, 600])
def test_codes_count_as_an_independent_tally(categories: int) -> None:
    """600 known categories and top-K 20: positions that do not fit a byte (the table's
    positions, not the codes, decide the packing); 30: they do. Typed and plain columns,
    with unknown strings, None, and in plain columns numbers, booleans and NaN."""
    rng = seeded(5)
    reference = build_reference("jsonl", sample(rng, 3000, categories, 1), top_k=20)
    assert _category_codes(reference).byte_positions == (categories == 30)
    names = [f"c{i:04d}" for i in range(categories)]
    assert list(reference.features) == ["c", "d", "x"]
    typed_columns = [
        [rng.choice([*names, "never", None]) for _ in range(500)],
        [rng.choice(["d0", "d1", "zz", None]) for _ in range(500)],
        [rng.gauss(0, 1) for _ in range(500)],
    ]
    plain_columns = [
        [rng.choice([*names[:3], "never", None, 7, True, math.nan, 2.0]) for _ in range(500)],
        [rng.choice(["d0", None, False, 1.5]) for _ in range(500)],
        typed_columns[2],
    ]
    for columns, typed in ((typed_columns, True), (plain_columns, False)):
        counts = DriftCounts.empty(reference)
        counts.add_columns(reference, columns, typed=typed)
        counts.add_columns(reference, columns, typed=typed)
        expected = {
            name: ([2 * b for b in bins], 2 * unseen, 2 * missing)
            for name, (bins, unseen, missing) in tally(reference, columns).items()
        }
        assert counted(reference, counts) == expected


def test_references_with_the_same_categories_share_their_positions_and_known_tuples() -> None:
    """Two references over the same 30 categories in another order of frequency: one
    positions dict, one known-category tuple, each its own codes (their bins differ)."""
    a = build_reference("jsonl", sample(seeded(1), 1000, 30, 1), top_k=20)
    b = build_reference("jsonl", sample(seeded(2), 1000, 30, 2), top_k=20)
    assert a.features["c"] != b.features["c"]  # other top-K orders
    assert a.known_categories["c"] is b.known_categories["c"]
    assert a.known_categories["d"] is b.known_categories["d"]
    assert _category_codes(a).positions[0] is _category_codes(b).positions[0]
    assert not np.array_equal(_category_codes(a).table, _category_codes(b).table)
    # read back from their dicts (checkpoints) they share too, and equal what they were
    again = ModelReference.from_dict(a.to_dict())
    assert again == a and again.to_dict() == a.to_dict()
    assert again.known_categories["c"] is a.known_categories["c"]


def test_a_reference_s_codes_take_a_few_bytes_a_category() -> None:
    """20 references of 10 categorical features over the same 30 categories, each in its
    own order of frequency: the codes (built by a first block of values) take under 2
    KiB a reference, the positions shared by all of them included; a dict per feature
    took about 1.5 KiB a feature."""
    samples = [sample(seeded(i), 1000, 30, i) for i in range(20)]
    references = [
        build_reference(
            "jsonl", [{**{f"f{j}": row["c"] for j in range(10)}, "x": row["x"]} for row in rows]
        )
        for rows in samples
    ]
    columns = [["c0001"] for _ in range(10)] + [[0.0]]
    for reference in references:  # the layouts of their bins made and cached
        DriftCounts.empty(reference).add_columns(reference, columns, typed=True)
        reference._codes.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for reference in references:  # built again, as a first block of values builds them
            DriftCounts.empty(reference).add_columns(reference, columns, typed=True)
        gc.collect()
        per_reference = (tracemalloc.get_traced_memory()[0] - before) / len(references)
    finally:
        tracemalloc.stop()
    assert 0 < per_reference < 2048, per_reference


def test_no_categorical_features_and_a_profile_without_categories() -> None:
    """A reference with numeric features only has no codes; a categorical profile with
    no categories (every value in "other") counts every string there, unseen when the
    reference knows no category; a numeric feature with nothing but missing values."""
    numeric = build_reference("jsonl", [{"x": float(i), "y": float(-i)} for i in range(50)])
    codes = _category_codes(numeric)
    assert codes.names == () and codes.table.size == 0
    counts = DriftCounts.empty(numeric)
    counts.add_columns(numeric, [[1.0, None, 3.0], [None, None, None]], typed=True)
    assert counts.missing.tolist() == [1, 3]

    empty = CategoricalProfile(categories=(), counts=(10,), n=10)
    x = NumericProfile(
        edges=(0.0, 1.0), counts=(0, 10, 0), n=10, mean=0.5, std=0.1, minimum=0.0, maximum=0.9
    )
    for known in ({"c": ()}, {}):
        reference = ModelReference(
            source="profile",
            n=10,
            features=MappingProxyType({"c": empty, "x": x}),
            known_categories=MappingProxyType(known),
        )
        columns = [["a", None, "b", "a"], [None, math.nan, None, None]]
        for typed in (True, False):
            counts = DriftCounts.empty(reference)
            counts.add_columns(reference, columns, typed=typed)
            assert counted(reference, counts) == tally(reference, columns)
            assert counts.missing.tolist() == [1, 4]


def test_versions_sharing_a_reference_count_apart() -> None:
    """Two versions whose reference is the same object (`shared`): each window's counts
    are its own, each as the independent tally of its values."""
    rows = sample(seeded(3), 800, 30, 3)
    a = shared(build_reference("jsonl", rows, top_k=20))
    b = shared(build_reference("jsonl", rows, top_k=20))
    assert a is b
    rng = seeded(9)
    names = [f"c{i:04d}" for i in range(30)]
    first = [[rng.choice([*names, None]) for _ in range(40)], ["d1"] * 40, [0.5] * 40]
    second = [[rng.choice([*names, "new"]) for _ in range(40)], ["d9"] * 40, [0.5] * 40]
    ca, cb = DriftCounts.empty(a), DriftCounts.empty(b)
    ca.add_columns(a, first, typed=True)
    cb.add_columns(b, second, typed=True)
    assert counted(a, ca) == tally(a, first)
    assert counted(b, cb) == tally(b, second)

"""What a version's reference holds is shared with the other versions where it can be:
category strings are one object however many references name them, and the known
categories are a sorted tuple (their lookups go through the category codes)."""

from __future__ import annotations

import gc
import json
import weakref

import orjson

from model_health_exporter.records import Prediction
from model_health_exporter.state.shared_references import shared
from model_health_exporter.state.windows import LiveWindow, WindowConfig
from model_health_exporter.stats.reference import DriftCounts, ModelReference, build_reference


def rows(seed: int) -> list[dict[str, object]]:
    # decoded from JSON text, as a reference file is: new string objects every time
    text = json.dumps([{"city": f"c{(i * seed) % 7}", "x": float(i)} for i in range(60)])
    return orjson.loads(text)  # type: ignore[no-any-return] - a list of dicts by construction


def test_category_strings_are_shared_between_references() -> None:
    a = build_reference("jsonl", rows(1))
    b = build_reference("jsonl", rows(3))
    c = ModelReference.from_dict(json.loads(json.dumps(a.to_dict())))
    cats_a = a.features["city"].categories  # type: ignore[union-attr] - categorical
    for other in (b, c):
        cats = other.features["city"].categories  # type: ignore[union-attr]
        by_value = {s: s for s in cats}
        assert all(by_value[s] is s for s in cats_a if s in by_value)
        assert all(x is y for x, y in zip(sorted(cats_a), sorted(cats), strict=True))
    known = a.known_categories["city"]
    assert known == tuple(sorted(f"c{i}" for i in range(7)))
    assert all(k is x for k, x in zip(known, c.known_categories["city"], strict=True))


def test_known_categories_round_trip_and_count_unseen_values() -> None:
    reference = build_reference("jsonl", rows(1))
    saved = json.loads(json.dumps(reference.to_dict()))
    saved["known_categories"]["city"] = ["c1", "c0", "c1", *saved["known_categories"]["city"]]
    loaded = ModelReference.from_dict(saved)  # repeated and unsorted: as a set was
    assert loaded.known_categories == reference.known_categories
    counts = DriftCounts.empty(loaded)
    live = [{"city": "c2", "x": 1.0}, {"city": "nowhere", "x": 2.0}, {"city": 5, "x": 3.0}]
    counts.add_rows(
        loaded,
        [
            Prediction(f"r{i}", "a", None, None, None, None, None, features=r)
            for i, r in enumerate(live)
        ],
    )
    # "nowhere" and 5 (the category "5") were never in the reference
    assert int(counts.unseen[0]) == 2


def test_equal_references_are_one_object_until_no_version_uses_it() -> None:
    first = shared(build_reference("jsonl", rows(1)))
    again = build_reference("jsonl", rows(1))  # equal content, another object
    assert again is not first
    assert shared(again) is first
    other = build_reference("jsonl", rows(3))
    assert shared(other) is other
    window = LiveWindow(WindowConfig())
    window.set_reference(first)
    restored = LiveWindow(WindowConfig())
    restored.load(json.loads(json.dumps(window.to_dict())))  # from a checkpoint
    assert restored.reference is first
    key = weakref.ref(first)
    del first, again, window, restored
    gc.collect()
    assert key() is None  # released with the last version that used it
    fresh = build_reference("jsonl", rows(1))
    assert shared(fresh) is fresh

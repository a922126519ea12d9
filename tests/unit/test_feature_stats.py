"""`stats.feature_stats.FeatureTable`: a summary's per-feature statistics, read as the
nested dicts they replace, in less memory."""

from __future__ import annotations

import copy
import math
import pickle
import random
import tracemalloc
from typing import Any

import numpy as np
import pytest

from model_health_exporter.stats.feature_stats import FeatureStats, FeatureTable

NAN = float("nan")
STATS = {
    "missing_ratio": 0.0,
    "out_of_range_ratio": 0.0125,
    "psi": 0.0379,
    "js_distance": 0.07,
    "kl_divergence": 0.011,
    "ks_statistic": 0.04,
    "ks_statistic_error_bound": 0.001,
    "drift_p_value": 0.52,
    "wasserstein": 1.5,
    "drift_detected": 0.0,
}


def _plain(table: FeatureTable) -> dict[str, dict[str, float]]:
    return {name: dict(stats) for name, stats in table.items()}


def test_reads_as_the_dicts_it_was_made_of_without_the_none_values() -> None:
    given: dict[str, dict[str, Any]] = {
        "age": {"psi": 0.25, "wasserstein": None, "drift_detected": 1.0},
        "country": {"unseen_category_ratio": 0.5, "drift_p_value": np.float64(0.01)},
        "empty": {},
        "counted": {"missing_ratio": 1},  # an int, a numpy float: floats once read
    }
    table = FeatureTable(given)
    expected = {
        "age": {"psi": 0.25, "drift_detected": 1.0},
        "country": {"unseen_category_ratio": 0.5, "drift_p_value": 0.01},
        "empty": {},
        "counted": {"missing_ratio": 1.0},
    }
    assert _plain(table) == expected
    assert [dict(stats) for stats in table.values()] == list(expected.values())
    assert list(table) == ["age", "country", "empty", "counted"]  # the order given
    assert list(table["age"]) == ["psi", "drift_detected"]
    assert len(table) == 4 and len(table["age"]) == 2 and len(table["empty"]) == 0
    assert "age" in table and "height" not in table
    assert "psi" in table["age"] and "wasserstein" not in table["age"]
    assert table["country"]["drift_p_value"] == 0.01
    assert type(table["counted"]["missing_ratio"]) is float
    assert table["age"].get("psi") == 0.25
    assert table["age"].get("wasserstein") is None
    assert table["age"].get("wasserstein", 0.0) == 0.0
    assert table.get("height") is None
    assert list(table["age"].values()) == [0.25, 1.0]
    assert list(table["age"].items()) == [("psi", 0.25), ("drift_detected", 1.0)]
    assert table["age"].keys() == {"psi", "drift_detected"}
    with pytest.raises(KeyError):
        table["height"]
    with pytest.raises(KeyError):
        table["age"]["wasserstein"]


def test_random_tables_read_as_their_dicts() -> None:
    rng = random.Random(3)  # noqa: S311 - seeded test data
    for _ in range(200):
        given = {
            f"f{i}": {
                k: rng.choice([None, rng.random(), NAN, -0.0, math.inf])
                for k in rng.sample(list(STATS), rng.randint(0, len(STATS)))
            }
            for i in range(rng.randint(0, 25))
        }
        table = FeatureTable(given)
        expected = {f: {k: v for k, v in s.items() if v is not None} for f, s in given.items()}
        got = _plain(table)
        assert list(got) == list(expected)
        for name, stats in expected.items():
            assert list(got[name]) == list(stats)
            for key, value in stats.items():
                read = got[name][key]
                assert read == value or (math.isnan(read) and math.isnan(value))
                assert math.copysign(1, read) == math.copysign(1, value)


def test_equality_is_by_names_and_values_a_nan_equal_to_itself() -> None:
    given = {"a": {"psi": 0.1, "drift_p_value": NAN}, "b": {"drift_detected": 1.0}}
    table = FeatureTable(given)
    assert table == FeatureTable(dict(given))  # computed again: NaN and all
    assert table["a"] == FeatureTable(dict(given))["a"]
    assert table != FeatureTable({"a": {"psi": 0.1, "drift_p_value": 0.5}, "b": given["b"]})
    assert table != FeatureTable({"a": {"psi": 0.1}, "b": given["b"]})
    assert table == FeatureTable({"b": given["b"], "a": given["a"]})  # as dicts: any order
    assert table["a"] != table["b"]
    # against plain mappings, as dicts compare (a NaN that is not the same object differs)
    plain = {"a": {"psi": 0.1}, "b": {"drift_detected": 1.0}}
    assert FeatureTable(plain) == plain
    assert FeatureTable(plain)["b"] == {"drift_detected": 1.0}
    assert FeatureTable(plain) != {"a": {"psi": 0.2}, "b": {"drift_detected": 1.0}}


def test_copies_and_pickles_to_an_equal_table() -> None:
    table = FeatureTable({"a": dict(STATS), "b": {"drift_detected": 1.0}})
    copies = (pickle.loads(pickle.dumps(table)), copy.deepcopy(table), copy.copy(table))  # noqa: S301 - our own bytes
    for copied in copies:
        assert copied == table
        assert _plain(copied) == _plain(table)
    assert isinstance(table["a"], FeatureStats)
    assert pickle.loads(pickle.dumps(table["a"])) == dict(table["a"])  # noqa: S301 - our own bytes
    assert "FeatureTable({'a': {" in repr(table)


def test_takes_a_fraction_of_the_memory_of_dicts_of_floats() -> None:
    """What it is for: 100 summaries of 20 features with 10 statistics each, traced, in
    at most a quarter of the nested dicts' memory (about 540 bytes a feature as dicts)."""
    rng = random.Random(5)  # noqa: S311 - seeded test data

    def given() -> list[dict[str, dict[str, float]]]:
        return [
            {f"feature_{f}": {k: rng.random() for k in STATS} for f in range(20)}
            for _ in range(100)
        ]

    def traced(make: object) -> int:
        inputs = given()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            made = [make(x) for x in inputs]  # type: ignore[operator]
            size = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(made) == 100
        return size

    def as_dicts(x: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return {name: {k: float(v) + 0.0 for k, v in s.items()} for name, s in x.items()}

    dicts, tables = traced(as_dicts), traced(FeatureTable)
    assert dicts / 2000 > 450  # what a feature took as a dict of ten floats
    assert tables < dicts / 4, (tables, dicts)

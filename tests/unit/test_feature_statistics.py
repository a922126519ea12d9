"""The per-feature statistics of a drift report held as one array of doubles with shared
names (`FeatureStatistics`): read back as the dict of floats per feature they were made
from (every double bit for bit, in order), and small."""

from __future__ import annotations

import gc
import math
import random
import struct
import tracemalloc
from typing import Any

import pytest

from model_health_exporter.stats.reference import (
    DriftCounts,
    DriftSettings,
    build_reference,
    drift_reports,
)

SPECIAL = (0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308, 1.0 / 3)


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def as_dicts(features: Any) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """Every feature's statistics in their order, the values as their bits (NaN and -0.0
    compare as what they are)."""
    return [(name, [(k, bits(v)) for k, v in stats.items()]) for name, stats in features.items()]


def random_features(rng: random.Random) -> dict[str, dict[str, float | None]]:
    names = ["psi", "drift_p_value", "missing_ratio", "ks_statistic", "wasserstein", "x"]
    return {
        f"f{i}": {
            k: rng.choice([*SPECIAL, None, rng.gauss(0, 1e6), rng.random()])
            for k in rng.sample(names, rng.randrange(len(names) + 1))
        }
        for i in rng.sample(range(40), rng.randrange(25))
    }


@pytest.mark.parametrize("seed", range(30))
def test_statistics_read_back_as_the_dicts_of_floats_they_were_made_of(seed: int) -> None:
    from model_health_exporter.stats.reference import FeatureStatistics  # noqa: PLC0415 - new

    rng = random.Random(seed)  # noqa: S311 - seeded test data
    given = random_features(rng)
    table = FeatureStatistics(given)
    expected = {n: {k: float(v) for k, v in s.items() if v is not None} for n, s in given.items()}
    assert as_dicts(table) == as_dicts(expected)
    assert list(table) == list(expected) and len(table) == len(expected)
    for name, stats in expected.items():
        row = table[name]
        assert name in table and len(row) == len(stats) and list(row) == list(stats)
        assert [bits(row[k]) for k in stats] == [bits(v) for v in stats.values()]
        assert [bits(v) for v in dict(row).values()] == [bits(v) for v in stats.values()]
        assert "absent" not in row and row.get("absent") is None
        with pytest.raises(KeyError):
            row["absent"]
    assert "absent" not in table and table.get("absent") is None
    if not any(math.isnan(v) for s in expected.values() for v in s.values()):
        assert table == expected and expected == table


def window(seed: int) -> tuple[Any, DriftCounts]:
    rng = random.Random(seed)  # noqa: S311 - seeded test data

    def row() -> dict[str, Any]:
        return {
            **{f"n{j}": rng.gauss(j, 3) for j in range(10)},
            **{f"c{j}": f"C{rng.randrange(30)}" for j in range(10)},
        }

    reference = build_reference("jsonl", [row() for _ in range(1000)])
    counts = DriftCounts.empty(reference)
    rows = [row() for _ in range(500)]
    columns = [[r[name] for r in rows] for name in reference.features]
    counts.add_columns(reference, columns, typed=True)
    counts.rows = 500
    return reference, counts


def test_a_report_s_feature_statistics_take_under_3_kib_for_20_features() -> None:
    """20 features (half categorical), every statistic: a dict of floats per feature took
    about 10 KiB a report."""
    windows = [(*window(seed), DriftSettings()) for seed in range(10)]
    for _, counts, _ in windows:
        assert len(counts.feature_counts) == 20  # the counts' views made before, not traced
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [report.features for report in drift_reports(windows)]
        gc.collect()
        per_report = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert all(len(features) == 20 for features in kept)
    assert all(len(features["n0"]) >= 8 for features in kept)
    assert per_report < 3 * 1024, per_report

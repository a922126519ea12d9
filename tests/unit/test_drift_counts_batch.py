"""DriftCounts.add_rows tallies a batch column by column (C-level passes, codes per
category, numpy bins). Checked against counting the same rows one value at a time, by
the definitions: missing = absent or null, a string or boolean in a numeric feature is
an invalid type, categories keyed by `category_key`, unseen = not among the reference's."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from model_health_exporter.records import Prediction
from model_health_exporter.stats.estimation import expected_confusion
from model_health_exporter.stats.profile import NumericProfile, category_key
from model_health_exporter.stats.reference import DriftCounts, ModelReference, build_reference

CLASSES = ("a", "b", "c")


def reference_sample(rng: random.Random, n: int, labelled: bool) -> dict[str, Any]:
    features = []
    for _ in range(n):
        features.append(
            {
                "city": rng.choice(["Berlin", "Paris", "Rome", "Oslo", 3, 3.0]),
                "flag": rng.choice([True, False, 1, 0]),  # booleans are categories
                "size": None if rng.random() < 0.1 else rng.gauss(10, 3),
                "count": rng.randrange(0, 50),
                "many": f"k{rng.randrange(0, 1500)}",  # too many to remember them all
            }
        )
    labels = [rng.choice(CLASSES) for _ in range(n)]
    probabilities = []
    for label in labels:
        p = [rng.random() for _ in CLASSES]
        p[CLASSES.index(label)] += 1
        total = sum(p)
        probabilities.append({c: x / total for c, x in zip(CLASSES, p, strict=True)})
    return {
        "features": features,
        "labels": labels,
        "probabilities": probabilities,
        "confidences": [p[label] for p, label in zip(probabilities, labels, strict=True)],
        "actuals": [rng.choice(CLASSES) for _ in range(n)] if labelled else [],
    }


def live_rows(rng: random.Random, n: int, same_keys: bool) -> list[Prediction]:
    values: dict[str, list[Any]] = {
        "city": ["Berlin", "Paris", "Rome", "Oslo", "Lima", 3, 3.0, 7, True, None, 2.5],
        "flag": [True, False, 1, 0, 1.0, "true", None, "maybe"],
        "size": [None, 1.5, 10, 10.25, -100.0, 1e9, "12", True, "x"],
        "count": [0, 1, 49, 60, None, 3.5, False],
        "many": [f"k{i}" for i in range(0, 2000, 7)] + [None, 5],
        "extra": ["not", "in", "the", "reference"],
    }
    rows = []
    for i in range(n):
        names = list(values)
        if not same_keys:
            rng.shuffle(names)
            names = names[: rng.randrange(0, len(names) + 1)]
        features = {name: rng.choice(values[name]) for name in names}
        label = rng.choice([*CLASSES, "d"])
        p = [rng.random() for _ in CLASSES]
        total = sum(p)
        probabilities = (
            None if rng.random() < 0.2 else {c: x / total for c, x in zip(CLASSES, p, strict=True)}
        )
        confidence = None if rng.random() < 0.1 else rng.choice([0.0, rng.random()])
        rows.append(
            Prediction(
                f"r{i}",
                label,
                None,
                probabilities,
                confidence,
                None,
                None,
                features=None if not same_keys and rng.random() < 0.05 else features,
            )
        )
    return rows


def _no_nan(values: list[float]) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def count_one_by_one(reference: ModelReference, rows: list[Prediction]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": sum(r.features is not None for r in rows)}
    for name, profile in reference.features.items():
        bins = np.zeros(profile.n_bins, np.int64)
        missing = invalid = unseen = 0
        low, high = np.nan, np.nan
        known = reference.known_categories.get(name)
        for r in rows:
            value = None if r.features is None else r.features.get(name)
            if value is None:
                missing += 1
            elif isinstance(profile, NumericProfile):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    invalid += 1
                    continue
                bins[profile.bin_indices([float(value)])[0]] += 1
                low, high = np.fmin(low, value), np.fmax(high, value)
            else:
                key = category_key(value)
                assert key is not None
                bins[profile.index_of(key)] += 1
                unseen += known is not None and key not in known
        out[name] = (bins.tolist(), missing, invalid, unseen, _no_nan([low, high]))
    predicted = reference.prediction
    assert predicted is not None and not isinstance(predicted, NumericProfile)
    labels = np.zeros(predicted.n_bins, np.int64)
    for r in rows:
        if r.label is not None:
            labels[predicted.index_of(r.label)] += 1
    out["prediction_counts"] = labels.tolist()
    confidences = [r.confidence for r in rows if r.confidence is not None]
    assert reference.confidence is not None
    out["confidence_counts"] = reference.confidence.bin_counts(confidences).tolist()
    out["confidence_sum"], out["confidence_n"] = sum(confidences), len(confidences)
    return out


def tallied(reference: ModelReference, counts: DriftCounts) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": counts.rows}
    for i, name in enumerate(reference.features):
        out[name] = (
            counts.feature_counts[i].tolist(),
            int(counts.missing[i]),
            int(counts.invalid_type[i]),
            int(counts.unseen[i]),
            _no_nan(counts.minmax[i].tolist()),
        )
    assert counts.prediction_counts is not None and counts.confidence_counts is not None
    out["prediction_counts"] = counts.prediction_counts.tolist()
    out["confidence_counts"] = counts.confidence_counts.tolist()
    out["confidence_sum"], out["confidence_n"] = counts.confidence_sum, counts.confidence_n
    return out


@pytest.mark.parametrize("same_keys", [True, False])
def test_batch_tally_equals_counting_one_value_at_a_time(same_keys: bool) -> None:
    rng = random.Random(11)  # noqa: S311 - seeded test data
    sample = reference_sample(rng, 2000, labelled=False)
    reference = build_reference("jsonl", **sample)
    assert reference.known_categories.keys() == {"city", "flag"}  # "many" has too many
    rows = live_rows(rng, 3000, same_keys)
    counts = DriftCounts.empty(reference)
    for start in range(0, len(rows), 1000):  # as the window flushes them
        counts.add_rows(reference, rows[start : start + 1000])
    expected = count_one_by_one(reference, rows)
    got = tallied(reference, counts)
    assert got.pop("confidence_sum") == pytest.approx(expected.pop("confidence_sum"))
    assert got == expected
    estimates = [r.confidence for r in rows if r.label is not None and r.confidence]
    assert counts.calibrated_confidence_n == len(estimates)
    assert counts.calibrated_confidence_sum == pytest.approx(sum(estimates))


def test_calibrated_estimate_equals_row_by_row() -> None:
    rng = random.Random(5)  # noqa: S311 - seeded test data
    reference = build_reference("jsonl", **reference_sample(rng, 2000, labelled=True))
    calibrator = reference.calibrator
    assert calibrator is not None
    rows = live_rows(rng, 500, same_keys=True)
    counts = DriftCounts.empty(reference)
    counts.add_rows(reference, rows)
    index = {c: i for i, c in enumerate(calibrator.classes)}
    expected = np.zeros((len(index), len(index)))
    n = 0
    for r in rows:
        if r.probabilities is None or r.label not in index:
            continue
        row = np.array([[r.probabilities.get(c, 0.0) for c in calibrator.classes]])
        row /= row.sum()
        expected += expected_confusion([index[r.label]], calibrator.apply(row), len(index))
        n += 1
    assert counts.expected is not None
    assert counts.expected_n == n
    np.testing.assert_allclose(counts.expected, expected)

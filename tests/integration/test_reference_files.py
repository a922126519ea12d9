"""Reference files next to metrics.json, read by the running daemon: which one is used,
and a broken one is counted and logged while the previous reference stays in use."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from model_health_exporter.cli import main
from tests.support import write_json

pytestmark = pytest.mark.integration

REFERENCE_CHECK_S = 10.0  # the ingester looks at reference files every 10 s


def _csv(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data
    lines = ["x,segment,prediction,confidence,actual"]
    for _ in range(rows):
        label = rng.choice("ab")
        lines.append(f"{rng.gauss(0, 1):.3f},{rng.choice('pqr')},{label},0.8,{label}")
    path.write_text("\n".join(lines) + "\n")


def _predictions(path: Path, n: int, shift: float, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - test data
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for i in range(n):
            record = {
                "id": f"{seed}-{i}",
                "features": {"x": rng.gauss(shift, 1), "segment": rng.choice("pqr")},
                "prediction": "a",
                "confidence": 0.8,
            }
            f.write(json.dumps(record) + "\n")


def test_csv_reference_used_and_a_broken_one_keeps_it(start_daemon: Any, tmp_path: Path) -> None:
    version = tmp_path / "models" / "m" / "v1"
    write_json(version / "metrics.json", {"accuracy": 0.9})
    _csv(version / "reference.csv", 2000, seed=1)
    _predictions(version / "predictions" / "p.jsonl", 500, shift=0.0, seed=2)
    d = start_daemon(f"--models.dir={tmp_path / 'models'}", "--logs.poll-interval=0.05")
    labels = {"model": "m", "version": "v1"}
    d.wait_value("routing_ml_reference_info", 1, source="csv", **labels)
    d.wait_value("routing_ml_window_samples", 500, kind="features", **labels)
    assert d.value("routing_ml_reference_samples", **labels) == 2000
    assert d.value("routing_ml_feature_drift_detected", feature="x", **labels) == 0

    (version / "reference.csv").write_text("")  # truncated by a bad copy
    d.wait_value(
        "routing_ml_exporter_errors_total",
        1,
        timeout=REFERENCE_CHECK_S + 10,
        source="reference",
        reason="invalid_row",
    )
    _predictions(version / "predictions" / "p.jsonl", 500, shift=1.0, seed=3)
    d.wait_value("routing_ml_window_samples", 1000, kind="features", **labels)
    assert d.value("routing_ml_reference_info", source="csv", **labels) == 1  # kept
    assert d.value("routing_ml_reference_samples", **labels) == 2000
    d.wait_value("routing_ml_feature_drift_detected", 1, feature="x", **labels)
    assert "reference unusable" in d.log()


def test_profile_wins_and_without_files_the_first_predictions_are_the_reference(
    start_daemon: Any, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    with_profile, without = models / "m" / "v1", models / "m" / "v2"
    write_json(with_profile / "metrics.json", {"accuracy": 0.9})
    write_json(without / "metrics.json", {"accuracy": 0.9})
    sample = tmp_path / "sample.csv"
    _csv(sample, 1000, seed=4)
    assert (
        main(
            ["reference", "build", str(sample), "-o", str(with_profile / "reference_profile.json")]
        )
        == 0
    )
    _csv(with_profile / "reference.csv", 10, seed=5)  # ignored: the profile wins
    for folder in (with_profile, without):
        _predictions(folder / "predictions" / "p.jsonl", 300, shift=0.0, seed=6)
    d = start_daemon(
        f"--models.dir={models}", "--logs.poll-interval=0.05", "--drift.reference-predictions=200"
    )
    d.wait_value("routing_ml_reference_info", 1, source="profile", model="m", version="v1")
    assert d.value("routing_ml_reference_samples", model="m", version="v1") == 1000
    d.wait_value("routing_ml_reference_info", 1, source="predictions", model="m", version="v2")
    assert d.value("routing_ml_reference_samples", model="m", version="v2") == 200
    # The reference's own rows are not compared with themselves.
    d.wait_value("routing_ml_window_samples", 100, kind="features", model="m", version="v2")


def test_features_beyond_max_features_are_counted_as_dropped(
    start_daemon: Any, tmp_path: Path
) -> None:
    """A reference file with 2 features and one built from predictions with 2, under
    --drift.max-features=1: one feature of each is left out of drift and counted."""
    models = tmp_path / "models"
    from_file, from_predictions = models / "m" / "v1", models / "m" / "v2"
    write_json(from_file / "metrics.json", {"accuracy": 0.9})
    write_json(from_predictions / "metrics.json", {"accuracy": 0.9})
    _csv(from_file / "reference.csv", 500, seed=6)  # features x and segment
    d = start_daemon(
        f"--models.dir={models}",
        "--logs.poll-interval=0.05",
        "--drift.max-features=1",
        "--drift.reference-predictions=200",
    )
    # v2 has no predictions yet: this is v1's reference file
    d.wait_value("routing_ml_exporter_dropped_total", 1, limit="max_features")
    _predictions(from_predictions / "predictions" / "p.jsonl", 300, shift=0.0, seed=7)
    d.wait_value("routing_ml_reference_info", 1, source="predictions", model="m", version="v2")
    d.wait_value("routing_ml_exporter_dropped_total", 2, limit="max_features")

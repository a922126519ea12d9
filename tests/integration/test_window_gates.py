"""Window statistics through the running daemon: nothing is served, and nothing scored,
from fewer than `--logs.window-min-samples` compared predictions."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import RunningDaemon, write_json

pytestmark = pytest.mark.integration
Start = Callable[..., RunningDaemon]
V = {"model": "m", "version": "v1"}
FAST = ("--logs.poll-interval=0.05", "--logs.checkpoint-interval=0.2")
QUALITY = (
    "routing_ml_feature_missing_ratio",
    "routing_ml_feature_out_of_range_ratio",
    "routing_ml_feature_unseen_category_ratio",
)


def _reference(path: Path) -> None:
    rng = random.Random(7)  # noqa: S311 - test data
    lines = ["x,segment,prediction,confidence"]
    lines += [f"{rng.gauss(0, 1):.3f},{rng.choice('pqr')},a,0.8" for _ in range(500)]
    path.write_text("\n".join(lines) + "\n")


def _append(path: Path, features: list[dict[str, object]], start: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for i, row in enumerate(features, start):
            record = {"id": f"r{i}", "features": row, "prediction": "a", "confidence": 0.8}
            f.write(json.dumps(record) + "\n")


def test_quality_ratios_and_their_health_check_wait_for_the_minimum_window(
    tmp_path: Path, start_daemon: Start
) -> None:
    version = tmp_path / "models/m/v1"
    write_json(version / "metrics.json", {"accuracy": 0.9})
    _reference(version / "reference.csv")
    log = version / "predictions/p.jsonl"
    # three predictions, one with a null feature, one out of range, one unseen category
    _append(
        log,
        [
            {"x": None, "segment": "p"},
            {"x": 99.0, "segment": "q"},
            {"x": 0.1, "segment": "zz"},
        ],
        0,
    )
    d = start_daemon(f"--models.dir={tmp_path / 'models'}", "--logs.window-min-samples=20", *FAST)
    d.wait_value("routing_ml_window_samples", 3, kind="features", **V)
    d.wait_value("routing_ml_reference_info", 1, source="csv", **V)
    samples = d.samples()
    served = [name for (name, _labels) in samples if name in QUALITY]
    assert served == [], f"quality ratios served from 3 predictions: {served}"
    assert d.value("routing_ml_model_health_check_score", check="data_quality", **V) is None
    assert d.value("routing_ml_model_health_check_weight", check="data_quality", **V) == 0

    # from the minimum on, the ratios are served and scored
    _append(log, [{"x": 0.0, "segment": "p"}] * 17, 3)
    d.wait_value("routing_ml_window_samples", 20, kind="features", **V)
    d.wait_value("routing_ml_feature_missing_ratio", 1 / 20, feature="x", **V)
    assert d.value("routing_ml_feature_out_of_range_ratio", feature="x", **V) == 1 / 20
    assert d.value("routing_ml_feature_unseen_category_ratio", feature="segment", **V) == 1 / 20
    assert d.value("routing_ml_model_health_check_score", check="data_quality", **V) is not None

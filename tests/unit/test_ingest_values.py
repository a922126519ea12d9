"""Values that would overflow a sum (a latency of 1e308 s, a regression output of
1e300) are rejected with their own reason, and a checkpoint that already holds an
infinite or NaN sum does not keep it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from model_health_exporter.state.ingest import ERROR_SOURCE
from tests.support import good_metrics, write_json
from tests.unit.test_ingest_batches import KEY, line, make_worker


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions").mkdir()
    return root


def test_overflowing_latencies_are_rejected_and_counted(root: Path) -> None:
    (root / "m/v1/predictions/p.jsonl").write_bytes(
        line({"id": "a", "prediction": "x", "latency_seconds": 1e308})
        + line({"id": "b", "prediction": "x", "latency_seconds": 1e308})
        + line({"id": "c", "prediction": "x", "latency_ms": 1e307})
        + line({"id": "d", "prediction": "x", "latency_seconds": 0.25})
    )
    worker, errors = make_worker(root)
    assert worker.poll_once() == 4
    view = worker.tallies[KEY]
    assert view.predictions == 1
    assert view.latency_sum == 0.25
    assert view.latency[-1] == (math.inf, 1)
    assert errors.values()[(ERROR_SOURCE, "invalid_latency")] == 3


def test_overflowing_regression_values_and_features_are_rejected(root: Path) -> None:
    (root / "m/v1/predictions/p.jsonl").write_bytes(
        b"".join(line({"id": f"r{i}", "prediction": 1e300}) for i in range(3))
        + line({"id": "ok", "prediction": 2.0, "features": {"x": 1e250}})
        + line({"id": "ok", "actual": 1e300})
        + b"".join(line({"id": f"g{i}", "prediction": 1.0 + i}) for i in range(3))
        + b"".join(line({"id": f"g{i}", "actual": 1.5 + i}) for i in range(3))
    )
    worker, errors = make_worker(root)
    assert worker.poll_once() == 11
    view = worker.tallies[KEY]
    assert (view.predictions, view.feedback) == (3, 3)
    assert errors.values()[(ERROR_SOURCE, "invalid_number")] == 5
    assert view.feedback_matched == 3
    assert all(math.isfinite(v) for v in view.window.metrics.values())


def test_a_checkpoint_holding_an_infinite_sum_recovers(root: Path, tmp_path: Path) -> None:
    log = root / "m/v1/predictions/p.jsonl"
    log.write_bytes(line({"id": "a", "prediction": "x", "latency_seconds": 0.5}))
    state = tmp_path / "state"
    worker, _ = make_worker(root, state_dir=state)
    worker.poll_once()
    worker.save_checkpoint()
    path = state / "checkpoint.json"
    saved = json.loads(path.read_bytes())
    # as a version without the bounds saved it after two latencies of 1e308
    saved["tallies"]["m/v1"]["latency"]["sum"] = math.inf
    saved["tallies"]["m/v1"]["latency"]["counts"][-1] += 2
    saved["tallies"]["m/v1"]["predictions"] += 2
    saved["tallies"]["m/v1"]["confidence"]["sum"] = math.nan
    for window in saved["windows"].values():
        for bucket in window["buckets"]:
            bucket["tallies"][2] = math.inf
    path.write_text(json.dumps(saved))  # json writes them as Infinity and NaN
    with log.open("ab") as f:
        f.write(line({"id": "b", "prediction": "x", "latency_seconds": 0.25}))
    restored, _ = make_worker(root, state_dir=state)
    assert restored.poll_once() == 1
    view = restored.tallies[KEY]
    assert view.predictions == 4  # the counter itself was sound
    assert view.latency_sum == 0.25  # the histogram started over
    assert view.latency[-1] == (math.inf, 1)
    assert math.isfinite(view.confidence_sum)
    latency_mean = view.window.metrics.get("latency_mean_seconds")
    assert latency_mean is None or math.isfinite(latency_mean)

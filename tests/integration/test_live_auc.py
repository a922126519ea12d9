"""Live ROC AUC through the running daemon against scikit-learn on the raw scores, for a
confident model (most scores within 0.02 of 0 or 1), with its exported error bound."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]  # no stubs

from tests.support import RunningDaemon, wait_until, write_json

pytestmark = pytest.mark.integration
Start = Callable[..., RunningDaemon]
V = {"model": "m", "version": "v1"}
ROWS = 3_000


@pytest.mark.parametrize("sharpness", [6.0, 10.0])
def test_live_auc_of_a_confident_model_matches_scikit_learn(
    tmp_path: Path, start_daemon: Start, sharpness: float
) -> None:
    rng = np.random.default_rng(int(sharpness))
    z = rng.standard_normal(ROWS)
    scores = 1 / (1 + np.exp(-sharpness * z))
    actual = rng.random(ROWS) < 1 / (1 + np.exp(-1.5 * z))
    version = tmp_path / "models/m/v1"
    write_json(version / "metrics.json", {"accuracy": 0.9})
    (version / "predictions").mkdir()
    (version / "feedback").mkdir()
    with (version / "predictions/p.jsonl").open("w") as f:
        for i, p in enumerate(scores.tolist()):
            probabilities = {"a": 1 - p, "b": p}
            label = "b" if p >= 0.5 else "a"
            f.write(
                json.dumps({"id": f"r{i}", "prediction": label, "probabilities": probabilities})
            )
            f.write("\n")
    with (version / "feedback/f.jsonl").open("w") as f:
        for i, y in enumerate(actual.tolist()):
            f.write(json.dumps({"id": f"r{i}", "actual": "b" if y else "a"}) + "\n")
    d = start_daemon(f"--models.dir={tmp_path / 'models'}", "--logs.poll-interval=0.05")
    d.wait_value("routing_ml_window_samples", ROWS, kind="labelled", timeout=30, **V)
    served = wait_until(lambda: d.value("routing_ml_live_auc_roc", **V), 10, "live AUC")
    bound = d.value("routing_ml_live_auc_roc_error_bound", **V)
    exact = float(roc_auc_score(actual, scores))
    assert bound is not None and bound <= 0.005
    assert abs(served - exact) <= bound + 1e-9, (served, exact, bound)

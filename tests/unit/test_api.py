from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_health_exporter import load_model_metrics, save_model_metrics


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    path = save_model_metrics(tmp_path / "v1", {"accuracy": 0.92, "training_samples": 1500})
    assert path == tmp_path / "v1/metrics.json"
    loaded = load_model_metrics(tmp_path / "v1")
    assert loaded["accuracy"] == 0.92
    assert "generated_at" in loaded  # added when missing
    assert [p.name for p in (tmp_path / "v1").iterdir()] == ["metrics.json"]  # no temp left


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    save_model_metrics(tmp_path, {"accuracy": 0.9})
    with pytest.raises(FileExistsError):
        save_model_metrics(tmp_path, {"accuracy": 0.8})
    save_model_metrics(tmp_path, {"accuracy": 0.8}, overwrite=True)
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == 0.8


def test_save_rejects_invalid_metrics_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="accuracy"):
        save_model_metrics(tmp_path, {"accuracy": 1.5})
    with pytest.raises(ValueError, match="accuracy"):
        save_model_metrics(tmp_path, {"accuracy": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_model_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text("{broken")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_model_metrics(tmp_path)

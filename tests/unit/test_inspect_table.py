"""`inspect MODELS_DIR` in a terminal: bad files are named, counted and gate quality."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model_health_exporter.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES / "routing", root / "routing")
    return root


def test_bad_files_are_named_and_counted(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (models / "routing" / "production-v1" / "metrics.json").write_text('{"accuracy": 7}')
    with (models / "routing" / "production-v3" / "predictions" / "predictions.jsonl").open(
        "a"
    ) as f:
        f.write("garbage\n")
    assert main(["inspect", str(models)]) == 0
    out, err = capsys.readouterr()
    assert "production-v1          NO (below)" in out
    assert "production-v1: metrics.json invalid: invalid_value: accuracy:" in out
    assert "metrics_file/invalid_value 1; prediction_log/invalid_json 1" in out
    assert "predictions.jsonl" in err  # the log line names the file, on stderr
    assert "predictions 40;" in out  # the good lines still counted


def test_an_invalid_active_version_fails_quality(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(models), "--fail-on", "quality"]) == 0
    (models / "routing" / "production-v3" / "metrics.json").write_text("{")
    assert main(["inspect", str(models), "--fail-on", "quality"]) == 1
    out = capsys.readouterr().out
    assert "check quality: FAILED (--fail-on)" in out
    assert "routing/production-v3: metrics.json invalid" in out

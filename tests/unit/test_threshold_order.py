"""Quality thresholds in the wrong order (warning beyond critical) are rejected with a
message naming the metric, the values and the direction, wherever they are written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from model_health_exporter.cli import main
from model_health_exporter.config import ConfigError, load_settings
from model_health_exporter.schema import InvalidFileError, parse_baseline, parse_metrics


def baseline(**levels: dict[str, float]) -> bytes:
    return json.dumps({"quality_thresholds": levels}).encode()


def test_inverted_accuracy_levels_are_rejected() -> None:
    with pytest.raises(InvalidFileError) as caught:
        parse_baseline(baseline(accuracy={"warning": 0.7, "critical": 0.9}))
    assert caught.value.reason == "invalid_value"
    message = caught.value.message
    assert "accuracy: warning 0.7 is below critical 0.9" in message
    assert "higher accuracy is better" in message


def test_error_metrics_are_ordered_the_other_way() -> None:
    ok = parse_baseline(baseline(log_loss={"target": 0.2, "warning": 0.3, "critical": 0.5}))
    assert ok.quality_thresholds["log_loss"].critical == 0.5
    for metric in ("log_loss", "mae", "mse", "rmse", "mape", "smape"):
        with pytest.raises(InvalidFileError) as caught:
            parse_baseline(baseline(**{metric: {"warning": 0.5, "critical": 0.3}}))
        assert f"{metric}: warning 0.5 is above critical 0.3" in caught.value.message
        assert "lower" in caught.value.message


def test_target_must_be_on_the_good_side_of_warning() -> None:
    with pytest.raises(
        InvalidFileError, match=re.escape("f1_score: target 0.8 is below warning 0.85")
    ):
        parse_baseline(baseline(f1={"target": 0.8, "warning": 0.85}))
    with pytest.raises(
        InvalidFileError, match=re.escape("accuracy: target 0.7 is below critical 0.8")
    ):
        parse_baseline(baseline(accuracy={"target": 0.7, "critical": 0.8}))  # no warning given


def test_ordered_and_equal_levels_pass() -> None:
    parsed = parse_baseline(baseline(accuracy={"target": 0.9, "warning": 0.8, "critical": 0.8}))
    assert parsed.quality_thresholds["accuracy"].warning == 0.8


def test_check_refuses_inverted_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"accuracy": 0.95}))
    thresholds = tmp_path / "baseline_metrics.json"
    thresholds.write_bytes(baseline(accuracy={"warning": 0.7, "critical": 0.9}))
    argv = ["check", "--baseline", str(metrics), "--candidate", str(metrics)]
    assert main([*argv, "--thresholds", str(thresholds)]) == 2
    err = capsys.readouterr().err
    assert str(thresholds) in err
    assert "accuracy: warning 0.7 is below critical 0.9" in err
    assert main(["validate", str(thresholds)]) == 1
    assert "accuracy: warning 0.7 is below critical 0.9" in capsys.readouterr().out


def test_check_refuses_levels_inverted_against_a_kept_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only a warning level: the built-in critical (0.80 for accuracy) stays, above it.
    metrics = tmp_path / "metrics.json"
    good = {"accuracy": 0.95, "precision_weighted": 0.9, "recall_weighted": 0.9, "f1_weighted": 0.9}
    metrics.write_text(json.dumps(good))
    thresholds = tmp_path / "baseline_metrics.json"
    thresholds.write_bytes(baseline(accuracy={"warning": 0.75}))
    argv = ["check", "--baseline", str(metrics), "--candidate", str(metrics)]
    assert main([*argv, "--thresholds", str(thresholds)]) == 2
    err = capsys.readouterr().err
    assert f"{thresholds} with the built-in defaults: accuracy: warning 0.75 is below" in err
    assert "critical 0.8" in err
    thresholds.write_bytes(baseline(accuracy={"warning": 0.75, "critical": 0.7}))
    assert main([*argv, "--thresholds", str(thresholds)]) == 0


def test_config_baselines_are_checked_too(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "baselines:\n"
        "  defaults:\n    quality_thresholds:\n      accuracy: {warning: 0.7, critical: 0.9}\n"
        "  models:\n    fraud:\n      quality_thresholds:\n        mae: {warning: 5, critical: 2}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({}, config)
    problems = "\n".join(caught.value.problems)
    assert "accuracy: warning 0.7 is below critical 0.9" in problems
    assert "mae: warning 5 is above critical 2" in problems


def test_a_wrong_type_names_the_value_once() -> None:
    with pytest.raises(InvalidFileError) as caught:
        parse_metrics(b'{"accuracy": "high"}')
    assert caught.value.message == "accuracy: expected a number, got str 'high'"

"""`check` against the documented expected outputs, and `validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_health_exporter.cli import main

BASELINE = {
    "accuracy": 0.92,
    "precision_weighted": 0.89,
    "recall_weighted": 0.91,
    "f1_weighted": 0.90,
}
# the documented "Expected Output (degraded model)"
DEGRADED = {
    "accuracy": 0.86,
    "precision_weighted": 0.81,
    "recall_weighted": 0.83,
    "f1_weighted": 0.82,
}


def write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_good_model_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path / "v1/metrics.json", BASELINE)
    assert main(["check", "--baseline", str(base), "--candidate", str(base)]) == 0
    out = capsys.readouterr().out
    assert "accuracy = 0.920 (baseline 0.920, +0.0%)" in out
    assert "PASS" in out


def test_seed_degraded_example_warns_exactly_where_the_seed_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path / "v1/metrics.json", BASELINE)
    cand = write(tmp_path / "v3/metrics.json", DEGRADED)
    # version folders are accepted as well as file paths
    rc = main(
        [
            "check",
            "--baseline",
            str(base.parent),
            "--candidate",
            str(cand.parent),
            "--format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    severities = {f["metric"]: f["severity"] for f in report["findings"]}
    assert severities == {
        "accuracy": "ok",
        "precision_weighted": "warning",
        "recall_weighted": "warning",
        "f1_score": "warning",
    }
    change = {f["metric"]: f["change_ratio"] for f in report["findings"]}
    assert change["precision_weighted"] == pytest.approx(-0.08 / 0.89)  # seed: -9.0%
    # the same candidate passes a gate that fails only on critical
    assert (
        main(["check", "--baseline", str(base), "--candidate", str(cand), "--fail-on", "critical"])
        == 0
    )


def test_critical_breach_and_custom_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path / "a.json", BASELINE)
    cand = write(tmp_path / "b.json", {**BASELINE, "accuracy": 0.79})
    assert (
        main(["check", "--baseline", str(base), "--candidate", str(cand), "--fail-on", "critical"])
        == 1
    )
    assert "CRITICAL accuracy = 0.790" in capsys.readouterr().out
    thresholds = write(
        tmp_path / "baseline_metrics.json",
        {"quality_thresholds": {"accuracy": {"warning": 0.7, "critical": 0.6}}},
    )
    assert (
        main(
            [
                "check",
                "--baseline",
                str(base),
                "--candidate",
                str(cand),
                "--thresholds",
                str(thresholds),
            ]
        )
        == 0
    )


def test_missing_metric_in_candidate_fails_a_warning_gate(tmp_path: Path) -> None:
    base = write(tmp_path / "a.json", BASELINE)
    cand = write(tmp_path / "b.json", {"accuracy": 0.95})
    assert main(["check", "--baseline", str(base), "--candidate", str(cand)]) == 1


@pytest.mark.parametrize("bad", ["missing", "broken"])
def test_check_input_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    base = write(tmp_path / "a.json", BASELINE)
    cand = tmp_path / "b.json"
    if bad == "broken":
        cand.write_text("{not json")
    assert main(["check", "--baseline", str(base), "--candidate", str(cand)]) == 2
    assert str(cand) in capsys.readouterr().err


def test_check_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", "--baseline", "x"])
    assert exc.value.code == 2


def test_validate_reports_each_problem_once_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "m/v1/metrics.json", BASELINE)
    (tmp_path / "m/v2").mkdir()
    (tmp_path / "m/v2/metrics.json").write_text('{"accuracy": 1.7}')
    (tmp_path / "m/baseline_metrics.json").write_text('{"quality_thresholds": {"nope": {}}}')
    assert main(["validate", str(tmp_path), str(tmp_path / "absent")]) == 2  # a missing path
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert any("m/v2/metrics.json: invalid_value: accuracy" in line for line in lines)
    assert any("baseline_metrics.json: invalid_type" in line for line in lines)
    assert any("absent: does not exist" in line for line in lines)


def test_validate_all_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "v1/metrics.json", BASELINE)
    assert main(["validate", str(tmp_path / "v1/metrics.json")]) == 0
    assert "1 file(s) valid" in capsys.readouterr().out


def test_validate_shipped_examples() -> None:
    examples = Path(__file__).parents[2] / "examples/models"
    assert main(["validate", str(examples)]) == 0

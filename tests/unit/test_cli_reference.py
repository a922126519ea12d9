"""`model-health-exporter reference build` and the reference files it reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_health_exporter.cli import main
from model_health_exporter.sources.reference import ReferenceRows, read_reference
from model_health_exporter.stats.profile import CategoricalProfile, NumericProfile
from model_health_exporter.stats.reference import ModelReference

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
JSONL = EXAMPLES / "routing" / "production-v3" / "reference.jsonl"
CSV = EXAMPLES / "fraud" / "2026-11-01" / "reference.csv"


def test_builds_a_profile_from_the_example_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reference_profile.json"
    assert main(["reference", "build", str(JSONL), "-o", str(out)]) == 0
    assert "1000 rows, 3 features" in capsys.readouterr().out
    profile = ModelReference.from_dict(json.loads(out.read_text()), source="profile")
    assert set(profile.features) == {"DURATION_MIN", "ITEM_CD", "QTY"}
    qty = profile.features["QTY"]
    assert isinstance(qty, NumericProfile)
    values = [json.loads(line)["features"]["QTY"] for line in JSONL.read_text().splitlines()]
    assert qty.n == len(values)
    assert qty.mean == pytest.approx(np.mean(values))
    assert qty.std == pytest.approx(np.std(values))
    assert (qty.minimum, qty.maximum) == (min(values), max(values))
    assert isinstance(profile.features["ITEM_CD"], CategoricalProfile)
    assert profile.calibrator is not None  # labelled rows with probabilities
    assert profile.latency_mean is not None


def test_builds_from_csv_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    assert main(["reference", "build", str(CSV), "-o", str(out)]) == 0
    profile = ModelReference.from_dict(json.loads(out.read_text()))
    assert set(profile.features) == {"amount", "country", "merchant_category"}
    assert profile.source == "csv"
    assert main(["reference", "build", str(CSV), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["reference", "build", str(CSV), "-o", str(out), "--force"]) == 0


def test_bad_rows_are_skipped_and_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "reference.jsonl"
    data.write_text(
        '{"features": {"x": 1.0}, "prediction": "a", "confidence": 0.9, "actual": "a"}\n'
        "not json\n"
        '{"features": {"x": [1]}, "prediction": "a"}\n'
        '{"features": {"x": 2.0}, "actual": "b"}\n'
    )
    rows = read_reference(data)
    assert isinstance(rows, ReferenceRows)
    assert (len(rows), rows.skipped) == (2, 2)
    assert rows.first_problem is not None
    assert rows.first_problem.startswith("line 2: invalid JSON")
    assert main(["reference", "build", str(data), "-o", str(tmp_path / "p.json")]) == 0
    assert "skipped 2 invalid rows (first: line 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("reference.jsonl", "nothing usable\n", "no usable rows"),
        ("reference.csv", "", "no header row"),
        ("reference.csv", b"x\n\xff\xfe\n", "not UTF-8"),
    ],
)
def test_unusable_input_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes,
    message: str,
) -> None:
    data = tmp_path / name
    if isinstance(content, bytes):
        data.write_bytes(content)
    else:
        data.write_text(content)
    assert main(["reference", "build", str(data), "-o", str(tmp_path / "p.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reference", "build", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "p")]) == 2
    assert "cannot read" in capsys.readouterr().err

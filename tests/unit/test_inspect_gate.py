"""`model-health-exporter inspect --reference REF --current CUR`: the drift gate.

The flagged features are checked against scipy on the raw data (KS two-sample test for
numeric features, chi-square test of homogeneity for categorical ones, Benjamini-Hochberg
over all of them, 0.01), computed here independently of our code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import structlog
from scipy import stats as sps

from model_health_exporter.cli import main

NUMERIC = [f"num_{i:02d}" for i in range(12)]
CATEGORICAL = ["cat_a", "cat_b", "cat_c"]
CATEGORIES = ["red", "green", "blue", "amber", "grey"]
P_REFERENCE = [0.30, 0.25, 0.20, 0.15, 0.10]
P_SHIFTED = [0.22, 0.25, 0.20, 0.15, 0.18]
SHIFTED = {"num_03", "cat_b"}  # 2 of 15


def _write_csv(path: Path, columns: dict[str, list[object]]) -> None:
    names = list(columns)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names), strict=True))


def _sample(rng: np.random.Generator, n: int, shifted: bool) -> dict[str, list[object]]:
    columns: dict[str, list[object]] = {}
    for name in NUMERIC:
        shift = 0.3 if shifted and name in SHIFTED else 0.0
        columns[name] = [repr(float(v)) for v in rng.normal(shift, 1.0, n)]
    for name in CATEGORICAL:
        p = P_SHIFTED if shifted and name in SHIFTED else P_REFERENCE
        columns[name] = [str(c) for c in rng.choice(CATEGORIES, n, p=p)]
    return columns


def _scipy_flags(ref: dict[str, list[object]], cur: dict[str, list[object]]) -> set[str]:
    names, p_values = [], []
    for name in NUMERIC:
        a = np.array(ref[name], dtype=float)
        b = np.array(cur[name], dtype=float)
        p_values.append(sps.ks_2samp(a, b, method="asymp").pvalue)
        names.append(name)
    for name in CATEGORICAL:
        table = [[ref[name].count(c) for c in CATEGORIES], [cur[name].count(c) for c in CATEGORIES]]
        p_values.append(sps.chi2_contingency(table, correction=False).pvalue)
        names.append(name)
    adjusted = sps.false_discovery_control(p_values, method="bh")
    return {n for n, p in zip(names, adjusted, strict=True) if p < 0.01}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    rc = main(["inspect", *args, "--format", "json"])
    out = capsys.readouterr()
    return rc, json.loads(out.out) if out.out.strip() else {}, out.err


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flags_exactly_what_scipy_flags_on_a_seeded_shift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = _sample(rng, 5000, shifted=False), _sample(rng, 3000, shifted=True)
    _write_csv(tmp_path / "ref.csv", ref)
    _write_csv(tmp_path / "cur.csv", cur)
    expected = _scipy_flags(ref, cur)
    assert expected == SHIFTED  # the data is made so that scipy finds the two shifts

    rc, doc, _ = _run(
        capsys, "--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")
    )
    assert rc == 0  # no --fail-on: a report, never a failure
    assert set(doc["drifted"]) == expected  # type: ignore[arg-type]
    features = doc["features"]
    assert isinstance(features, dict)
    assert {n for n, s in features.items() if s["drift_detected"]} == expected
    assert doc["metrics"]["data_drift_share"] == pytest.approx(2 / 15)  # type: ignore[index]
    assert doc["schema"] == {"missing": [], "added": [], "numeric_to_text": {}}

    rc, doc, _ = _run(
        capsys,
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "cur.csv"),
        "--fail-on",
        "drift,quality",
    )
    assert rc == 1
    gate = doc["gate"]
    assert isinstance(gate, dict)
    assert gate["passed"] is False
    assert gate["checks"]["drift"]["failed"] is True
    assert gate["checks"]["quality"]["failed"] is False
    assert any("num_03" in r for r in gate["checks"]["drift"]["reasons"])


def test_no_drift_passes_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(7)
    ref, cur = _sample(rng, 4000, shifted=False), _sample(rng, 2000, shifted=False)
    _write_csv(tmp_path / "ref.csv", ref)
    _write_csv(tmp_path / "cur.csv", cur)
    assert _scipy_flags(ref, cur) == set()
    rc, doc, _ = _run(
        capsys,
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "cur.csv"),
        "--fail-on",
        "drift",
        "--fail-on",
        "quality",
        "--fail-on",
        "health",
    )
    assert rc == 0, doc
    assert doc["drifted"] == []
    assert doc["health"]["level"] == "excellent"  # type: ignore[index]


def test_schema_changes_are_reported_and_fail_quality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    n = 400
    _write_csv(
        tmp_path / "ref.csv",
        {
            "amount": [repr(float(v)) for v in rng.normal(50, 10, n)],
            "age": [str(int(v)) for v in rng.integers(18, 90, n)],
            "country": [str(c) for c in rng.choice(["US", "DE", "FR"], n)],
        },
    )
    _write_csv(
        tmp_path / "cur.csv",
        {
            # turned text in a quarter of the rows, e.g. a formatting change upstream
            "amount": [
                f"${v:.2f}" if i % 4 == 0 else repr(float(v))
                for i, v in enumerate(rng.normal(50, 10, n))
            ],
            "country": [str(c) for c in rng.choice(["US", "DE", "FR"], n)],
            "channel": ["web"] * n,  # new; "age" is gone
        },
    )
    args = ["--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")]
    rc, doc, _ = _run(capsys, *args, "--fail-on", "quality")
    assert rc == 1
    schema = doc["schema"]
    assert isinstance(schema, dict)
    assert schema["missing"] == ["age"]
    assert schema["added"] == ["channel"]
    assert schema["numeric_to_text"] == {"amount": pytest.approx(0.25)}
    reasons = doc["gate"]["checks"]["quality"]["reasons"]  # type: ignore[index]
    assert any("age missing" in r for r in reasons)
    assert any("amount holds text" in r for r in reasons)

    assert main(["inspect", *args, "--fail-on", "quality"]) == 1  # the table says the same
    table = capsys.readouterr().out
    assert "MISSING from current: age" in table
    assert "added in current (not compared): channel" in table
    assert "numeric feature amount holds TEXT in 25.0%" in table
    assert "check quality: FAILED (--fail-on)" in table


def test_jsonl_current_against_a_profile_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(5)
    lines = []
    for _ in range(600):
        features = {"x": float(rng.normal()), "c": str(rng.choice(["a", "b"]))}
        lines.append(json.dumps({"features": features, "prediction": "yes", "confidence": 0.9}))
    (tmp_path / "ref.jsonl").write_text("\n".join(lines) + "\n")
    profile = tmp_path / "reference_profile.json"
    assert main(["reference", "build", str(tmp_path / "ref.jsonl"), "-o", str(profile)]) == 0
    capsys.readouterr()
    shifted = [
        json.dumps({"features": {"x": float(rng.normal(1.0)), "c": "a"}, "prediction": "yes"})
        for _ in range(600)
    ]
    (tmp_path / "cur.jsonl").write_text("\n".join(shifted) + "\nnot json\n")
    rc, doc, _ = _run(
        capsys,
        "--reference",
        str(profile),
        "--current",
        str(tmp_path / "cur.jsonl"),
        "--fail-on",
        "drift",
    )
    assert rc == 1
    assert set(doc["drifted"]) == {"x", "c"}  # type: ignore[arg-type]
    assert doc["current"]["skipped"] == 1  # type: ignore[index]
    assert doc["reference"]["source"] == "profile"  # type: ignore[index]


def test_too_few_rows_cannot_pass_a_drift_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_csv(tmp_path / "ref.csv", {"x": [str(i) for i in range(500)]})
    _write_csv(tmp_path / "cur.csv", {"x": [str(i) for i in range(20)]})
    args = ["--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")]
    rc, _, err = _run(capsys, *args, "--fail-on", "drift")
    assert rc == 2
    assert "--fail-on drift: too few rows to test for drift" in err
    rc, _, _ = _run(capsys, *args)  # without the gate it is only a report
    assert rc == 0


def test_input_and_flag_errors_exit_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_csv(tmp_path / "ref.csv", {"x": ["1", "2"]})
    missing = tmp_path / "nope.csv"
    rc = main(["inspect", "--reference", str(tmp_path / "ref.csv"), "--current", str(missing)])
    assert rc == 2
    assert f"{missing}: current dataset does not exist" in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    rc = main(
        [
            "inspect",
            "--reference",
            str(tmp_path / "empty.csv"),
            "--current",
            str(tmp_path / "ref.csv"),
        ]
    )
    assert rc == 2
    assert "empty.csv: no header row" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "--reference", "a", "--current", "b", "--fail-on", "drfit"])
    assert exc.value.code == 2
    assert "unknown check 'drfit'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "--reference", "a"])
    assert exc.value.code == 2
    assert "both --reference and --current" in capsys.readouterr().err


def test_the_logging_configuration_is_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warnings go to stderr while the command runs (stdout holds the result); a process
    that runs it, such as a test session, keeps its own logging afterwards."""
    _write_csv(tmp_path / "ref.csv", {"x": [str(i) for i in range(200)]})
    before = structlog.get_config()
    assert (
        main(
            [
                "inspect",
                "--reference",
                str(tmp_path / "ref.csv"),
                "--current",
                str(tmp_path / "ref.csv"),
            ]
        )
        == 0
    )
    assert structlog.get_config() == before
    capsys.readouterr()


def test_an_accuracy_drop_in_labelled_data_fails_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labelled rows (prediction and actual) on both sides: the current accuracy against
    the reference's is the performance check, as live accuracy against the target is in
    the daemon. Same features, so nothing drifts; only performance drops."""
    rng = np.random.default_rng(9)

    def sample(n: int, right: float) -> dict[str, list[object]]:
        predicted = rng.choice(["a", "b"], n)
        correct = rng.random(n) < right
        actual = [
            p if ok else ("b" if p == "a" else "a")
            for p, ok in zip(predicted, correct, strict=True)
        ]
        return {
            "x": [repr(float(v)) for v in rng.normal(0, 1, n)],
            "prediction": [str(p) for p in predicted],
            "actual": actual,
        }

    ref, cur = sample(1000, 0.9), sample(1000, 0.6)
    _write_csv(tmp_path / "ref.csv", ref)
    _write_csv(tmp_path / "cur.csv", cur)
    expected_ref = sum(p == a for p, a in zip(ref["prediction"], ref["actual"], strict=True)) / 1000
    expected_cur = sum(p == a for p, a in zip(cur["prediction"], cur["actual"], strict=True)) / 1000
    args = ["--reference", str(tmp_path / "ref.csv"), "--current", str(tmp_path / "cur.csv")]
    rc, doc, _ = _run(capsys, *args, "--fail-on", "health,drift")
    assert rc == 1
    metrics = doc["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["accuracy"] == pytest.approx(expected_cur)
    assert metrics["reference_accuracy"] == pytest.approx(expected_ref)
    health = doc["health"]
    assert isinstance(health, dict)
    assert health["performance_source"] == "live"
    # a drop of about a third: past the 20% (critical) band's edge, where the check is 25
    assert health["checks"]["performance"] < 25
    gate = doc["gate"]["checks"]  # type: ignore[index]
    assert gate["drift"]["failed"] is False
    assert gate["health"]["failed"] is True


def test_the_daemons_configuration_file_sets_the_method(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    ref, cur = _sample(rng, 5000, shifted=False), _sample(rng, 3000, shifted=True)
    _write_csv(tmp_path / "ref.csv", ref)
    _write_csv(tmp_path / "cur.csv", cur)
    config = tmp_path / "exporter.yml"
    config.write_text("drift:\n  method: wasserstein\n  threshold: 0.1\n")
    rc, doc, _ = _run(
        capsys,
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "cur.csv"),
        "--config.file",
        str(config),
    )
    assert rc == 0
    assert doc["drift"]["method"] == "wasserstein"  # type: ignore[index]
    assert doc["drift"]["threshold"] == 0.1  # type: ignore[index]
    # a 0.3-std shift is 0.3 in Wasserstein units; categorical features have none
    assert doc["drifted"] == ["num_03"]
    config.write_text("drift:\n  method: nonsense\n")
    rc, _, err = _run(
        capsys,
        "--reference",
        str(tmp_path / "ref.csv"),
        "--current",
        str(tmp_path / "cur.csv"),
        "--config.file",
        str(config),
    )
    assert rc == 2
    assert "config error: drift.method" in err

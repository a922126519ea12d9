"""One exit-status scheme for the daemon and every command, as the README lists it:
0 ok, 1 a problem found, 2 bad flags/configuration/input, 3 a runtime failure.
And a mistyped flag gets a short error with a suggestion instead of the usage text."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from model_health_exporter import cli as cli_module
from model_health_exporter import exit_codes
from model_health_exporter.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
GOOD = {"accuracy": 0.92, "precision_weighted": 0.89, "recall_weighted": 0.91, "f1_weighted": 0.9}
WORSE = {**GOOD, "accuracy": 0.70}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_health_exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, obj in (("good", GOOD), ("worse", WORSE)):
        (tmp_path / name).mkdir()
        out[name] = tmp_path / name / "metrics.json"
        out[name].write_text(json.dumps(obj))
    out["broken"] = tmp_path / "broken.json"
    out["broken"].write_text('{"accuracy": 1.7}')
    return out


def test_the_scheme_is_what_the_readme_says() -> None:
    listed = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", README.read_text(), re.MULTILINE))
    assert set(listed) == {"0", "1", "2", "3", "130"}
    assert (exit_codes.OK, exit_codes.PROBLEM_FOUND, exit_codes.USAGE) == (0, 1, 2)
    assert (exit_codes.RUNTIME, exit_codes.INTERRUPTED) == (3, 130)


def test_validate(files: dict[str, Path], tmp_path: Path) -> None:
    assert main(["validate", str(files["good"])]) == 0
    assert main(["validate", str(files["good"]), str(files["broken"])]) == 1
    assert main(["validate", str(tmp_path / "absent")]) == 2  # as check and reference do
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 2


def test_check(files: dict[str, Path], tmp_path: Path) -> None:
    good, worse = str(files["good"]), str(files["worse"])
    assert main(["check", "--baseline", good, "--candidate", good]) == 0
    assert main(["check", "--baseline", good, "--candidate", worse]) == 1
    assert main(["check", "--baseline", good, "--candidate", str(tmp_path / "absent")]) == 2
    assert main(["check", "--baseline", good, "--candidate", str(files["broken"])]) == 2


def test_reference(tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    sample.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(50)))
    assert main(["reference", "build", str(tmp_path / "absent.csv"), "-o", "p.json"]) == 2
    unwritable = tmp_path / "no-such-dir" / "profile.json"
    assert main(["reference", "build", str(sample), "-o", str(unwritable)]) == 3
    assert main(["reference", "build", str(sample), "-o", str(tmp_path / "p.json")]) == 0


def test_demo_without_models(tmp_path: Path) -> None:
    assert main(["demo", "--models.dir", str(tmp_path), "--duration", "1"]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--no-such-flag"],
        ["validate"],
        ["check", "--baseline", "x"],
        ["reference", "rebuild", "x", "-o", "y"],
        ["demo", "--rate", "fast"],
    ],
)
def test_bad_flags_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2


def test_daemon_config_error_2_and_busy_port_3(files: dict[str, Path], tmp_path: Path) -> None:
    assert cli(f"--models.dir={tmp_path / 'absent'}").returncode == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli(
            f"--models.dir={files['good'].parents[1]}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.format=json",
        )
    assert result.returncode == 3, result.stdout + result.stderr


def test_a_mistyped_flag_gets_a_short_error_and_a_suggestion(tmp_path: Path) -> None:
    result = cli("--models.dri", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines == [
        f"model-health-exporter: error: unrecognized arguments: --models.dri {tmp_path}",
        "--models.dri: did you mean --models.dir?",
        "Run 'model-health-exporter --help' for the flags.",
    ]


def test_suggestions_for_subcommand_flags_and_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--baseline", "a", "--candidate", "b", "--fial-on=critical"])
    assert "--fial-on: did you mean --fail-on?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["valdate", "models/"])
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("model-health-exporter: error:")
    assert "valdate: did you mean the command 'validate'?" in err
    with pytest.raises(SystemExit):
        main(["--zzzzzz"])  # nothing close: no guess, still the pointer to --help
    assert capsys.readouterr().err.splitlines()[1:] == [
        "Run 'model-health-exporter --help' for the flags."
    ]


def test_a_crash_is_a_runtime_failure_not_a_finding(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # CI must tell "the gate found a problem" (1) from "the tool broke" (3).
    def crash(argv: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli_module, "_check", crash)
    assert main(["check", "--baseline", "a", "--candidate", "b"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: disk on fire" in err

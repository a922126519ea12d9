"""`model-health-exporter inspect MODELS_DIR`: the daemon's computation once. Its JSON
equals what a daemon started on the same files serves at /api/v1/models."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_health_exporter.cli_inspect import ProgressBar
from model_health_exporter.config import load_settings
from model_health_exporter.offline import inspect_models
from tests.support import RunningDaemon, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
# Fields that say when something was read, not what: they differ between any two runs.
WALL_TIME_FIELDS = frozenset({"loaded_at", "last_scan"})
PREDICTIONS = 1500
FEEDBACK = 600


def _without_wall_time(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_wall_time(v) for k, v in value.items() if k not in WALL_TIME_FIELDS}
    if isinstance(value, list):
        return [_without_wall_time(v) for v in value]
    return value


def _models_dir(tmp_path: Path) -> Path:
    """The example models plus a day of traffic on routing's active version: its
    DURATION_MIN drifted upwards, part of the predictions answered by feedback."""
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES, root, symlinks=True)
    rng = np.random.default_rng(11)
    version = root / "routing" / "production-v3"
    classes = ["P100", "P200", "P300"]
    predictions, feedback = [], []
    for i in range(PREDICTIONS):
        probs = rng.dirichlet([6, 2, 1])
        label = classes[int(np.argmax(probs))]
        record = {
            "id": f"day-{i}",
            "features": {
                "ITEM_CD": f"I{int(rng.integers(1, 30))}",
                "QTY": int(rng.integers(10, 60)),
                "DURATION_MIN": round(float(rng.normal(70, 12)), 1),
            },
            "prediction": label,
            "probabilities": {c: round(float(p), 3) for c, p in zip(classes, probs, strict=True)},
            "latency_ms": round(float(rng.gamma(4, 6)), 1),
            "error": None,
        }
        predictions.append(json.dumps(record))
        if i < FEEDBACK:
            actual = label if rng.random() < 0.7 else classes[int(rng.integers(0, 3))]
            feedback.append(json.dumps({"id": f"day-{i}", "actual": actual}))
    (version / "predictions" / "day.jsonl").write_text("\n".join(predictions) + "\n")
    (version / "feedback" / "day.jsonl").write_text("\n".join(feedback) + "\n")
    return root


def _inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_health_exporter", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_json_equals_what_the_daemon_serves(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    root = _models_dir(tmp_path)
    daemon = start_daemon(f"--models.dir={root}")

    def caught_up() -> Any:
        status, body, _ = daemon.get("/api/v1/models")
        doc = json.loads(body)
        routing = next(m for m in doc["models"] if m["name"] == "routing")
        active = next(v for v in routing["versions"] if v["active"])
        window = active.get("window")
        done = (
            status == 200
            and active.get("predictions_total") == 40 + PREDICTIONS
            and window is not None
            and "drift_detected" in window["features"]["DURATION_MIN"]
            and window["samples"].get("labelled", 0) >= FEEDBACK
        )
        return _without_wall_time(doc) if done else None

    seen = [wait_until(caught_up, 60, "the daemon to read the logs")]

    def settled() -> Any:
        """The document once two reads agree: the last lines' summaries may be due."""
        seen.append(caught_up())
        return seen[-1] if seen[-1] == seen[-2] else None

    served = wait_until(settled, 30, "the served document to settle", interval=0.5)
    result = _inspect(str(root), "--format", "json")
    assert result.returncode == 0, result.stderr
    inspected = _without_wall_time(json.loads(result.stdout))
    assert inspected == served

    routing = next(m for m in inspected["models"] if m["name"] == "routing")
    active = next(v for v in routing["versions"] if v["active"])
    assert active["window"]["features"]["DURATION_MIN"]["drift_detected"] == 1.0
    assert "data_drift" in active["health"]["retrain_reasons"]

    table = _inspect(str(root))
    assert table.returncode == 0, table.stderr
    assert "production-v2          yes" in table.stdout
    assert "0.780 CRITICAL" in table.stdout
    assert "DRIFTED DURATION_MIN" in table.stdout
    # live accuracy from feedback, below the critical threshold of the evaluation metric
    assert re.search(r"live accuracy 0\.7\d+ CRITICAL", table.stdout)
    assert "retraining RECOMMENDED" in table.stdout
    assert table.stderr == ""  # no progress bar when stderr is not a terminal

    gate = _inspect(str(root), "--fail-on", "drift")
    assert gate.returncode == 1
    assert "routing/production-v3: feature DURATION_MIN drifted" in gate.stdout


def test_not_a_directory_exits_2(tmp_path: Path) -> None:
    result = _inspect(str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "absent: not a directory" in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    root = _models_dir(tmp_path)
    settings = load_settings({"models": {"dirs": [str(root)]}})
    calls: list[tuple[int, int]] = []
    result = inspect_models(settings, lambda done, total: calls.append((done, total)))
    assert result.lines == 40 + 10 + PREDICTIONS + FEEDBACK
    logs = [
        *(root / "routing" / "production-v3" / "predictions").iterdir(),
        *(root / "routing" / "production-v3" / "feedback").iterdir(),
    ]
    size = sum(p.stat().st_size for p in logs)
    assert calls[-1] == (size, size)

    terminal = _Terminal()
    bar = ProgressBar(terminal, "reading")
    bar(size // 2, size)
    bar(size, size)
    bar.close()
    assert "reading [" in terminal.getvalue()
    assert " 100% " in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    piped = io.StringIO()
    bar = ProgressBar(piped, "reading")
    bar(size, size)
    bar.close()
    assert piped.getvalue() == ""


def test_a_last_line_still_being_written_ends_the_pass(tmp_path: Path) -> None:
    """The daemon waits for the rest of a line without its newline; a single pass counts
    the complete lines and stops."""
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES / "routing", root / "routing")
    log = root / "routing" / "production-v3" / "predictions" / "predictions.jsonl"
    with log.open("a") as f:
        f.write('{"id": "half", "features": {"QTY": 3')
    settings = load_settings({"models": {"dirs": [str(root)]}})
    result = inspect_models(settings)
    assert result.lines == 40 + 10
    key = ("routing", "production-v3")
    assert result.live.tallies[key].predictions == 40


def test_gzip_rotated_logs_are_read_and_their_progress_is_decompressed_bytes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES / "routing", root / "routing")
    folder = root / "routing" / "production-v3" / "predictions"
    plain = folder / "predictions.jsonl"
    data = plain.read_bytes()
    (folder / "predictions.jsonl.1.gz").write_bytes(gzip.compress(data))
    plain.unlink()
    feedback = root / "routing" / "production-v3" / "feedback" / "feedback.jsonl"
    calls: list[tuple[int, int]] = []
    settings = load_settings({"models": {"dirs": [str(root)]}})
    result = inspect_models(settings, lambda done, total: calls.append((done, total)))
    assert result.live.tallies[("routing", "production-v3")].predictions == 40
    size = len(data) + feedback.stat().st_size
    assert calls[-1] == (size, size)

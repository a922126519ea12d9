"""`model-health-exporter demo` writes logs the daemon reads line for line, and the same
stream for the same seed."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from model_health_exporter import demo
from model_health_exporter.records import LINE_ERROR_REASONS, Feedback, parse_line
from tests.browser import Element, parse_html
from tests.support import RunningDaemon, wait_until

REPO = Path(__file__).resolve().parents[2]

Start = Callable[..., RunningDaemon]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples/models"
ACTIVE = {"routing": "production-v3", "fraud": "2026-11-01"}


def tally(version_dir: Path) -> Counter[str]:
    """What the daemon should count from every log file of a version folder."""
    counts: Counter[str] = Counter()
    for path in sorted(version_dir.glob("*/*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = parse_line(line)
            if isinstance(record, Feedback):
                counts["feedback"] += 1
            else:
                counts["predictions"] += 1
                if record.error is not None:
                    counts[f"error:{record.error}"] += 1
    return counts


@pytest.mark.integration
def test_demo_feeds_the_daemon(tmp_path: Path, start_daemon: Start) -> None:
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES, root, symlinks=True)
    d = start_daemon(f"--models.dir={root}", "--logs.poll-interval=0.05")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "model_health_exporter", "demo", f"--models.dir={root}"),
            *("--rate", "200", "--duration", "3", "--drift-after", "1", "--seed", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "drift injected" in run.stdout

    failures: Counter[str] = Counter()
    for model, version in ACTIVE.items():
        folder = root / model / version
        written = {
            kind: (folder / kind / "demo.jsonl").read_bytes()
            for kind in ("predictions", "feedback")
        }
        assert all(data.endswith(b"\n") for data in written.values())
        demo_counts = Counter(
            "feedback" if isinstance(r, Feedback) else r.error or "ok"
            for data in written.values()
            for r in map(parse_line, data.splitlines())  # raises on any bad line
        )
        assert demo_counts["ok"] > 200, demo_counts
        assert 0 < demo_counts["feedback"] < demo_counts["ok"], demo_counts
        failures.update({k: v for k, v in demo_counts.items() if k not in {"ok", "feedback"}})

        expected = tally(folder)  # the demo's lines and those already in the examples
        labels = {"model": model, "version": version}
        d.wait_value("routing_ml_predictions_total", expected["predictions"], **labels)
        d.wait_value("routing_ml_feedback_total", expected["feedback"], **labels)
        samples = d.samples()
        errors = {
            dict(key[1])["error_type"]: value
            for key, value in samples.items()
            if key[0] == "routing_ml_prediction_errors_total" and labels.items() <= key[1]
        }
        assert errors == {k[6:]: v for k, v in expected.items() if k.startswith("error:")}
    assert failures, "no failed predictions written"
    assert failures.keys() <= demo.ERROR_TYPES.keys()
    for reason in LINE_ERROR_REASONS:
        bad = d.value("routing_ml_exporter_errors_total", source="prediction_log", reason=reason)
        assert not bad, reason


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES, root, symlinks=True)
    log = root / "fraud/2026-11-01/predictions/demo.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_health_exporter", "demo", f"--models.dir={root}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: log.exists() and log.stat().st_size, 10, "the first prediction")
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "demo: stopped" in out
    assert log.read_bytes().endswith(b"\n")


def test_same_seed_same_records(tmp_path: Path) -> None:
    runs = itertools.count()

    def first_records(seed: int) -> list[dict[str, object]]:
        root = tmp_path / f"run{next(runs)}"
        shutil.copytree(EXAMPLES, root, symlinks=True)
        assert demo.run(root, rate=2000, drift_after=0, seed=seed, duration=0.5) == 0
        lines = (root / "routing/production-v3/predictions/demo.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines[:100]]
        for r in records:
            assert r.pop("timestamp")
        return records

    first = first_records(1)
    assert len(first) == 100
    assert first_records(1) == first
    assert first_records(2) != first


def test_calibrated_until_drift() -> None:
    def accuracy_and_confidence(drift: bool) -> tuple[float, float]:
        rng = random.Random(7)  # noqa: S311 - a seeded stream
        stream = demo.generate(demo.PROFILES["routing"], rng, "r", lambda: drift)
        items = [i for i in itertools.islice(stream, 5000) if i.prediction["error"] is None]
        confidence = sum(max(i.prediction["probabilities"].values()) for i in items) / len(items)
        joined = [i for i in items if i.feedback is not None]
        hits = sum(i.feedback["actual"] == i.prediction["prediction"] for i in joined)
        return hits / len(joined), confidence

    accuracy, confidence = accuracy_and_confidence(drift=False)
    assert accuracy == pytest.approx(confidence, abs=0.03)
    drifted_accuracy, drifted_confidence = accuracy_and_confidence(drift=True)
    assert drifted_confidence == pytest.approx(confidence, abs=0.01)
    assert 0.1 < accuracy - drifted_accuracy < 0.2


def test_healthy_routing_stream_matches_its_evaluation_accuracy() -> None:
    """Live accuracy of the undrifted routing stream is production-v3's evaluation accuracy
    within sampling error, so the 5% drop alerts keep their whole margin when healthy."""
    rng = random.Random(11)  # noqa: S311 - a seeded stream
    stream = demo.generate(demo.PROFILES["routing"], rng, "r", lambda: False)
    joined = [i for i in itertools.islice(stream, 20_000) if i.feedback is not None]
    accuracy = sum(i.feedback["actual"] == i.prediction["prediction"] for i in joined) / len(joined)
    metrics = REPO / "examples" / "models" / "routing" / "production-v3" / "metrics.json"
    evaluated = json.loads(metrics.read_text())["accuracy"]
    assert abs(accuracy - evaluated) / evaluated < 0.01


def test_stamp_now_moves_every_version_by_one_offset(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415 - this test only

    shutil.copytree(REPO / "examples" / "models", tmp_path / "models", symlinks=True)
    before = {
        p: json.loads(p.read_text()) for p in sorted((tmp_path / "models").rglob("metrics.json"))
    }
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert demo.stamp_now(tmp_path / "models", now) == len(before) == 5
    after = {p: json.loads(p.read_text()) for p in before}
    moved = {
        p: datetime.fromisoformat(after[p]["generated_at"])
        - datetime.fromisoformat(before[p]["generated_at"])
        for p in before
    }
    assert len(set(moved.values())) == 1  # the spacing between versions is kept
    newest = max(datetime.fromisoformat(a["generated_at"]) for a in after.values())
    assert newest == now - timedelta(days=1)
    for p, old in before.items():  # nothing else changes
        assert {k: v for k, v in after[p].items() if k != "generated_at"} == {
            k: v for k, v in old.items() if k != "generated_at"
        }


def _run_demo(root: Path, *args: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "model_health_exporter", "demo", f"--models.dir={root}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.integration
def test_injected_drift_turns_drift_metrics_and_health(tmp_path: Path, start_daemon: Start) -> None:
    """The shipped example references against the demo stream: quiet before the drift,
    QTY and amount flagged after it, the health score down, and the landing page says so."""
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES, root, symlinks=True)
    d = start_daemon(f"--models.dir={root}", "--logs.poll-interval=0.05")
    routing = {"model": "routing", "version": "production-v3"}
    fraud = {"model": "fraud", "version": "2026-11-01"}

    _run_demo(root, "--rate", "400", "--duration", "3", "--drift-after", "3600", "--seed", "3")
    for labels in (routing, fraud):
        wait_until(
            lambda labels=labels: (
                d.value("routing_ml_window_samples", kind="features", **labels) >= 1000
            ),
            20,
            f"the undrifted stream of {labels['model']} compared",
        )
    assert d.value("routing_ml_reference_info", source="jsonl", **routing) == 1
    assert d.value("routing_ml_reference_info", source="csv", **fraud) == 1
    assert d.value("routing_ml_feature_drift_detected", feature="QTY", **routing) == 0
    assert d.value("routing_ml_feature_drift_detected", feature="amount", **fraud) == 0
    healthy = d.value("routing_ml_model_health_score", **routing)
    assert healthy is not None

    _run_demo(root, "--rate", "400", "--duration", "4", "--drift-after", "0", "--seed", "4")
    wait_until(
        lambda: (
            d.value("routing_ml_feature_drift_detected", feature="QTY", **routing) == 1
            and d.value("routing_ml_feature_drift_detected", feature="amount", **fraud) == 1
        ),
        20,
        "the injected drift detected",
    )
    assert d.value("routing_ml_feature_drift_detected", feature="ITEM_CD", **routing) == 0
    assert (d.value("routing_ml_data_drift_share", **routing) or 0) > 0
    drifted = d.value("routing_ml_model_health_score", **routing)
    assert drifted is not None
    assert drifted < healthy - 5
    assert d.value("routing_ml_model_health_check_score", check="data_drift", **routing) < 100
    status, body, _ = d.get("/")
    assert status == 200
    row = parse_html(body.decode()).find("tr", data_version="production-v3")
    drifted_cell = [c for c in row.children if isinstance(c, Element)][4]
    assert drifted_cell.text() == "QTY 1 of 3 features (0.33)"  # one of the three drifted

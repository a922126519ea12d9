"""Prediction logs through the running daemon: every line counted once, whatever
happens to the files or to the daemon."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import RunningDaemon, good_metrics, wait_until, write_json

pytestmark = pytest.mark.integration
Start = Callable[..., RunningDaemon]
V = {"model": "m", "version": "v1"}
FAST = ("--logs.poll-interval=0.05", "--logs.checkpoint-interval=0.2")


def version_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions").mkdir()
    (root / "m/v1/feedback").mkdir()
    return root


def record(i: int, **extra: object) -> bytes:
    body = {
        "id": f"r{i}",
        "prediction": "a" if i % 3 else "b",
        "confidence": 0.9,
        "latency_ms": 20,
        **extra,
    }
    return json.dumps(body).encode() + b"\n"


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_counts_histograms_feedback_and_bad_lines(tmp_path: Path, start_daemon: Start) -> None:
    root = version_dir(tmp_path)
    log = root / "m/v1/predictions/p.jsonl"
    append(log, record(0) + record(1, latency_ms=3, confidence=0.5))
    append(log, record(2, prediction=None, error="Timeout") + record(3, error="Timeout"))
    append(log, b"{not json\n" + b'{"prediction": [1]}\n' + b'{"id": "r9", "predic')
    append(root / "m/v1/feedback/f.jsonl", b'{"id": "r0", "actual": "a"}\n')
    d = start_daemon(f"--models.dir={root}", *FAST)
    d.wait_value("routing_ml_predictions_total", 4.0, **V)
    samples = d.samples()

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset({**V, **labels}.items())))

    assert value("routing_ml_prediction_errors_total", error_type="Timeout") == 2
    assert value("routing_ml_feedback_total") == 1
    assert value("routing_ml_prediction_latency_seconds_count") == 4
    assert value("routing_ml_prediction_latency_seconds_bucket", le="0.005") == 1  # 3 ms
    assert value("routing_ml_prediction_latency_seconds_bucket", le="0.025") == 4
    assert value("routing_ml_prediction_latency_seconds_sum") == pytest.approx(0.063)
    assert value("routing_ml_prediction_confidence_bucket", le="0.5") == 1
    assert value("routing_ml_prediction_confidence_bucket", le="0.75") == 1
    assert value("routing_ml_prediction_confidence_count") == 2  # not for failed r2, r3
    errors = {"source": "prediction_log"}
    assert (
        samples[
            (
                "routing_ml_exporter_errors_total",
                frozenset({**errors, "reason": "invalid_json"}.items()),
            )
        ]
        == 1
    )
    assert (
        samples[
            (
                "routing_ml_exporter_errors_total",
                frozenset({**errors, "reason": "invalid_record"}.items()),
            )
        ]
        == 1
    )
    warned = [r for r in d.log_records() if r.get("reason") == "invalid_json"]
    assert warned and warned[0]["path"] == str(log) and warned[0]["line"] == 5
    append(log, b'tion": "a"}\n')  # the partial line completes
    d.wait_value("routing_ml_predictions_total", 5.0, **V)


def test_restart_and_kill_9_count_each_line_once(tmp_path: Path, start_daemon: Start) -> None:
    root = version_dir(tmp_path)
    state = tmp_path / "state"
    log = root / "m/v1/predictions/p.jsonl"
    args = (f"--models.dir={root}", f"--state.dir={state}", *FAST)
    append(log, b"".join(record(i) for i in range(1000)))
    d = start_daemon(*args)
    d.wait_value("routing_ml_predictions_total", 1000.0, **V)
    assert d.stop() == 0  # SIGTERM: final checkpoint
    append(log, b"".join(record(i) for i in range(1000, 1500)))
    d = start_daemon(*args)
    d.wait_value("routing_ml_predictions_total", 1500.0, **V)
    # kill -9 after more lines: the last checkpoint may be older than what was counted
    append(log, b"".join(record(i) for i in range(1500, 3000)))
    d.wait_value("routing_ml_predictions_total", 3000.0, **V)
    append(log, b"".join(record(i) for i in range(3000, 3100)))
    d.signal(signal.SIGKILL)
    d.proc.wait(10)
    append(log, b"".join(record(i) for i in range(3100, 3200)))
    d = start_daemon(*args)
    d.wait_value("routing_ml_predictions_total", 3200.0, **V)


def test_rotation_by_rename_copytruncate_and_gzip(tmp_path: Path, start_daemon: Start) -> None:
    root = version_dir(tmp_path)
    logs = root / "m/v1/predictions"
    log = logs / "p.jsonl"
    append(log, b"".join(record(i) for i in range(100)))
    d = start_daemon(f"--models.dir={root}", f"--state.dir={tmp_path / 'state'}", *FAST)
    d.wait_value("routing_ml_predictions_total", 100.0, **V)
    append(log, b"".join(record(i) for i in range(100, 150)))  # maybe unread at rotation
    log.rename(logs / "p.jsonl.1")
    append(log, b"".join(record(i) for i in range(150, 200)))
    d.wait_value("routing_ml_predictions_total", 200.0, **V)
    append(log, b"".join(record(i) for i in range(200, 230)))
    shutil.copyfile(log, logs / "p.jsonl.2")  # copytruncate
    with log.open("r+b") as f:
        f.truncate(0)
    append(log, b"".join(record(i) for i in range(230, 260)))
    d.wait_value("routing_ml_predictions_total", 260.0, **V)
    with (logs / "p.jsonl.1").open("rb") as src, gzip.open(logs / "p.jsonl.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)  # compress the finished rotation
    (logs / "p.jsonl.1").unlink()
    append(log, record(260))
    d.wait_value("routing_ml_predictions_total", 261.0, **V)
    assert d.value("routing_ml_predictions_total", **V) == 261.0  # the .gz was not re-read


class SteadyWriter(threading.Thread):
    """A serving process's log writer: one file opened once with O_APPEND, a record at a
    time. `rotate()` is logrotate's copytruncate; the lock keeps the writer out between
    the copy and the truncation, as otherwise the lines written then would be in
    neither file and no reader could count them."""

    def __init__(self, log: Path, start: int, stop: int) -> None:
        super().__init__(daemon=True)
        self.log, self.next, self.stop = log, start, stop
        self.lock = threading.Lock()
        self.rotations = 0

    def run(self) -> None:
        with self.log.open("ab", buffering=0) as f:
            while self.next < self.stop:
                with self.lock:
                    f.write(record(self.next))
                    self.next += 1
                if self.next % 20 == 0:
                    time.sleep(0.002)  # pacing: about 10,000 records a second

    def rotate(self) -> None:
        with self.lock:
            self.rotations += 1
            shutil.copyfile(self.log, self.log.with_name(f"{self.log.name}.{self.rotations}"))
            with self.log.open("r+b") as f:
                f.truncate(0)


def test_copytruncate_under_a_steady_writer_counts_every_line_once(
    tmp_path: Path, start_daemon: Start
) -> None:
    root = version_dir(tmp_path)
    log = root / "m/v1/predictions/p.jsonl"
    append(log, record(0))  # first seen small
    d = start_daemon(f"--models.dir={root}", f"--state.dir={tmp_path / 'state'}", *FAST)
    d.wait_value("routing_ml_predictions_total", 1.0, **V)
    total = 12_000
    writer = SteadyWriter(log, 1, total)
    writer.start()
    for rotate_at in (1500, 3500, 6000, 9000):
        wait_until(lambda n=rotate_at: writer.next >= n, 30, f"{rotate_at} records written")
        writer.rotate()
    writer.join(60)
    d.wait_value("routing_ml_predictions_total", float(total), timeout=30, **V)
    append(log, record(total))  # one more poll: nothing was counted twice
    d.wait_value("routing_ml_predictions_total", float(total + 1), **V)
    errors = d.value(
        "routing_ml_exporter_errors_total", source="prediction_log", reason="invalid_json"
    )
    assert errors == 0


def test_copytruncate_across_kill_9_counts_every_line_once(
    tmp_path: Path, start_daemon: Start
) -> None:
    # The daemon dies between rotations; when it is back, the files its checkpoint
    # knows have been copied and truncated, and the writer has gone on.
    root = version_dir(tmp_path)
    log = root / "m/v1/predictions/p.jsonl"
    args = (f"--models.dir={root}", f"--state.dir={tmp_path / 'state'}", *FAST)
    d = start_daemon(*args)
    total = 9000
    writer = SteadyWriter(log, 0, total)
    writer.start()
    for rotate_at, kill in ((1500, True), (3000, False), (5000, True), (7000, False)):
        wait_until(lambda n=rotate_at: writer.next >= n, 30, f"{rotate_at} records written")
        if kill:
            d.signal(signal.SIGKILL)
            d.proc.wait(10)
        writer.rotate()
        if kill:
            d = start_daemon(*args)
    writer.join(60)
    d.wait_value("routing_ml_predictions_total", float(total), timeout=30, **V)
    append(log, record(total))
    d.wait_value("routing_ml_predictions_total", float(total + 1), **V)


def test_truncate_and_rewrite_in_place_counts_every_line(
    tmp_path: Path, start_daemon: Start
) -> None:
    root = version_dir(tmp_path)
    log = root / "m/v1/predictions/p.jsonl"
    log.write_bytes(b"".join(record(i) for i in range(1200)))
    d = start_daemon(f"--models.dir={root}", *FAST)
    d.wait_value("routing_ml_predictions_total", 1200.0, **V)
    log.write_bytes(b"".join(record(i) for i in range(1200, 3400)))  # longer than before
    d.wait_value("routing_ml_predictions_total", 3400.0, **V)
    append(log, record(3400))
    d.wait_value("routing_ml_predictions_total", 3401.0, **V)


def test_an_overflowing_latency_does_not_poison_the_sum(
    tmp_path: Path, start_daemon: Start
) -> None:
    root = version_dir(tmp_path)
    log = root / "m/v1/predictions/p.jsonl"
    append(log, record(0, latency_seconds=1e308) + record(1, latency_seconds=1e308))
    append(log, record(2))
    args = (f"--models.dir={root}", f"--state.dir={tmp_path / 'state'}", *FAST)
    d = start_daemon(*args)
    d.wait_value("routing_ml_predictions_total", 1.0, **V)
    assert d.value("routing_ml_prediction_latency_seconds_sum", **V) == 0.02
    reason = {"source": "prediction_log", "reason": "invalid_latency"}
    assert d.value("routing_ml_exporter_errors_total", **reason) == 2
    assert d.stop() == 0
    append(log, record(3))
    d = start_daemon(*args)
    d.wait_value("routing_ml_predictions_total", 2.0, **V)
    assert d.value("routing_ml_prediction_latency_seconds_sum", **V) == 0.04


def test_series_go_with_the_version(tmp_path: Path, start_daemon: Start) -> None:
    root = version_dir(tmp_path)
    append(root / "m/v1/predictions/p.jsonl", record(0))
    write_json(root / "m/v2/metrics.json", good_metrics())
    d = start_daemon(f"--models.dir={root}", *FAST)
    d.wait_value("routing_ml_predictions_total", 1.0, **V)
    shutil.rmtree(root / "m/v1")
    d.wait_value("routing_ml_predictions_total", None, **V)


@pytest.mark.parametrize(
    "content",
    [
        b"{truncated",
        b"[]",
        b'{"format": 1, "positions": [], "tallies": {}, "windows": {}}',
        b'{"format": 1, "positions": {}, "tallies": [], "windows": {}}',
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    ],
    ids=["truncated", "array", "positions-array", "tallies-array", "nested-100000"],
)
def test_unusable_checkpoint_stops_start_with_a_clear_error(
    tmp_path: Path, start_daemon: Start, content: bytes
) -> None:
    root = version_dir(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    checkpoint = state / "checkpoint.json"
    checkpoint.write_bytes(content)
    d = start_daemon(f"--models.dir={root}", f"--state.dir={state}", ready=False)
    assert d.proc.wait(20) == 2  # a person must act; systemd does not restart on 2
    problems = [r["problem"] for r in d.log_records() if "problem" in r]
    assert any(str(checkpoint) in p and "move it away" in p for p in problems), d.log()
    assert "Traceback" not in d.log()


def test_live_accuracy_survives_kill_9(tmp_path: Path, start_daemon: Start) -> None:
    root = version_dir(tmp_path)
    args = (
        f"--models.dir={root}",
        f"--state.dir={tmp_path / 'state'}",
        "--logs.window-min-samples=20",
        *FAST,
    )
    predictions = root / "m/v1/predictions/p.jsonl"
    feedback = root / "m/v1/feedback/f.jsonl"
    # 40 predictions of "a" (i % 3 != 0) or "b"; feedback says "a" for all of them
    append(predictions, b"".join(record(i) for i in range(40)))
    d = start_daemon(*args)
    d.wait_value("routing_ml_predictions_total", 40.0, **V)
    append(feedback, b"".join(b'{"id": "r%d", "actual": "a"}\n' % i for i in range(30)))
    correct = sum(1 for i in range(30) if i % 3)
    d.wait_value("routing_ml_live_accuracy", correct / 30, **V)
    d.wait_value("routing_ml_window_samples", 30.0, kind="labelled", **V)
    d.wait_value("routing_ml_low_confidence_ratio", 0.0, **V)
    d.signal(signal.SIGKILL)
    d.proc.wait(10)
    # the ten predictions still waiting for feedback survive, whatever the checkpoint held
    append(feedback, b"".join(b'{"id": "r%d", "actual": "a"}\n' % i for i in range(30, 40)))
    d = start_daemon(*args)
    correct = sum(1 for i in range(40) if i % 3)
    d.wait_value("routing_ml_live_accuracy", correct / 40, **V)
    d.wait_value("routing_ml_feedback_matched_total", 40.0, **V)
    assert d.value("routing_ml_feedback_unmatched_total", **V) == 0


def test_logs_outside_the_version_folders(tmp_path: Path, start_daemon: Start) -> None:
    root = version_dir(tmp_path)
    shared = tmp_path / "serving-logs"
    shared.mkdir()
    log = shared / "predictions-1.jsonl"
    append(log, record(0, model="m", version="v1") + record(1, model="m", version="v1"))
    append(log, record(2, model="m", version="nope") + record(3))  # unknown, unnamed
    append(shared / "other.txt", record(4, model="m", version="v1"))  # not matched by the glob
    args = (
        f"--models.dir={root}",
        f"--logs.path={shared}/predictions-*.jsonl*",
        f"--state.dir={tmp_path / 'state'}",
        *FAST,
    )
    d = start_daemon(*args)
    d.wait_value("routing_ml_predictions_total", 2.0, **V)
    d.wait_value(
        "routing_ml_exporter_errors_total", 2.0, source="prediction_log", reason="unknown_model"
    )
    assert d.stop() == 0
    append(log, record(5, model="m", version="v1"))
    d = start_daemon(*args)  # positions of configured logs are checkpointed too
    d.wait_value("routing_ml_predictions_total", 3.0, **V)


def test_log_path_with_a_wildcard_directory_is_a_config_error(tmp_path: Path) -> None:
    root = version_dir(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_health_exporter",
            f"--models.dir={root}",
            f"--logs.path={tmp_path}/*/p.jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "logs.paths" in result.stderr and "wildcards" in result.stderr


def test_configured_histogram_buckets(tmp_path: Path, start_daemon: Start) -> None:
    root = version_dir(tmp_path)
    append(root / "m/v1/predictions/p.jsonl", record(0, latency_ms=150) + record(1))
    d = start_daemon(f"--models.dir={root}", "--logs.latency-buckets=0.02,0.2", *FAST)
    d.wait_value("routing_ml_predictions_total", 2.0, **V)
    bucket = "routing_ml_prediction_latency_seconds_bucket"
    assert d.value(bucket, le="0.02", **V) == 1
    assert d.value(bucket, le="0.2", **V) == 2
    assert d.value(bucket, le="0.005", **V) is None  # the default buckets are gone


def backlog(root: Path, files: int, lines: int) -> int:
    """`files` prediction logs of `lines` records each (~90 bytes a line, so many
    1 MiB reads per file), written while no daemon runs; returns the total."""
    for f in range(files):
        start = f * lines
        data = b"".join(record(i) for i in range(start, start + lines))
        append(root / f"m/v1/predictions/p{f}.jsonl", data)
    return files * lines


def test_backlog_drains_without_waiting_for_the_poll_interval(
    tmp_path: Path, start_daemon: Start
) -> None:
    """Reads go on while a file has unread data: a backlog of many 1 MiB reads per file
    is not spread over as many poll intervals (here 60 s each)."""
    root = version_dir(tmp_path)
    total = backlog(root, files=2, lines=60_000)
    d = start_daemon(f"--models.dir={root}", "--logs.poll-interval=60")
    d.wait_value("routing_ml_predictions_total", float(total), timeout=40, **V)


def test_kill_9_during_a_full_speed_drain_counts_each_line_once(
    tmp_path: Path, start_daemon: Start
) -> None:
    root = version_dir(tmp_path)
    files, lines = 3, 40_000
    written = backlog(root, files=files, lines=lines)
    args = (f"--models.dir={root}", f"--state.dir={tmp_path / 'state'}")
    d = start_daemon(*args, "--logs.checkpoint-interval=0.2")
    checkpoint = tmp_path / "state/checkpoint.json"

    def draining() -> bool:
        nonlocal written
        counted = d.value("routing_ml_predictions_total", **V) or 0
        if counted >= written:
            # Drained before a checkpoint was seen in the middle (a fast, quiet machine):
            # give it another backlog, appended while it runs, and look again.
            for f in range(files):
                start = written + f * lines
                data = b"".join(record(i) for i in range(start, start + lines))
                append(root / f"m/v1/predictions/p{f}.jsonl", data)
            written += files * lines
            return False
        return counted > 0 and checkpoint.exists()

    wait_until(draining, 60, "a checkpoint in the middle of the drain")
    d.signal(signal.SIGKILL)
    d.proc.wait(10)
    d = start_daemon(*args)
    # One more line at the end of the last file: once it is counted, every line before
    # it has been, so an exact total then means nothing was counted twice.
    append(root / f"m/v1/predictions/p{files - 1}.jsonl", record(written))
    d.wait_value("routing_ml_predictions_total", float(written + 1), timeout=60, **V)


@pytest.mark.parametrize("larger", ["predictions", "feedback"])
def test_feedback_read_before_its_prediction_is_joined(
    tmp_path: Path, start_daemon: Start, larger: str
) -> None:
    """Both files written while the daemon was down: each file is read a bounded chunk
    per round, so most feedback is read before or after its prediction depending on
    which file is larger; every one is joined either way."""
    root = version_dir(tmp_path)
    n = 30_000
    padding = "x" * 200  # makes one file's lines, and so its reads, go further
    predictions = b"".join(
        record(i, **({"note": padding} if larger == "predictions" else {})) for i in range(n)
    )
    feedback = b"".join(
        json.dumps(
            {"id": f"r{i}", "actual": "a", **({"note": padding} if larger == "feedback" else {})}
        ).encode()
        + b"\n"
        for i in range(n)
    )
    append(root / "m/v1/predictions/p.jsonl", predictions)
    append(root / "m/v1/feedback/f.jsonl", feedback)
    d = start_daemon(f"--models.dir={root}", f"--state.dir={tmp_path / 'state'}", *FAST)
    d.wait_value("routing_ml_feedback_matched_total", float(n), timeout=60, **V)
    assert d.value("routing_ml_feedback_unmatched_total", **V) == 0
    assert d.value("routing_ml_feedback_waiting", **V) == 0
    assert d.value("routing_ml_feedback_total", **V) == n
    correct = sum(1 for i in range(n) if i % 3)  # predicted "a" unless i % 3 == 0
    d.wait_value("routing_ml_live_accuracy", correct / n, **V)


def test_kill_9_while_joining_a_catch_up_loses_and_doubles_nothing(
    tmp_path: Path, start_daemon: Start
) -> None:
    """Predictions and feedback waiting for each other are in the checkpoint with the
    positions: a kill -9 in the middle of a catch-up, then a restart, ends with every
    pair joined once."""
    root = version_dir(tmp_path)
    n = 100_000  # a catch-up of a few seconds at full speed: several checkpoints within it
    padding = "x" * 200
    append(
        root / "m/v1/predictions/p.jsonl",
        b"".join(record(i, note=padding) for i in range(n)),
    )
    append(
        root / "m/v1/feedback/f.jsonl",
        b"".join(b'{"id": "r%d", "actual": "a"}\n' % i for i in range(n)),
    )
    args = (f"--models.dir={root}", f"--state.dir={tmp_path / 'state'}")
    d = start_daemon(*args, "--logs.checkpoint-interval=0.2")
    checkpoint = tmp_path / "state/checkpoint.json"

    def joining() -> bool:
        matched = d.value("routing_ml_feedback_matched_total", **V) or 0
        assert matched < n, "joined before the kill: make the logs larger"
        return matched > 0 and checkpoint.exists()

    wait_until(joining, 30, "a checkpoint in the middle of the catch-up")
    d.signal(signal.SIGKILL)
    d.proc.wait(10)
    d = start_daemon(*args)
    d.wait_value("routing_ml_feedback_matched_total", float(n), timeout=60, **V)
    assert d.value("routing_ml_predictions_total", **V) == n
    assert d.value("routing_ml_feedback_total", **V) == n
    assert d.value("routing_ml_feedback_unmatched_total", **V) == 0
    assert d.value("routing_ml_feedback_expired_total", **V) == 0
    assert d.value("routing_ml_feedback_waiting", **V) == 0

"""The daemon as users run it: a subprocess, files written, /metrics read over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import RunningDaemon, free_port, good_metrics, wait_until, write_json

pytestmark = pytest.mark.integration
Start = Callable[..., RunningDaemon]
V1 = {"model": "m", "version": "v1"}


def models_dir(tmp_path: Path, accuracy: float = 0.92) -> Path:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics(accuracy=accuracy))
    return root


def test_serves_metrics_and_follows_atomic_writes(tmp_path: Path, start_daemon: Start) -> None:
    root = models_dir(tmp_path)
    d = start_daemon(f"--models.dir={root}")
    assert d.value("routing_ml_model_accuracy", **V1) == 0.92
    write_json(root / "m/v1/metrics.json", good_metrics(accuracy=0.71))
    d.wait_value("routing_ml_model_accuracy", 0.71, **V1)
    write_json(root / "m/v2/metrics.json", good_metrics(accuracy=0.95))
    d.wait_value("routing_ml_model_active", 1.0, model="m", version="v2")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"accuracy": 0.5, "training_sam', "invalid_json"),
        (b'{"accuracy": "high"}', "invalid_type"),
        (b'{"accuracy": NaN}', "invalid_value"),
        (b'{"accuracy": 1.5}', "invalid_value"),
        (b"\x00\xff\xfe binary \x00", "not_utf8"),
        (b'{"note": "' + b"x" * 2048 + b'"}', "too_large"),
    ],
)
def test_bad_metrics_file_keeps_last_values(
    tmp_path: Path, start_daemon: Start, content: bytes, reason: str
) -> None:
    root = models_dir(tmp_path)
    d = start_daemon(f"--models.dir={root}", "--models.max-file-bytes=1024")
    path = root / "m/v1/metrics.json"
    tmp = path.with_name(".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    d.wait_value("routing_ml_model_metrics_file_valid", 0.0, **V1)
    samples = d.samples()
    assert samples[("routing_ml_model_accuracy", frozenset(V1.items()))] == 0.92
    errors = {"source": "metrics_file", "reason": reason}
    assert samples[("routing_ml_exporter_errors_total", frozenset(errors.items()))] == 1
    assert d.proc.poll() is None
    logged = [r for r in d.log_records() if r.get("path") == str(path)]
    assert len(logged) == 1 and logged[0]["reason"] == reason and logged[0]["level"] == "error"
    write_json(path, good_metrics(accuracy=0.88))  # fixed: back to valid
    d.wait_value("routing_ml_model_accuracy", 0.88, **V1)
    assert d.value("routing_ml_model_metrics_file_valid", **V1) == 1


def test_directory_named_metrics_json_and_fifo(tmp_path: Path, start_daemon: Start) -> None:
    root = models_dir(tmp_path)
    d = start_daemon(f"--models.dir={root}")
    (root / "m/v2/metrics.json").mkdir(parents=True)
    (root / "m/v3").mkdir()
    os.mkfifo(root / "m/v3/metrics.json")
    d.wait_value("routing_ml_model_metrics_file_valid", 0.0, model="m", version="v2")
    d.wait_value("routing_ml_model_metrics_file_valid", 0.0, model="m", version="v3")
    d.wait_value(
        "routing_ml_exporter_errors_total", 2.0, source="metrics_file", reason="unreadable"
    )
    write_json(root / "m/v1/metrics.json", good_metrics(accuracy=0.5))  # still responsive
    d.wait_value("routing_ml_model_accuracy", 0.5, **V1)


def test_unreadable_permissions(tmp_path: Path, start_daemon: Start) -> None:
    if os.geteuid() != 0:
        root = tmp_path / "models"
        write_json(root / "m/v1/metrics.json", good_metrics())
        (root / "m/v1/metrics.json").chmod(0)
        d = start_daemon(f"--models.dir={root}")
        d.wait_value("routing_ml_model_metrics_file_valid", 0.0, **V1)
        return
    # root reads anything: run the daemon as nobody, as the hardened unit does, in a
    # directory nobody can traverse (pytest's tmp_path parents are private to root)
    if shutil.which("setpriv") is None:
        pytest.fail("running as root needs setpriv (util-linux) to drop privileges")
    public = Path(tempfile.mkdtemp(prefix="mhe-perm-"))
    try:
        public.chmod(0o755)
        root = public / "models"
        write_json(root / "m/v1/metrics.json", good_metrics())
        for p in (root, root / "m", root / "m/v1"):
            p.chmod(0o755)
        (root / "m/v1/metrics.json").chmod(0)
        port = free_port()
        log = (public / "daemon.log").open("wb")
        proc = subprocess.Popen(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                sys.executable,
                "-m",
                "model_health_exporter",
                "run",
                f"--models.dir={root}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def body() -> str:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as r:
                    return str(r.read().decode())

            text = wait_until(lambda: "metrics_file_valid{" in (b := body()) and b, 20, "metrics")
            assert 'routing_ml_model_metrics_file_valid{model="m",version="v1"} 0.0' in text
            denied = '{reason="permission_denied",source="metrics_file"} 1.0'
            assert f"routing_ml_exporter_errors_total{denied}" in text
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    finally:
        shutil.rmtree(public)


def test_version_folder_deleted_or_renamed_series_disappear(
    tmp_path: Path, start_daemon: Start
) -> None:
    root = models_dir(tmp_path)
    write_json(root / "m/v2/metrics.json", good_metrics())
    d = start_daemon(f"--models.dir={root}")
    shutil.rmtree(root / "m/v2")
    (root / "m/v1").rename(root / "m/v1b")

    def versions() -> set[str]:
        labelsets = [dict(labels) for _, labels in d.samples() if ("model", "m") in labels]
        return {v for labels in labelsets if (v := labels.get("version"))}

    wait_until(lambda: versions() == {"v1b"}, 10, "series of v2 and v1 gone")
    d.wait_value("routing_ml_model_accuracy", 0.92, model="m", version="v1b")


def test_flat_layout_and_several_roots(tmp_path: Path, start_daemon: Start) -> None:
    flat = tmp_path / "fraud"
    write_json(flat / "2026-11-01/metrics.json", good_metrics(accuracy=0.96))
    nested = models_dir(tmp_path)
    d = start_daemon(f"--models.dir={flat}", f"--models.dir={nested}")
    assert d.value("routing_ml_model_accuracy", model="fraud", version="2026-11-01") == 0.96
    assert d.value("routing_ml_model_accuracy", **V1) == 0.92


def test_sigterm_stops_within_two_seconds(tmp_path: Path, start_daemon: Start) -> None:
    d = start_daemon(f"--models.dir={models_dir(tmp_path)}")
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(5) == 0
    assert time.monotonic() - started < 2
    assert any(r["event"] == "stopping" for r in d.log_records())


def test_sigint_stops_cleanly(tmp_path: Path, start_daemon: Start) -> None:
    d = start_daemon(f"--models.dir={models_dir(tmp_path)}")
    d.signal(signal.SIGINT)
    assert d.proc.wait(5) == 0


def test_sighup_reloads_config_and_keeps_old_on_error(tmp_path: Path, start_daemon: Start) -> None:
    root = models_dir(tmp_path, accuracy=0.83)
    config = tmp_path / "config.yml"
    config.write_text(f"models: {{dirs: ['{root}']}}\n")
    d = start_daemon(f"--config.file={config}")
    threshold = {"model": "m", "metric": "accuracy", "severity": "warning"}
    assert d.value("routing_ml_model_quality_threshold", **threshold) == 0.85
    config.write_text(
        f"models: {{dirs: ['{root}']}}\n"
        "baselines:\n  models:\n    m:\n"
        "      quality_thresholds: {accuracy: {warning: 0.8}}\n"
    )
    d.signal(signal.SIGHUP)
    d.wait_value("routing_ml_model_quality_threshold", 0.8, **threshold)
    assert d.value("routing_ml_exporter_config_last_reload_successful") == 1
    config.write_text("models: {layout: diagonal}\nbogus: true\n")
    d.signal(signal.SIGHUP)
    d.wait_value("routing_ml_exporter_config_last_reload_successful", 0.0)
    assert d.value("routing_ml_model_quality_threshold", **threshold) == 0.8  # old config kept
    failed = [r for r in d.log_records() if "reload failed" in r["event"]]
    assert len(failed) == 1 and len(failed[0]["problems"]) == 2
    assert d.proc.poll() is None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_health_exporter", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_config_error_exits_2_with_every_problem(tmp_path: Path) -> None:
    result = run_cli(
        f"--models.dir={tmp_path / 'absent'}",
        "--models.layout=round",
        "--web.listen-address=nowhere",
    )
    assert result.returncode == 2
    assert result.stderr.count("config error") == 3
    for key in ("models.dirs", "models.layout", "web.listen_address"):
        assert key in result.stderr


def test_port_in_use_exits_3_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            f"--models.dir={models_dir(tmp_path)}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.format=json",
        )
    assert result.returncode == 3  # a runtime failure, not a configuration error
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["event"] == "cannot listen" and "in use" in record["error"]


def test_systemd_notify_ready(tmp_path: Path, start_daemon: Start) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(20)
        d = start_daemon(
            f"--models.dir={models_dir(tmp_path)}",
            ready=False,
            env={"NOTIFY_SOCKET": str(sock_path)},
        )
        assert b"READY=1" in sock.recv(4096)
        assert d.get("/readyz")[0] == 200  # READY only after the initial scan
        d.signal(signal.SIGTERM)
        assert b"STOPPING=1" in sock.recv(4096)


def test_systemd_watchdog_pings(tmp_path: Path, start_daemon: Start) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(20)
        # WatchdogSec=0.2s: a ping is due every 0.1 s
        start_daemon(
            f"--models.dir={models_dir(tmp_path)}",
            ready=False,
            env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "200000"},
        )
        messages = [sock.recv(4096) for _ in range(4)]
    assert b"READY=1" in messages[0]
    assert messages[1:] == [b"WATCHDOG=1"] * 3


def test_every_thread_blocks_the_lifecycle_signals(tmp_path: Path, start_daemon: Start) -> None:
    """A thread with SIGTERM unblocked would let the kernel kill the process on it,
    skipping the clean stop and final checkpoint (it happened with numpy's thread pool)."""
    root = models_dir(tmp_path)
    (root / "m/v1/predictions").mkdir()
    d = start_daemon(f"--models.dir={root}")
    wanted = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    # The main thread itself waits in sigtimedwait, which unblocks them while it waits.
    tasks = [t for t in Path(f"/proc/{d.proc.pid}/task").iterdir() if t.name != str(d.proc.pid)]
    assert len(tasks) > 3  # HTTP server, watcher, scan worker and ingest at least
    for task in tasks:
        status = (task / "status").read_text()
        blocked = int(
            next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
        )
        assert blocked & wanted == wanted, f"thread {task.name} does not block them: {status}"

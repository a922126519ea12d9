"""The daemon as users start it, when the kernel's inotify queue overflows: events were
lost, so it rescans once, counts it, says so in one log line, and misses nothing."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import RunningDaemon, good_metrics, wait_until, write_json

pytestmark = pytest.mark.integration

MAX_QUEUED_EVENTS = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
OVERFLOW = {"source": "watcher", "reason": "inotify_overflow"}


def test_overflow_is_one_rescan_counted_and_logged_once(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics(accuracy=0.9))
    d = start_daemon(f"--models.dir={root}", "--models.resync-interval=3600")
    assert d.value("routing_ml_exporter_errors_total", **OVERFLOW) == 0
    assert d.value("routing_ml_exporter_errors_total", source="watcher", reason="watch_limit") == 0
    scanned = d.value("routing_ml_exporter_last_scan_timestamp_seconds")
    d.signal(signal.SIGSTOP)  # more events wait meanwhile than the kernel queues
    try:
        for i in range(MAX_QUEUED_EVENTS // 2 + 100):  # created + closed: two events each
            (root / f"m/v1/f{i}").touch()
        write_json(root / "m/v1/metrics.json", good_metrics(accuracy=0.7))
    finally:
        d.signal(signal.SIGCONT)
    d.wait_value("routing_ml_exporter_errors_total", 1.0, **OVERFLOW)
    d.wait_value("routing_ml_model_accuracy", 0.7, model="m", version="v1")
    rescanned = d.value("routing_ml_exporter_last_scan_timestamp_seconds")
    assert scanned is not None and rescanned is not None and rescanned > scanned
    overflow_lines = [r for r in d.log_records() if "overflow" in str(r.get("event", ""))]
    assert len(overflow_lines) == 1, overflow_lines
    # Watching goes on: a later version arrives by its event, not by a resync.
    write_json(root / "m/v2/metrics.json", good_metrics(version="v2", accuracy=0.6))
    d.wait_value("routing_ml_model_accuracy", 0.6, model="m", version="v2")
    wait_until(
        lambda: d.value("routing_ml_exporter_last_scan_timestamp_seconds") == rescanned,
        5,
        "no further rescan",
    )
    assert d.value("routing_ml_exporter_errors_total", **OVERFLOW) == 1

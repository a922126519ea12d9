"""The one thread that writes the registry: acts on file events after a short quiet
period (so a burst of writes costs one refresh), resyncs everything periodically, and
once more when asked (events were lost: however many times it is asked meanwhile)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog

from model_health_exporter.state.registry import ModelRegistry

log = structlog.get_logger(__name__)


class ScanWorker:
    def __init__(self, registry: ModelRegistry, resync_interval: float, debounce: float) -> None:
        self._registry = registry
        self._resync_interval = resync_interval
        self._debounce = debounce
        self._pending: set[Path] = set()
        self._rescan = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scan-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def notify(self, path: Path) -> None:
        """Called from the watcher's thread for every relevant event."""
        with self._lock:
            self._pending.add(path)
        self._wake.set()

    def request_full_scan(self) -> None:
        """Called from the watcher's thread when events were lost: one full scan soon,
        however many requests arrive before it starts."""
        with self._lock:
            self._rescan = True
        self._wake.set()

    def _take_rescan(self) -> bool:
        with self._lock:
            rescan, self._rescan = self._rescan, False
        return rescan

    def _take_pending(self) -> set[Path]:
        with self._lock:
            pending, self._pending = self._pending, set()
        return pending

    def _run(self) -> None:
        next_resync = time.monotonic() + self._resync_interval
        while not self._stopping.is_set():
            woken = self._wake.wait(max(0.0, next_resync - time.monotonic()))
            if self._stopping.is_set():
                break
            try:
                # Let a burst settle; stop() still interrupts the wait.
                if woken:
                    self._stopping.wait(self._debounce)
                    self._wake.clear()
                if self._take_rescan() or time.monotonic() >= next_resync:
                    self._take_pending()
                    # Set first: a scan that fails must not be retried at once, forever.
                    next_resync = time.monotonic() + self._resync_interval
                    self._registry.full_scan()
                    continue
                paths = self._take_pending()
                keys = {k for p in paths if (k := self._registry.key_for_path(p)) is not None}
                if keys:
                    self._registry.refresh(keys)
            except Exception:  # a bug must not stop the exporter; the next event retries
                log.exception("scan failed")

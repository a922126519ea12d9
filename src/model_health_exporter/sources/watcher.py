"""File-system events under the model roots, filtered to those that can change what
is exported, handed on as paths. Interpretation is the registry's job."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import structlog
from watchdog.events import (
    DirModifiedEvent,
    FileClosedNoWriteEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from model_health_exporter.schema import BASELINE_FILE, METRICS_FILE
from model_health_exporter.sources.metrics_files import MARKER_NAMES

log = structlog.get_logger(__name__)

# watchdog's inotify thread warns when it re-adds a watch for a directory created while it
# was adding watches; the watch is replaced and nothing is lost. Keep it out of the logs.
warnings.filterwarnings(
    "ignore", message=r"Callback with id .* already exists", category=RuntimeWarning
)

RELEVANT_FILES: Final = frozenset({METRICS_FILE, BASELINE_FILE, *MARKER_NAMES})
_IGNORED_EVENTS: Final = (DirModifiedEvent, FileOpenedEvent, FileClosedNoWriteEvent)


class _Forwarder(FileSystemEventHandler):
    def __init__(self, on_path: Callable[[Path], None]) -> None:
        self._on_path = on_path

    def on_any_event(self, event: FileSystemEvent) -> None:
        # A directory's "modified" event fires for every file written in it (prediction
        # logs included); only files we read and directories coming or going matter.
        if isinstance(event, _IGNORED_EVENTS):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = Path(os.fsdecode(raw))
            if event.is_directory or path.name in RELEVANT_FILES:
                self._on_path(path)


class ModelDirWatcher:
    """Watches the roots recursively; `stop()` returns once the observer has stopped.
    If watching fails (e.g. the inotify watch limit), the periodic resync still works."""

    def __init__(self, roots: Sequence[Path], on_path: Callable[[Path], None]) -> None:
        self._roots = list(roots)
        self._handler = _Forwarder(on_path)
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        observer = Observer()
        for root in self._roots:
            try:
                observer.schedule(self._handler, str(root), recursive=True)
            except OSError as exc:
                log.warning(
                    "cannot watch directory; relying on periodic resync",
                    path=str(root),
                    error=str(exc),
                )
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None

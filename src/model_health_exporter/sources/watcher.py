"""File-system events under the model roots (and the folders of logs kept outside them),
filtered to those that can change what is exported, handed on as paths. Interpretation
is the registry's and the ingester's job.

Only the events that mean a change are asked of the kernel: created, deleted, moved,
written and closed, attributes changed. Not opened, read or closed-without-writing: the
exporter itself opens every file it reads, and at thousands of files those events alone
overflowed the kernel's queue over and over while nothing was being written.

Log folders (`predictions/`, `feedback/`, and the folders of logs kept elsewhere) also
tell of appends, one event at a time: see `arm`.

When the queue does overflow, events were lost: the watches are checked once more and
`on_overflow` is called once, for a single rescan by whoever acts on the events. When the
watch limit (/proc/sys/fs/inotify/max_user_watches) is reached, the folders left without
a watch are handed on every `fallback_interval` seconds instead (polled), and
`on_watch_limit` is called once."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

import structlog
from inotify_simple import INotify, flags

from model_health_exporter.schema import BASELINE_FILE, METRICS_FILE
from model_health_exporter.sources.metrics_files import MARKER_NAMES
from model_health_exporter.sources.reference import REFERENCE_FILES

log = structlog.get_logger(__name__)

RELEVANT_FILES: Final = frozenset({METRICS_FILE, BASELINE_FILE, *MARKER_NAMES, *REFERENCE_FILES})
# Files in folders of these names are prediction or feedback logs: every change counts.
LOG_DIR_NAMES: Final = frozenset({"predictions", "feedback"})

# Plain ints: enum arithmetic per event costs more than the rest of its handling.
_CREATE: Final = int(flags.CREATE)
_DELETE: Final = int(flags.DELETE)
_MOVED_FROM: Final = int(flags.MOVED_FROM)
_MOVED_TO: Final = int(flags.MOVED_TO)
_IS_DIR: Final = int(flags.ISDIR)
_IGNORED: Final = int(flags.IGNORED)
_OVERFLOW: Final = int(flags.Q_OVERFLOW)
_CHANGE: Final = _CREATE | _DELETE | _MOVED_FROM | _MOVED_TO | int(flags.CLOSE_WRITE | flags.ATTRIB)
_DIR_MASK: Final = _CHANGE | int(flags.DELETE_SELF | flags.ONLYDIR | flags.EXCL_UNLINK)
# Log folders also tell of appends, once: the first one takes it off their watch until the
# reader, about to read, `arm`s it again. So a busy log costs an event and two system
# calls per read, not an event per write, and an idle one costs nothing.
_MODIFY: Final = int(flags.MODIFY)
# Appends are told by IN_MODIFY there; a writer that opens and closes the file for every
# line would otherwise also send a close event per line.
_LOG_DIR_MASK: Final = _DIR_MASK & ~int(flags.CLOSE_WRITE)
_LOG_EVERY_SECONDS: Final = 10.0

# Labels of the errors counter the daemon keeps for the watching.
ERROR_SOURCE: Final = "watcher"
ERROR_REASONS: Final = ("inotify_overflow", "watch_limit")


class ModelDirWatcher:
    """Watches `roots` recursively and `extra_dirs` (folders of logs kept elsewhere) each
    on its own. `on_path` is called from the watcher's thread for every directory event
    and for every file event that matters (the registry's files, any file in a log
    folder or in an extra folder). `stop()` returns once the thread has ended."""

    def __init__(
        self,
        roots: Sequence[Path],
        on_path: Callable[[Path], None],
        *,
        extra_dirs: Iterable[Path] = (),
        on_overflow: Callable[[], None] | None = None,
        on_watch_limit: Callable[[], None] | None = None,
        fallback_interval: float = 5.0,
    ) -> None:
        self._roots = list(roots)
        self._extra = frozenset(extra_dirs)
        self._on_path = on_path
        self._on_overflow = on_overflow
        self._on_watch_limit = on_watch_limit
        self._fallback_interval = fallback_interval
        self._inotify: INotify | None = None
        self._paths: dict[int, Path] = {}  # watch descriptor -> directory
        self._wds: dict[Path, int] = {}
        # Log folders whose watch has no IN_MODIFY right now (an append was told).
        self._disarmed: set[Path] = set()
        self._arm_lock = threading.Lock()
        # Folders without a watch for lack of watches: polled instead.
        self._unwatched: set[Path] = set()
        self._limit_reported = False
        self._last_overflow_log = float("-inf")
        self._overflows = 0
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Adds the watches (before returning, so a scan right after misses nothing)."""
        self._stopping.clear()
        try:
            self._inotify = INotify()
        except OSError as exc:  # out of inotify instances: poll everything
            log.warning("cannot use inotify; polling the model folders", error=str(exc))
        for root in self._roots:
            self._watch_tree(root, announce=False)
        for directory in self._extra:
            self._watch(directory)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._thread.join()
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        with self._arm_lock:  # arm() may be running in the reader's thread
            if self._inotify is not None:
                self._inotify.close()
                self._inotify = None
        self._paths.clear()
        self._wds.clear()
        self._unwatched.clear()
        self._disarmed.clear()

    @property
    def unwatched(self) -> int:
        """How many folders are polled for lack of a watch."""
        return len(self._unwatched)

    @property
    def overflows(self) -> int:
        return self._overflows

    def arm(self, directory: Path) -> bool:
        """Called by the log reader just before it reads the files of a log folder: the
        next append there is told again. False if the folder has no watch (then nothing
        is told of its appends, and the reader polls it)."""
        with self._arm_lock:
            if directory not in self._disarmed:
                return directory in self._wds
            inotify = self._inotify
            if inotify is None:
                return False
            try:
                inotify.add_watch(directory, _LOG_DIR_MASK | _MODIFY)
            except OSError:
                return False
            self._disarmed.discard(directory)
            return True

    def _disarm(self, directory: Path) -> None:
        with self._arm_lock:
            if directory in self._disarmed or self._inotify is None:
                return
            try:
                self._inotify.add_watch(directory, _LOG_DIR_MASK)
            except OSError:
                return  # gone: its deletion event follows
            self._disarmed.add(directory)

    def _is_log_dir(self, directory: Path) -> bool:
        return directory.name in LOG_DIR_NAMES or directory in self._extra

    # ---- watches --------------------------------------------------------------------

    def _watch(self, directory: Path) -> bool:
        """Add a watch on one folder; False if it has none (gone, unreadable, or out of
        watches: then it is polled)."""
        if self._inotify is None:
            self._note_unwatched(directory)
            return False
        mask = _LOG_DIR_MASK | _MODIFY if self._is_log_dir(directory) else _DIR_MASK
        try:
            with self._arm_lock:
                wd = self._inotify.add_watch(directory, mask)
                self._disarmed.discard(directory)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._note_unwatched(directory)
            return False  # vanished or unreadable: its parent's events and the resync cover it
        self._unwatched.discard(directory)
        old = self._paths.get(wd)
        if old is not None and old != directory:
            self._wds.pop(old, None)
        self._paths[wd] = directory
        self._wds[directory] = wd
        return True

    def _note_unwatched(self, directory: Path) -> None:
        self._unwatched.add(directory)
        if not self._limit_reported:
            self._limit_reported = True
            log.warning(
                "out of inotify watches; polling the folders left without one "
                "(raise fs.inotify.max_user_watches)",
                path=str(directory),
                every_seconds=self._fallback_interval,
            )
            if self._on_watch_limit is not None:
                self._on_watch_limit()

    def _watch_tree(self, top: Path, announce: bool) -> None:
        """Watch `top` and every folder below it (links not followed); with `announce`,
        hand on each folder found, as a folder created with content in it (mkdir -p, a
        moved-in tree) gives no events for what was there before its watch."""
        stack = [top]
        while stack:
            directory = stack.pop()
            self._watch(directory)
            if announce:
                self._on_path(directory)
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
            except OSError:
                continue

    def _forget_tree(self, top: Path) -> None:
        """Drop the watches of a folder moved away or deleted, and of those below it."""
        for directory in [d for d in self._wds if d == top or d.is_relative_to(top)]:
            wd = self._wds.pop(directory)
            self._paths.pop(wd, None)
            if self._inotify is not None:
                with contextlib.suppress(OSError):  # already gone with its folder
                    self._inotify.rm_watch(wd)
        self._unwatched = {d for d in self._unwatched if not d.is_relative_to(top)}
        with self._arm_lock:
            self._disarmed = {d for d in self._disarmed if not d.is_relative_to(top)}

    # ---- events ---------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if self._inotify is not None:
            poller.register(self._inotify.fileno(), select.POLLIN)
        next_poll = time.monotonic() + self._fallback_interval
        while not self._stopping.is_set():
            timeout = None
            if self._unwatched:
                timeout = max(0.0, next_poll - time.monotonic()) * 1000
            ready = poller.poll(timeout)
            if self._stopping.is_set():
                break
            try:
                if ready and self._inotify is not None:
                    self._handle(self._inotify.read(timeout=0))
                if self._unwatched and time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self._fallback_interval
                    self._poll_unwatched()
            except Exception:  # a bug must not stop the watching; the resync covers
                log.exception("watching failed")

    def _handle(self, events: Iterable[tuple[int, int, int, str]]) -> None:
        overflowed = False
        for wd, mask, _, name in events:
            if mask & _OVERFLOW:
                overflowed = True
                continue
            if mask & _IGNORED:
                directory = self._paths.pop(wd, None)
                if directory is not None and self._wds.get(directory) == wd:
                    del self._wds[directory]
                continue
            directory = self._paths.get(wd)
            if directory is None or not mask & (_CHANGE | _MODIFY):
                continue
            if mask & _MODIFY:
                self._disarm(directory)
            path = directory / name if name else directory
            if mask & _IS_DIR:
                if mask & (_MOVED_FROM | _DELETE):
                    self._forget_tree(path)
                    self._on_path(path)
                elif mask & (_CREATE | _MOVED_TO):
                    self._watch_tree(path, announce=True)
                else:
                    self._on_path(path)
            elif name in RELEVANT_FILES or self._is_log_dir(directory):
                self._on_path(path)
        if overflowed:
            self._overflowed()

    def _overflowed(self) -> None:
        """Events were lost: check every watch once (folders created meanwhile get
        theirs), then one rescan by the callback."""
        self._overflows += 1
        now = time.monotonic()
        if now - self._last_overflow_log >= _LOG_EVERY_SECONDS:
            self._last_overflow_log = now
            log.warning(
                "inotify queue overflowed; events were lost, rescanning once "
                "(further overflows counted, logged at most every 10 s)",
                overflows=self._overflows,
            )
        for root in self._roots:
            self._watch_tree(root, announce=False)
        for directory in self._extra:
            self._watch(directory)
        if self._on_overflow is not None:
            self._on_overflow()

    def _poll_unwatched(self) -> None:
        """Hand on every folder without a watch, after trying once more to watch it
        (watches may have been freed meanwhile)."""
        for directory in sorted(self._unwatched):
            if self._watch(directory) and directory not in self._extra:
                self._watch_tree(directory, announce=True)
                continue
            self._on_path(directory)
        if not self._unwatched and self._limit_reported:
            self._limit_reported = False
            log.info("every folder is watched again; polling stopped")

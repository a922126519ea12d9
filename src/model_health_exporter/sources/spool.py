"""The push spool: batches received over HTTP, appended durably to JSON Lines files that
the prediction-log tailer reads like any `--logs.path` log. I/O only.

- A batch is written and fsync'ed before its sender hears 2xx; a new file's directory
  entry is fsync'ed too. Concurrent batches share fsyncs (group commit): a writer whose
  bytes an fsync already covered returns without one of its own.
- Files rotate at `file_bytes`; a closed file is deleted once the tailer's saved
  checkpoint says it was read to its end (`release`). The files together stay under
  `max_bytes`: beyond it `append` raises SpoolFullError (the sender is told to retry later).
- Each batch's first line carries `"_batch"` (unique, so that every file starts with a
  line of its own: the tailer knows a file by its first line) and `"_key"`, the sender's
  idempotency key if any. Keys seen within the horizon (`keys_max` keys, `keys_age`
  seconds) are answered as duplicates. They survive a restart: from the spool files
  still there, and from `keys.json`, written before any file holding keys is deleted.
- `halves.jsonl` keeps the payload-logger events waiting for their partner, so a
  request acknowledged before its response came survives a restart too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import orjson

from model_health_exporter.fsutil import atomic_write_bytes
from model_health_exporter.sources.prediction_logs import Position, fingerprint

FILE_PREFIX: Final = "spool-"
FILE_SUFFIX: Final = ".jsonl"
KEYS_FILE: Final = "keys.json"
HALVES_FILE: Final = "halves.jsonl"
_BATCH_MARK: Final = b'{"_batch":"'


class SpoolFullError(Exception):
    """The spool holds `max_bytes` not yet read: retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"spool full; retry after {retry_after} s")
        self.retry_after = retry_after


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        file_bytes: int = 8 << 20,
        max_bytes: int = 256 << 20,
        keys_max: int = 100_000,
        keys_age: float = 3600.0,
        retry_after: int = 5,
    ) -> None:
        self.directory = directory
        self._file_bytes = file_bytes
        self._max_bytes = max_bytes
        self._keys_max = keys_max
        self._keys_age = keys_age
        self._retry_after = retry_after
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        if created:
            _fsync_dir(directory.parent)
        self._lock = threading.Lock()  # the file, the sizes, the keys
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0  # of the current file
        self._written = 0  # batches written ...
        self._synced = 0  # ... and those an fsync covered
        self._sizes: dict[Path, int] = {}  # every spool file there, closed or not
        self._keys: OrderedDict[str, float] = OrderedDict()  # key -> when seen, oldest first
        self._keys_in: dict[Path, list[str]] = {}  # the keys of each file
        self._halves_fd: int | None = None
        # Batch marks: random per spool opened, then a count; unique across restarts
        # without a getrandom() call (and a GIL hand-over) per request.
        self._mark_prefix = secrets.token_hex(8).encode() + b"-"
        self._marks = itertools.count()
        self._load()

    @property
    def pattern(self) -> str:
        """The glob the tailer reads, as for `--logs.path`."""
        return str(self.directory / f"{FILE_PREFIX}*{FILE_SUFFIX}")

    # ---- start ------------------------------------------------------------------------

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"))

    def _load(self) -> None:
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            saved = orjson.loads((self.directory / KEYS_FILE).read_bytes())
            for key, seen in sorted(saved.items(), key=lambda kv: kv[1]):
                self._keys[str(key)] = float(seen)
        for path in self._files():
            st = path.stat()
            self._sizes[path] = st.st_size
            keys = []
            with path.open("rb") as f:
                for line in f:
                    if line.startswith(_BATCH_MARK) and b'"_key":"' in line:
                        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                            key = orjson.loads(line).get("_key")
                            if isinstance(key, str):
                                keys.append(key)
                                self._keys[key] = st.st_mtime
                                self._keys.move_to_end(key)
            self._keys_in[path] = keys
        self._expire(now)

    # ---- keys -------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        keys = self._keys
        while keys and (
            len(keys) > self._keys_max or next(iter(keys.values())) < now - self._keys_age
        ):
            keys.popitem(last=False)

    def seen(self, key: str) -> bool:
        with self._lock:
            self._expire(time.time())
            return key in self._keys

    def _save_keys(self) -> None:
        atomic_write_bytes(self.directory / KEYS_FILE, orjson.dumps(dict(self._keys)))

    # ---- appending --------------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total()

    def _total(self) -> int:
        return sum(self._sizes.values())

    def _rotate(self) -> None:
        """Close the current file (its bytes made durable first) and open a new one."""
        with self._sync_lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._synced = self._written
            name = f"{FILE_PREFIX}{time.time_ns():020d}-{secrets.token_hex(4)}{FILE_SUFFIX}"
            path = self.directory / name
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            _fsync_dir(self.directory)
            self._path, self._size = path, 0
            self._sizes[path] = 0
            self._keys_in[path] = []

    def append(self, lines: list[bytes], key: str | None = None) -> bool:
        """Append a batch of record lines (JSON objects, no newlines) durably. False if
        `key` was seen within the horizon (nothing written). Raises SpoolFullError, OSError."""
        mark = _BATCH_MARK + self._mark_prefix + b"%x" % next(self._marks) + b'",'
        if key is not None:
            mark += b'"_key":' + orjson.dumps(key) + b","
        data = b"\n".join([mark + lines[0][1:], *lines[1:]]) + b"\n"
        with self._lock:
            now = time.time()
            if key is not None:
                self._expire(now)
                if key in self._keys:
                    return False
            if self._total() + len(data) > self._max_bytes:
                raise SpoolFullError(self._retry_after)
            if self._fd is None or (self._size and self._size + len(data) > self._file_bytes):
                self._rotate()
            fd, path = self._fd, self._path
            if fd is None or path is None:  # (opened just above)
                raise OSError("the spool file is not open")
            _write_all(fd, data)
            self._size += len(data)
            self._sizes[path] = self._size
            if key is not None:
                self._keys[key] = now
                self._keys_in[path].append(key)
            self._written += 1
            mine = self._written
        self._sync(mine)
        return True

    def _sync(self, mine: int) -> None:
        with self._sync_lock:
            if self._synced >= mine:
                return  # another writer's fsync (or a rotation) covered these bytes
            # No rotation can happen while this lock is held (it takes it too), so the
            # current file holds every batch counted in `target` that no fsync covered.
            # (Not self._lock here: append takes the two in the other order.)
            target, current = self._written, self._fd
            if current is None:
                return  # closed: its close synced it
            os.fsync(current)
            self._synced = max(self._synced, target)

    # ---- after a checkpoint -----------------------------------------------------------

    def release(self, positions: Mapping[str, Position]) -> int:
        """Delete the closed files the tailer's saved checkpoint (`positions`, by
        fingerprint) read to their end; returns how many."""
        with self._lock:
            closed = [p for p in self._sizes if p != self._path]
        done = []
        for path in closed:
            fp = fingerprint(path)
            position = positions.get(fp) if fp is not None else None
            if position is not None and position.offset >= self._sizes[path]:
                done.append(path)
        if not done:
            return 0
        with self._lock:
            if any(self._keys_in.get(p) for p in done):
                self._save_keys()  # before the keys' last copy goes
            for path in done:
                path.unlink(missing_ok=True)
                self._sizes.pop(path, None)
                self._keys_in.pop(path, None)
        return len(done)

    def rotate_if_read(self, positions: Mapping[str, Position]) -> None:
        """Close the current file once it was read to its end, so that `release` can
        delete it: an idle spool keeps no file."""
        with self._lock:
            if self._fd is None or self._path is None or not self._size:
                return
            fp = fingerprint(self._path)
            position = positions.get(fp) if fp is not None else None
            if position is None or position.offset < self._size:
                return
            with self._sync_lock:
                os.fsync(self._fd)
                os.close(self._fd)
                self._synced = self._written
                self._fd, self._path, self._size = None, None, 0

    # ---- halves of payload-logger pairs -----------------------------------------------

    def load_halves(self) -> list[dict[str, Any]]:
        path = self.directory / HALVES_FILE
        out = []
        with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
            for line in f:
                with contextlib.suppress(orjson.JSONDecodeError):
                    item = orjson.loads(line)
                    if isinstance(item, dict):
                        out.append(item)
        return out

    @property
    def keys_age(self) -> float:
        return self._keys_age

    def add_half(self, item: bytes) -> None:
        """Append one waiting event (a JSON object) to halves.jsonl, durably."""
        data = item + b"\n"
        with self._lock:
            if self._halves_fd is None:
                path = self.directory / HALVES_FILE
                new = not path.exists()
                self._halves_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                if new:
                    _fsync_dir(self.directory)
            _write_all(self._halves_fd, data)
            os.fsync(self._halves_fd)

    def rewrite_halves(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Replace halves.jsonl by the events still waiting."""
        data = b"".join(orjson.dumps(item) + b"\n" for item in items)
        with self._lock:
            if self._halves_fd is not None:
                os.close(self._halves_fd)
                self._halves_fd = None
            atomic_write_bytes(self.directory / HALVES_FILE, data)

    def close(self) -> None:
        with self._lock, self._sync_lock:
            for fd in (self._fd, self._halves_fd):
                if fd is not None:
                    os.fsync(fd)
                    os.close(fd)
            self._fd = self._halves_fd = None
            self._path = None

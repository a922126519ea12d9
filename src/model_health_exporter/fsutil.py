"""Small file-system helpers shared by the daemon, the CLI and the Python API."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from model_health_exporter.schema import InvalidFileError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old or the new content, never a mix:
    a temporary file in the same directory, fsync, rename, then fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_capped(path: Path, max_bytes: int) -> bytes:
    """Read a whole regular file of at most `max_bytes`; raises InvalidFileError otherwise.

    Opened non-blocking and checked to be a regular file first: a FIFO or device
    named metrics.json must not hang the scan."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError as exc:
        raise InvalidFileError("permission_denied", exc.strerror or str(exc)) from None
    except OSError as exc:
        raise InvalidFileError("unreadable", exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise InvalidFileError("unreadable", f"is {kind}")
        chunks, size = [], 0
        while size <= max_bytes and (chunk := os.read(fd, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InvalidFileError("unreadable", exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise InvalidFileError("too_large", f"larger than the {max_bytes}-byte limit")
    return data

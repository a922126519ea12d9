"""Small file-system helpers shared by the daemon, the CLI and the Python API."""

from __future__ import annotations

import contextlib
import os
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
    """Read a whole regular file of at most `max_bytes`; raises InvalidFileError otherwise."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except IsADirectoryError:
        raise InvalidFileError("unreadable", "is a directory, not a file") from None
    except OSError as exc:
        raise InvalidFileError("unreadable", exc.strerror or str(exc)) from None
    if len(data) > max_bytes:
        raise InvalidFileError("too_large", f"larger than the {max_bytes}-byte limit")
    return data

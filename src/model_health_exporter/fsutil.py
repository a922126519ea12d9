"""Small file-system helpers shared by the daemon, the CLI and the Python API."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from model_health_exporter.schema import InvalidFileError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old or the new content, never a mix:
    a temporary file in the same directory, fsync, rename, then fsync the directory.

    The file gets the mode of the file it replaces, else 0666 less the umask, as any
    other new file would: the exporter's service user must be able to read it."""
    atomic_write_chunks(path, (data,))


def atomic_write_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """`atomic_write_bytes` of the content `chunks` make, each written as it comes: a
    large file is never whole in memory. If making a chunk raises, `path` keeps its old
    content and the partial temporary file is removed."""
    fd, tmp = _create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(f.fileno(), stat.S_IMODE(path.stat().st_mode))
            for chunk in chunks:
                f.write(chunk)
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


def _create_temp_beside(path: Path) -> tuple[int, Path]:
    # Not tempfile.mkstemp: it forces mode 0600 whatever the umask. O_EXCL with 0666
    # lets the kernel apply the umask, and a random name keeps concurrent writers apart.
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


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

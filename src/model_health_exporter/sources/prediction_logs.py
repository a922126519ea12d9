"""Tailing prediction and feedback logs: complete lines, each exactly once, across
restarts and rotation. I/O only; what a line means is decided elsewhere.

A file is known by a fingerprint of its first line, not by its name or inode, and its
read position is kept per fingerprint (`Positions`). That one rule covers:

- rename rotation (`x.jsonl` -> `x.jsonl.1`, new `x.jsonl`): the renamed file keeps its
  fingerprint and is finished from its position; the new file starts at 0;
- copytruncate: the copy keeps the fingerprint and is finished; the truncated file gets
  a new first line, so a new fingerprint, and starts at 0;
- compression of a rotated file (`x.jsonl.1.gz`): the decompressed first line matches,
  so only what had not been read yet is read;
- a restart, including after `kill -9`: positions come back from the checkpoint.

A last line without its newline is left for the next read. Two files whose first lines
are byte-identical would be taken for one; prediction records carry ids and timestamps,
so their first lines differ.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import stat
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

_FINGERPRINT_MAX: Final = 4096  # a first line longer than this is fingerprinted by its prefix
_GZIP_MAGIC: Final = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Line:
    data: bytes  # without the trailing newline
    number: int  # 1-based line number in its file, for error messages


@dataclass(frozen=True, slots=True)
class Position:
    """How far a file (known by its fingerprint) has been consumed."""

    offset: int = 0  # bytes, of the decompressed content for gzip files
    line: int = 0
    finished: bool = False  # a gzip file read to its end: never read again


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines read from one file, and the position after them. The lines are
    kept as two parallel sequences rather than one object per line: a chunk holds
    thousands of them, and reading them is the hot path."""

    path: Path
    fingerprint: str
    texts: list[bytes]  # the lines without their newlines; blank ones left out
    numbers: Sequence[int]  # 1-based line number in its file of each, for messages
    end: Position
    too_long: list[int]  # line numbers skipped for exceeding the length cap

    @property
    def lines(self) -> list[Line]:
        return [Line(data, number) for data, number in zip(self.texts, self.numbers, strict=True)]


def _is_gzip(head: bytes) -> bool:
    return head.startswith(_GZIP_MAGIC)


def _read_head(path: Path) -> bytes | None:
    """The first line (or its first bytes) of a file, decompressed if gzip; None while the
    file has no complete first line yet."""
    try:
        with path.open("rb") as raw:
            magic = raw.read(2)
            raw.seek(0)
            if _is_gzip(magic):
                with gzip.GzipFile(fileobj=raw) as gz:
                    head = gz.read(_FINGERPRINT_MAX)
            else:
                head = raw.read(_FINGERPRINT_MAX)
    except (OSError, EOFError, zlib.error):
        return None
    newline = head.find(b"\n")
    if newline >= 0:
        return head[: newline + 1]
    return head if len(head) >= _FINGERPRINT_MAX else None


def fingerprint(path: Path) -> str | None:
    head = _read_head(path)
    return None if head is None else hashlib.blake2b(head, digest_size=12).hexdigest()


def list_log_files(directory: Path, pattern: str = "*") -> list[Path]:
    """Regular, non-hidden files in `directory` whose names match `pattern`, oldest first
    by modification time, so that a rotated file is finished before its successor."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    files = []
    for entry in entries:
        if entry.name.startswith(".") or not fnmatch.fnmatchcase(entry.name, pattern):
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.append((st.st_mtime_ns, entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(files)]


def _split_lines(
    data: bytes, start_line: int, max_line_bytes: int
) -> tuple[list[bytes], Sequence[int], int, int, list[int]]:
    """Complete lines of `data`; returns (lines, their numbers, bytes consumed, lines
    consumed, too-long line numbers)."""
    raw = data.split(b"\n")
    rest = raw.pop()  # after the last newline: a line still being written, or b""
    if not raw:
        return [], (), 0, 0, []
    consumed = len(data) - len(rest)
    # Usually no line is blank or too long: then the lines are the split itself, checked
    # by C-level passes, and their numbers a range.
    if max(map(len, raw)) <= max_line_bytes and b"" not in raw and not any(map(bytes.isspace, raw)):
        return raw, range(start_line + 1, start_line + 1 + len(raw)), consumed, len(raw), []
    lines: list[bytes] = []
    numbers: list[int] = []
    too_long: list[int] = []
    number = start_line
    for line in raw:
        number += 1
        if len(line) > max_line_bytes:
            too_long.append(number)
        elif line.strip():
            lines.append(line)
            numbers.append(number)
    return lines, numbers, consumed, len(raw), too_long


def _skip_long_line(raw: BinaryIO, path: Path, fp: str, position: Position) -> Chunk:
    """Skip the over-long line starting at `position`, once its newline has arrived."""
    skipped = 0
    while block := raw.read(1 << 20):
        newline = block.find(b"\n")
        if newline >= 0:
            number = position.line + 1
            end = Position(position.offset + skipped + newline + 1, number)
            return Chunk(path, fp, [], (), end, [number])
        skipped += len(block)
    return Chunk(path, fp, [], (), position, [])  # wait for its end


def read_new_lines(
    path: Path,
    fp: str,
    position: Position,
    max_bytes: int,
    max_line_bytes: int,
) -> Chunk | None:
    """Up to about `max_bytes` of complete lines after `position`. Gzip files are read
    whole: they are finished rotations. None if the file vanished, cannot be read, or
    shrank below `position` (truncated: it will come back under a new fingerprint)."""
    finished = False
    try:
        with path.open("rb") as raw:
            if _is_gzip(raw.read(2)):
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw) as gz:
                    data = gz.read()
                if data and not data.endswith(b"\n"):
                    data += b"\n"  # a finished file: its last line is complete
                data = data[position.offset :]
                finished = True
            else:
                if os.fstat(raw.fileno()).st_size < position.offset:
                    return None
                raw.seek(position.offset)
                data = raw.read(max(max_bytes, max_line_bytes + 1))
                if len(data) > max_line_bytes and b"\n" not in data:
                    raw.seek(position.offset)
                    return _skip_long_line(raw, path, fp, position)
    except (OSError, EOFError, zlib.error):
        return None
    lines, numbers, consumed, n_lines, too_long = _split_lines(data, position.line, max_line_bytes)
    end = Position(position.offset + consumed, position.line + n_lines, finished)
    return Chunk(path, fp, lines, numbers, end, too_long)


# A file's inode, size, modification and change times (ns): any write changes them.
_Stat = tuple[int, int, int, int]


class LogTail:
    """Follows every log file of one directory. `poll()` reads what is new; `commit()`
    advances a file's position once the caller has taken its lines, so that positions
    and what was made of the lines can be saved together."""

    def __init__(
        self,
        directory: Path,
        positions: dict[str, Position] | None = None,
        max_bytes: int = 1 << 20,
        max_line_bytes: int = 64 * 1024,
        pattern: str = "*",
    ) -> None:
        self.directory = directory
        self.pattern = pattern
        self.positions: dict[str, Position] = dict(positions or {})
        self._max_bytes = max_bytes
        self._max_line_bytes = max_line_bytes
        # path -> (inode, size when fingerprinted, fingerprint): the first line of a file
        # cannot change unless it is replaced or truncated.
        self._fingerprints: dict[Path, tuple[int, int, str]] = {}
        self._files: list[Path] | None = None  # the last listing of the directory
        # path -> (its stat, fingerprint, position) when it was read to its end: while
        # the stat and the position stay the same there is nothing new to read.
        self._read_to_end: dict[Path, tuple[_Stat, str, Position]] = {}
        # The last poll left something to read: more than it reads at once, or the
        # start of a line.
        self.behind = False

    def _fingerprint(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError:
            return None
        cached = self._fingerprints.get(path)
        if cached is not None and cached[0] == st.st_ino and st.st_size >= cached[1]:
            return cached[2]
        fp = fingerprint(path)
        if fp is not None:
            self._fingerprints[path] = (st.st_ino, st.st_size, fp)
        return fp

    def poll(self, relist: bool = True) -> list[Chunk]:
        """What is new in the directory's files. With `relist` False the last listing is
        reused (the caller learns of files coming and going from file events). A file
        unchanged since it was read to its end costs one stat, not an open and a read."""
        chunks = []
        self.behind = False
        if relist or self._files is None:
            self._files = list_log_files(self.directory, self.pattern)
            listed = set(self._files)
            for stale in set(self._fingerprints) - listed:
                del self._fingerprints[stale]
            for stale in set(self._read_to_end) - listed:
                del self._read_to_end[stale]
        for path in self._files:
            try:
                st = path.stat()
            except OSError:
                continue
            seen: _Stat = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            done = self._read_to_end.get(path, (None, "", None))
            if done[0] == seen and self.positions.get(done[1], Position()) == done[2]:
                continue
            fp = self._fingerprint(path)
            if fp is None:
                continue  # empty, or its first line is still being written
            position = self.positions.get(fp, Position())
            if position.finished:
                self._read_to_end[path] = (seen, fp, position)
                continue
            chunk = read_new_lines(path, fp, position, self._max_bytes, self._max_line_bytes)
            if chunk is None:
                continue
            if chunk.end != position or chunk.texts:
                chunks.append(chunk)
            if chunk.end.finished or chunk.end.offset == st.st_size:
                self._read_to_end[path] = (seen, fp, chunk.end)
            else:
                self.behind = True
        return chunks

    def commit(self, chunk: Chunk) -> None:
        self.positions[chunk.fingerprint] = chunk.end

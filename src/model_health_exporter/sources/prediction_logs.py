"""Tailing prediction and feedback logs: complete lines, each exactly once, across
restarts and rotation. I/O only; what a line means is decided elsewhere.

A file is known by a fingerprint of its first line, not by its name or inode, and its
read position is kept per fingerprint (`Position`), with a hash of the bytes just before
the position. A file is read on from a position only if those bytes are still there;
otherwise it is a new file, read from its start. That covers:

- rename rotation (`x.jsonl` -> `x.jsonl.1`, new `x.jsonl`): the renamed file keeps its
  fingerprint and is finished from its position; the new file starts at 0;
- copytruncate (copy, then truncate in place while the writer appends): the copy keeps
  the fingerprint and is finished; the truncated file no longer holds the bytes before
  its old position, even once it has grown past it, so it is read from 0 under the
  fingerprint of its new first line;
- truncate-and-rewrite in place: the same;
- compression of a rotated file (`x.jsonl.1.gz`): the decompressed first line matches,
  so only what had not been read yet is read;
- a restart, including after `kill -9`: positions come back from the checkpoint (those
  saved without the hash are trusted as they are until the next read adds it).

A last line without its newline is left for the next read. Two files whose first lines
are byte-identical are told apart only by the bytes before the position: of several
such files present at once, one that still holds them is read on and the others wait.
Prediction records carry ids and timestamps, so their first lines differ.

The position of a file that has been gone from its folder for `forget_after` seconds is
dropped, so that positions do not pile up on a host that rotates many files.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import stat
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import repeat
from pathlib import Path
from typing import BinaryIO, Final

_FINGERPRINT_MAX: Final = 4096  # a first line longer than this is fingerprinted by its prefix
_GZIP_MAGIC: Final = b"\x1f\x8b"
# The bytes before a position that must still be there to read on from it: enough to
# tell one stream of records from another, little to read again at each new chunk.
_CHECK_BYTES: Final = 4096
# A file missing from its folder this long is gone for good: its position is dropped.
# Long enough to outlast any rotation step (rename, compress, delete the original).
FORGET_AFTER_SECONDS: Final = 300.0
# One read of one file: a backlog is read in rounds of this much per file.
READ_BYTES: Final = 1 << 20


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
    # hash of the (up to _CHECK_BYTES) bytes before `offset`; None at 0, and in
    # positions saved before it was kept (then the offset is trusted as it is)
    check: str | None = None


class Mismatch(Enum):
    """Why a file cannot be read on from a position."""

    SHORTER = "shorter"  # the file is shorter than the position (truncated, or a copy)
    CHANGED = "changed"  # the bytes before the position are not the ones read


def content_check(before: bytes) -> str:
    """The `Position.check` of the bytes before a position."""
    return hashlib.blake2b(before[-_CHECK_BYTES:], digest_size=8).hexdigest()


def _end_check(before: bytes, data: bytes, consumed: int) -> str | None:
    """The check of the position `consumed` bytes into `data`, which follows `before`
    (that holds the up to _CHECK_BYTES bytes before the start of `data`)."""
    if consumed >= _CHECK_BYTES:
        return content_check(data[consumed - _CHECK_BYTES : consumed])
    if not before and not consumed:
        return None
    return content_check(
        before[max(0, len(before) - (_CHECK_BYTES - consumed)) :] + data[:consumed]
    )


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
    more: bool = False  # the read stopped at its size limit: the file may hold more now

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


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


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


_NEWLINE: Final = repeat(b"\n")


def _split_lines(
    data: bytes, start_line: int, max_line_bytes: int
) -> tuple[list[bytes], Sequence[int], int, int, list[int]]:
    """Complete lines of `data`; returns (lines, their numbers, bytes consumed, lines
    consumed, too-long line numbers)."""
    # bytes.split looks at the bytes one by one; BytesIO finds each newline with memchr
    # (its lines keep their newline, taken off by a C-level pass: still half the work)
    raw = io.BytesIO(data).readlines()
    rest = raw.pop() if raw and not raw[-1].endswith(b"\n") else b""
    if not raw:
        return [], (), 0, 0, []
    raw = list(map(bytes.removesuffix, raw, _NEWLINE))
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
            offset = position.offset + skipped + newline + 1
            raw.seek(max(0, offset - _CHECK_BYTES))
            check = content_check(raw.read(min(offset, _CHECK_BYTES)))
            return Chunk(path, fp, [], (), Position(offset, number, check=check), [number])
        skipped += len(block)
    return Chunk(path, fp, [], (), position, [])  # wait for its end


def read_new_lines(
    path: Path,
    fp: str,
    position: Position,
    max_bytes: int,
    max_line_bytes: int,
) -> Chunk | Mismatch | None:
    """Up to about `max_bytes` of complete lines after `position`. Gzip files are read
    whole: they are finished rotations. None if the file vanished or cannot be read; a
    Mismatch if it no longer holds what was read up to `position` (then it is another
    file, or the same one truncated). A gzip file shorter than the position is a copy
    of what was read, taken before the last lines: it is finished."""
    finished = more = False
    offset = position.offset
    try:
        with path.open("rb") as raw:
            if _is_gzip(raw.read(2)):
                raw.seek(0)
                with gzip.GzipFile(fileobj=raw) as gz:
                    whole = gz.read()
                if whole and not whole.endswith(b"\n"):
                    whole += b"\n"  # a finished file: its last line is complete
                before = whole[max(0, offset - _CHECK_BYTES) : offset]
                data = whole[offset:]
                finished = True
                if len(whole) < offset:
                    before = b""
                elif position.check is not None and content_check(before) != position.check:
                    return Mismatch.CHANGED
            else:
                size = os.fstat(raw.fileno()).st_size
                if size < offset:
                    return Mismatch.SHORTER
                if size == offset:
                    # Nothing new (the common case, so not a read): a file rewritten to
                    # the very same length is found out once it grows.
                    return Chunk(path, fp, [], (), position, [])
                back = min(offset, _CHECK_BYTES)
                raw.seek(offset - back)
                data = raw.read(back + max_bytes)
                before, data = data[:back], data[back:]
                if len(before) < back:
                    return Mismatch.SHORTER  # truncated since the fstat
                if position.check is not None and content_check(before) != position.check:
                    return Mismatch.CHANGED
                if b"\n" not in data and len(data) == max_bytes < max_line_bytes + 1:
                    # a limit below the longest line: read on to this line's end only
                    data += raw.read(max_line_bytes + 1 - max_bytes)
                    newline = data.find(b"\n")
                    data = data if newline < 0 else data[: newline + 1]
                if len(data) > max_line_bytes and b"\n" not in data:
                    raw.seek(offset)
                    return _skip_long_line(raw, path, fp, position)
                more = len(data) >= max_bytes
    except (OSError, EOFError, zlib.error):
        return None
    lines, numbers, consumed, n_lines, too_long = _split_lines(data, position.line, max_line_bytes)
    check = position.check if finished and not before else _end_check(before, data, consumed)
    end = Position(offset + consumed, position.line + n_lines, finished, check)
    return Chunk(path, fp, lines, numbers, end, too_long, not finished and more)


@dataclass(slots=True)
class _Poll:
    """What one poll of a folder found so far."""

    present: set[str] = field(default_factory=set)  # fingerprints of the files there
    identified: bool = True  # every file there could be read
    # Fingerprints whose position a file still matches; those a file was read on under
    # (one file each: a copy and its original hold the same lines); and files that are
    # not what their fingerprint's position says.
    matched: set[str] = field(default_factory=set)
    taken: set[str] = field(default_factory=set)
    replaced: list[tuple[Path, str]] = field(default_factory=list)


# A file's inode, size, modification and change times (ns): any write changes them.
_Stat = tuple[int, int, int, int]


class LogTail:
    """Follows every log file of one directory. `poll()` reads what is new; `commit()`
    advances a file's position once the caller has taken its lines, so that positions
    and what was made of the lines can be saved together.

    A read takes at most `max_bytes` of a file, so a backlog is read in rounds, one
    bounded chunk per file and round: files catch up together, and the caller publishes
    between rounds. `behind` says whether a file stopped at that limit; `poll(
    behind_only=True)` then reads on from those files without listing the directory."""

    def __init__(
        self,
        directory: Path,
        positions: dict[str, Position] | None = None,
        max_bytes: int = READ_BYTES,
        max_line_bytes: int = 64 * 1024,
        pattern: str = "*",
        *,
        forget_after: float = FORGET_AFTER_SECONDS,
        keep: Callable[[Path], bool] | None = None,
    ) -> None:
        self.directory = directory
        self._keep = keep  # which of the listed files may be read (None: all)
        self.pattern = pattern
        self.positions: dict[str, Position] = dict(positions or {})
        self._max_bytes = max_bytes
        self._max_line_bytes = max_line_bytes
        self._forget_after = forget_after
        # path -> (inode, size when fingerprinted, fingerprint): the first line of a file
        # cannot change unless it is replaced or truncated, which shows as a smaller size
        # or as a Mismatch when reading it.
        self._fingerprints: dict[Path, tuple[int, int, str]] = {}
        # fingerprint -> when (monotonic) no file of the folder was found to have it
        self._missing_since: dict[str, float] = {}
        self._files: list[Path] | None = None  # the last listing of the directory
        # path -> (its stat, fingerprint, position) when it was read to its end: while
        # the stat and the position stay the same there is nothing new to read.
        self._read_to_end: dict[Path, tuple[_Stat, str, Position]] = {}
        # Files the last poll left something in: more than it reads at once (a backlog),
        # or the start of a line.
        self._behind: set[Path] = set()
        self.polled = False  # whether poll() has run: until then, how much is new is unknown

    @property
    def behind(self) -> bool:
        return bool(self._behind)

    def _fingerprint(self, path: Path) -> tuple[str | None, bool]:
        """The file's fingerprint (None while it has no complete first line, or is gone
        or unreadable), and whether it could not be read."""
        try:
            st = path.stat()
        except OSError:
            return None, False  # gone
        cached = self._fingerprints.get(path)
        if cached is not None and cached[0] == st.st_ino and st.st_size >= cached[1]:
            return cached[2], False
        fp = fingerprint(path)
        if fp is not None:
            self._fingerprints[path] = (st.st_ino, st.st_size, fp)
            return fp, False
        return None, not _readable(path)

    def _read(
        self, path: Path, fp: str, position: Position, max_bytes: int
    ) -> Chunk | Mismatch | None:
        return read_new_lines(path, fp, position, max_bytes, self._max_line_bytes)

    def _list(self) -> list[Path]:
        files = list_log_files(self.directory, self.pattern)
        keep = self._keep
        return files if keep is None else [path for path in files if keep(path)]

    def unread(self, beyond: int = 0) -> bool:
        """Whether a file holds more than `beyond` bytes after its position, or the last
        read stopped at its limit: a listing and stats, no reads."""
        if self._behind:
            return True
        for path in self._list():
            fp, _ = self._fingerprint(path)
            if fp is None:
                continue
            position = self.positions.get(fp, Position())
            try:
                if not position.finished and path.stat().st_size > position.offset + beyond:
                    return True
            except OSError:
                continue
        return False

    def poll(
        self, behind_only: bool = False, max_bytes: int | None = None, relist: bool = True
    ) -> list[Chunk]:
        """One chunk per file with something new: every file, or (`behind_only`) only
        the files the last poll left something in, oldest first either way. `max_bytes`
        lowers the size limit of this poll's reads (at least one line each). With
        `relist` False the last listing is reused (the caller learns of files coming and
        going from file events). A file unchanged since it was read to its end costs one
        stat, not an open and a read."""
        limit = self._max_bytes if max_bytes is None else max(1, max_bytes)
        if relist or self._files is None:
            self._files = self._list()
            listed = set(self._files)
            for stale in set(self._fingerprints) - listed:
                del self._fingerprints[stale]
            for stale in set(self._read_to_end) - listed:
                del self._read_to_end[stale]
        behind, self._behind = self._behind, set()
        files = [path for path in self._files if path in behind] if behind_only else self._files
        seen = _Poll()
        chunks = []
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue  # gone
            stat: _Stat = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            done = self._read_to_end.get(path)
            if done is not None and done[0] == stat and self.positions.get(done[1]) == done[2]:
                seen.present.add(done[1])
                seen.matched.add(done[1])
                continue
            if (chunk := self._poll_file(path, seen, limit, stat)) is not None:
                chunks.append(chunk)
        # A file whose first line has a position but whose content is not what was read
        # there is new, unless another file with that first line still holds that content.
        for path, fp in seen.replaced:
            if fp not in seen.matched:
                fresh = self._read(path, fp, Position(), limit)
                if isinstance(fresh, Chunk):
                    seen.matched.add(fp)
                    chunks.append(fresh)
                    if fresh.more:
                        self._behind.add(path)
        # Only a full listing tells which files are gone.
        if seen.identified and not behind_only:
            self._forget_missing(seen.present)
        self.polled = True
        return chunks

    def _poll_file(self, path: Path, seen: _Poll, max_bytes: int, stat: _Stat) -> Chunk | None:
        """What is new in one file, if anything."""
        fp, unreadable = self._fingerprint(path)
        if fp is not None and fp in seen.taken:
            # Another file was read under this fingerprint (a copy of this one, say):
            # this one may have been truncated and have a new first line since.
            self._fingerprints.pop(path, None)
            fp, unreadable = self._fingerprint(path)
        if fp is None:
            # A file that cannot be read may be one whose position is kept; one without
            # a complete first line yet is new (or truncated: its old content is gone).
            seen.identified = seen.identified and not unreadable
            return None
        seen.present.add(fp)
        position = self.positions.get(fp, Position())
        if fp in seen.taken or position.finished:
            return None  # the same lines as a file read in this poll, or all read
        chunk = self._read(path, fp, position, max_bytes)
        if isinstance(chunk, Mismatch):
            # Truncated or rewritten: its first line, so its fingerprint, may be new.
            self._fingerprints.pop(path, None)
            new_fp, unreadable = self._fingerprint(path)
            if new_fp is None:
                seen.identified = seen.identified and not unreadable
                return None
            seen.present.add(new_fp)
            if new_fp != fp:
                fp, position = new_fp, self.positions.get(new_fp, Position())
                if fp in seen.taken or position.finished:
                    return None
                chunk = self._read(path, fp, position, max_bytes)
            if chunk is Mismatch.CHANGED:
                seen.replaced.append((path, fp))
        if not isinstance(chunk, Chunk):
            return None
        seen.matched.add(fp)
        if chunk.end.finished or chunk.end.offset == stat[1]:
            self._read_to_end[path] = (stat, fp, chunk.end)  # once committed
        else:
            self._behind.add(path)
        if chunk.end == position and not chunk.texts:
            return None  # nothing new: another file with this first line may have more
        seen.taken.add(fp)
        return chunk

    def _forget_missing(self, present: set[str]) -> None:
        """Drop the positions of files gone from the folder for `forget_after` seconds."""
        now = time.monotonic()
        for fp in present:
            self._missing_since.pop(fp, None)
        for fp in [fp for fp in self.positions if fp not in present]:
            since = self._missing_since.setdefault(fp, now)
            if now - since >= self._forget_after:
                del self.positions[fp]
                del self._missing_since[fp]

    def commit(self, chunk: Chunk) -> None:
        self.positions[chunk.fingerprint] = chunk.end

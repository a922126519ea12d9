"""Every line exactly once, whatever happens to the files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from model_health_exporter.sources.prediction_logs import LogTail, Position


def lines_of(n: int, start: int = 0) -> bytes:
    return b"".join(b'{"id": "%d"}\n' % i for i in range(start, start + n))


def drain(tail: LogTail) -> list[bytes]:
    """Everything new, committed, in order of reading."""
    out = []
    while chunks := tail.poll():
        for chunk in chunks:
            out.extend(line.data for line in chunk.lines)
            tail.commit(chunk)
    return out


def ids(lines: list[bytes]) -> list[int]:
    return [int(line.split(b'"')[3]) for line in lines]


def test_appended_lines_once_and_partial_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(3) + b'{"id": "3"')  # a writer mid-line
    tail = LogTail(tmp_path)
    assert ids(drain(tail)) == [0, 1, 2]
    with log.open("ab") as f:
        f.write(b"}\n" + lines_of(2, 4))
    assert ids(drain(tail)) == [3, 4, 5]
    assert drain(tail) == []


def test_small_reads_still_cover_everything(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(lines_of(500))
    tail = LogTail(tmp_path, max_bytes=64, max_line_bytes=32)
    assert ids(drain(tail)) == list(range(500))


def test_restart_resumes_from_saved_positions(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(10))
    first = LogTail(tmp_path)
    assert len(drain(first)) == 10
    with log.open("ab") as f:
        f.write(lines_of(5, 10))
    second = LogTail(tmp_path, positions=dict(first.positions))  # as from a checkpoint
    assert ids(drain(second)) == list(range(10, 15))


def test_uncommitted_chunks_are_read_again(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(lines_of(4))
    tail = LogTail(tmp_path)
    assert len(tail.poll()[0].lines) == 4  # not committed: a crash before the checkpoint
    assert ids(drain(tail)) == [0, 1, 2, 3]


def test_rename_rotation_finishes_old_file_then_new(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(5))
    tail = LogTail(tmp_path)
    assert len(drain(tail)) == 5
    with log.open("ab") as f:
        f.write(lines_of(3, 5))  # written before rotation, not yet read
    log.rename(tmp_path / "p.jsonl.1")
    log.write_bytes(lines_of(4, 8))
    assert sorted(ids(drain(tail))) == list(range(5, 12))


def test_copytruncate(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(5))
    tail = LogTail(tmp_path)
    drain(tail)
    with log.open("ab") as f:
        f.write(lines_of(2, 5))
    shutil.copyfile(log, tmp_path / "p.jsonl.1")  # logrotate copytruncate
    with log.open("r+b") as f:
        f.truncate(0)
    assert ids(drain(tail)) == [5, 6]  # the copy's unread tail
    with log.open("ab") as f:
        f.write(lines_of(3, 7))
    assert ids(drain(tail)) == [7, 8, 9]


def test_compressed_rotation_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(6))
    tail = LogTail(tmp_path)
    assert len(drain(tail)) == 6
    with log.open("ab") as f:
        f.write(lines_of(2, 6))
    with log.open("rb") as src, gzip.open(tmp_path / "p.jsonl.1.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    log.unlink()
    assert ids(drain(tail)) == [6, 7]
    assert drain(tail) == []
    fp = next(iter(tail.positions))
    assert tail.positions[fp].finished


def test_gzip_file_never_seen_is_read_whole(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "old.jsonl.gz", "wb") as f:
        f.write(lines_of(3).rstrip(b"\n"))  # no final newline
    assert ids(drain(LogTail(tmp_path))) == [0, 1, 2]


def test_too_long_lines_are_skipped_and_reported(tmp_path: Path) -> None:
    big = b'{"id": "x", "pad": "' + b"a" * 5000 + b'"}\n'
    (tmp_path / "p.jsonl").write_bytes(lines_of(1) + big + lines_of(1, 1) + big)
    tail = LogTail(tmp_path, max_bytes=1024, max_line_bytes=100)
    too_long = []
    out = []
    while chunks := tail.poll():
        for chunk in chunks:
            out.extend(line.data for line in chunk.lines)
            too_long.extend(chunk.too_long)
            tail.commit(chunk)
    assert ids(out) == [0, 1]
    assert too_long == [2, 4]


def test_line_numbers_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(b'{"id": "0"}\n\n   \n{"id": "1"}\n')
    chunk = LogTail(tmp_path).poll()[0]
    assert [line.number for line in chunk.lines] == [1, 4]
    assert (chunk.end.offset, chunk.end.line) == (len(b'{"id": "0"}\n\n   \n{"id": "1"}\n'), 4)


def test_hidden_and_empty_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".p.jsonl.swp").write_bytes(lines_of(2))
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    assert drain(LogTail(tmp_path)) == []


def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(0)


@pytest.mark.parametrize("copy_first", [True, False])
def test_copytruncate_of_a_file_first_seen_small(tmp_path: Path, copy_first: bool) -> None:
    # Seen with one line; then the writer goes on, logrotate copies and truncates, and
    # the writer refills the file past the old position before the next poll.
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(1))
    tail = LogTail(tmp_path)
    assert ids(drain(tail)) == [0]
    with log.open("ab") as f:
        f.write(lines_of(999, 1))
    assert len(drain(tail)) == 999
    for rotation, start in enumerate((1000, 1700, 2300), start=1):
        with log.open("ab") as f:
            f.write(lines_of(50, start))  # unread at the rotation
        copy = tmp_path / f"p.jsonl.{rotation}"
        shutil.copyfile(log, copy)
        truncate(log)
        with log.open("ab") as f:
            f.write(lines_of(600, start + 50))  # more than was ever in it: past the old offset
        # the order the files are looked at in: by modification time
        os.utime(copy, (1, 1) if copy_first else (2**32, 2**32))
        assert sorted(ids(drain(tail))) == list(range(start, start + 650))
    assert drain(tail) == []


def test_truncate_and_rewrite_in_place(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(1200))
    tail = LogTail(tmp_path)
    assert len(drain(tail)) == 1200
    log.write_bytes(lines_of(2200, 5000))  # open("w"): truncated and written again
    assert ids(drain(tail)) == list(range(5000, 7200))


def test_rewrite_with_the_same_first_line_is_read_again(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(1) + lines_of(10, 100))
    tail = LogTail(tmp_path)
    assert len(drain(tail)) == 11
    log.write_bytes(lines_of(1) + lines_of(20, 200))  # same first line, other records
    assert ids(drain(tail)) == [0, *range(200, 220)]
    assert drain(tail) == []


def test_truncation_while_stopped_is_seen_at_restart(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(300))
    first = LogTail(tmp_path)
    assert len(drain(first)) == 300
    shutil.copyfile(log, tmp_path / "p.jsonl.1")
    log.write_bytes(lines_of(400, 300))
    second = LogTail(tmp_path, positions=dict(first.positions))  # as from a checkpoint
    assert sorted(ids(drain(second))) == list(range(300, 700))


def test_positions_saved_without_a_check_are_trusted(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(10))
    first = LogTail(tmp_path)
    drain(first)
    ((fp, position),) = first.positions.items()
    old = {fp: Position(position.offset, position.line)}  # as an older checkpoint holds it
    with log.open("ab") as f:
        f.write(lines_of(5, 10))
    second = LogTail(tmp_path, positions=old)
    assert ids(drain(second)) == list(range(10, 15))
    assert second.positions[fp].check is not None


def test_a_copy_shorter_than_what_was_read_is_not_read_again(tmp_path: Path) -> None:
    # copytruncate without a pause: lines written between the copy and the truncation
    # were read from the original, and the copy lacks them.
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(10))
    shutil.copyfile(log, tmp_path / "p.jsonl.1")
    with log.open("ab") as f:
        f.write(lines_of(5, 10))
    tail = LogTail(tmp_path)
    assert sorted(set(ids(drain(tail)))) == list(range(15))
    truncate(log)
    with log.open("ab") as f:
        f.write(lines_of(3, 15))
    assert ids(drain(tail)) == [15, 16, 17]
    assert drain(tail) == []


def test_a_copy_and_its_original_are_read_once(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(10))
    tail = LogTail(tmp_path)
    drain(tail)
    with log.open("ab") as f:
        f.write(lines_of(5, 10))
    shutil.copyfile(log, tmp_path / "p.jsonl.1")  # copied, not yet truncated
    assert ids(drain(tail)) == list(range(10, 15))
    truncate(log)
    with log.open("ab") as f:
        f.write(lines_of(2, 15))
    assert ids(drain(tail)) == [15, 16]


def test_positions_of_deleted_files_are_forgotten(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(5))
    tail = LogTail(tmp_path, forget_after=0.0)
    drain(tail)
    for rotation in range(1, 4):  # rename rotation, the oldest deleted
        log.rename(tmp_path / f"p.jsonl.{rotation}")
        log.write_bytes(lines_of(5, 10 * rotation))
        assert ids(drain(tail)) == list(range(10 * rotation, 10 * rotation + 5))
        assert len(tail.positions) == 2  # the renamed file keeps its own
        (tmp_path / f"p.jsonl.{rotation}").unlink()
        drain(tail)
        assert len(tail.positions) == 1
    assert drain(tail) == []


def test_a_missing_file_is_remembered_for_a_while(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(5))
    tail = LogTail(tmp_path)  # the default: minutes
    drain(tail)
    moved = tmp_path.parent / f"{tmp_path.name}-elsewhere.jsonl"
    log.rename(moved)
    assert drain(tail) == [] and len(tail.positions) == 1
    moved.rename(log)  # back: not read again
    assert drain(tail) == []


def test_an_unreadable_file_keeps_positions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It might be one of the files whose positions are kept: nothing is forgotten while
    # a file of the folder cannot be read.
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(5))
    tail = LogTail(tmp_path, forget_after=0.0)
    drain(tail)
    log.rename(tmp_path / "p.jsonl.1")
    log.write_bytes(lines_of(5, 5))
    assert ids(drain(tail)) == [5, 6, 7, 8, 9]
    unreadable = tmp_path / "p.jsonl.1"
    real_open = Path.open

    def open_(path: Path, *args: object, **kwargs: object) -> object:
        if path == unreadable:  # as for a file of mode 000 (root reads those anyway)
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", open_)
    tail = LogTail(tmp_path, positions=tail.positions, forget_after=0.0)  # restarted
    assert drain(tail) == [] and len(tail.positions) == 2
    monkeypatch.undo()
    assert drain(tail) == [] and len(tail.positions) == 2


def test_a_file_without_its_first_line_yet_does_not_stop_forgetting(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(5))
    tail = LogTail(tmp_path, forget_after=0.0)
    drain(tail)
    log.rename(tmp_path / "p.jsonl.1")
    log.write_bytes(b'{"id": "5"')  # mid-line: not identified yet
    (tmp_path / "p.jsonl.1").unlink()
    assert drain(tail) == [] and tail.positions == {}
    with log.open("ab") as f:
        f.write(b"}\n")
    assert ids(drain(tail)) == [5]


def test_a_copy_left_beside_the_log_does_not_hold_it_back(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(10))
    tail = LogTail(tmp_path)
    drain(tail)
    backup = tmp_path / "p.jsonl.bak"
    shutil.copyfile(log, backup)  # never written again
    os.utime(backup, (1, 1))  # older: looked at first
    for start in (10, 20, 30):
        with log.open("ab") as f:
            f.write(lines_of(10, start))
        assert ids(drain(tail)) == list(range(start, start + 10))


def test_an_old_copy_of_a_rewritten_log_is_not_read_again(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_bytes(lines_of(1) + lines_of(10, 100))
    tail = LogTail(tmp_path)
    drain(tail)
    old = log.read_bytes()
    log.write_bytes(lines_of(1) + lines_of(30, 200))  # rewritten, the same first line
    assert ids(drain(tail)) == [0, *range(200, 230)]
    (tmp_path / "p.jsonl.1").write_bytes(old)  # the old content turns up as a copy
    with log.open("ab") as f:
        f.write(lines_of(2, 230))
    assert ids(drain(tail)) == [230, 231]
    assert drain(tail) == []


def test_backlog_is_read_in_rounds_one_chunk_per_file(tmp_path: Path) -> None:
    """A backlog is read a bounded chunk per file and round, files side by side, and
    `behind` says whether to read on before waiting."""
    (tmp_path / "a.jsonl").write_bytes(lines_of(400, 1000))  # lines of equal length
    (tmp_path / "b.jsonl").write_bytes(lines_of(400, 2000))
    tail = LogTail(tmp_path, max_bytes=1024, max_line_bytes=64)
    rounds = []
    chunks = tail.poll()
    while True:
        assert len(chunks) == 2  # both files in every round until both are done
        rounds.append([len(c.texts) for c in chunks])
        for chunk in chunks:
            tail.commit(chunk)
        if not tail.behind:
            break
        chunks = tail.poll(behind_only=True)
    assert len(rounds) > 5
    assert all(a == b for a, b in rounds)  # neither file ahead of the other
    assert sum(a for a, _ in rounds) == 400
    assert tail.poll() == []


def test_read_on_only_from_files_left_behind(tmp_path: Path) -> None:
    (tmp_path / "big.jsonl").write_bytes(lines_of(300))
    tail = LogTail(tmp_path, max_bytes=1024, max_line_bytes=64)
    first = tail.poll()
    tail.commit(first[0])
    assert first[0].more and tail.behind
    (tmp_path / "new.jsonl").write_bytes(lines_of(3, 5000))  # seen at the next listing
    second = tail.poll(behind_only=True)
    assert [c.path.name for c in second] == ["big.jsonl"]
    tail.commit(second[0])
    read = ids([*first[0].texts, *second[0].texts])
    assert sorted(read + ids(drain(tail))) == [*range(300), 5000, 5001, 5002]


def test_a_file_read_to_its_end_is_not_behind(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(lines_of(10))
    tail = LogTail(tmp_path)
    chunks = tail.poll()
    assert not chunks[0].more and not tail.behind


def test_a_lower_read_limit_takes_fewer_lines_but_at_least_one(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(lines_of(100, 1000))  # 15 bytes a line
    tail = LogTail(tmp_path)
    assert tail.unread() and tail.unread(beyond=1499) and not tail.unread(beyond=1500)
    chunk = tail.poll(max_bytes=45)[0]
    assert ids(chunk.texts) == [1000, 1001, 1002] and chunk.more
    tail.commit(chunk)
    chunk = tail.poll(max_bytes=4)[0]  # shorter than a line: the whole line
    assert ids(chunk.texts) == [1003]
    tail.commit(chunk)
    assert len(drain(tail)) == 96 and not tail.unread()

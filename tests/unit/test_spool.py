"""The push spool: durable batches the tailer reads, duplicates by key, rotation, the
size bound, deletion after a checkpoint, keys and waiting halves across restarts."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from model_health_exporter.records import parse_line
from model_health_exporter.sources.prediction_logs import LogTail, Position
from model_health_exporter.sources.spool import Spool, SpoolFullError


def lines(n: int, start: int = 0) -> list[bytes]:
    return [
        json.dumps({"id": f"r{i}", "prediction": "a", "model": "m", "version": "v"}).encode()
        for i in range(start, start + n)
    ]


def read_all(spool: Spool) -> tuple[LogTail, list[bytes]]:
    tail = LogTail(spool.directory, pattern="spool-*.jsonl")
    texts = []
    for chunk in tail.poll():
        texts += chunk.texts
        tail.commit(chunk)
    return tail, texts


def test_batches_are_records_the_tailer_reads(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.append(lines(3), key="k1")
    assert spool.append(lines(2, start=3))
    _, texts = read_all(spool)
    assert [parse_line(t).id for t in texts] == ["r0", "r1", "r2", "r3", "r4"]
    # the batch mark is a field the record format ignores
    assert json.loads(texts[0])["_key"] == "k1" and "_batch" in json.loads(texts[3])
    spool.close()


def test_a_key_seen_is_a_duplicate_also_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.append(lines(1), key="k")
    assert not spool.append(lines(1), key="k")
    spool.close()
    again = Spool(tmp_path / "spool")
    assert again.seen("k")
    assert not again.append(lines(1), key="k")
    again.close()


def test_keys_expire_by_count_and_age(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", keys_max=2)
    for key in ("a", "b", "c"):
        spool.append(lines(1), key=key)
    assert not spool.seen("a") and spool.seen("c")
    spool.close()
    aged = Spool(tmp_path / "aged", keys_age=0.0)
    aged.append(lines(1), key="x")
    assert not aged.seen("x")
    aged.close()


def test_rotation_release_and_keys_kept_after_deletion(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", file_bytes=200)
    for i in range(6):
        spool.append(lines(1, start=i), key=f"k{i}")
    files = sorted((tmp_path / "spool").glob("spool-*.jsonl"))
    assert len(files) >= 3
    tail, texts = read_all(spool)
    assert len(texts) == 6
    # nothing checkpointed yet: nothing deleted
    assert spool.release({}) == 0
    spool.rotate_if_read(tail.positions)
    assert spool.release(tail.positions) == len(files)
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))
    assert spool.total_bytes == 0
    spool.close()
    again = Spool(tmp_path / "spool")
    assert all(again.seen(f"k{i}") for i in range(6))
    again.close()


def test_a_file_read_only_in_part_is_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", file_bytes=100)
    spool.append(lines(2))
    spool.append(lines(2, start=2))
    first = sorted((tmp_path / "spool").glob("spool-*.jsonl"))[0]
    tail = LogTail(tmp_path / "spool", pattern="spool-*.jsonl")
    chunk = next(c for c in tail.poll() if c.path == first)
    short = Position(chunk.end.offset - 1, 0)
    assert spool.release({chunk.fingerprint: short}) == 0
    assert spool.release({chunk.fingerprint: chunk.end}) == 1
    spool.close()


def test_bound_refuses_with_retry_after(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=500, retry_after=7)
    spool.append(lines(3))
    with pytest.raises(SpoolFullError) as full:
        spool.append(lines(10))
    assert full.value.retry_after == 7
    spool.close()


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", file_bytes=4096)

    def writer(n: int) -> None:
        for j in range(25):
            spool.append(lines(2, start=1000 * n + 2 * j))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, texts = read_all(spool)
    ids = [parse_line(t).id for t in texts]
    assert len(ids) == 400 == len(set(ids))
    spool.close()


def test_halves_survive_and_are_rewritten(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.add_half(b'{"half": {"pair": "a"}, "model": "m", "version": "v"}')
    spool.add_half(b'{"half": {"pair": "b"}, "model": "m", "version": "v"}')
    spool.close()
    again = Spool(tmp_path / "spool")
    assert [h["half"]["pair"] for h in again.load_halves()] == ["a", "b"]
    again.rewrite_halves([{"half": {"pair": "b"}}])
    assert [h["half"]["pair"] for h in again.load_halves()] == ["b"]
    again.close()

"""The C heap's settings and trims (`heap`): one malloc arena for every thread, freed
pages given back to the system, and the ingest thread trimming while lines arrive and
only then. The first two run in a fresh interpreter: an arena, once made, stays."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from model_health_exporter import heap
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from tests.support import good_metrics, wait_until, write_json

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or heap._malloc_trim is None,
    reason="glibc's malloc only",
)


def _run(code: str) -> dict[str, int]:
    """Run `code` in a fresh interpreter; it prints a JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return result


ARENAS = """
    import ctypes, json, os, sys, tempfile, threading
    from model_health_exporter import heap
    if sys.argv[1:] == ["tuned"]:
        heap.tune_malloc()
    def allocate():
        kept = [bytes(4096) for _ in range(100)]  # from malloc: over pymalloc's 512 bytes
        del kept
    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with tempfile.TemporaryFile("w+") as out:  # malloc_stats writes to stderr
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        ctypes.CDLL(None).malloc_stats()
        os.dup2(saved, 2)
        out.seek(0)
        arenas = sum(line.startswith("Arena ") for line in out)
    print(json.dumps({"arenas": arenas}))
"""


def _arenas(*args: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ARENAS), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(json.loads(done.stdout.splitlines()[-1])["arenas"])


def test_every_thread_allocates_from_one_arena() -> None:
    assert _arenas() > 1  # glibc's default: threads get arenas of their own
    assert _arenas("tuned") == heap.ARENAS == 1


FREED_PAGES = """
    import json
    from model_health_exporter import heap

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    heap.tune_malloc()
    blocks = [bytes(1000) for _ in range(64_000)]  # 64 MB of heap blocks
    kept = blocks[::64]  # one block in 64 stays: the heap cannot shrink from its top
    del blocks
    before = rss()
    released = heap.release_free_pages()
    print(json.dumps({"before": before, "after": rss(), "released": released, "kept": len(kept)}))
"""


def test_freed_pages_between_live_blocks_are_given_back() -> None:
    result = _run(FREED_PAGES)
    assert result["released"]
    # about 63 of the 64 MB were free, yet resident until the trim
    assert result["before"] - result["after"] > 40_000_000


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the ingest thread gave freed pages back (the trims themselves happen)."""
    calls: list[float] = []
    release = heap.release_free_pages

    def counting() -> bool:
        calls.append(time.monotonic())
        return release()

    monkeypatch.setattr(heap, "release_free_pages", counting)  # read at each call
    return calls


def test_the_ingest_thread_trims_while_lines_arrive_and_not_when_idle(
    tmp_path: Path, trims: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    log = root / "m/v1/predictions/p.jsonl"
    log.parent.mkdir()
    log.write_bytes(line({"id": "r0", "prediction": "a"}))
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    registry = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), errors, dropped)
    registry.full_scan()
    worker = IngestWorker(
        IngestConfig(state_dir=None, poll_interval=0.01, heap_trim_interval=0.05),
        lambda: registry.snapshot,
        LabelledCounter(ingest_error_keys()),
    )
    polls: list[float] = []
    poll_once = worker.poll_once

    def counting_poll(behind_only: bool = False) -> int:
        polls.append(time.monotonic())
        return poll_once(behind_only)

    monkeypatch.setattr(worker, "poll_once", counting_poll)
    worker.start()
    try:
        wait_until(lambda: len(trims) >= 1, 10, "a trim after the first line")
        assert worker.tallies[("m", "v1")].predictions == 1
        # Nothing new: no trim while it polls on, for many trim intervals.
        idle_from, idle_since = len(trims), time.monotonic()
        wait_until(lambda: len(polls) > 20 and polls[-20] > idle_since + 0.2, 10, "20 idle polls")
        assert len(trims) == idle_from
        with log.open("ab") as f:
            f.write(line({"id": "r1", "prediction": "b"}))
        wait_until(lambda: len(trims) > idle_from, 10, "a trim after the next line")
        assert worker.tallies[("m", "v1")].predictions == 2
    finally:
        worker.stop()

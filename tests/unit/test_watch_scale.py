"""The watcher at its limits, with real inotify on tmp_path: a queue overflow leads to
one rescan, counted; out of watches, the folders left without one are polled; new log
files and versions reach the ingester by events, and by its safety net without them."""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inotify_simple import INotify

from model_health_exporter.sources import watcher as watcher_module
from model_health_exporter.sources.prediction_logs import LogTail
from model_health_exporter.sources.watcher import ModelDirWatcher
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker, initial_error_keys
from model_health_exporter.state.registry import ModelRegistry, RegistryConfig, RootConfig
from model_health_exporter.state.registry import initial_error_keys as registry_error_keys
from model_health_exporter.state.scan_worker import ScanWorker
from tests.support import good_metrics, wait_until, write_json

MAX_QUEUED_EVENTS = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leaked == []


def make_registry(root: Path) -> ModelRegistry:
    return ModelRegistry(
        RegistryConfig(roots=(RootConfig(root),)),
        LabelledCounter(registry_error_keys()),
        LabelledCounter(),
    )


def accuracy(registry: ModelRegistry, model: str, version: str) -> float | None:
    m = registry.snapshot.models.get(model)
    v = next((v for v in m.versions if v.version == version), None) if m else None
    return None if v is None or v.metrics is None else v.metrics.accuracy


class CountingRegistry(ModelRegistry):
    full_scans = 0

    def full_scan(self) -> None:
        self.full_scans += 1
        super().full_scan()


def test_overflow_leads_to_exactly_one_rescan(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.9))
    registry = CountingRegistry(
        RegistryConfig(roots=(RootConfig(tmp_path),)),
        LabelledCounter(registry_error_keys()),
        LabelledCounter(),
    )
    worker = ScanWorker(registry, resync_interval=3600, debounce=0.01)
    overflows: list[int] = []
    # The watcher's thread is held in the first event it hands on, so the kernel's queue
    # fills while files are created, as when a busy host outpaces the reader.
    hold, held = threading.Event(), threading.Event()

    def on_path(path: Path) -> None:
        if not hold.is_set():
            held.set()
            hold.wait(30)
        worker.notify(path)

    def on_overflow() -> None:
        overflows.append(1)
        worker.request_full_scan()

    watcher = ModelDirWatcher([tmp_path], on_path, on_overflow=on_overflow)
    watcher.start()
    registry.full_scan()
    worker.start()
    try:
        write_json(tmp_path / "m/v2/metrics.json", good_metrics(accuracy=0.8))
        assert held.wait(10)
        for i in range(MAX_QUEUED_EVENTS // 2 + 100):  # created + closed: two events each
            (tmp_path / f"m/v1/f{i}").touch()
        # A change made while events are being lost is found by the rescan.
        write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.7))
        scans_before = registry.full_scans
        hold.set()
        wait_until(lambda: overflows, 10, "the overflow")
        wait_until(lambda: registry.full_scans > scans_before, 10, "the rescan")
        wait_until(lambda: accuracy(registry, "m", "v1") == 0.7, 10, "the change")
        assert accuracy(registry, "m", "v2") == 0.8
        assert overflows == [1]
        assert registry.full_scans == scans_before + 1
        assert watcher.overflows == 1
        # The watches were checked again: later changes arrive as events.
        write_json(tmp_path / "m/v3/metrics.json", good_metrics(accuracy=0.6))
        wait_until(lambda: accuracy(registry, "m", "v3") == 0.6, 10, "a later version")
        assert registry.full_scans == scans_before + 1
    finally:
        hold.set()
        watcher.stop()
        worker.stop()


class LimitedINotify(INotify):  # type: ignore[misc]  # untyped library class
    """inotify with a watch limit of its own: as when max_user_watches is reached."""

    limit = 3

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paths: set[str] = set()

    def add_watch(self, path: Any, mask: int) -> int:
        if str(path) not in self.paths and len(self.paths) >= self.limit:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        self.paths.add(str(path))
        return int(super().add_watch(path, mask))


def test_out_of_watches_polls_the_rest_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_module, "INotify", LimitedINotify)
    for model in ("a", "b", "c"):
        write_json(tmp_path / f"{model}/v1/metrics.json", good_metrics(accuracy=0.9))
    registry = make_registry(tmp_path)
    worker = ScanWorker(registry, resync_interval=3600, debounce=0.01)
    limits: list[int] = []
    watcher = ModelDirWatcher(
        [tmp_path],
        worker.notify,
        on_watch_limit=lambda: limits.append(1),
        fallback_interval=0.1,
    )
    watcher.start()
    registry.full_scan()
    worker.start()
    try:
        assert watcher.unwatched == 7 - LimitedINotify.limit  # root, 3 models, 3 versions
        assert limits == [1]
        for model in ("a", "b", "c"):  # some of these folders have no watch
            write_json(tmp_path / f"{model}/v1/metrics.json", good_metrics(accuracy=0.5))
        for model in ("a", "b", "c"):
            wait_until(lambda m=model: accuracy(registry, m, "v1") == 0.5, 10, f"{model} polled")
        assert limits == [1]
    finally:
        watcher.stop()
        worker.stop()


def prediction(i: int) -> bytes:
    return json.dumps({"id": f"r{i}", "prediction": "a", "confidence": 0.9}).encode() + b"\n"


def counted(ingest: IngestWorker, model: str, version: str) -> int:
    view = ingest.tallies.get((model, version))
    return 0 if view is None else int(view.predictions)


@pytest.fixture
def ingest_parts(tmp_path: Path) -> tuple[Path, ModelRegistry, ScanWorker]:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions").mkdir()
    (root / "m/v1/predictions/a.jsonl").write_bytes(prediction(0))
    registry = make_registry(root)
    registry.full_scan()
    worker = ScanWorker(registry, resync_interval=3600, debounce=0.01)
    return root, registry, worker


def start_ingest(
    registry: ModelRegistry, rediscover_interval: float, watcher: ModelDirWatcher | None = None
) -> IngestWorker:
    ingest = IngestWorker(
        IngestConfig(state_dir=None, poll_interval=0.05, rediscover_interval=rediscover_interval),
        lambda: registry.snapshot,
        LabelledCounter(initial_error_keys()),
        arm=None if watcher is None else watcher.arm,
    )
    ingest.start()
    return ingest


def test_new_log_files_and_versions_arrive_by_events(
    ingest_parts: tuple[Path, ModelRegistry, ScanWorker],
) -> None:
    root, registry, worker = ingest_parts
    ingests: list[IngestWorker] = []

    def on_path(path: Path) -> None:
        worker.notify(path)
        for ingest in ingests:
            ingest.notify(path)

    watcher = ModelDirWatcher([root], on_path)
    watcher.start()
    # Read only when an event tells of a change: no safety net in the test's time.
    ingest = start_ingest(registry, rediscover_interval=3600, watcher=watcher)
    ingests.append(ingest)
    worker.start()
    try:
        wait_until(lambda: counted(ingest, "m", "v1") == 1, 10, "the first log")
        (root / "m/v1/predictions/b.jsonl").write_bytes(prediction(1) + prediction(2))
        wait_until(lambda: counted(ingest, "m", "v1") == 3, 10, "a new log file")
        for i in range(3, 6):  # appends to a known file, each told by an event
            with (root / "m/v1/predictions/a.jsonl").open("ab") as f:
                f.write(prediction(i))
            wait_until(lambda n=i + 1: counted(ingest, "m", "v1") == n, 10, f"append {i}")
        write_json(root / "m/v2/metrics.json", good_metrics(version="v2"))
        (root / "m/v2/predictions").mkdir()
        (root / "m/v2/predictions/a.jsonl").write_bytes(prediction(4))
        wait_until(lambda: counted(ingest, "m", "v2") == 1, 10, "a new version's log")
        with (root / "m/v2/predictions/a.jsonl").open("ab") as f:
            f.write(prediction(6))
        wait_until(lambda: counted(ingest, "m", "v2") == 2, 10, "an append in the new folder")
    finally:
        watcher.stop()
        worker.stop()
        ingest.stop()


def test_new_log_files_and_versions_arrive_by_the_safety_net(
    ingest_parts: tuple[Path, ModelRegistry, ScanWorker],
) -> None:
    root, registry, _ = ingest_parts
    ingest = start_ingest(registry, rediscover_interval=0.2)  # and no watcher at all
    try:
        wait_until(lambda: counted(ingest, "m", "v1") == 1, 10, "the first log")
        (root / "m/v1/predictions/b.jsonl").write_bytes(prediction(1))
        wait_until(lambda: counted(ingest, "m", "v1") == 2, 10, "a new log file")
        write_json(root / "m/v2/metrics.json", good_metrics(version="v2"))
        (root / "m/v2/predictions").mkdir()
        (root / "m/v2/predictions/a.jsonl").write_bytes(prediction(2))
        registry.full_scan()  # the registry's own resync
        wait_until(lambda: counted(ingest, "m", "v2") == 1, 10, "a new version's log")
    finally:
        ingest.stop()


def test_lost_events_make_the_ingester_look_everywhere(
    ingest_parts: tuple[Path, ModelRegistry, ScanWorker],
) -> None:
    root, registry, _ = ingest_parts
    ingest = start_ingest(registry, rediscover_interval=3600)
    try:
        wait_until(lambda: counted(ingest, "m", "v1") == 1, 10, "the first log")
        (root / "m/v1/predictions/b.jsonl").write_bytes(prediction(1))
        ingest.rediscover()  # what an overflow does
        wait_until(lambda: counted(ingest, "m", "v1") == 2, 10, "the unannounced file")
    finally:
        ingest.stop()


def test_log_tail_reuses_its_listing_and_skips_unchanged_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(prediction(0) + b'{"id": "r1", "predic')
    tail = LogTail(tmp_path)

    def poll(relist: bool) -> list[bytes]:
        texts = []
        for chunk in tail.poll(relist=relist):
            texts += chunk.texts
            tail.commit(chunk)
        return texts

    assert poll(relist=False) == [prediction(0).rstrip()]  # the first poll lists anyway
    assert poll(relist=False) == []
    (tmp_path / "b.jsonl").write_bytes(prediction(2))
    assert poll(relist=False) == []  # not listed again: no event named the folder
    with (tmp_path / "a.jsonl").open("ab") as f:  # the partial line completed
        f.write(b'tion": "a"}\n')
    assert poll(relist=False) == [b'{"id": "r1", "prediction": "a"}']
    assert poll(relist=True) == [prediction(2).rstrip()]
    assert poll(relist=False) == []
    with (tmp_path / "b.jsonl").open("ab") as f:  # read to its end, then appended to
        f.write(prediction(3))
    assert poll(relist=False) == [prediction(3).rstrip()]


def test_checkpoint_is_written_only_when_something_changed(tmp_path: Path) -> None:
    root, state = tmp_path / "models", tmp_path / "state"
    state.mkdir()
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions").mkdir()
    log = root / "m/v1/predictions/a.jsonl"
    log.write_bytes(prediction(0))
    registry = make_registry(root)
    registry.full_scan()

    class Counting(IngestWorker):
        saves = polls = 0

        def save_checkpoint(self) -> bool:
            self.saves += 1
            return super().save_checkpoint()

        def poll_once(self, behind_only: bool = False) -> int:
            self.polls += 1
            return super().poll_once(behind_only)

    ingest = Counting(
        IngestConfig(state_dir=state, poll_interval=0.01, checkpoint_interval=0.02),
        lambda: registry.snapshot,
        LabelledCounter(initial_error_keys()),
    )
    ingest.start()
    try:
        wait_until(lambda: counted(ingest, "m", "v1") == 1, 10, "the first line")
        wait_until(lambda: ingest.saves >= 1, 10, "the first checkpoint")
        saves, polls = ingest.saves, ingest.polls
        wait_until(lambda: ingest.polls >= polls + 30, 10, "30 idle polls")
        assert ingest.saves == saves  # about 15 checkpoint intervals with nothing new
        with log.open("ab") as f:
            f.write(prediction(1))
        wait_until(lambda: counted(ingest, "m", "v1") == 2, 10, "the appended line")
        wait_until(lambda: ingest.saves == saves + 1, 10, "a checkpoint of it")
    finally:
        ingest.stop()
    assert json.loads((state / "checkpoint.json").read_bytes())["tallies"]["m/v1"]


def test_health_follows_a_changed_model_without_stale_views(tmp_path: Path) -> None:
    root = tmp_path / "models"
    for version in ("v1", "v2"):
        write_json(root / f"m/{version}/metrics.json", good_metrics(version=version))
    write_json(root / "other/v1/metrics.json", good_metrics())
    (root / "m/ACTIVE").write_text("v2\n")
    registry = make_registry(root)
    registry.full_scan()
    ingest = start_ingest(registry, rediscover_interval=3600)
    try:
        wait_until(lambda: set(ingest.health) == {("m", "v2"), ("other", "v1")}, 10, "active")
        other = ingest.health[("other", "v1")]
        (root / "m/ACTIVE").write_text("v1\n")
        registry.full_scan()  # only model m changed
        wait_until(lambda: set(ingest.health) == {("m", "v1"), ("other", "v1")}, 10, "switch")
        assert ingest.health[("other", "v1")] is other  # not rebuilt
        (root / "m/v2/metrics.json").unlink()
        (root / "m/v2").rmdir()
        (root / "m/ACTIVE").write_text("v1\n")
        registry.full_scan()
        wait_until(lambda: set(ingest.health) == {("m", "v1"), ("other", "v1")}, 10, "gone")
    finally:
        ingest.stop()

"""Real inotify watcher + scan worker on tmp_path: events become snapshot changes,
and stopping leaves no thread behind."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_health_exporter.sources.watcher import ModelDirWatcher
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import (
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from model_health_exporter.state.scan_worker import ScanWorker
from tests.support import good_metrics, wait_until, write_json


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[ModelRegistry]:
    threads_before = set(threading.enumerate())
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.9))
    registry = ModelRegistry(
        RegistryConfig(roots=(RootConfig(tmp_path),)),
        LabelledCounter(initial_error_keys()),
        LabelledCounter(),
    )
    worker = ScanWorker(registry, resync_interval=3600, debounce=0.01)
    watcher = ModelDirWatcher([tmp_path], worker.notify)
    watcher.start()
    registry.full_scan()
    worker.start()
    yield registry
    watcher.stop()
    worker.stop()
    leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leaked == []


def accuracy(registry: ModelRegistry, model: str, version: str) -> float | None:
    m = registry.snapshot.models.get(model)
    v = next((v for v in m.versions if v.version == version), None) if m else None
    return None if v is None or v.metrics is None else v.metrics.accuracy


def test_atomic_write_is_seen_without_a_resync(tmp_path: Path, watched: ModelRegistry) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.7))
    wait_until(lambda: accuracy(watched, "m", "v1") == 0.7, 5, "new accuracy")


def test_in_place_rewrite_is_seen(tmp_path: Path, watched: ModelRegistry) -> None:
    path = tmp_path / "m/v1/metrics.json"
    with path.open("w") as f:  # truncate and write the same inode, as naive writers do
        f.write(json.dumps(good_metrics(accuracy=0.6)))
    wait_until(lambda: accuracy(watched, "m", "v1") == 0.6, 5, "rewritten accuracy")


def test_new_model_and_version_then_deletion(tmp_path: Path, watched: ModelRegistry) -> None:
    write_json(tmp_path / "m/v2/metrics.json", good_metrics(accuracy=0.5))
    write_json(tmp_path / "new/v1/metrics.json", good_metrics(accuracy=0.4))
    wait_until(lambda: accuracy(watched, "m", "v2") == 0.5, 5, "new version")
    wait_until(lambda: accuracy(watched, "new", "v1") == 0.4, 5, "new model")
    (tmp_path / "m/v2/metrics.json").unlink()
    (tmp_path / "m/v2").rmdir()
    wait_until(
        lambda: [v.version for v in watched.snapshot.models["m"].versions] == ["v1"],
        5,
        "version gone",
    )


def test_renamed_version_folder(tmp_path: Path, watched: ModelRegistry) -> None:
    (tmp_path / "m/v1").rename(tmp_path / "m/v1-renamed")
    wait_until(
        lambda: [v.version for v in watched.snapshot.models["m"].versions] == ["v1-renamed"],
        5,
        "renamed version",
    )


def test_active_marker_change(tmp_path: Path, watched: ModelRegistry) -> None:
    write_json(tmp_path / "m/v0/metrics.json", good_metrics(generated_at="2020-01-01T00:00:00Z"))
    wait_until(lambda: accuracy(watched, "m", "v0"), 5, "v0")
    assert watched.snapshot.models["m"].active_version == "v1"
    (tmp_path / "m/ACTIVE").write_text("v0\n")
    wait_until(lambda: watched.snapshot.models["m"].active_version == "v0", 5, "ACTIVE v0")

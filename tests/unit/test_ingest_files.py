"""What the ingest worker keeps of the files it reads, in memory and in its checkpoint:
read positions with the check of the bytes before them (older checkpoints without it
still load), and no positions of files long gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
from tests.support import good_metrics, write_json
from tests.unit.test_ingest_batches import KEY, line, make_worker

TAIL = "m/v1/predictions"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions").mkdir()
    return root


def records(start: int, stop: int) -> bytes:
    return b"".join(line({"id": f"r{i}", "prediction": "a"}) for i in range(start, stop))


def test_positions_are_saved_with_their_check(root: Path, tmp_path: Path) -> None:
    (root / "m/v1/predictions/p.jsonl").write_bytes(records(0, 10))
    state = tmp_path / "state"
    worker, _ = make_worker(root, state_dir=state)
    assert worker.poll_once() == 10
    worker.save_checkpoint()
    saved = json.loads((state / "checkpoint.json").read_bytes())
    (position,) = saved["positions"][TAIL].values()
    assert position[:3] == [len(records(0, 10)), 10, False]
    assert isinstance(position[3], str)


def test_a_checkpoint_without_checks_loads_and_resumes(root: Path, tmp_path: Path) -> None:
    log = root / "m/v1/predictions/p.jsonl"
    log.write_bytes(records(0, 10))
    state = tmp_path / "state"
    worker, _ = make_worker(root, state_dir=state)
    worker.poll_once()
    worker.save_checkpoint()
    path = state / "checkpoint.json"
    saved = json.loads(path.read_bytes())
    for positions in saved["positions"].values():  # as the previous version wrote them
        for fp, position in positions.items():
            positions[fp] = position[:3]
    path.write_text(json.dumps(saved))
    with log.open("ab") as f:
        f.write(records(10, 15))
    restored, _ = make_worker(root, state_dir=state)
    assert restored.poll_once() == 5
    assert restored.tallies[KEY].predictions == 15


def test_truncated_while_stopped_is_read_from_its_start(root: Path, tmp_path: Path) -> None:
    log = root / "m/v1/predictions/p.jsonl"
    log.write_bytes(records(0, 1) + records(1, 400))
    state = tmp_path / "state"
    worker, _ = make_worker(root, state_dir=state)
    assert worker.poll_once() == 400
    worker.save_checkpoint()
    # rewritten in place with the same first record, longer than before
    log.write_bytes(records(0, 1) + records(1000, 1600))
    restored, _ = make_worker(root, state_dir=state)
    assert restored.poll_once() == 601
    assert restored.tallies[KEY].predictions == 1001


def test_positions_of_deleted_logs_leave_the_checkpoint(root: Path, tmp_path: Path) -> None:
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    registry = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), errors, dropped)
    registry.full_scan()
    state = tmp_path / "state"
    config = IngestConfig(state_dir=state, forget_logs_after=0.0)
    worker = IngestWorker(config, lambda: registry.snapshot, errors)
    logs = root / "m/v1/predictions"
    (logs / "p.jsonl").write_bytes(records(0, 10))
    worker.poll_once()
    for rotation in range(1, 51):  # rename rotation, each rotated file deleted at once
        (logs / "p.jsonl").rename(logs / "p.jsonl.1")
        (logs / "p.jsonl").write_bytes(records(10 * rotation, 10 * rotation + 10))
        worker.poll_once()
        (logs / "p.jsonl.1").unlink()
    worker.poll_once()
    assert worker.tallies[KEY].predictions == 510
    worker.save_checkpoint()
    saved = json.loads((state / "checkpoint.json").read_bytes())
    assert len(saved["positions"][TAIL]) == 1
    restored = IngestWorker(config, lambda: registry.snapshot, errors)
    assert restored.poll_once() == 0  # the remaining file is where it was

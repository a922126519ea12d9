"""The ingest worker's periodic refresh (every `summary_refresh`) with nothing new makes no
view again: the tallies and health mappings stay the same objects. A new line, a changed
metrics.json and a version passing the model-age trigger as time goes by each are picked
up."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from model_health_exporter.state import ingest as ingest_module
from model_health_exporter.state import windows as windows_module
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.health import HealthView
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from model_health_exporter.state.windows import LiveWindow, WindowSummary
from tests.support import good_metrics, write_json

KEY = ("m", "v1")
GENERATED = datetime.fromisoformat(good_metrics()["generated_at"]).timestamp()
DAY = 86_400.0


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    write_json(root / "m/v2/metrics.json", good_metrics("v2"))
    (root / "m/v1/predictions").mkdir()
    (root / "m/v1/predictions/p.jsonl").write_bytes(line({"id": "r1", "prediction": "a"}))
    return root


@pytest.fixture
def registry(root: Path) -> ModelRegistry:
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    registry = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), errors, dropped)
    registry.full_scan()
    return registry


@pytest.fixture
def worker(registry: ModelRegistry) -> IngestWorker:
    worker = IngestWorker(
        IngestConfig(state_dir=None, summary_interval=0.0),
        lambda: registry.snapshot,
        LabelledCounter(ingest_error_keys()),
    )
    assert worker.poll_once() == 1
    worker._publish(everything=True)
    return worker


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """What was made again: ("summaries", how many windows), ("health", key)."""
    calls: list[tuple[str, Any]] = []
    compute, health_view = windows_module._compute_summaries, ingest_module.health_view

    def counting_summaries(windows: Sequence[LiveWindow], now: float) -> list[WindowSummary]:
        calls.append(("summaries", len(windows)))
        return compute(windows, now)

    def counting_health(*args: Any, **kwargs: Any) -> HealthView:
        view = health_view(*args, **kwargs)
        calls.append(("health", (view.model, view.version)))
        return view

    monkeypatch.setattr(windows_module, "_compute_summaries", counting_summaries)
    monkeypatch.setattr(ingest_module, "health_view", counting_health)
    return calls


def test_a_refresh_with_nothing_new_makes_nothing(
    worker: IngestWorker, made: list[tuple[str, Any]]
) -> None:
    tallies, health = worker.tallies, worker.health
    assert set(health) == {("m", "v1"), ("m", "v2")}
    worker._publish(everything=True)
    worker._publish(everything=True)
    assert made == []
    assert worker.tallies is tallies
    assert worker.health is health


def test_a_new_line_is_picked_up(
    worker: IngestWorker, root: Path, made: list[tuple[str, Any]]
) -> None:
    health = worker.health
    with (root / "m/v1/predictions/p.jsonl").open("ab") as f:
        f.write(line({"id": "r2", "prediction": "b"}))
    assert worker.poll_once() == 1
    worker._publish(everything=True)
    assert worker.tallies[KEY].predictions == 2
    assert worker.tallies[KEY].window.samples["predictions"] == 2
    assert made == [("summaries", 1), ("health", KEY)]
    assert worker.health[("m", "v2")] is health[("m", "v2")]


def test_a_changed_metrics_json_is_picked_up(
    worker: IngestWorker, registry: ModelRegistry, root: Path, made: list[tuple[str, Any]]
) -> None:
    assert worker.health[KEY].performance_source == "evaluation"  # its accuracy
    metrics = good_metrics()
    del metrics["accuracy"]
    write_json(root / "m/v1/metrics.json", metrics)
    registry.full_scan()
    worker._publish(everything=True)  # the periodic refresh
    assert worker.health[KEY].performance_source is None
    assert ("health", KEY) in made
    assert ("summaries", 1) not in made  # the window did not change


def test_the_model_age_trigger_follows_the_clock(
    worker: IngestWorker, made: list[tuple[str, Any]]
) -> None:
    worker._publish_health(GENERATED + 29 * DAY, None)
    young = worker.health[KEY]
    assert "model_age" not in young.retrain_reasons
    made.clear()
    worker._publish_health(GENERATED + 29.5 * DAY, None)  # still on the same side
    assert made == []
    assert worker.health[KEY] is young
    worker._publish_health(GENERATED + 31 * DAY, None)
    assert "model_age" in worker.health[KEY].retrain_reasons
    assert sorted(made) == [("health", ("m", "v1")), ("health", ("m", "v2"))]


def test_a_window_emptied_by_time_is_picked_up(
    worker: IngestWorker, monkeypatch: pytest.MonkeyPatch, made: list[tuple[str, Any]]
) -> None:
    """Nothing new is read; the window's buckets (12 of 5 minutes) all leave it."""
    assert worker.tallies[KEY].window.samples["predictions"] == 1
    later = time.time() + 2 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    worker._publish(everything=True)
    assert worker.tallies[KEY].window.samples["predictions"] == 0
    assert worker.tallies[KEY].predictions == 1  # the counter stays
    assert made == [("summaries", 1), ("health", KEY)]

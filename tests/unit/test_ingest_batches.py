"""The ingest worker tallies a chunk's lines in batches (runs of predictions and of
feedback, numpy histograms, summaries at most once a `summary_interval`). Checked here
against what one line at a time means: hand-counted tallies, joins in line order, and
views that catch up as soon as a poll finds nothing new."""

from __future__ import annotations

import bisect
import json
import random
from pathlib import Path

import pytest

from model_health_exporter.records import Prediction
from model_health_exporter.sources.prediction_logs import LogTail
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.live import DEFAULT_LATENCY_BUCKETS, Histogram, run_facts
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from tests.support import good_metrics, write_json

KEY = ("m", "v1")


def make_worker(
    root: Path, summary_interval: float = 1.0, state_dir: Path | None = None
) -> tuple[IngestWorker, LabelledCounter]:
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    registry = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), errors, dropped)
    registry.full_scan()
    worker = IngestWorker(
        IngestConfig(state_dir=state_dir, summary_interval=summary_interval),
        lambda: registry.snapshot,
        errors,
    )
    return worker, errors


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions").mkdir()
    return root


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def test_feedback_joins_the_predictions_before_it_in_the_same_chunk(root: Path) -> None:
    (root / "m/v1/predictions/p.jsonl").write_bytes(
        line({"id": "r1", "prediction": "a", "confidence": 0.9})
        + line({"id": "r1", "actual": "a"})  # after its prediction: joined
        + line({"id": "r2", "actual": "b"})  # before its prediction: joined when it comes
        + line({"id": "r2", "prediction": "b", "confidence": 0.8})
        + line({"id": "r3", "prediction": "a", "confidence": 0.7})
        + line({"id": "r3", "actual": "b"})
    )
    worker, _ = make_worker(root)
    assert worker.poll_once() == 6
    view = worker.tallies[KEY]
    assert (view.predictions, view.feedback) == (3, 3)
    assert (view.feedback_matched, view.feedback_unmatched, view.feedback_waiting) == (3, 0, 0)


def test_tallies_equal_counting_line_by_line(root: Path) -> None:
    rng = random.Random(7)  # noqa: S311 - seeded test data
    lines, latencies, confidences, errors = [], [], [], {}
    for i in range(3000):
        latency_ms = round(rng.lognormvariate(3, 1), 2)
        if rng.random() < 0.05:
            error = rng.choice(["Timeout", "OOM"])
            lines.append(
                line({"id": i, "prediction": None, "error": error, "latency_ms": latency_ms})
            )
            errors[error] = errors.get(error, 0) + 1
            latencies.append(latency_ms / 1000)
            continue
        if rng.random() < 0.02:
            lines.append(b'{"prediction": \n')  # invalid JSON
            continue
        confidence = round(rng.random(), 3)
        lines.append(line({"id": i, "prediction": "ab"[i % 2], "confidence": confidence}))
        confidences.append(confidence)
        if rng.random() < 0.5:
            lines.append(line({"id": i, "actual": rng.choice("ab")}))
    (root / "m/v1/predictions/p.jsonl").write_bytes(b"".join(lines))
    worker, counter = make_worker(root)
    while worker.poll_once():
        pass
    view = worker.tallies[KEY]
    assert view.predictions == len(confidences) + sum(errors.values())
    assert dict(view.errors) == errors
    reference = Histogram(DEFAULT_LATENCY_BUCKETS)
    for value in latencies:
        reference.observe(value)
    assert list(view.latency) == reference.cumulative()
    assert view.latency_sum == pytest.approx(sum(latencies))
    assert view.confidence[-1][1] == len(confidences)
    invalid = counter.values()[("prediction_log", "invalid_json")]
    assert invalid == sum(1 for x in lines if x == b'{"prediction": \n')


def test_histogram_observe_many_is_observe_one_by_one() -> None:
    rng = random.Random(3)  # noqa: S311 - seeded test data
    bounds = (0.1, 0.25, 0.5, 1.0)
    values = [rng.choice([*bounds, rng.random() * 2, 0.0, 5.0]) for _ in range(500)]
    many, one_by_one = Histogram(bounds), Histogram(bounds)
    many.observe_many(values)
    many.observe_many(values[:5])  # the small-batch path
    for value in [*values, *values[:5]]:
        one_by_one.observe(value)
    expected = [0] * (len(bounds) + 1)
    for value in [*values, *values[:5]]:
        expected[bisect.bisect_left(bounds, value)] += 1  # le="bound" holds the bound
    assert many.counts == one_by_one.counts == expected
    assert many.total == pytest.approx(one_by_one.total)


def test_summaries_catch_up_when_a_poll_finds_nothing_new(root: Path) -> None:
    log = root / "m/v1/predictions/p.jsonl"
    log.write_bytes(b"".join(line({"id": i, "prediction": "a"}) for i in range(10)))
    worker, _ = make_worker(root, summary_interval=3600.0)
    assert worker.poll_once() == 10
    assert worker.tallies[KEY].window.samples["predictions"] == 10  # a first summary
    with log.open("ab") as f:
        f.write(b"".join(line({"id": i, "prediction": "a"}) for i in range(10, 15)))
    assert worker.poll_once() == 5
    view = worker.tallies[KEY]
    assert view.predictions == 15  # counters are always fresh
    assert view.window.samples["predictions"] == 10  # the summary waits
    assert worker.poll_once() == 0
    assert worker.tallies[KEY].window.samples["predictions"] == 15


def test_checkpoint_written_piecewise_restores_everything(root: Path, tmp_path: Path) -> None:
    (root / "m/v1/predictions/p.jsonl").write_bytes(
        b"".join(
            line({"id": i, "prediction": "ab"[i % 2], "probabilities": {"a": 0.7, "b": 0.3}})
            + (line({"id": i - 1, "actual": "a"}) if i % 3 == 0 else b"")
            for i in range(1, 400)
        )
    )
    state = tmp_path / "state"
    worker, _ = make_worker(root, state_dir=state)
    while worker.poll_once():
        pass
    worker.save_checkpoint()
    saved = json.loads((state / "checkpoint.json").read_bytes())
    assert set(saved) == {
        "format",
        "shard",
        "saved_at",
        "positions",
        "path_positions",
        "tallies",
        "windows",
    }
    restored, _ = make_worker(root, state_dir=state)
    assert restored.poll_once() == 0  # every line was read before the checkpoint
    before, after = worker.tallies[KEY], restored.tallies[KEY]
    assert after == before
    assert after.window.metrics["accuracy"] == before.window.metrics["accuracy"]


def test_partner_logs_are_looked_at_only_while_a_log_has_a_backlog(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holding a log back while its partner catches up must not cost a listing of the
    partner's folder on every poll of every version."""
    (root / "m/v1/feedback").mkdir()
    log = root / "m/v1/predictions/p.jsonl"
    log.write_bytes(line({"id": "r0", "prediction": "a"}))
    worker, _ = make_worker(root)
    worker.poll_once()  # the first poll does not know how much is new
    calls = []
    original = LogTail.unread

    def counting(self: LogTail, beyond: int = 0) -> bool:
        calls.append(self.directory)
        return original(self, beyond)

    monkeypatch.setattr(LogTail, "unread", counting)
    for i in range(1, 4):
        with log.open("ab") as f:
            f.write(line({"id": f"r{i}", "prediction": "a"}))
        assert worker.poll_once() == 1
    assert calls == []


@pytest.mark.parametrize("with_none", [False, True])
def test_run_facts_reads_each_column_once_with_its_sum(with_none: bool) -> None:
    """The given latencies and confidences (of the successful), in order, and their
    sums, as a loop over the run finds them."""
    rng = random.Random(5)  # noqa: S311 - seeded test data
    run = [
        Prediction(
            f"r{i}",
            "a" if rng.random() < 0.9 else None,
            None,
            None,
            rng.choice([0.25, 0.7, 0.9, None if with_none else 0.5]),
            rng.choice([0.01, 0.3, 2.0, None if with_none else 0.1]),
            "Timeout" if rng.random() < 0.1 else None,
        )
        for i in range(300)
    ]
    facts = run_facts(run)
    latencies = [p.latency_seconds for p in run if p.latency_seconds is not None]
    ok = [p for p in run if p.error is None]
    confidences = [p.confidence for p in ok if p.confidence is not None]
    assert facts.n == len(run)
    assert facts.latencies == latencies
    assert facts.latency_sum == sum(latencies)
    assert facts.ok == ok
    assert facts.errors == [p.error for p in run if p.error is not None]
    assert facts.confidences == confidences
    assert facts.confidence_sum == sum(confidences)
    assert (len(latencies) < len(run)) is with_none

"""Two shard instances (--models.shard=0/2 and 1/2) and one unsharded instance read the
same example models and prediction logs (version folders and a shared --logs.path log);
a real Prometheus scrapes all three. Summed by model, the shards' counters equal the
single instance's, every model comes from exactly one shard, and together the shards
export exactly the single instance's model series."""

from __future__ import annotations

import json
import random
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port

from .stack import (
    REPO_ROOT,
    ManagedProcess,
    ProcessGroup,
    find_binary,
    http_ok,
    write_yaml,
)

EXAMPLES = REPO_ROOT / "examples" / "models"
# Beside the example models (routing: shard 0 of 2, fraud: shard 1), a few more so both
# shards own several models.
EXTRA_MODELS = ("churn", "ranking", "pricing", "spam")
CLASSES = ("a", "b", "c")
PER_VERSION_FOLDER = 180  # predictions in each active version's own log
SHARED = 300  # predictions in the shared log, spread over the models
DEADLINE_S = 90.0
COUNTERS = (
    "routing_ml_predictions_total",
    "routing_ml_feedback_total",
    "routing_ml_prediction_errors_total",
    "routing_ml_prediction_latency_seconds_count",
    "routing_ml_prediction_confidence_count",
)


def _prediction(rng: random.Random, i: int, **names: str) -> dict[str, Any]:
    confidence = round(rng.uniform(0.4, 0.99), 3)
    error = "Timeout" if i % 17 == 0 else None
    return {
        **names,
        "id": f"req-{i}",
        "features": {"x": round(rng.gauss(0, 1), 3), "kind": rng.choice("pqr")},
        "prediction": rng.choice(CLASSES),
        "confidence": confidence,
        "latency_ms": round(rng.lognormvariate(3, 0.5), 1),
        "error": error,
    }


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def write_models(root: Path, shared: Path) -> dict[str, str]:
    """The example models plus EXTRA_MODELS, each active version with its own logs, and a
    shared log naming models (bad lines included); returns model -> active version."""
    shutil.copytree(EXAMPLES, root, symlinks=True)
    rng = random.Random(12)  # noqa: S311 - test data
    for name in EXTRA_MODELS:
        for version, accuracy in (("v1", 0.9), ("v2", 0.93)):
            metrics = {
                "generated_at": f"2026-11-0{version[1]}T00:00:00Z",
                "model_version": f"{name}-{version}",
                "training_samples": 1000,
                "accuracy": accuracy,
                "precision_weighted": 0.9,
                "recall_weighted": 0.9,
                "f1_weighted": 0.9,
            }
            (root / name / version).mkdir(parents=True)
            (root / name / version / "metrics.json").write_text(json.dumps(metrics))
    active = {"routing": "production-v3", "fraud": "2026-11-01"}
    active.update(dict.fromkeys(EXTRA_MODELS, "v2"))
    for name, version in active.items():
        folder = root / name / version
        (folder / "predictions").mkdir(exist_ok=True)
        (folder / "feedback").mkdir(exist_ok=True)
        records = [_prediction(rng, i) for i in range(PER_VERSION_FOLDER)]
        with (folder / "predictions" / "e2e.jsonl").open("a") as f:
            f.write(_jsonl(records))
        feedback = [{"id": r["id"], "actual": rng.choice(CLASSES)} for r in records[::3]]
        (folder / "feedback" / "e2e.jsonl").write_text(_jsonl(feedback) + "{broken\n")
    shared.mkdir()
    names = sorted(active)
    lines = []
    for i in range(SHARED):
        model = names[i % len(names)]
        lines.append(_prediction(rng, 10_000 + i, model=model, version=active[model]))
    text = _jsonl(lines)
    text += '{"model": "nobody", "version": "v1", "id": "n1", "prediction": "a"}\n'
    text += '{"version": "v2", "id": "n2", "prediction": "a"}\n'  # names no model
    text += "not json at all\n"
    (shared / "predictions-1.jsonl").write_text(text)
    return active


class ShardedStack(ProcessGroup):
    """Exporters `single` (unsharded), `shard0` and `shard1` over the same files, each with
    its own state directory, and a Prometheus scraping them as jobs `single` and
    `sharded`. Processes are stopped by PID."""

    def __init__(self, workdir: Path, models: Path, shared: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.addresses = {name: f"127.0.0.1:{free_port()}" for name in ("single", "s0", "s1")}
        super().__init__(f"http://127.0.0.1:{free_port()}")
        self.models, self.shared = models, shared

    def start(self) -> None:
        prometheus = find_binary("prometheus")
        for name, shard in (("single", None), ("s0", "0/2"), ("s1", "1/2")):
            argv = [
                *(sys.executable, "-m", "model_health_exporter", "run"),
                f"--web.listen-address={self.addresses[name]}",
                f"--models.dir={self.models}",
                f"--logs.path={self.shared}/predictions-*.jsonl",
                f"--state.dir={self.workdir / f'state-{name}'}",
                "--logs.window-min-samples=20",
                "--log.format=json",
            ]
            if shard is not None:
                argv.append(f"--models.shard={shard}")
            self.processes.append(ManagedProcess(name, argv, self.workdir))
        jobs = {"single": ["single"], "sharded": ["s0", "s1"]}
        config = write_yaml(
            self.workdir / "prometheus.yml",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": job,
                        "static_configs": [{"targets": [self.addresses[t] for t in targets]}],
                    }
                    for job, targets in jobs.items()
                ],
            },
        )
        address = self.prometheus_url.removeprefix("http://")
        self.processes.append(
            ManagedProcess(
                "prometheus",
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                    f"--web.listen-address={address}",
                ],
                self.workdir,
            )
        )
        for address in self.addresses.values():
            self.wait(lambda a=address: http_ok(f"http://{a}/readyz"), f"{address} ready")
        self.wait(lambda: http_ok(f"{self.prometheus_url}/-/ready"), "prometheus ready")

    def vector(self, expr: str) -> dict[frozenset[tuple[str, str]], float]:
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in self.query(expr)}


@pytest.fixture
def sharded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ShardedStack]:
    models, shared = tmp_path / "models", tmp_path / "shared"
    write_models(models, shared)
    stack = ShardedStack(tmp_path / "stack", models, shared)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if request.session.testsfailed:
            print(stack.report())


def _without_target(labels: frozenset[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in labels if k not in ("job", "instance"))


def test_two_shards_export_exactly_what_one_instance_does(sharded: ShardedStack) -> None:
    expected_predictions = 6 * PER_VERSION_FOLDER + SHARED + 40  # + the routing example's 40

    def ingested(job: str) -> bool:
        total = sharded.vector(f'sum(routing_ml_predictions_total{{job="{job}"}})')
        return list(total.values()) == [expected_predictions]

    for job in ("single", "sharded"):
        sharded.wait(lambda j=job: ingested(j), f"{job}: every prediction counted", DEADLINE_S)

    # Each instance says which shard it is.
    info = sharded.vector("routing_ml_exporter_shard_info")
    shards = {(dict(k)["job"], dict(k)["shard"], dict(k)["shards"]) for k in info}
    assert shards == {("single", "0", "1"), ("sharded", "0", "2"), ("sharded", "1", "2")}

    # Every model from exactly one shard, and the same models as the single instance.
    owners = sharded.vector(
        'count by (model) (group by (model, instance) (routing_ml_model_active{job="sharded"}))'
    )
    single_models = sharded.vector('group by (model) (routing_ml_model_active{job="single"})')
    assert {dict(k)["model"] for k in owners} == {dict(k)["model"] for k in single_models}
    assert set(owners.values()) == {1.0}, owners
    per_shard = sharded.vector('count by (instance) (routing_ml_model_info{job="sharded"})')
    assert len(per_shard) == 2, "a shard owns no model: the test would prove little"

    # Counters summed by model (and version, error type) equal the single instance's.
    for name in COUNTERS:
        by = "model, version, error_type" if "errors" in name else "model, version"
        single = sharded.vector(f'sum by ({by}) ({name}{{job="single"}})')
        together = sharded.vector(f'sum by ({by}) ({name}{{job="sharded"}})')
        assert single, f"{name}: the single instance exports none"
        assert together == single, name
    # Bad lines and unknown models of the shared log are counted once in all.
    errors = (
        'sum by (reason) (routing_ml_exporter_errors_total{{job="{}", source="prediction_log"}})'
    )
    assert sharded.vector(errors.format("sharded")) == sharded.vector(errors.format("single"))
    unknown = frozenset({("reason", "unknown_model")})  # "nobody" and the nameless record
    assert sharded.vector(errors.format("single"))[unknown] == 2

    # The union of the shards' model series is the single instance's, series for series.
    def difference() -> tuple[set[Any], set[Any]] | None:
        single = {_without_target(k) for k in sharded.vector('{job="single", model!=""}')}
        together = [_without_target(k) for k in sharded.vector('{job="sharded", model!=""}')]
        if len(together) == len(set(together)) and set(together) == single:
            return None
        return single - set(together), set(together) - single

    try:  # window summaries follow the counters within a second or two
        sharded.wait(lambda: difference() is None, "the same model series", 30)
    except AssertionError:
        only_single, only_sharded = difference() or (set(), set())
        pytest.fail(
            f"only in the single instance: {sorted(map(sorted, only_single))[:10]}; "
            f"only in the shards: {sorted(map(sorted, only_sharded))[:10]}"
        )
    compared = {dict(k)["__name__"] for k in sharded.vector('{job="single", model!=""}')}
    # metrics.json, counters, windows (drift, live performance) and health all compared
    assert {
        "routing_ml_model_accuracy",
        "routing_ml_predictions_total",
        "routing_ml_feature_psi",
        "routing_ml_live_accuracy",
        "routing_ml_model_health_score",
    } <= compared, sorted(compared)

"""Shards of models: the hash is stable and spreads models evenly, every model is owned by
exactly one shard, and the registry and the ingester of a shard see only its models
(logs outside the version folders included), so n shards add up to one instance."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from model_health_exporter.sharding import Shard, shard_of
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelKey,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    VersionView,
    initial_error_keys,
)
from tests.support import good_metrics, write_json

MODELS = ("routing", "fraud", "churn", "ranking", "pricing", "spam", "ads", "search")


def reference_shard(model: str, count: int) -> int:
    """The documented rule, written out independently of the package."""
    digest = hashlib.sha256(model.encode()).hexdigest()
    return int(digest[:16], 16) % count


# ---- the hash ---------------------------------------------------------------------------


def test_shard_is_the_documented_sha256_rule() -> None:
    for count in (1, 2, 3, 4, 7, 16):
        for name in (*MODELS, "ünïcode", "a/b", ""):
            assert shard_of(name, count) == reference_shard(name, count), (name, count)
    # Fixed expectations, so a change of the rule cannot pass unnoticed: the example
    # models fall in different shards of two.
    assert (shard_of("routing", 2), shard_of("fraud", 2)) == (0, 1)


def test_shard_does_not_depend_on_the_process() -> None:
    """Python's str hash is salted per process; ours must not be."""
    code = "from model_health_exporter.sharding import shard_of; print(shard_of('fraud', 97))"
    seen = set()
    for seed in ("1", "2", "random"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        seen.add(int(result.stdout))
    assert seen == {reference_shard("fraud", 97)}


def test_every_model_has_exactly_one_owner_and_shards_are_balanced() -> None:
    names = [f"model-{i}" for i in range(8000)]
    for count in (1, 2, 3, 5):
        shards = [Shard(i, count) for i in range(count)]
        owners = [sum(s.owns(name) for s in shards) for name in names]
        assert set(owners) == {1}
        sizes = Counter(shard_of(name, count) for name in names)
        expected = len(names) / count
        assert all(abs(size - expected) < 0.06 * expected for size in sizes.values()), sizes


@pytest.mark.parametrize(
    ("text", "expected"), [("0/1", Shard()), ("1/4", Shard(1, 4)), (" 2 / 3 ", Shard(2, 3))]
)
def test_parse(text: str, expected: Shard) -> None:
    assert Shard.parse(text) == expected
    assert Shard.parse(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2/2", "2/2: the shard index must be between 0 and 1"),
        ("0/0", "0/0: the shard count must be between 1"),
        ("-1/2", "is not i/n"),
        ("1", "is not i/n"),
        ("a/b", "is not i/n"),
        ("1.0/2", "is not i/n"),
        ("0/2000", "the shard count must be between 1 and 1024"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"shard|i/n") as info:
        Shard.parse(text)
    assert problem in str(info.value)


# ---- the registry -----------------------------------------------------------------------


def registry(root: Path, shard: Shard, **config: object) -> ModelRegistry:
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    reg = ModelRegistry(
        RegistryConfig(roots=(RootConfig(root),), shard=shard, **config),  # type: ignore[arg-type]
        errors,
        dropped,
    )
    reg.full_scan()
    return reg


def unstamped(versions: tuple[VersionView, ...]) -> list[VersionView]:
    return [dataclasses.replace(v, loaded_at=None) for v in versions]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for name in MODELS:
        for version in ("v1", "v2"):
            write_json(root / name / version / "metrics.json", good_metrics(version))
    return root


def test_shards_of_the_registry_partition_the_models(root: Path) -> None:
    whole = registry(root, Shard()).snapshot
    assert set(whole.models) == set(MODELS)
    for count in (2, 3):
        parts = [registry(root, Shard(i, count)).snapshot for i in range(count)]
        owned = [set(part.models) for part in parts]
        assert sum(map(len, owned)) == len(MODELS), "a model in two shards"
        assert set().union(*owned) == set(MODELS)
        for i, models in enumerate(owned):
            assert models == {m for m in MODELS if reference_shard(m, count) == i}
        for part in parts:  # the same views as the single registry's
            for name, view in part.models.items():
                assert unstamped(view.versions) == unstamped(whole.models[name].versions)


def test_file_events_of_another_shards_model_change_nothing(root: Path) -> None:
    shard = Shard(0, 2)
    other = next(m for m in MODELS if not shard.owns(m))
    mine = next(m for m in MODELS if shard.owns(m))
    reg = registry(root, shard)
    before = reg.snapshot
    write_json(root / other / "v3" / "metrics.json", good_metrics("v3"))
    reg.refresh([ModelKey(0, root / other)])
    assert set(reg.snapshot.models) == set(before.models)
    write_json(root / mine / "v3" / "metrics.json", good_metrics("v3"))
    reg.refresh([ModelKey(0, root / mine)])
    assert [v.version for v in reg.snapshot.models[mine].versions] == ["v1", "v2", "v3"]


def test_the_model_limit_counts_only_the_shards_own_models(root: Path) -> None:
    shard = Shard(1, 2)
    mine = [m for m in MODELS if shard.owns(m)]
    reg = registry(root, shard, max_models=len(mine))
    assert sorted(reg.snapshot.models) == sorted(mine)


# ---- the ingester -----------------------------------------------------------------------


def line(obj: object) -> bytes:
    return json.dumps(obj).encode() + b"\n"


class Instance:
    """A shard's registry and ingester over the same files, as the daemon wires them."""

    def __init__(self, root: Path, shared: Path, shard: Shard, state: Path | None = None):
        self.errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
        self.registry = ModelRegistry(
            RegistryConfig(roots=(RootConfig(root),), shard=shard),
            self.errors,
            LabelledCounter((limit,) for limit in DROP_LIMITS),
        )
        self.registry.full_scan()
        self.worker = IngestWorker(
            IngestConfig(state_dir=state, paths=(f"{shared}/*.jsonl",), shard=shard),
            lambda: self.registry.snapshot,
            self.errors,
        )

    def counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        return {key: (v.predictions, v.feedback) for key, v in self.worker.tallies.items()}

    def line_errors(self) -> dict[str, float]:
        return {
            reason: value
            for (source, reason), value in self.errors.values().items()
            if source == "prediction_log" and value
        }


def test_shards_of_a_shared_log_add_up_to_one_instance(root: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    lines = []
    for i in range(400):
        model = MODELS[i % len(MODELS)]
        lines.append(line({"model": model, "version": "v2", "id": f"r{i}", "prediction": "a"}))
        if i % 3 == 0:
            lines.append(line({"model": model, "version": "v2", "id": f"r{i}", "actual": "a"}))
    lines += [
        b"{not json\n",  # names no model: counted by shard 0 only
        line({"version": "v2", "id": "x", "prediction": "a"}),  # no model: shard 0
        line({"model": "gone", "version": "v1", "id": "y", "prediction": "a"}),  # its shard
        line({"model": "routing", "version": "v9", "id": "z", "prediction": "a"}),
        b"x" * 70_000 + b"\n",  # too long
    ]
    for name in MODELS[:3]:  # version-folder logs too
        (root / name / "v1" / "predictions").mkdir()
        (root / name / "v1" / "predictions" / "p.jsonl").write_bytes(
            line({"id": "a", "prediction": "b"}) * 7 + b"[1]\n"
        )
    (shared / "p.jsonl").write_bytes(b"".join(lines))

    single = Instance(root, shared, Shard())
    single.worker.poll_once()
    expected = single.counts()
    assert sum(p for p, _ in expected.values()) == 400 + 21
    assert single.line_errors() == {
        "invalid_json": 1,
        "invalid_record": 3,
        "unknown_model": 3,
        "line_too_long": 1,
    }

    shards = [Instance(root, shared, Shard(i, 2)) for i in range(2)]
    for shard in shards:
        shard.worker.poll_once()
    merged: dict[tuple[str, str], tuple[int, int]] = {}
    for shard in shards:
        assert not merged.keys() & shard.counts().keys(), "a version counted by two shards"
        merged.update(shard.counts())
        assert {model for model, _ in shard.counts()} == {
            m for m in MODELS if shard.worker._config.shard.owns(m)
        } & {m for m, _ in expected}
    assert merged == expected
    errors = Counter(shards[0].line_errors()) + Counter(shards[1].line_errors())
    assert dict(errors) == single.line_errors()


def test_a_shard_refuses_another_shards_checkpoint(root: Path, tmp_path: Path) -> None:
    shared, state = tmp_path / "shared", tmp_path / "state"
    shared.mkdir()
    Instance(root, shared, Shard(0, 2), state).worker.save_checkpoint()
    Instance(root, shared, Shard(0, 2), state)  # its own: fine
    with pytest.raises(RuntimeError, match=r"shard 0/2, not 1/2.*own --state.dir"):
        Instance(root, shared, Shard(1, 2), state)
    with pytest.raises(RuntimeError, match=r"shard 0/2, not 0/1"):
        Instance(root, shared, Shard(), state)

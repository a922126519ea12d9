"""The registry against real directory trees in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from model_health_exporter.baselines import BaselineOverrides
from model_health_exporter.schema import Levels
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import (
    ModelKey,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    RootKey,
    initial_error_keys,
)
from tests.support import good_metrics, write_json


class Harness:
    def __init__(self, *roots: RootConfig, **config: object) -> None:
        self.errors = LabelledCounter(initial_error_keys())
        self.dropped = LabelledCounter([("max_models",), ("max_columns",)])
        self.registry = ModelRegistry(
            RegistryConfig(roots=roots, **config),  # type: ignore[arg-type]
            self.errors,
            self.dropped,
        )
        self.registry.full_scan()

    def scan(self) -> None:
        self.registry.full_scan()

    def model(self, name: str):  # type: ignore[no-untyped-def]
        return self.registry.snapshot.models[name]

    def version(self, model: str, version: str):  # type: ignore[no-untyped-def]
        return next(v for v in self.model(model).versions if v.version == version)

    def error(self, source: str, reason: str) -> float:
        return self.errors.values()[(source, reason)]


def nested(tmp_path: Path) -> RootConfig:
    return RootConfig(tmp_path)


def test_nested_layout_and_newest_version_is_active(tmp_path: Path) -> None:
    write_json(
        tmp_path / "m/v1/metrics.json", good_metrics("v1", generated_at="2026-01-01T00:00:00Z")
    )
    write_json(
        tmp_path / "m/v2/metrics.json", good_metrics("v2", generated_at="2026-02-01T00:00:00Z")
    )
    write_json(tmp_path / "other/a/metrics.json", good_metrics("a"))
    h = Harness(nested(tmp_path))
    assert sorted(h.registry.snapshot.models) == ["m", "other"]
    assert h.model("m").active_version == "v2"
    assert h.model("m").active_source == "newest"
    assert [v.active for v in h.model("m").versions] == [False, True]
    assert h.registry.snapshot.ready


def test_flat_layout_uses_default_name_or_root_name(tmp_path: Path) -> None:
    root = tmp_path / "fraud-models"
    write_json(root / "v1/metrics.json", good_metrics())
    assert list(Harness(RootConfig(root)).registry.snapshot.models) == ["fraud-models"]
    named = Harness(RootConfig(root, "flat", "fraud"))
    assert list(named.registry.snapshot.models) == ["fraud"]


@pytest.mark.parametrize("marker", ["ACTIVE", "current", "active", "production"])
def test_active_marker_wins_over_newest(tmp_path: Path, marker: str) -> None:
    write_json(tmp_path / "m/old/metrics.json", good_metrics(generated_at="2020-01-01T00:00:00Z"))
    write_json(tmp_path / "m/new/metrics.json", good_metrics(generated_at="2026-01-01T00:00:00Z"))
    if marker == "ACTIVE":
        (tmp_path / "m/ACTIVE").write_text("old\n")
    else:
        (tmp_path / "m" / marker).symlink_to("old")
    h = Harness(nested(tmp_path))
    assert (h.model("m").active_version, h.model("m").active_source) == ("old", marker)
    assert [v.version for v in h.model("m").versions] == ["new", "old"]  # link not a version


def test_marker_naming_missing_version_falls_back_and_is_reported_once(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics())
    (tmp_path / "m/ACTIVE").write_text("v9")
    with capture_logs() as logs:
        h = Harness(nested(tmp_path))
        h.scan()
    assert h.model("m").active_version == "v1"
    assert h.error("active_marker", "unknown_version") == 1
    assert sum("marker" in entry["event"] for entry in logs) == 1


def test_bad_file_keeps_last_values_counts_once_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "m/v1/metrics.json"
    write_json(path, good_metrics(accuracy=0.91))
    h = Harness(nested(tmp_path))
    path.write_text('{"accuracy": 0.5, "training_samples": ')  # a partial write
    with capture_logs() as logs:
        h.scan()
        h.scan()  # unchanged file: not re-read, not re-counted, not re-logged
    v = h.version("m", "v1")
    assert (v.valid, v.metrics.accuracy) == (False, 0.91)  # type: ignore[union-attr]
    assert v.problem is not None and v.problem.startswith("invalid_json")
    assert h.error("metrics_file", "invalid_json") == 1
    assert [e["path"] for e in logs if e["log_level"] == "error"] == [str(path)]
    write_json(path, good_metrics(accuracy=0.8))
    h.scan()
    v = h.version("m", "v1")
    assert (v.valid, v.metrics.accuracy, v.problem) == (True, 0.8, None)  # type: ignore[union-attr]


def test_bad_file_from_the_start_exports_the_version_as_invalid(tmp_path: Path) -> None:
    (tmp_path / "m/v1").mkdir(parents=True)
    (tmp_path / "m/v1/metrics.json").write_bytes(os.urandom(256))
    write_json(tmp_path / "m/v2/metrics.json", good_metrics())
    h = Harness(nested(tmp_path))
    v = h.version("m", "v1")
    assert (v.valid, v.metrics) == (False, None)
    assert h.error("metrics_file", "not_utf8") + h.error("metrics_file", "invalid_json") == 1


@pytest.mark.parametrize("kind", ["directory", "fifo", "dangling_symlink", "too_large"])
def test_unreadable_metrics_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "m/v1/metrics.json"
    path.parent.mkdir(parents=True)
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # must not block the scan
    elif kind == "dangling_symlink":
        path.symlink_to(tmp_path / "nowhere.json")
    else:
        path.write_text(json.dumps({**good_metrics(), "note": "x" * 5000}))
    h = Harness(nested(tmp_path), max_file_bytes=4096)
    assert h.version("m", "v1").valid is False
    reason = "too_large" if kind == "too_large" else "unreadable"
    assert h.error("metrics_file", reason) == 1


def test_version_and_model_disappear_with_their_folders(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics())
    write_json(tmp_path / "m/v2/metrics.json", good_metrics())
    write_json(tmp_path / "gone/v1/metrics.json", good_metrics())
    h = Harness(nested(tmp_path))
    (tmp_path / "m/v1").rename(tmp_path / "m/.v1-trash")
    (tmp_path / "gone/v1/metrics.json").unlink()
    (tmp_path / "gone/v1").rmdir()
    (tmp_path / "gone").rmdir()
    h.scan()
    assert list(h.registry.snapshot.models) == ["m"]
    assert [v.version for v in h.model("m").versions] == ["v2"]


def test_baseline_file_and_config_layers(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.78))
    write_json(
        tmp_path / "m/baseline_metrics.json",
        {"quality_thresholds": {"accuracy": {"target": 0.9, "warning": 0.88}}},
    )
    h = Harness(
        nested(tmp_path),
        baseline_models={"m": BaselineOverrides({"accuracy": Levels(critical=0.7)})},
    )
    levels = h.model("m").baseline.levels["accuracy"]
    assert (levels.target, levels.warning, levels.critical) == (0.9, 0.88, 0.7)
    assert h.version("m", "v1").degradation["accuracy"] == pytest.approx((0.9 - 0.78) / 0.9)


def test_bad_baseline_file_keeps_previous_thresholds(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics())
    baseline = tmp_path / "m/baseline_metrics.json"
    write_json(baseline, {"quality_thresholds": {"accuracy": {"warning": 0.6}}})
    h = Harness(nested(tmp_path))
    baseline.write_text("{nope")
    h.scan()
    assert h.model("m").baseline.levels["accuracy"].warning == 0.6
    assert h.model("m").baseline_problem is not None
    assert h.error("baseline_file", "invalid_json") == 1


def test_model_cap_counts_dropped_models_once(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write_json(tmp_path / name / "v1/metrics.json", good_metrics())
    h = Harness(nested(tmp_path), max_models=2)
    h.scan()
    assert sorted(h.registry.snapshot.models) == ["a", "b"]
    assert h.dropped.values()[("max_models",)] == 1


def test_column_cap_keeps_the_worst_columns(tmp_path: Path) -> None:
    rates = {f"c{i}": i / 100 for i in range(10)}
    write_json(
        tmp_path / "m/v1/metrics.json",
        good_metrics(dataset_stats={"missing_rates": rates}),
    )
    h = Harness(nested(tmp_path), max_columns=3)
    assert dict(h.version("m", "v1").missing_rates) == {"c9": 0.09, "c8": 0.08, "c7": 0.07}
    assert h.dropped.values()[("max_columns",)] == 7


def test_same_model_name_in_two_roots_keeps_the_first(tmp_path: Path) -> None:
    write_json(tmp_path / "r1/m/v1/metrics.json", good_metrics(accuracy=0.9))
    write_json(tmp_path / "r2/m/v1/metrics.json", good_metrics(accuracy=0.5))
    h = Harness(RootConfig(tmp_path / "r1"), RootConfig(tmp_path / "r2"))
    h.scan()
    assert h.version("m", "v1").metrics.accuracy == 0.9  # type: ignore[union-attr]
    assert h.error("models_dir", "duplicate_model") == 1


def test_event_paths_map_to_the_smallest_refresh(tmp_path: Path) -> None:
    write_json(tmp_path / "nested/m/v1/metrics.json", good_metrics())
    write_json(tmp_path / "flat/v1/metrics.json", good_metrics())
    (tmp_path / "empty").mkdir()
    h = Harness(
        RootConfig(tmp_path / "nested"),
        RootConfig(tmp_path / "flat"),
        RootConfig(tmp_path / "empty"),
    )
    key = h.registry.key_for_path
    assert key(tmp_path / "nested/m/v1/metrics.json") == ModelKey(0, tmp_path / "nested/m")
    assert key(tmp_path / "nested/m/ACTIVE") == ModelKey(0, tmp_path / "nested/m")
    assert key(tmp_path / "nested/new-model") == RootKey(0)
    assert key(tmp_path / "nested/m/v1/predictions/x") is None
    assert key(tmp_path / "flat/v2/metrics.json") == ModelKey(1, tmp_path / "flat")
    assert key(tmp_path / "flat/v1/predictions/log.jsonl") is None
    assert key(tmp_path / "empty/v1/metrics.json") == RootKey(2)  # layout not known yet
    assert key(tmp_path / "elsewhere/metrics.json") is None


def test_refresh_picks_up_in_place_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "m/v1/metrics.json"
    write_json(path, good_metrics(accuracy=0.9))
    h = Harness(nested(tmp_path))
    with path.open("r+") as f:  # same inode, same size: only mtime/ctime change
        content = f.read().replace("0.9,", "0.8,")
        f.seek(0)
        f.write(content)
    h.registry.refresh([h.registry.key_for_path(path)])  # type: ignore[list-item]
    assert h.version("m", "v1").metrics.accuracy == 0.8  # type: ignore[union-attr]

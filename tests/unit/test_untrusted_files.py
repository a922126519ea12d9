"""User files and folders as untrusted input: depth limits, folder names that are not
UTF-8, folders that cannot be listed, symlinks leading out of the roots, and short
escaped excerpts of bad values. The registry against real trees in tmp_path; permission
errors are injected at the file-system boundary (tests run as root, which reads anything;
tests/integration/test_untrusted_files.py drops privileges for the real thing)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from structlog.testing import capture_logs

from model_health_exporter.exposition.collector import model_families
from model_health_exporter.exposition.pages import landing_page, models_json
from model_health_exporter.exposition.render import CachedExposition
from model_health_exporter.records import InvalidRecordError, parse_line
from model_health_exporter.schema import (
    MAX_EXCERPT_CHARS,
    MAX_JSON_DEPTH,
    InvalidFileError,
    parse_baseline,
    parse_metrics,
)
from model_health_exporter.sources import metrics_files
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    Snapshot,
    initial_error_keys,
)
from tests.support import good_metrics, write_json

DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


class Harness:
    def __init__(self, root: Path, **config: Any) -> None:
        self.errors = LabelledCounter(initial_error_keys())
        self.registry = ModelRegistry(
            RegistryConfig(roots=(RootConfig(root),), **config),
            self.errors,
            LabelledCounter([("max_models",), ("max_columns",)]),
        )
        self.registry.full_scan()

    @property
    def snapshot(self) -> Snapshot:
        return self.registry.snapshot

    def version(self, model: str, version: str):  # type: ignore[no-untyped-def]
        return next(v for v in self.snapshot.models[model].versions if v.version == version)

    def error(self, source: str, reason: str) -> float:
        return self.errors.values()[(source, reason)]


def nested(value: object, depth: int) -> object:
    for _ in range(depth):
        value = {"a": value}
    return value


def render_everything(snapshot: Snapshot) -> None:
    """/metrics, / and /api/v1/models of a snapshot, as the server renders them."""
    cache: CachedExposition[Any] = CachedExposition(lambda models: model_families("ns", models))
    cache.render(snapshot, snapshot.models.values(), generate_latest, "text/plain")
    landing_page(snapshot, "test")
    json.loads(models_json(snapshot))


# ---- depth limits ---------------------------------------------------------------------


@pytest.mark.parametrize("parse", [parse_metrics, parse_baseline])
def test_nesting_100000_deep_is_too_deep_not_a_recursion_error(parse: Any) -> None:
    with pytest.raises(InvalidFileError) as caught:
        parse(DEEP)
    assert caught.value.reason == "too_deep"
    with pytest.raises(InvalidFileError) as caught:
        parse(b"[" * 100_000)
    assert caught.value.reason == "too_deep"


def test_unknown_field_depth_limit() -> None:
    # the whole file counts: the object itself is the first level
    ok = json.dumps({"accuracy": 0.9, "extra": nested(1, MAX_JSON_DEPTH - 1)}).encode()
    assert parse_metrics(ok).accuracy == 0.9
    deep = json.dumps({"accuracy": 0.9, "extra": nested(1, MAX_JSON_DEPTH)}).encode()
    with pytest.raises(InvalidFileError) as caught:
        parse_metrics(deep)
    assert caught.value.reason == "too_deep"


def test_deep_files_at_start_are_counted_and_the_rest_served(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics())
    (tmp_path / "m/v2").mkdir()
    (tmp_path / "m/v2/metrics.json").write_bytes(DEEP)
    (tmp_path / "m/baseline_metrics.json").write_bytes(DEEP)
    # 300 levels in an unknown field: accepted before, then every /api/v1/models failed
    extra = {**good_metrics(), "extra": nested(1, 300)}
    write_json(tmp_path / "m/v3/metrics.json", extra)
    h = Harness(tmp_path)
    assert h.version("m", "v1").valid
    assert (h.version("m", "v2").valid, h.version("m", "v3").valid) == (False, False)
    assert h.error("metrics_file", "too_deep") == 2
    assert h.error("baseline_file", "too_deep") == 1
    assert h.snapshot.models["m"].baseline_problem is not None
    render_everything(h.snapshot)


# ---- folder names that are not UTF-8 ----------------------------------------------------

BAD_NAME = os.fsdecode(b"bad\xffname")


def test_folders_named_in_bytes_that_are_not_utf8_are_skipped_and_counted_once(
    tmp_path: Path,
) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics())
    write_json(tmp_path / "m" / BAD_NAME / "metrics.json", good_metrics())
    write_json(tmp_path / BAD_NAME / "v1/metrics.json", good_metrics())
    with capture_logs() as logs:
        h = Harness(tmp_path)
        h.registry.full_scan()
    assert list(h.snapshot.models) == ["m"]
    assert [v.version for v in h.snapshot.models["m"].versions] == ["v1"]
    assert h.error("models_dir", "not_utf8") == 2
    skipped = sorted(e["path"] for e in logs if e.get("reason") == "not_utf8")
    assert skipped == [str(tmp_path / "bad\\xffname"), str(tmp_path / "m/bad\\xffname")]
    render_everything(h.snapshot)
    (tmp_path / "m" / BAD_NAME / "metrics.json").unlink()
    (tmp_path / "m" / BAD_NAME).rmdir()
    h.registry.full_scan()
    write_json(tmp_path / "m" / BAD_NAME / "metrics.json", good_metrics())
    h.registry.full_scan()
    assert h.error("models_dir", "not_utf8") == 3  # gone, then back: counted again


# ---- folders that cannot be listed ------------------------------------------------------


@pytest.fixture
def denied(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """Paths listed here answer EACCES to scandir and to lookups below them, as a
    `chmod 000` folder does for a user other than root."""
    paths: set[Path] = set()
    real_scandir, real_lstat = os.scandir, os.lstat

    def blocked(path: Any) -> bool:
        p = Path(path)
        return any(p == d or d in p.parents for d in paths)

    def scandir(path: Any) -> Any:
        if blocked(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    def lstat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if any(d in Path(path).parents for d in paths):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(metrics_files.os, "scandir", scandir)
    monkeypatch.setattr(metrics_files.os, "lstat", lstat)
    return paths


def test_version_folder_without_permission_keeps_last_values(
    tmp_path: Path, denied: set[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.81))
    write_json(tmp_path / "m/v2/metrics.json", good_metrics())
    h = Harness(tmp_path)
    denied.add(tmp_path / "m/v1")
    real_open = os.open

    def open_(path: Any, *args: Any, **kwargs: Any) -> int:
        if tmp_path / "m/v1" in Path(path).parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("model_health_exporter.fsutil.os.open", open_)
    monkeypatch.setattr("model_health_exporter.state.registry.file_signature", lambda path: None)
    with capture_logs() as logs:
        for _ in range(3):
            h.registry.full_scan()
    v1 = h.version("m", "v1")
    assert (v1.valid, v1.metrics.accuracy) == (False, 0.81)  # type: ignore[union-attr]
    assert v1.problem is not None and v1.problem.startswith("permission_denied")
    assert h.error("metrics_file", "permission_denied") == 1
    assert len([e for e in logs if e["log_level"] == "error"]) == 1
    assert h.version("m", "v2").valid


def test_model_folder_without_permission_counted_once_and_recovers(
    tmp_path: Path, denied: set[Path]
) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.81))
    write_json(tmp_path / "other/v1/metrics.json", good_metrics())
    h = Harness(tmp_path)
    denied.add(tmp_path / "m")
    with capture_logs() as logs:
        for _ in range(5):
            h.registry.full_scan()
    v1 = h.version("m", "v1")
    assert (v1.valid, v1.metrics.accuracy) == (False, 0.81)  # type: ignore[union-attr]
    assert v1.problem is not None and "permission_denied" in v1.problem
    assert h.error("models_dir", "permission_denied") == 1
    assert [e["path"] for e in logs] == [str(tmp_path / "m")]
    assert h.version("other", "v1").valid
    render_everything(h.snapshot)
    denied.clear()
    h.registry.full_scan()
    assert h.version("m", "v1").valid


def test_models_root_without_permission_keeps_every_model(
    tmp_path: Path, denied: set[Path]
) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.81))
    h = Harness(tmp_path)
    denied.add(tmp_path)
    h.registry.full_scan()
    h.registry.full_scan()
    assert h.version("m", "v1").metrics.accuracy == 0.81  # type: ignore[union-attr]
    assert h.error("models_dir", "permission_denied") == 1


# ---- symlinks leading out of the roots --------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A private file outside the models dir that happens to be a valid metrics.json."""
    secret = tmp_path / "private" / "secret.json"
    write_json(secret, {**good_metrics(), "api_token": "s3cr3t-token"})
    secret.chmod(0o600)
    return secret


def test_metrics_file_symlinked_out_of_the_root_is_not_read(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v2").mkdir()
    (root / "m/v2/metrics.json").symlink_to(outside)
    (root / "m/baseline_metrics.json").symlink_to(outside)
    h = Harness(root)
    v2 = h.version("m", "v2")
    assert (v2.valid, v2.metrics) == (False, None)
    assert v2.problem is not None and v2.problem.startswith("outside_root")
    assert h.error("metrics_file", "outside_root") == 1
    assert h.error("baseline_file", "outside_root") == 1
    assert b"s3cr3t" not in models_json(h.snapshot)
    assert b"s3cr3t" not in landing_page(h.snapshot, "test")
    # the flag allows it
    allowed = Harness(root, follow_external_symlinks=True)
    assert allowed.version("m", "v2").valid


def test_folders_symlinked_out_of_the_root_are_skipped(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    elsewhere = tmp_path / "elsewhere"
    write_json(elsewhere / "v9/metrics.json", good_metrics())
    (root / "m/v9").symlink_to(elsewhere / "v9")  # a version folder leading out
    (root / "linked").symlink_to(elsewhere)  # a model folder leading out
    (root / "m/v2").symlink_to("v1")  # inside the root: followed
    (root / "m/current").symlink_to("v1")  # the marker names a version: fine
    h = Harness(root)
    assert list(h.snapshot.models) == ["m"]
    assert [v.version for v in h.snapshot.models["m"].versions] == ["v1", "v2"]
    assert h.snapshot.models["m"].active_version == "v1"
    assert h.error("models_dir", "outside_root") == 2
    h.registry.full_scan()
    assert h.error("models_dir", "outside_root") == 2  # counted once
    allowed = Harness(root, follow_external_symlinks=True)
    assert sorted(allowed.snapshot.models) == ["linked", "m"]


def test_active_file_symlinked_out_of_the_root_is_not_read(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/ACTIVE").symlink_to(outside)
    h = Harness(root)
    assert h.snapshot.models["m"].active_source == "newest"
    assert h.error("active_marker", "outside_root") == 1


# ---- excerpts of bad values -------------------------------------------------------------


def test_bad_values_are_quoted_short_and_escaped(tmp_path: Path) -> None:
    secret = "token-" + "x" * 200 + "\x1b[2J<script>"
    content = {
        **good_metrics(),
        "accuracy": secret,
        "dataset_stats": {"missing_rates": {secret: 0.5, "b": secret}},
    }
    write_json(tmp_path / "m/v1/metrics.json", content)
    (tmp_path / "m/ACTIVE").write_text(secret + "\n")
    with capture_logs() as logs:
        h = Harness(tmp_path)
    problem = h.version("m", "v1").problem
    assert problem is not None
    assert "x" * (MAX_EXCERPT_CHARS - 3) not in problem
    assert "\x1b" not in problem and "<script>" not in problem
    assert "'token-xxx" in problem  # quoted, so the reader sees where the value starts
    for entry in logs:
        text = json.dumps(entry)
        assert "x" * MAX_EXCERPT_CHARS not in text, entry


@pytest.mark.parametrize(
    "line",
    [
        {"id": 1, "prediction": "a", "confidence": "secret-" * 100},
        {"id": 1, "prediction": {"secret": "x" * 500}},
        {"id": 1, "actual": ["secret-" * 100]},
    ],
)
def test_bad_prediction_log_values_are_quoted_short(line: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        parse_line(json.dumps(line).encode())
    message = str(caught.value)
    assert "secret-secret-secret-secret-secret-secret" not in message
    assert "x" * MAX_EXCERPT_CHARS not in message
    assert len(message) < 120


def test_counts_too_large_for_a_float_are_invalid_values(tmp_path: Path) -> None:
    huge = int("1" + "0" * 400)  # valid JSON; as a sample value it overflowed every scrape
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(training_samples=huge))
    write_json(tmp_path / "m/v2/metrics.json", good_metrics())
    h = Harness(tmp_path)
    assert h.version("m", "v1").valid is False
    assert h.error("metrics_file", "invalid_value") == 1
    render_everything(h.snapshot)


@pytest.mark.parametrize(
    "content",
    [
        r'{"accuracy": 0.9, "model_version": "v\udcff"}',
        r'{"accuracy": 0.9, "dataset_stats": {"missing_rates": {"c\udcff": 0.1}}}',
        r'{"accuracy": 0.9, "extra": ["\ud800"]}',
    ],
)
def test_strings_escaping_a_lone_surrogate_are_not_text(tmp_path: Path, content: str) -> None:
    # valid JSON, but no label, page or UTF-8 body can carry it: every scrape failed
    (tmp_path / "m/v1").mkdir(parents=True)
    (tmp_path / "m/v1/metrics.json").write_text(content)
    write_json(tmp_path / "m/v2/metrics.json", good_metrics())
    h = Harness(tmp_path)
    assert h.version("m", "v1").valid is False
    assert h.error("metrics_file", "not_utf8") == 1
    render_everything(h.snapshot)


@pytest.mark.parametrize("follow", [False, True])
def test_reference_file_symlinked_out_of_the_root(tmp_path: Path, follow: bool) -> None:
    # its feature names would become label values, its rows the drift baseline
    private = tmp_path / "private" / "reference.jsonl"
    private.parent.mkdir()
    rows = (json.dumps({"prediction": "a", "features": {"salary": i}}) for i in range(50))
    private.write_text("".join(row + "\n" for row in rows))
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/reference.jsonl").symlink_to(private)
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    registry = ModelRegistry(
        RegistryConfig(roots=(RootConfig(root),), follow_external_symlinks=follow),
        errors,
        LabelledCounter((limit,) for limit in DROP_LIMITS),
    )
    registry.full_scan()
    worker = IngestWorker(IngestConfig(state_dir=None), lambda: registry.snapshot, errors)
    with capture_logs() as logs:
        worker.poll_once()
    assert errors.values()[("reference", "outside_root")] == (0 if follow else 1)
    assert [e["event"] == "reference loaded" for e in logs] == [follow]

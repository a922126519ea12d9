"""The daemon against hostile or broken user files and folders: it starts with any of
them present, keeps serving every other model, counts each problem by reason and says
so once in its log."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import RunningDaemon, good_metrics, wait_until, write_json

pytestmark = pytest.mark.integration
Start = Callable[..., RunningDaemon]
DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
ERRORS = "routing_ml_exporter_errors_total"


def nested(value: object, depth: int) -> object:
    for _ in range(depth):
        value = {"a": value}
    return value


def get_ok(d: RunningDaemon, path: str) -> bytes:
    status, body, _ = d.get(path)
    assert status == 200, (path, body[:500])
    return body


def test_files_nested_100000_deep_present_at_start(tmp_path: Path, start_daemon: Start) -> None:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v2").mkdir()
    (root / "m/v2/metrics.json").write_bytes(DEEP)
    (root / "m/baseline_metrics.json").write_bytes(DEEP)
    d = start_daemon(f"--models.dir={root}")  # before: RecursionError, no start
    assert d.value("routing_ml_model_accuracy", model="m", version="v1") == 0.92
    assert d.value("routing_ml_model_metrics_file_valid", model="m", version="v2") == 0
    assert d.value(ERRORS, source="metrics_file", reason="too_deep") == 1
    assert d.value(ERRORS, source="baseline_file", reason="too_deep") == 1
    # an unknown field 300 deep: accepted before, then /api/v1/models answered 500
    write_json(root / "m/v3/metrics.json", {**good_metrics(), "extra": nested(1, 300)})
    d.wait_value(ERRORS, 2.0, source="metrics_file", reason="too_deep")
    models = json.loads(get_ok(d, "/api/v1/models"))
    v3 = next(v for v in models["models"][0]["versions"] if v["version"] == "v3")
    assert v3["valid"] is False and v3["problem"].startswith("too_deep")
    get_ok(d, "/")


def test_folder_name_not_utf8(tmp_path: Path, start_daemon: Start) -> None:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    d = start_daemon(f"--models.dir={root}")
    # the names Python gives folders whose names are the bytes bad\xffname and v\xfe2
    write_json(root / os.fsdecode(b"bad\xffname") / "v1/metrics.json", good_metrics())
    write_json(root / "m" / os.fsdecode(b"v\xfe2") / "metrics.json", good_metrics())
    d.wait_value(ERRORS, 2.0, source="models_dir", reason="not_utf8")
    for path in ("/metrics", "/", "/api/v1/models"):  # before: 500 for every model
        get_ok(d, path)
    assert d.value("routing_ml_model_accuracy", model="m", version="v1") == 0.92
    assert d.value("routing_ml_exporter_model_versions") == 1
    warned = [r["path"] for r in d.log_records() if r.get("reason") == "not_utf8"]
    assert sorted(warned) == [f"{root}/bad\\xffname", f"{root}/m/v\\xfe2"]


def test_symlink_out_of_the_models_dir(tmp_path: Path, start_daemon: Start) -> None:
    private = tmp_path / "private.json"
    write_json(private, {**good_metrics(accuracy=0.5), "api_token": "s3cr3t-token"})
    private.chmod(0o600)
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v2").mkdir()
    (root / "m/v2/metrics.json").symlink_to(private)
    d = start_daemon(f"--models.dir={root}")
    assert d.value("routing_ml_model_metrics_file_valid", model="m", version="v2") == 0
    assert d.value(ERRORS, source="metrics_file", reason="outside_root") == 1
    for path in ("/", "/api/v1/models", "/metrics"):  # before: the token on / and the API
        assert b"s3cr3t" not in get_ok(d, path)
    # the user allows it: flag, environment variable or config file key
    allowed = start_daemon(f"--models.dir={root}", "--models.follow-external-symlinks=true")
    assert allowed.value("routing_ml_model_accuracy", model="m", version="v2") == 0.5
    by_env = start_daemon(
        f"--models.dir={root}", env={"MHE_MODELS__FOLLOW_EXTERNAL_SYMLINKS": "true"}
    )
    assert by_env.value("routing_ml_model_accuracy", model="m", version="v2") == 0.5


def test_log_symlinks_out_of_the_models_dir(tmp_path: Path, start_daemon: Start) -> None:
    """A version's predictions/ folder, or a log file in one, linked out of the models
    directories is not read unless the user allows it; logs linked within them are."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    line = b'{"id": "1", "prediction": "a"}\n'
    (outside / "p.jsonl").write_bytes(line * 3)
    root = tmp_path / "models"
    for version in ("v1", "v2", "v3"):
        write_json(root / f"m/{version}/metrics.json", good_metrics(version=version))
    (root / "m/v1/predictions").symlink_to(outside)  # a folder out
    (root / "m/v2/predictions").mkdir()
    (root / "m/v2/predictions/p.jsonl").symlink_to(outside / "p.jsonl")  # a file out
    (root / "m/v3/predictions").mkdir()
    (root / "m/v3/data.jsonl").write_bytes(line * 2)
    (root / "m/v3/predictions/p.jsonl").symlink_to(root / "m/v3/data.jsonl")  # within
    d = start_daemon(f"--models.dir={root}")
    d.wait_value("routing_ml_predictions_total", 2.0, model="m", version="v3")
    wait_until(
        lambda: d.value(ERRORS, source="prediction_log", reason="outside_root") == 2,
        10,
        "both refused logs counted",
    )
    for version in ("v1", "v2"):
        assert not d.value("routing_ml_predictions_total", model="m", version=version)
    refused = [r["path"] for r in d.log_records() if "log not read" in r.get("event", "")]
    assert sorted(refused) == [
        str(root / "m/v1/predictions"),
        str(root / "m/v2/predictions/p.jsonl"),
    ]
    allowed = start_daemon(f"--models.dir={root}", "--models.follow-external-symlinks=true")
    for version in ("v1", "v2"):
        allowed.wait_value("routing_ml_predictions_total", 3.0, model="m", version=version)
    assert allowed.value(ERRORS, source="prediction_log", reason="outside_root") == 0


# ---- permissions: as root, only a daemon running as another user sees them -------------


@pytest.fixture
def unprivileged(tmp_path: Path) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """A folder the daemon's user can reach, and the command prefix that runs the daemon
    as a user whom `chmod` binds: as root, `nobody` via setpriv (root reads anything);
    otherwise the current user, directly."""
    if os.geteuid() != 0:
        yield tmp_path, ()
        return
    if shutil.which("setpriv") is None:
        pytest.fail("running as root needs setpriv (util-linux) to drop privileges")
    public = Path(tempfile.mkdtemp(prefix="mhe-perm-"))
    public.chmod(0o755)  # pytest's tmp_path parents are private to root
    try:
        yield public, ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    finally:
        shutil.rmtree(public)


def cpu_seconds(d: RunningDaemon) -> float:
    value = d.value("process_cpu_seconds_total")
    assert value is not None
    return value


def test_folders_without_permission(
    unprivileged: tuple[Path, tuple[str, ...]], start_daemon: Start
) -> None:
    public, wrapper = unprivileged
    root = public / "models"
    write_json(root / "m/v1/metrics.json", good_metrics(accuracy=0.81))
    write_json(root / "m/v2/metrics.json", good_metrics(accuracy=0.82))
    write_json(root / "other/v1/metrics.json", good_metrics())
    d = start_daemon(f"--models.dir={root}", "--models.resync-interval=0.2", wrapper=wrapper)
    try:
        # a version folder: before, its series vanished and nothing was counted
        (root / "m/v1").chmod(0)
        d.wait_value(ERRORS, 1.0, source="metrics_file", reason="permission_denied")
        assert d.value("routing_ml_model_metrics_file_valid", model="m", version="v1") == 0
        assert d.value("routing_ml_model_accuracy", model="m", version="v1") == 0.81
        # the model folder: before, the scan looped on PermissionError at full CPU
        (root / "m").chmod(0)
        d.wait_value(ERRORS, 1.0, source="models_dir", reason="permission_denied")
        assert d.value("routing_ml_model_metrics_file_valid", model="m", version="v2") == 0
        assert d.value("routing_ml_model_accuracy", model="m", version="v2") == 0.82
        assert d.value("routing_ml_model_metrics_file_valid", model="other", version="v1") == 1
        scan, cpu = d.value("routing_ml_exporter_last_scan_timestamp_seconds"), cpu_seconds(d)
        assert scan is not None
        later = wait_until(  # several resyncs later
            lambda: (
                (s := d.value("routing_ml_exporter_last_scan_timestamp_seconds")) is not None
                and s > scan + 1.5
                and s
            ),
            20,
            "resyncs",
        )
        assert (cpu_seconds(d) - cpu) / (later - scan) < 0.5
        assert d.value(ERRORS, source="models_dir", reason="permission_denied") == 1
        logged = [r for r in d.log_records() if r.get("path") == str(root / "m")]
        assert [r["reason"] for r in logged] == ["permission_denied"]
        assert "Traceback" not in d.log()
    finally:
        (root / "m").chmod(0o755)
        (root / "m/v1").chmod(0o755)
    d.wait_value("routing_ml_model_metrics_file_valid", 1.0, model="m", version="v1")
    d.wait_value("routing_ml_model_metrics_file_valid", 1.0, model="m", version="v2")


def test_state_dir_not_writable(
    unprivileged: tuple[Path, tuple[str, ...]], start_daemon: Start
) -> None:
    public, wrapper = unprivileged
    root = public / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions").mkdir()
    (root / "m/v1/predictions/p.jsonl").write_text('{"id": 1, "prediction": "a"}\n')
    state = public / "state"
    state.mkdir()
    state.chmod(0o555)
    d = start_daemon(
        f"--models.dir={root}",
        f"--state.dir={state}",
        "--logs.poll-interval=0.05",
        "--logs.checkpoint-interval=0.1",
        wrapper=wrapper,
    )
    assert d.value("routing_ml_exporter_state_writable") == 0  # known from the start
    d.wait_value("routing_ml_predictions_total", 1.0, model="m", version="v1")  # counts on
    wait_until(
        lambda: (d.value(ERRORS, source="state_dir", reason="permission_denied") or 0) >= 5,
        20,
        "failed saves counted",
    )
    said = [r for r in d.log_records() if "cannot save the checkpoint" in r.get("event", "")]
    assert [r["path"] for r in said] == [str(state / "checkpoint.json")]  # once, with path
    state.chmod(0o777)
    d.wait_value("routing_ml_exporter_state_writable", 1.0)
    state.chmod(0o555)
    # found out at the next save, which comes with something new to save
    with (root / "m/v1/predictions/p.jsonl").open("a") as log:
        log.write('{"id": 2, "prediction": "a"}\n')
    wait_until(lambda: d.value("routing_ml_exporter_state_writable") == 0 or None, 20, "unwritable")
    assert d.stop() == 0  # before: exit 1 with a traceback
    assert "Traceback" not in d.log()
    assert any("final checkpoint not saved" in r.get("event", "") for r in d.log_records())

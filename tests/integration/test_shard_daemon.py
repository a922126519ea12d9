"""A shard instance as users run it: it exports its own models only (metrics, landing
page, API), says which shard it is, keeps its shard across a reload, and refuses another
shard's state directory."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import RunningDaemon, good_metrics, wait_until, write_json

pytestmark = pytest.mark.integration
Start = Callable[..., RunningDaemon]


def models_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for model in ("routing", "fraud"):  # shard 0 and shard 1 of 2
        write_json(root / model / "v1" / "metrics.json", good_metrics())
    return root


def exported(d: RunningDaemon) -> set[str]:
    return {
        dict(labels)["model"] for name, labels in d.samples() if name == "routing_ml_model_active"
    }


def test_a_reload_keeps_the_running_shard(tmp_path: Path, start_daemon: Start) -> None:
    root = models_dir(tmp_path)
    config = tmp_path / "config.yml"
    config.write_text(f"models: {{dirs: ['{root}'], shard: 0/2}}\n")
    d = start_daemon(f"--config.file={config}", f"--state.dir={tmp_path / 'state'}")
    assert exported(d) == {"routing"}
    assert d.value("routing_ml_exporter_shard_info", shard="0", shards="2") == 1
    config.write_text(f"models: {{dirs: ['{root}'], shard: 1/2}}\n")
    d.signal(signal.SIGHUP)
    wait_until(
        lambda: any("takes effect at the next restart" in r["event"] for r in d.log_records()),
        10,
        "the reload's warning about models.shard",
    )
    assert d.value("routing_ml_exporter_config_last_reload_successful") == 1
    assert exported(d) == {"routing"}, "the reload changed the shard"
    assert d.value("routing_ml_exporter_shard_info", shard="0", shards="2") == 1


def test_another_shards_state_directory_is_refused(tmp_path: Path, start_daemon: Start) -> None:
    root, state = models_dir(tmp_path), tmp_path / "state"
    first = start_daemon(f"--models.dir={root}", f"--state.dir={state}", "--models.shard=1/2")
    assert exported(first) == {"fraud"}
    page = first.get("/")[1].decode()
    assert "Shard 1 of 2" in page and "fraud" in page and "routing" not in page
    api = json.loads(first.get("/api/v1/models")[1])
    assert api["shard"] == {"index": 1, "count": 2}
    assert [m["name"] for m in api["models"]] == ["fraud"]
    assert first.stop() == 0  # writes the checkpoint
    second = start_daemon(
        f"--models.dir={root}", f"--state.dir={state}", "--models.shard=0/2", ready=False
    )
    assert second.proc.wait(30) == 2  # a configuration error: a person must act
    assert "written by shard 1/2, not 0/2" in second.log()
    again = start_daemon(f"--models.dir={root}", f"--state.dir={state}", "--models.shard=1/2")
    assert exported(again) == {"fraud"}

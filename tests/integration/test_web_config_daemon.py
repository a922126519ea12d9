"""--web.config.file through the daemon as users start it: a bad file stops the start
with every problem (exit 2); basic auth guards every path but the probes when asked;
a changed file is picked up without a signal, and a bad change keeps the running one,
visible as routing_ml_exporter_web_config_last_reload_successful 0."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support import RunningDaemon, parse_samples, sample, wait_until, write_json
from tests.tls_support import bcrypt_hash, make_pki

pytestmark = pytest.mark.integration
Start = Callable[..., RunningDaemon]
RELOADED = "routing_ml_exporter_web_config_last_reload_successful"


def models_dir(tmp_path: Path) -> Path:
    write_json(tmp_path / "models" / "m" / "v1" / "metrics.json", {"accuracy": 0.9})
    return tmp_path / "models"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write_users(path: Path, users: dict[str, str]) -> None:
    tmp = path.with_name(".web.tmp")
    tmp.write_text(yaml.safe_dump({"basic_auth_users": users}))
    tmp.replace(path)


def metric(daemon: RunningDaemon, headers: dict[str, str]) -> float | None:
    status, body, _ = daemon.get("/metrics", headers)
    assert status == 200, status
    return sample(parse_samples(body.decode()), RELOADED)


def test_bad_web_config_exits_2_with_every_problem(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"},
                "basic_auth_users": {"alice": "plaintext"},
            }
        )
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "model_health_exporter"),
            f"--models.dir={models_dir(tmp_path)}",
            f"--web.config.file={web}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "config error" in line]
    assert len(errors) == 3, result.stderr
    assert "nope.crt" in errors[0] and "nope.key" in errors[1]
    assert "basic_auth_users.alice: not a bcrypt hash" in errors[2]


def test_basic_auth_and_reload_on_change(tmp_path: Path, start_daemon: Start) -> None:
    web = tmp_path / "web.yml"
    write_users(web, {"alice": bcrypt_hash("first")})
    d = start_daemon(
        f"--models.dir={models_dir(tmp_path)}",
        f"--web.config.file={web}",
        "--web.probes-without-auth=true",
    )
    assert d.get("/healthz")[0] == 200  # open for probes
    status, _, headers = d.get("/metrics")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    assert d.get("/api/v1/models")[0] == 401
    assert d.get("/metrics", basic("alice", "wrong"))[0] == 401
    alice = basic("alice", "first")
    assert metric(d, alice) == 1.0

    write_users(web, {"bob": bcrypt_hash("second")})  # no signal: the file is watched
    bob = basic("bob", "second")
    wait_until(lambda: d.get("/metrics", bob)[0] == 200, 15, "bob let in")
    assert d.get("/metrics", alice)[0] == 401

    web.write_text("basic_auth_users: [not, a, mapping]\n")
    wait_until(lambda: metric(d, bob) == 0.0, 15, f"{RELOADED} == 0")
    assert d.get("/metrics", bob)[0] == 200  # the running configuration is kept
    failed = [
        r for r in d.log_records() if r["event"].startswith("web configuration reload failed")
    ]
    assert len(failed) == 1 and str(web) in failed[0]["path"], failed
    assert "basic_auth_users" in failed[0]["problems"][0]

    write_users(web, {"bob": bcrypt_hash("second")})
    wait_until(lambda: metric(d, bob) == 1.0, 15, f"{RELOADED} == 1 again")


def test_sighup_with_a_bad_web_config_keeps_the_running_one(
    tmp_path: Path, start_daemon: Start
) -> None:
    web = tmp_path / "web.yml"
    write_users(web, {"alice": bcrypt_hash("first")})
    d = start_daemon(
        f"--models.dir={models_dir(tmp_path)}",
        f"--web.config.file={web}",
        "--web.probes-without-auth=true",
    )
    alice = basic("alice", "first")
    web.write_text("colour: blue\n")
    d.signal(signal.SIGHUP)

    def reload_failed() -> bool:
        status, body, _ = d.get("/metrics", alice)
        samples = parse_samples(body.decode())
        return (
            status == 200
            and sample(samples, "routing_ml_exporter_config_last_reload_successful") == 0.0
        )

    wait_until(reload_failed, 15, "the SIGHUP reload to fail")
    assert d.proc.poll() is None


def healthcheck(port: int, web_config: Path | None) -> int:
    env = {**os.environ, "MHE_WEB__LISTEN_ADDRESS": f":{port}"}
    if web_config is not None:
        env["MHE_WEB__CONFIG_FILE"] = str(web_config)
    return subprocess.run(
        [sys.executable, "-m", "model_health_exporter.healthcheck"],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    ).returncode


@pytest.mark.parametrize("client_auth", [False, True])
def test_container_healthcheck_over_tls_and_auth(
    tmp_path: Path, start_daemon: Start, client_auth: bool
) -> None:
    """The Dockerfile's HEALTHCHECK command against a daemon with TLS and basic auth (and a
    required client certificate, which it does not have)."""
    pki = make_pki(tmp_path / "pki")
    tls: dict[str, str] = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    if client_auth:
        tls |= {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.ca)}
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": {"a": bcrypt_hash("x")}})
    )
    d = start_daemon(
        f"--models.dir={models_dir(tmp_path)}", f"--web.config.file={web}", ready=False
    )
    wait_until(lambda: healthcheck(d.port, web) == 0, 20, "the healthcheck to pass")
    d.stop()
    assert healthcheck(d.port, web) == 1


# Imported at the start of the daemon's interpreter (PYTHONPATH): logs every reading of a
# web config file to $WEB_CONFIG_READS, one path a line.
COUNTING_HOOK = """
import os
from model_health_exporter.exposition import web_config

_load = web_config.load_web_config

def counted(path):
    with open(os.environ["WEB_CONFIG_READS"], "a") as log:
        log.write(f"{path}\\n")
    return _load(path)

web_config.load_web_config = counted
"""


def test_read_once_at_start_and_once_per_reload(tmp_path: Path, start_daemon: Start) -> None:
    """Settings validation, the push exposure check and the server share one reading."""
    web = tmp_path / "web.yml"
    write_users(web, {"alice": bcrypt_hash("first")})
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(COUNTING_HOOK)
    reads = tmp_path / "reads.txt"
    d = start_daemon(
        f"--models.dir={models_dir(tmp_path)}",
        f"--state.dir={tmp_path / 'state'}",
        f"--web.config.file={web}",
        "--web.probes-without-auth=true",
        "--web.enable-push=true",  # the exposure check asks whether it authenticates
        env={"PYTHONPATH": str(hook), "WEB_CONFIG_READS": str(reads)},
    )
    assert d.get("/metrics", basic("alice", "first"))[0] == 200
    assert d.get("/metrics")[0] == 401
    assert reads.read_text().splitlines() == [str(web)]

    d.signal(signal.SIGHUP)
    wait_until(
        lambda: any(r["event"] == "configuration reloaded" for r in d.log_records()),
        15,
        "the SIGHUP reload",
    )
    assert reads.read_text().splitlines() == [str(web)] * 2

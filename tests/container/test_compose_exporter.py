"""The compose stack's exporter service, run with podman as compose would run it: the
settings are read from deploy/compose/docker-compose.yml, each key turned into the
matching `podman create` option, and the container checked for their effect.

One difference, on purpose: compose publishes the port with a bridge network, which adds
iptables rules and turns on IP forwarding on the machine; here the container shares the
host's network and the exporter listens on 127.0.0.1 and a free port instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port
from tests.unit.test_compose_stack import COMPOSE_DIR, interpolate, service

from .podman import REPO, Container, Exporter, Podman

pytestmark = [pytest.mark.container, pytest.mark.timeout(1200)]

SERVICE = "exporter"
IMAGE_PORT = 9188  # the image's MHE_WEB__LISTEN_ADDRESS=:9188


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):  # the other spelling: ["NAME=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {name: interpolate(str(value)) for name, value in env.items()}


def published_port(spec: str) -> int:
    """The container's port of a ports entry such as "127.0.0.1:9188:9188"."""
    return int(spec.rsplit(":", 1)[-1].split("/", maxsplit=1)[0])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# compose keys that are lists of values of one podman option
LIST_OPTIONS = {
    "tmpfs": "--tmpfs",
    "cap_drop": "--cap-drop",
    "cap_add": "--cap-add",
    "security_opt": "--security-opt",
}


def volume_options(podman: Podman, volumes: list[str]) -> tuple[list[str], str]:
    """Bind mounts as written (relative to the compose file); for each named volume of
    the project a fresh one, removed by id. Also the volume at /state."""
    options, state = [], ""
    for volume in volumes:
        source, target, *mode = interpolate(volume).split(":")
        if source.startswith((".", "/")):
            source = str((COMPOSE_DIR / source).resolve())
        else:
            source = podman.volume()
            state = source if target == "/state" else state
        options.append(f"--volume={':'.join([source, target, *mode])}")
    return options, state


def podman_options(podman: Podman, svc: dict[str, Any], port: int) -> tuple[list[str], str]:
    """`podman create` options for the service, and the volume created for /state."""
    options: list[str] = []
    state = ""
    for key, value in svc.items():
        if key in LIST_OPTIONS:
            options += [f"{LIST_OPTIONS[key]}={item}" for item in as_list(value)]
        elif key == "build":
            # the image this session built from the repository's Dockerfile
            assert (COMPOSE_DIR / value["context"]).resolve() == REPO
            assert value.get("dockerfile", "Dockerfile") == "Dockerfile"
        elif key == "image":
            pass  # not tagged: a user's image of that name stays as it was
        elif key == "restart":
            options.append(f"--restart={value}")
        elif key == "environment":
            options += [f"--env={name}={v}" for name, v in environment(svc).items()]
        elif key == "volumes":
            mounts, state = volume_options(podman, value)
            options += mounts
        elif key == "ports":
            assert [published_port(p) for p in value] == [IMAGE_PORT], value
        elif key == "read_only":
            options += ["--read-only"] if value else []
        else:
            pytest.fail(f"the {SERVICE} service has {key!r}: teach podman_options to run it")
    # in place of the published port: the host's network, the exporter on its loopback
    options.append(f"--env=MHE_WEB__LISTEN_ADDRESS=127.0.0.1:{port}")
    assert state, f"the {SERVICE} service keeps no state: no named volume at /state"
    return options, state


def process_status(container: Container) -> dict[str, str]:
    pid = container.inspect("{{.State.Pid}}")
    lines = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    return {name: value.strip() for name, value in (line.split(":", 1) for line in lines)}


def process_environment(container: Container) -> dict[str, str]:
    pid = container.inspect("{{.State.Pid}}")
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_the_compose_exporter_service_runs_with_its_settings(podman: Podman, image: str) -> None:
    svc = service(SERVICE)
    port = free_port()
    options, state = podman_options(podman, svc, port)
    exporter = Exporter(podman.start(image, *options), port)
    exporter.wait_ready()
    container = exporter.container

    # the example models, mounted from the compose file's default MODELS_DIR
    routing = {"model": "routing", "version": "production-v3"}
    exporter.wait_value("routing_ml_predictions_total", routing, 40.0)
    assert exporter.get("/healthz")[0] == 200
    env = process_environment(container)
    for name, value in environment(svc).items():
        assert env.get(name) == value, f"{name} of the compose file is not in the exporter's env"

    status = process_status(container)
    if svc.get("read_only"):
        probe = container.exec("touch", "/probe", user="0")
        assert "Read-only file system" in probe.stderr, probe
    for path in as_list(svc.get("tmpfs", [])):
        assert container.exec("touch", f"{path}/probe").returncode == 0, f"{path} not writable"
    if "ALL" in svc.get("cap_drop", []):
        assert int(status["CapEff"], 16) == 0, status["CapEff"]
        assert int(status["CapBnd"], 16) == 0, status["CapBnd"]
    if any(opt.startswith("no-new-privileges") for opt in svc.get("security_opt", [])):
        assert status["NoNewPrivs"] == "1"
    assert status["Uid"].split() == ["10001"] * 4

    healthcheck = podman("healthcheck", "run", container.id, check=False)
    assert healthcheck.returncode == 0, healthcheck

    # `docker compose stop` sends SIGTERM; with a restart policy only a stop by the user
    # keeps it down, which `podman stop` is
    podman("stop", "--time=20", container.id, timeout=60)
    assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()
    assert container.inspect("{{.State.Status}}") == "exited"
    checkpoint = podman.volume_path(state) / "checkpoint.json"
    assert "routing/production-v3" in json.loads(checkpoint.read_bytes())["tallies"]

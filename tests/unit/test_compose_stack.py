"""deploy/compose: every mounted file exists, and each service's configuration is valid
as the container sees it: the bind mounts are rebuilt as symlinks in a temporary root,
then promtool and amtool check the files at their in-container paths."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
EXPORTER_PORT = 9188  # the image's MHE_WEB__LISTEN_ADDRESS=:9188 (tests/unit/test_dockerfile.py)


@cache
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return doc


def service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose()["services"]
    assert name in services, f"no service {name!r} in {COMPOSE_FILE.name}"
    svc: dict[str, Any] = services[name]
    return svc


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set: the default."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", lambda m: m[1], value)


def expand(value: str, env: dict[str, Any]) -> str:
    """Grafana's $VAR / ${VAR} in provisioning files, from the service's environment."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: str(env.get(m[1], m[0])), value)


def bind_mounts(name: str) -> list[tuple[Path, str, bool]]:
    """(host path, container path, read-only) of a service's bind mounts."""
    mounts = []
    for volume in service(name).get("volumes", []):
        source, target, *mode = interpolate(volume).split(":")
        if source.startswith((".", "/")):  # else a named volume
            mounts.append(((COMPOSE_DIR / source).resolve(), target, "ro" in mode))
    return mounts


def container_view(name: str, root: Path) -> Path:
    """`root` laid out as the service's container sees its bind mounts."""
    for host, target, _ in bind_mounts(name):
        link = root / target.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(host)
    return root


def command_flag(name: str, flag: str) -> str:
    for arg in service(name)["command"]:
        if arg.startswith(f"{flag}="):
            return str(arg.split("=", 1)[1])
    raise AssertionError(f"{name} has no {flag}")


def _tool(name: str, package: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        pytest.fail(f"{name} not found on PATH: install the Debian package {package!r}")
    return tool


def test_docker_compose_v1_accepts_the_file() -> None:
    """Debian 12's docker-compose (1.29) validates and resolves the file as users run it
    (Compose v2, `docker compose`, accepts all that v1 does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "MODELS_DIR"))}
    result = subprocess.run(
        [_tool("docker-compose", "docker-compose"), "config"],
        cwd=COMPOSE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["services"].keys() == compose()["services"].keys()
    for name, svc in resolved["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name}: {volume} resolves to a missing path"


def test_the_project_name_works_for_both_compose_versions() -> None:
    assert "name" not in compose(), "docker-compose 1.29 rejects a top-level name:"
    dotenv = dict(
        line.split("=", 1)
        for line in (COMPOSE_DIR / ".env").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert dotenv["COMPOSE_PROJECT_NAME"] == "model-health"


def test_the_whole_stack_is_there() -> None:
    assert {"exporter", "prometheus", "alertmanager", "grafana"} <= compose()["services"].keys()
    for name, svc in compose()["services"].items():
        for dependency in svc.get("depends_on", []):
            assert dependency in compose()["services"], f"{name} depends on {dependency}"


@pytest.mark.parametrize("name", ["exporter", "prometheus", "alertmanager", "grafana"])
def test_bind_mounted_paths_exist(name: str) -> None:
    for host, target, _ in bind_mounts(name):
        assert host.exists(), f"{name}: {host.relative_to(REPO)} (for {target}) does not exist"


def test_ports_are_published_on_loopback_only() -> None:
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every address"


def test_exporter_reads_models_read_only_and_builds_from_the_repo() -> None:
    exporter = service("exporter")
    assert (COMPOSE_DIR / exporter["build"]["context"] / exporter["build"]["dockerfile"]).is_file()
    models = [m for m in bind_mounts("exporter") if m[1] == "/models"]
    assert models and models[0][2], "mount the models read-only at /models"
    assert any(v.endswith(":/state") for v in exporter["volumes"]), "no state volume"


def test_prometheus_config_and_rules_as_mounted(tmp_path: Path) -> None:
    root = container_view("prometheus", tmp_path)
    config = root / command_flag("prometheus", "--config.file").lstrip("/")
    result = subprocess.run(
        [_tool("promtool", "prometheus"), "check", "config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rule_files = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
    found = re.search(r"(\d+) rule files? found", output)
    assert found and int(found[1]) == len(rule_files), f"rules not loaded as mounted:\n{output}"


def test_prometheus_scrapes_and_alerts_the_services() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    rule_jobs = set()
    for path in (REPO / "prometheus" / "rules").glob("*.yml"):
        rule_jobs.update(re.findall(r'job\s*=~?\s*"([^"]+)"', path.read_text(encoding="utf-8")))
    assert rule_jobs <= jobs.keys(), f"the rules select jobs not scraped: {rule_jobs - jobs.keys()}"
    assert jobs["model-health-exporter"] == [f"exporter:{EXPORTER_PORT}"]
    targets = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert targets == ["alertmanager:9093"]


def test_alertmanager_config_as_mounted(tmp_path: Path) -> None:
    root = container_view("alertmanager", tmp_path)
    config_path = command_flag("alertmanager", "--config.file")
    config = root / config_path.lstrip("/")
    text = config.read_text(encoding="utf-8")
    # Secrets and templates referenced by absolute in-container paths must be mounted.
    for referenced in re.findall(r"(/etc/alertmanager/[\w./*-]+)", text):
        directory = Path(referenced).parent
        assert any(
            directory == Path(target) or Path(target) in directory.parents
            for _, target, _ in bind_mounts("alertmanager")
        ), f"{referenced} is not inside a mount of the alertmanager service"
    result = subprocess.run(
        [_tool("amtool", "prometheus-alertmanager"), "check-config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # the templates glob, relative to the config file, finds the mounted templates
    mounted = {target: host for host, target, _ in bind_mounts("alertmanager")}
    shipped = len(list(mounted["/etc/alertmanager/templates"].glob("*.tmpl")))
    found = re.search(r"(\d+) templates", result.stdout)
    assert shipped and found and int(found[1]) == shipped, result.stdout


def _provisioned(directory: Path, key: str) -> list[dict[str, Any]]:
    return [
        item
        for path in sorted(directory.glob("*.y*ml"))
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(key, [])
    ]


def test_grafana_provisioning_finds_the_dashboards_and_prometheus(tmp_path: Path) -> None:
    root = container_view("grafana", tmp_path)
    env = service("grafana").get("environment", {})
    provisioning = root / "etc/grafana/provisioning"
    providers = _provisioned(provisioning / "dashboards", "providers")
    assert providers, "no dashboard provider in /etc/grafana/provisioning/dashboards/"
    shipped = sorted(p.name for p in (REPO / "grafana" / "dashboards").glob("*.json"))
    assert shipped, "no dashboards in grafana/dashboards/"
    for provider in providers:
        path = root / expand(provider["options"]["path"], env).lstrip("/")
        found = sorted(p.name for p in path.rglob("*.json")) if path.is_dir() else []
        assert found == shipped, f"provider {provider['name']} would load {found} from {path}"
    datasources = [
        s
        for s in _provisioned(provisioning / "datasources", "datasources")
        if s.get("type") == "prometheus"
    ]
    assert datasources, "no Prometheus datasource in /etc/grafana/provisioning/datasources/"
    for source in datasources:
        url = expand(source["url"], env)
        assert url == "http://prometheus:9090", f"datasource {source['name']} points at {url}"

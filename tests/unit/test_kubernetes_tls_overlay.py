"""deploy/kubernetes-tls: the overlay that adds TLS and basic auth to deploy/kubernetes.
Its patches fit the base (names, ports, probes), the web configuration lands where the
environment says and names the certificate files the projected Secret provides, the
shipped web-config.yml is valid for promtool and for the exporter, and the
ServiceMonitor scrapes over HTTPS with basic auth from one Secret."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from model_health_exporter.config import load_settings
from model_health_exporter.exposition.web_config import load_web_config
from tests.kustomize import kustomize_build
from tests.tls_support import make_pki

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes"
TLS = REPO / "deploy" / "kubernetes-tls"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc


def patch(kind: str) -> dict[str, Any]:
    for entry in load(TLS / "kustomization.yaml")["patches"]:
        doc = load(TLS / entry["path"])
        if doc["kind"] == kind:
            return doc
    raise AssertionError(f"no patch of a {kind}")


def base(kind: str) -> dict[str, Any]:
    for name in load(BASE / "kustomization.yaml")["resources"]:
        for doc in yaml.safe_load_all((BASE / name).read_text(encoding="utf-8")):
            if doc and doc["kind"] == kind:
                return dict(doc)
    raise AssertionError(f"no {kind} in the base")


def test_overlay_builds_on_the_base_and_its_files_exist() -> None:
    kustomization = load(TLS / "kustomization.yaml")
    assert kustomization["resources"] == ["../kubernetes"]
    for entry in kustomization["patches"]:
        assert (TLS / entry["path"]).is_file()
    (generator,) = kustomization["secretGenerator"]
    assert generator["files"] == ["web-config.yml"]
    for kind in ("Deployment", "ServiceMonitor"):
        assert patch(kind)["metadata"]["name"] == base(kind)["metadata"]["name"]


def pod_patch() -> tuple[dict[str, Any], dict[str, Any]]:
    pod = patch("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def test_web_config_is_mounted_where_the_environment_points() -> None:
    pod, container = pod_patch()
    (base_container,) = base("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["name"] == base_container["name"]
    env = {e["name"]: e["value"] for e in container["env"]}
    config_file = PurePosixPath(env["MHE_WEB__CONFIG_FILE"])
    (mount,) = container["volumeMounts"]
    assert mount["readOnly"] is True
    assert config_file.parent == PurePosixPath(mount["mountPath"])
    for other in base_container["volumeMounts"]:  # not nested in a read-only base mount
        assert not config_file.is_relative_to(other["mountPath"]), other
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    sources = [s["secret"] for s in volume["projected"]["sources"]]
    generated = load(TLS / "kustomization.yaml")["secretGenerator"][0]["name"]
    assert [s["name"] for s in sources] == [generated, "model-health-exporter-tls"]
    provided = {config_file.name} | {item["path"] for item in sources[1]["items"]}
    web = load(TLS / "web-config.yml")["tls_server_config"]
    assert {web["cert_file"], web["key_file"]} <= provided
    settings = load_settings(
        {
            "models": {"dirs": [str(REPO / "examples" / "models")]},
            "web": {"probes_without_auth": env["MHE_WEB__PROBES_WITHOUT_AUTH"]},
        }
    )
    assert settings.web.probes_without_auth is True


def test_probes_go_over_https_to_the_base_paths() -> None:
    _, container = pod_patch()
    (base_container,) = base("Deployment")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["scheme"] == "HTTPS"
        assert {k: get[k] for k in ("path", "port")} == {
            k: base_container[probe]["httpGet"][k] for k in ("path", "port")
        }


def test_shipped_web_config_is_valid(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    shutil.copy(pki.server_cert, tmp_path / "tls.crt")
    shutil.copy(pki.server_key, tmp_path / "tls.key")
    shutil.copy(TLS / "web-config.yml", tmp_path / "web-config.yml")
    config = load_web_config(tmp_path / "web-config.yml")
    assert config.tls is not None and config.requires_auth
    result = subprocess.run(
        ["promtool", "check", "web-config", str(tmp_path / "web-config.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_servicemonitor_scrapes_over_https_with_basic_auth() -> None:
    (endpoint,) = patch("ServiceMonitor")["spec"]["endpoints"]
    (base_endpoint,) = base("ServiceMonitor")["spec"]["endpoints"]
    assert {k: v for k, v in endpoint.items() if k in base_endpoint} == base_endpoint
    assert endpoint["scheme"] == "https"
    secrets = {
        endpoint["tlsConfig"]["ca"]["secret"]["name"],
        endpoint["basicAuth"]["username"]["name"],
        endpoint["basicAuth"]["password"]["name"],
    }
    assert secrets == {"model-health-exporter-scrape"}
    service = base("Service")["metadata"]["name"]
    assert endpoint["tlsConfig"]["serverName"].startswith(f"{service}.")


def test_kustomize_builds() -> None:
    stream = kustomize_build(TLS)
    built = [d for d in yaml.safe_load_all(stream) if d]
    (secret,) = [d for d in built if d["kind"] == "Secret"]
    (deployment,) = [d for d in built if d["kind"] == "Deployment"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    names = [
        s["secret"]["name"] for v in volumes if "projected" in v for s in v["projected"]["sources"]
    ]
    assert secret["metadata"]["name"] in names, "the hashed Secret name is not used"

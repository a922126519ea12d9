"""deploy/kubernetes: the manifests parse and fit together (labels, selectors, ports,
volumes, flags), and the PrometheusRule is exactly what the rule files generate.
deploy/kubernetes-sharded: the StatefulSet with one pod per shard is the Deployment's pod
plus the shard from the pod ordinal, behind a headless Service."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from model_health_exporter.config import load_settings, parse_listen_address
from tests.kustomize import kustomize_build
from tests.support import cli_flags

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

Doc = dict[str, Any]


@cache
def kustomization() -> Doc:
    doc: Doc = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    return doc


@cache
def manifests() -> tuple[Doc, ...]:
    docs: list[Doc] = []
    for name in kustomization()["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d)
    return tuple(docs)


def one(kind: str) -> Doc:
    found = [d for d in manifests() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> Doc:
    (c,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def flags() -> dict[str, str]:
    return {
        a.split("=", 1)[0]: a.split("=", 1)[1] for a in container()["args"] if a.startswith("--")
    }


def is_subset(small: dict[str, str], big: dict[str, str]) -> bool:
    return small.items() <= big.items()


# ---- every file ------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"not in kustomization.yaml: {on_disk - listed}"


def test_manifests_are_namespace_agnostic_and_well_formed() -> None:
    kinds = {d["kind"] for d in manifests()}
    assert {"Deployment", "Service", "ServiceMonitor", "PrometheusRule"} <= kinds
    for doc in manifests():
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"].get("name"), doc
        assert "namespace" not in doc["metadata"], f"{doc['kind']} pins a namespace"
    assert one("ServiceMonitor")["apiVersion"] == "monitoring.coreos.com/v1"
    assert one("PrometheusRule")["apiVersion"] == "monitoring.coreos.com/v1"


# ---- the pieces fit together -----------------------------------------------------------


def test_labels_selectors_and_ports_line_up() -> None:
    deployment, service, monitor = one("Deployment"), one("Service"), one("ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert is_subset(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert is_subset(service["spec"]["selector"], pod_labels), "the Service selects no pod"
    assert is_subset(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])

    container_ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    for port in service_ports.values():
        target = port["targetPort"]
        assert target in container_ports or target in container_ports.values(), port
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in service_ports, "the ServiceMonitor names no Service port"
    assert endpoint.get("path", "/metrics") == "/metrics"

    _, listen_port = parse_listen_address(flags()["--web.listen-address"])
    assert listen_port in container_ports.values(), "the exporter listens on another port"
    host, _ = parse_listen_address(flags()["--web.listen-address"])
    assert host == "", "in a pod the exporter must listen on all interfaces"


def test_service_name_is_the_job_the_rules_select() -> None:
    """Prometheus Operator sets job to the Service's name."""
    jobs = set()
    for path in (REPO / "prometheus" / "rules").glob("*.yml"):
        jobs.update(re.findall(r'job\s*=~?\s*"([^"]+)"', path.read_text(encoding="utf-8")))
    assert one("ServiceMonitor")["spec"].get("jobLabel") is None
    assert jobs <= {one("Service")["metadata"]["name"]}, jobs


def test_probes_use_healthz_and_readyz() -> None:
    ports = {p["name"] for p in container()["ports"]}
    liveness = container()["livenessProbe"]["httpGet"]
    readiness = container()["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz" and readiness["path"] == "/readyz"
    assert {liveness["port"], readiness["port"]} <= ports
    if "startupProbe" in container():
        assert container()["startupProbe"]["httpGet"]["path"] == "/readyz"


def test_security_context_and_resources() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    pod_context, context = pod["securityContext"], container()["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod_context["seccompProfile"]["type"] == "RuntimeDefault"
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\d+)", dockerfile, flags=re.MULTILINE)
    assert users and pod_context["runAsUser"] == int(users[-1]), "not the image's user"
    resources = container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_args_are_cli_options_and_paths_are_mounted() -> None:
    args = container()["args"]
    assert args[0] == "run"
    unknown = set(flags()) - cli_flags()
    assert not unknown, f"not options of the CLI: {sorted(unknown)}"
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert {m["name"] for m in mounts.values()} <= volumes.keys()
    models = mounts[flags()["--models.dir"]]
    assert models.get("readOnly") is True, "the models are only read"
    state = mounts[flags()["--state.dir"]]
    assert not state.get("readOnly"), "the state directory must be writable"
    claim = volumes[state["name"]]["persistentVolumeClaim"]["claimName"]
    claims = {d["metadata"]["name"] for d in manifests() if d["kind"] == "PersistentVolumeClaim"}
    assert claim in claims, f"state claim {claim} is not defined here"
    config = Path(flags()["--config.file"])
    config_mount = mounts[str(config.parent)]
    config_map = volumes[config_mount["name"]]["configMap"]["name"]
    generated = {g["name"]: g for g in kustomization()["configMapGenerator"]}
    assert config.name in generated[config_map]["files"]


def test_shipped_config_is_valid(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    load_settings({"models": {"dirs": [str(tmp_path / "models")]}}, K8S / "config.yml")


def test_image_tag_is_the_project_version() -> None:
    images = {i["name"]: i for i in kustomization()["images"]}
    image = container()["image"]
    assert image in images, f"kustomization.yaml does not set the tag of {image}"
    assert images[image]["newTag"] == VERSION


# ---- the PrometheusRule ----------------------------------------------------------------


# Generated with the rule files from mixin/: tests/unit/test_mixin.py keeps it in sync.


def test_prometheusrule_holds_every_rule_unchanged() -> None:
    expected = [
        group
        for path in sorted((REPO / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]
    assert expected
    assert one("PrometheusRule")["spec"]["groups"] == expected


# ---- kustomize ---------------------------------------------------------------------------


def test_kustomize_builds() -> None:
    stream = kustomize_build(K8S)
    built = [d for d in yaml.safe_load_all(stream) if d]
    (config_map,) = [d for d in built if d["kind"] == "ConfigMap"]
    (deployment,) = [d for d in built if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    names = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    assert names == {config_map["metadata"]["name"]}, "the hashed ConfigMap name is not used"
    assert pod["containers"][0]["image"].endswith(f":{VERSION}")


# ---- the sharded variant: one StatefulSet pod per shard --------------------------------

SHARDED = REPO / "deploy" / "kubernetes-sharded"


@cache
def statefulset() -> Doc:
    doc: Doc = yaml.safe_load((SHARDED / "statefulset.yaml").read_text(encoding="utf-8"))
    return doc


def sharded_container() -> Doc:
    (c,) = statefulset()["spec"]["template"]["spec"]["containers"]
    return dict(c)


def expand_pod_args(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion of container args."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], arg) for arg in args]


def test_statefulset_pod_is_the_deployments_but_for_the_shard() -> None:
    """The pod spec is written twice (a Deployment cannot be a StatefulSet), so it is
    compared here: sandbox, probes, ports, mounts and volumes are the Deployment's."""
    pod, sharded_pod = (
        one("Deployment")["spec"]["template"],
        statefulset()["spec"]["template"],
    )
    assert sharded_pod["metadata"] == pod["metadata"]
    differing = {"containers", "volumes"}
    assert {k: v for k, v in sharded_pod["spec"].items() if k not in differing} == {
        k: v for k, v in pod["spec"].items() if k not in differing
    }
    single, sharded = container(), sharded_container()
    differing = {"args", "env", "resources"}
    assert {k: v for k, v in sharded.items() if k not in differing} == {
        k: v for k, v in single.items() if k not in differing
    }
    assert sharded["args"] == [*single["args"], "--models.shard=$(SHARD_INDEX)/$(SHARDS)"]
    assert all(variable in sharded["env"] for variable in single["env"])
    assert sharded["resources"]["limits"] == single["resources"]["limits"]
    state = next(m["name"] for m in single["volumeMounts"] if m["mountPath"] == "/state")
    assert sharded_pod["spec"]["volumes"] == [
        v for v in pod["spec"]["volumes"] if v["name"] != state
    ], "the state volume comes from volumeClaimTemplates"


def test_statefulset_takes_the_shard_from_the_pod_ordinal(tmp_path: Path) -> None:
    spec = statefulset()["spec"]
    env = {e["name"]: e for e in sharded_container()["env"]}
    assert env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env["SHARDS"]["value"] == str(spec["replicas"]), "SHARDS must equal replicas"
    (tmp_path / "models").mkdir()
    values = {"SHARDS": env["SHARDS"]["value"]}
    seen = set()
    for ordinal in range(spec["replicas"]):
        args = expand_pod_args(sharded_container()["args"], {**values, "SHARD_INDEX": str(ordinal)})
        assert not {a.split("=", 1)[0] for a in args if a.startswith("--")} - cli_flags()
        shard = args[-1].split("=", 1)[1]
        settings = load_settings({"models": {"dirs": [str(tmp_path / "models")], "shard": shard}})
        seen.add(settings.models.shard)
    assert len(seen) == spec["replicas"], "two pods export the same shard"


def test_statefulset_gives_each_shard_its_own_state_volume() -> None:
    spec = statefulset()["spec"]
    (template,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m for m in sharded_container()["volumeMounts"]}
    state_dir = next(a for a in sharded_container()["args"] if a.startswith("--state.dir="))
    assert mounts[template["metadata"]["name"]]["mountPath"] == state_dir.split("=", 1)[1]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_sharded_variant_builds_with_a_headless_service_scraping_every_pod() -> None:
    stream = kustomize_build(SHARDED)
    built = [d for d in yaml.safe_load_all(stream) if d]
    kinds = sorted(d["kind"] for d in built)
    assert kinds == sorted(
        ["ConfigMap", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"]
    ), "the Deployment and its shared state claim must be gone"
    by_kind = {d["kind"]: d for d in built}
    service, sts, monitor = by_kind["Service"], by_kind["StatefulSet"], by_kind["ServiceMonitor"]
    assert service["spec"]["clusterIP"] == "None", "the governing Service must be headless"
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    pod = sts["spec"]["template"]
    assert is_subset(sts["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert is_subset(service["spec"]["selector"], pod["metadata"]["labels"])
    assert is_subset(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    names = {v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v}
    assert names == {by_kind["ConfigMap"]["metadata"]["name"]}, "the hashed name is not used"
    assert pod["spec"]["containers"][0]["image"] == f"model-health-exporter:{VERSION}"
    for doc in built:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "model-health-exporter"

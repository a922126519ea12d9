"""The cached renderer must serve exactly what prometheus_client renders from the
collector, in every format, before and after changes."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from model_health_exporter.exposition.collector import ModelCollector
from model_health_exporter.exposition.render import ModelExposition
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import ModelRegistry, RegistryConfig, RootConfig
from tests.support import good_metrics, write_json

ACCEPTS = {
    "text": "text/plain;version=0.0.4",
    "openmetrics": "application/openmetrics-text;version=1.0.0",
    "prometheus 2.42": "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
}


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    awkward = {'a"quote': 0.1, "back\\slash": 0.2, "new\nline": 0.3, "ünï": 0.4}
    write_json(
        tmp_path / "m/v1/metrics.json",
        good_metrics('say "hi"\\', dataset_stats={"missing_rates": awkward}),
    )
    write_json(tmp_path / "m/v2/metrics.json", good_metrics(accuracy=0.5, auc_roc=0.7))
    write_json(tmp_path / "other/x/metrics.json", good_metrics(log_loss=0.3))
    reg = ModelRegistry(
        RegistryConfig(roots=(RootConfig(tmp_path),)), LabelledCounter(), LabelledCounter()
    )
    reg.full_scan()
    return reg


def reference(registry: ModelRegistry, accept: str) -> bytes:
    encoder, _ = choose_encoder(accept)
    text = encoder(ModelCollector(lambda: registry.snapshot, "routing_ml"))
    return text.removesuffix(b"# EOF\n")


@pytest.mark.parametrize("accept", ACCEPTS.values(), ids=ACCEPTS.keys())
def test_identical_to_prometheus_client(
    registry: ModelRegistry, tmp_path: Path, accept: str
) -> None:
    exposition = ModelExposition("routing_ml")
    encoder, content_type = choose_encoder(accept)

    def render() -> bytes:
        return exposition.render(registry.snapshot, encoder, content_type)

    assert render() == reference(registry, accept)
    assert render() is render()  # unchanged snapshot: served from the cache
    write_json(tmp_path / "m/v2/metrics.json", good_metrics(accuracy=0.25))
    shutil.rmtree(tmp_path / "other")
    registry.full_scan()
    assert render() == reference(registry, accept)
    assert b"0.25" in render()
    assert b'model="other"' not in render()


def test_only_changed_models_are_rerendered(registry: ModelRegistry, tmp_path: Path) -> None:
    exposition = ModelExposition("routing_ml")
    encoder, content_type = choose_encoder("")
    exposition.render(registry.snapshot, encoder, content_type)
    before = {name: id(view) for name, view in registry.snapshot.models.items()}
    registry.full_scan()  # a resync that finds nothing new keeps every view
    assert {name: id(view) for name, view in registry.snapshot.models.items()} == before
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.11))
    registry.full_scan()
    after = {name: id(view) for name, view in registry.snapshot.models.items()}
    assert after["other"] == before["other"]
    assert after["m"] != before["m"]


def test_name_filter_and_gzip(registry: ModelRegistry) -> None:
    exposition = ModelExposition("routing_ml")
    encoder, content_type = choose_encoder("")
    names = frozenset({"routing_ml_model_accuracy", "routing_ml_model_info"})
    filtered = exposition.render(registry.snapshot, encoder, content_type, names)
    expected = generate_latest(
        _Restricted(ModelCollector(lambda: registry.snapshot, "routing_ml"), names)
    )
    assert filtered == expected
    full = exposition.render(registry.snapshot, encoder, content_type)
    assert (
        gzip.decompress(exposition.render(registry.snapshot, encoder, content_type, compress=True))
        == full
    )
    om_encoder, om_type = choose_encoder(ACCEPTS["openmetrics"])
    om = exposition.render(registry.snapshot, om_encoder, om_type)
    assert om + b"# EOF\n" == generate_openmetrics(
        ModelCollector(lambda: registry.snapshot, "routing_ml")
    )


class _Restricted:
    """prometheus_client's restricted_registry, for a bare collector."""

    def __init__(self, collector: ModelCollector, names: frozenset[str]) -> None:
        self._collector, self._names = collector, names

    def collect(self):  # type: ignore[no-untyped-def]
        for family in self._collector.collect():
            samples = [s for s in family.samples if s.name in self._names]
            if samples or family.name in self._names or f"{family.name}_info" in self._names:
                family.samples = samples
                yield family

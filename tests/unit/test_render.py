"""The cached renderer must serve exactly what prometheus_client renders from the
collector, in every format, before and after changes."""

from __future__ import annotations

import gzip
import random
import shutil
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from model_health_exporter.exposition.collector import (
    ModelCollector,
    PredictionCollector,
    model_families,
    prediction_families,
)
from model_health_exporter.exposition.render import CachedExposition, _Families
from model_health_exporter.records import Feedback, Prediction
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.live import TalliesView, VersionTallies
from model_health_exporter.state.registry import (
    ModelRegistry,
    ModelView,
    RegistryConfig,
    RootConfig,
)
from model_health_exporter.state.windows import LiveWindow, WindowConfig
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


def render(
    exposition: CachedExposition[ModelView], registry: ModelRegistry, *args: Any, **kwargs: Any
) -> bytes:
    snap = registry.snapshot
    return exposition.render(snap, snap.models.values(), *args, **kwargs)


def reference(registry: ModelRegistry, accept: str) -> bytes:
    encoder, _ = choose_encoder(accept)
    text = encoder(ModelCollector(lambda: registry.snapshot, "routing_ml"))
    return text.removesuffix(b"# EOF\n")


@pytest.mark.parametrize("accept", ACCEPTS.values(), ids=ACCEPTS.keys())
def test_identical_to_prometheus_client(
    registry: ModelRegistry, tmp_path: Path, accept: str
) -> None:
    exposition = CachedExposition(partial(model_families, "routing_ml"))
    encoder, content_type = choose_encoder(accept)

    def render() -> bytes:
        return exposition.render(
            registry.snapshot, registry.snapshot.models.values(), encoder, content_type
        )

    assert render() == reference(registry, accept)
    assert render() is render()  # unchanged snapshot: served from the cache
    write_json(tmp_path / "m/v2/metrics.json", good_metrics(accuracy=0.25))
    shutil.rmtree(tmp_path / "other")
    registry.full_scan()
    assert render() == reference(registry, accept)
    assert b"0.25" in render()
    assert b'model="other"' not in render()


def test_only_changed_models_are_rerendered(registry: ModelRegistry, tmp_path: Path) -> None:
    exposition = CachedExposition(partial(model_families, "routing_ml"))
    encoder, content_type = choose_encoder("")
    render(exposition, registry, encoder, content_type)
    before = {name: id(view) for name, view in registry.snapshot.models.items()}
    registry.full_scan()  # a resync that finds nothing new keeps every view
    assert {name: id(view) for name, view in registry.snapshot.models.items()} == before
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.11))
    registry.full_scan()
    after = {name: id(view) for name, view in registry.snapshot.models.items()}
    assert after["other"] == before["other"]
    assert after["m"] != before["m"]


def test_name_filter_and_gzip(registry: ModelRegistry) -> None:
    exposition = CachedExposition(partial(model_families, "routing_ml"))
    encoder, content_type = choose_encoder("")
    names = frozenset({"routing_ml_model_accuracy", "routing_ml_model_info"})
    filtered = exposition.render(
        registry.snapshot, registry.snapshot.models.values(), encoder, content_type, names=names
    )
    expected = generate_latest(
        _Restricted(ModelCollector(lambda: registry.snapshot, "routing_ml"), names)
    )
    assert filtered == expected
    full = exposition.render(
        registry.snapshot, registry.snapshot.models.values(), encoder, content_type
    )
    assert (
        gzip.decompress(
            exposition.render(
                registry.snapshot,
                registry.snapshot.models.values(),
                encoder,
                content_type,
                compress=True,
            )
        )
        == full
    )
    om_encoder, om_type = choose_encoder(ACCEPTS["openmetrics"])
    om = exposition.render(
        registry.snapshot, registry.snapshot.models.values(), om_encoder, om_type
    )
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


def test_prediction_families_identical_to_the_collector(tmp_path: Path) -> None:
    views = {}
    for version in ("v1", "v2"):
        tallies = VersionTallies.create()
        window = LiveWindow(WindowConfig(min_samples=1))
        for i in range(30):
            p = Prediction(f"{i}", "ab"[i % 2], None, {"a": 0.7, "b": 0.3}, None, 0.02 * i, None)
            tallies.predictions += 1
            tallies.latency.observe(0.02 * i)
            window.observe_prediction(p, now=0.0)
            window.observe_feedback(Feedback(f"{i}", "a"), now=0.0)
        tallies.count_error("Timeout")
        views[("m", version)] = TalliesView.of(("m", version), tallies, window, now=0.0)
    exposition = CachedExposition(partial(prediction_families, "routing_ml"))
    for accept in ACCEPTS.values():
        encoder, content_type = choose_encoder(accept)
        ours = exposition.render(views, views.values(), encoder, content_type)
        expected = encoder(PredictionCollector(lambda: views, "routing_ml"))
        assert ours == expected.removesuffix(b"# EOF\n")
        names = frozenset({"routing_ml_prediction_latency_seconds_bucket"})
        filtered = exposition.render(views, views.values(), encoder, content_type, names=names)
        assert b"_latency_seconds_bucket" in filtered
        assert b"routing_ml_predictions_total" not in filtered


def test_filtered_scrapes_do_not_keep_replaced_views(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    """Only `name[]` scrapes while the views change (a script polling one counter):
    the text of views that were replaced goes, as it does on full scrapes."""
    exposition = CachedExposition(partial(model_families, "routing_ml"))
    encoder, content_type = choose_encoder("")
    names = frozenset({"routing_ml_model_accuracy"})
    render(exposition, registry, encoder, content_type)  # a whole output to copy from
    first = dict(registry.snapshot.models)
    for i in range(20):
        write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.5 + i / 100))
        registry.full_scan()
        filtered = render(exposition, registry, encoder, content_type, names=names)
        expected = generate_latest(
            _Restricted(ModelCollector(lambda: registry.snapshot, "routing_ml"), names)
        )
        assert filtered == expected
    (kept,) = exposition._bodies.values()
    current = list(registry.snapshot.models.values())
    assert all(any(part is view for view in current) for part in kept.parts)
    assert not any(part is first["m"] for part in kept.parts)
    assert any(part is first["other"] for part in kept.parts)  # unchanged: kept
    assert render(exposition, registry, encoder, content_type) == reference(registry, "")


def test_filtered_scrape_renders_only_the_families_asked_for(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    """A `name[]` scrape after a view changed encodes the changed view's families that
    were asked for, not all of them; a whole scrape after it is still complete."""
    encoded: list[str] = []
    base, content_type = choose_encoder("")

    def encoder(collector: Any) -> bytes:
        families = list(collector.collect())
        encoded.extend(family.name for family in families)
        return base(_Families(families))

    exposition = CachedExposition(partial(model_families, "routing_ml"))
    render(exposition, registry, encoder, content_type)
    write_json(tmp_path / "m/v1/metrics.json", good_metrics(accuracy=0.42))
    registry.full_scan()
    encoded.clear()
    names = frozenset({"routing_ml_model_accuracy"})
    filtered = render(exposition, registry, encoder, content_type, names=names)
    assert b"0.42" in filtered
    assert set(encoded) == {"routing_ml_model_accuracy"}
    assert render(exposition, registry, encoder, content_type) == reference(registry, "")


class _Part:
    """A part with a value; told apart by identity, as the views are."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value


def _part_families(parts: Iterable[_Part]) -> Iterator[Metric]:
    value = GaugeMetricFamily("t_value", "A value.", labels=["part"])
    events = CounterMetricFamily("t_events", "Events.", labels=["part"])
    empty = GaugeMetricFamily("t_never", "No samples.", labels=["part"])
    for part in parts:
        value.add_metric([part.name], part.value)
        if part.value > 3:  # a family that some parts have no samples in
            events.add_metric([part.name], part.value * 10)
    yield value
    yield events
    yield empty


_STEP = st.tuples(
    st.sampled_from(["replace", "drop", "add", "shuffle", "keep"]),
    st.integers(0, 20),
    st.integers(0, 9),
    st.sampled_from(list(ACCEPTS.values())),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_output_copied_from_the_last_equals_a_fresh_render(
    steps: list[tuple[str, int, int, str, bool]], rng: random.Random
) -> None:
    """Parts kept, replaced, dropped, added and reordered between scrapes of either
    format, full or filtered: every output is what prometheus_client renders from the
    families of the current parts (the text of kept parts is copied from the last
    output, at offsets that must follow every change)."""
    exposition = CachedExposition(_part_families)
    parts = [_Part(f"p{i}", float(i)) for i in range(4)]
    serial = len(parts)
    for action, at, value, accept, filtered in steps:
        if action == "replace" and parts:
            parts[at % len(parts)] = _Part(parts[at % len(parts)].name, float(value))
        elif action == "drop" and parts:
            del parts[at % len(parts)]
        elif action == "add":
            parts.insert(at % (len(parts) + 1), _Part(f"p{serial}", float(value)))
            serial += 1
        elif action == "shuffle":
            rng.shuffle(parts)
        whole = tuple(parts)
        encoder, content_type = choose_encoder(accept)
        families = list(_part_families(whole))
        if filtered:
            names = frozenset({"t_events_total"})
            ours = exposition.render(whole, whole, encoder, content_type, names=names)
            expected = encoder(_Families([families[1]]))
        else:
            ours = exposition.render(whole, whole, encoder, content_type)
            expected = encoder(_Families(families))
        assert ours == expected.removesuffix(b"# EOF\n")


def test_filtered_scrapes_render_a_whole_output_once_many_parts_are_new() -> None:
    """Filtered scrapes render the parts the last whole output lacks while they are few
    (an eighth of the parts, or one), and serve the same text again while nothing
    changed; with more of them, a whole output is rendered, as a whole scrape would."""
    exposition = CachedExposition(_part_families)
    encoder, content_type = choose_encoder("")
    names = frozenset({"t_events_total"})
    parts = [_Part(f"p{i}", float(i)) for i in range(16)]

    def scrape(whole: tuple[_Part, ...]) -> bytes:
        text = exposition.render(whole, whole, encoder, content_type, names=names)
        expected = encoder(_Families([list(_part_families(whole))[1]]))
        assert text == expected.removesuffix(b"# EOF\n")
        return text

    full = tuple(parts)
    exposition.render(full, full, encoder, content_type)
    parts[3] = _Part("p3", 30.0)
    parts[9] = _Part("p9", 90.0)
    two_new = tuple(parts)
    assert scrape(two_new) is scrape(two_new)  # rendered once, then served again
    (body,) = exposition._bodies.values()
    assert body.whole is not two_new  # the whole output was not rebuilt
    parts[12] = _Part("p12", 120.0)
    three_new = tuple(parts)
    scrape(three_new)
    (body,) = exposition._bodies.values()
    assert body.whole is three_new  # three of 16 new: a whole output again

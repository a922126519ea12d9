"""The landing page (HTML) and /api/v1/models (JSON), rendered from a snapshot and the
live views of the prediction logs."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs

from model_health_exporter.exposition import board, model_page
from model_health_exporter.sharding import Shard
from model_health_exporter.state.health import HealthView
from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import ModelView, Snapshot, VersionView

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Live:
    """What the prediction logs say now, per (model, version)."""

    tallies: Mapping[Key, TalliesView] = field(default_factory=lambda: MappingProxyType({}))
    health: Mapping[Key, HealthView] = field(default_factory=lambda: MappingProxyType({}))


def _live_json(tallies: TalliesView | None, health: HealthView | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tallies is not None:
        window = tallies.window
        out["predictions_total"] = tallies.predictions
        out["window"] = {
            "samples": dict(window.samples),
            "metrics": dict(window.metrics),
            "reference": window.reference_source,
            "features": {name: dict(stats) for name, stats in window.features.items()},
        }
    if health is not None:
        out["health"] = {
            "score": health.score,
            "level": health.level,
            "checks": dict(health.checks),
            "weights": dict(health.weights),
            "performance_source": health.performance_source,
            "retrain_recommended": health.retrain_recommended,
            "retrain_reasons": sorted(health.retrain_reasons),
        }
    return out


def _version_json(view: VersionView, live: Live) -> dict[str, Any]:
    key = (view.model, view.version)
    return {
        "version": view.version,
        "directory": str(view.directory),
        "active": view.active,
        "valid": view.valid,
        "problem": view.problem,
        "loaded_at": view.loaded_at,
        "metrics": None
        if view.metrics is None
        else view.metrics.model_dump(mode="json", exclude_none=True),
        "degradation": dict(view.degradation),
        **_live_json(live.tallies.get(key), live.health.get(key)),
    }


def _model_json(model: ModelView, live: Live) -> dict[str, Any]:
    return {
        "name": model.name,
        "directory": str(model.directory),
        "layout": model.layout,
        "active_version": model.active_version,
        "active_source": model.active_source,
        "baseline": {
            "quality_thresholds": {
                name: levels.model_dump(exclude_none=True)
                for name, levels in model.baseline.levels.items()
            },
            "expected_dataset": model.baseline.expected.model_dump(exclude_none=True),
        },
        "baseline_problem": model.baseline_problem,
        "trends_per_day": dict(model.trends),
        "versions": [_version_json(v, live) for v in model.versions],
    }


def models_json(snapshot: Snapshot, live: Live | None = None, shard: Shard | None = None) -> bytes:
    live, shard = live or Live(), shard or Shard()
    body = {
        "ready": snapshot.ready,
        "last_scan": snapshot.last_scan,
        "shard": {"index": shard.index, "count": shard.count},
        "models": [_model_json(m, live) for m in snapshot.models.values()],
    }
    return json.dumps(body, indent=2).encode()


def landing_page(
    snapshot: Snapshot,
    version: str,
    live: Live | None = None,
    shard: Shard | None = None,
    *,
    now: float | None = None,
    part: bool = False,
) -> bytes:
    """The status board (`board`): the whole page, or with `part` only what its refresh
    script swaps in."""
    live, now = live or Live(), time.time() if now is None else now
    if part:
        return board.board(snapshot, live, shard, now).encode()
    return board.landing_html(snapshot, version, live, shard, now)


MODELS_PATH = "/models/"


def model_page_response(
    snapshot: Snapshot,
    version: str,
    live: Live | None,
    path: str,
    query: str = "",
    *,
    now: float | None = None,
) -> tuple[int, bytes]:
    """`/models/<name>` (the name URL-quoted; PATH_INFO arrives unquoted, its bytes as
    latin-1): (200, the page) or (404, a page saying no such model). `?version=` picks a
    version (default the active one); `?part=live` answers the refreshed part only."""
    quoted = path.removeprefix(MODELS_PATH).removesuffix("/")
    name = quoted.encode("latin-1", "replace").decode("utf-8", "replace")
    params = parse_qs(query)
    wanted = params.get("version", [None])[-1]
    part = params.get("part", [""])[-1] == "live"
    live, now = live or Live(), time.time() if now is None else now
    found = snapshot.models.get(name)
    if found is None:
        return 404, model_page.not_found_html(name, version)
    if part:
        return 200, model_page.model_body(found, live, wanted, now).encode()
    return 200, model_page.model_html(found, version, live, wanted, now)

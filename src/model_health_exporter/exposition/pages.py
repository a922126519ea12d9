"""The landing page (HTML) and /api/v1/models (JSON), rendered from a snapshot and the
live views of the prediction logs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from types import MappingProxyType
from typing import Any

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


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _health_cell(health: HealthView | None) -> str:
    if health is None or health.score is None or health.level is None:
        return ""
    retrain = " &middot; retrain" if health.retrain_recommended else ""
    return f'<span class="{health.level}">{health.score:.0f} {health.level}</span>{retrain}'


def _row(view: VersionView, live: Live) -> str:
    key = (view.model, view.version)
    tallies, health = live.tallies.get(key), live.health.get(key)
    window = {} if tallies is None else tallies.window.metrics
    m = view.metrics
    generated = (
        m.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if m is not None and m.generated_at is not None
        else ""
    )
    cells = [
        escape(view.model),
        escape(view.version),
        "&#10003;" if view.active else "",
        _fmt(m.accuracy if m else None),
        _fmt(m.f1_weighted if m else None),
        "" if m is None or m.training_samples is None else str(m.training_samples),
        generated,
        "yes" if view.valid else f'<span class="bad">no</span> {escape(view.problem or "")}',
        "" if tallies is None else str(tallies.predictions),
        _fmt(window.get("accuracy")),
        _fmt(window.get("estimated_accuracy")),
        _fmt(window.get("data_drift_share"), 2),
        _health_cell(health),
    ]
    css = ' class="active"' if view.active else ""
    return f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def landing_page(
    snapshot: Snapshot, version: str, live: Live | None = None, shard: Shard | None = None
) -> bytes:
    live = live or Live()
    sharded = (
        f"<p>Shard {shard.index} of {shard.count} (numbered from 0): this instance exports "
        "only the models whose name hashes to it; the other shards' instances export the "
        "rest.</p>\n"
        if shard is not None and shard.sharded
        else ""
    )
    rows = "\n".join(_row(v, live) for v in snapshot.versions())
    scanned = (
        datetime.fromtimestamp(snapshot.last_scan, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if snapshot.last_scan
        else "not yet"
    )
    empty = '<tr><td colspan="13">No model versions found yet.</td></tr>'
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>model-health-exporter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; }}
tr.active {{ background: #eef7ee; }}
.bad, .poor {{ color: #b00; font-weight: bold; }}
.fair {{ color: #b60; }} .good {{ color: #070; }} .excellent {{ color: #070; font-weight: bold; }}
</style></head>
<body>
<h1>model-health-exporter</h1>
<p>Version {escape(version)}. Last full scan: {scanned}.
<a href="/metrics">Metrics</a> &middot; <a href="/api/v1/models">Models (JSON)</a>
&middot; <a href="/healthz">Health</a> &middot; <a href="/readyz">Readiness</a></p>
{sharded}<p>Accuracy and F1 are the evaluation values of <code>metrics.json</code>; live accuracy
comes from feedback, estimated accuracy from calibrated confidence (no labels), both over
the live window; the drift share is the share of features drifted from the reference.</p>
<table>
<thead><tr><th>Model</th><th>Version</th><th>Active</th><th>Accuracy</th><th>F1</th>
<th>Training samples</th><th>Generated</th><th>Valid</th><th>Predictions</th>
<th>Live accuracy</th><th>Estimated accuracy</th><th>Drift share</th><th>Health</th></tr></thead>
<tbody>
{rows or empty}
</tbody></table>
</body></html>
"""
    return html.encode()

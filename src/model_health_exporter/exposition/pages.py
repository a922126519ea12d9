"""The landing page (HTML) and /api/v1/models (JSON), rendered from a snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from model_health_exporter.state.registry import ModelView, Snapshot, VersionView


def _version_json(view: VersionView) -> dict[str, Any]:
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
    }


def _model_json(model: ModelView) -> dict[str, Any]:
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
        "versions": [_version_json(v) for v in model.versions],
    }


def models_json(snapshot: Snapshot) -> bytes:
    body = {
        "ready": snapshot.ready,
        "last_scan": snapshot.last_scan,
        "models": [_model_json(m) for m in snapshot.models.values()],
    }
    return json.dumps(body, indent=2).encode()


def _fmt(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _row(view: VersionView) -> str:
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
    ]
    css = ' class="active"' if view.active else ""
    return f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def landing_page(snapshot: Snapshot, version: str) -> bytes:
    rows = "\n".join(_row(v) for v in snapshot.versions())
    scanned = (
        datetime.fromtimestamp(snapshot.last_scan, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if snapshot.last_scan
        else "not yet"
    )
    empty = '<tr><td colspan="8">No model versions found yet.</td></tr>'
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>model-health-exporter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; }}
tr.active {{ background: #eef7ee; }}
.bad {{ color: #b00; font-weight: bold; }}
</style></head>
<body>
<h1>model-health-exporter</h1>
<p>Version {escape(version)}. Last full scan: {scanned}.
<a href="/metrics">Metrics</a> &middot; <a href="/api/v1/models">Models (JSON)</a>
&middot; <a href="/healthz">Health</a> &middot; <a href="/readyz">Readiness</a></p>
<table>
<thead><tr><th>Model</th><th>Version</th><th>Active</th><th>Accuracy</th><th>F1</th>
<th>Training samples</th><th>Generated</th><th>Valid</th></tr></thead>
<tbody>
{rows or empty}
</tbody></table>
</body></html>
"""
    return html.encode()

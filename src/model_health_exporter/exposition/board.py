"""The landing page: a status board with one panel per model and a row per version,
each version judged against its own model's thresholds (`status.version_status`)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from model_health_exporter.exposition.html import (
    live_etag,
    model_href,
    page,
    relative,
    since,
    status_badge,
    timestamp,
    top_bar,
    updated,
    when,
)
from model_health_exporter.exposition.status import (
    STATUSES,
    VersionStatus,
    accuracy_trouble_since,
    version_status,
)
from model_health_exporter.sharding import Shard
from model_health_exporter.state.registry import ModelView, Snapshot, VersionView

if TYPE_CHECKING:  # pages imports this module
    from model_health_exporter.exposition.pages import Live

MAX_FINDINGS = 5
TROUBLE = (
    "live accuracy under the warning threshold, or more than 5% below the evaluation "
    "accuracy, in every bucket since then"
)  # per row; the model page lists them all

HEADERS = (
    "Version",
    "Status",
    "Why",
    "Health",
    "Drifted features",
    "Evaluation accuracy",
    "Live accuracy",
    "Estimated accuracy",
    "Predictions",
    "Last data",
)


def last_data(view: VersionView, live: Live) -> float | None:
    """When this version's last prediction or feedback record was read (kept in the
    checkpoint); else, after a restart from a checkpoint that did not keep it, the end of
    the newest bucket of its window that holds data."""
    tallies = live.tallies.get((view.model, view.version))
    if tallies is None or tallies.window.series is None:
        return None
    series = tallies.window.series
    if series.last_record_at is not None:
        return series.last_record_at
    if series.points:
        return series.points[-1].start + series.bucket_seconds
    return None


def findings_list(status: VersionStatus, limit: int | None = MAX_FINDINGS) -> str:
    if not status.findings:
        return '<span class="muted">nothing past a threshold</span>'
    shown = status.findings if limit is None else status.findings[:limit]
    items = "".join(f'<li class="{f.severity}">{escape(f.text)}</li>' for f in shown)
    more = len(status.findings) - len(shown)
    extra = f'<li class="info">and {more} more</li>' if more > 0 else ""
    return f'<ul class="findings">{items}{extra}</ul>'


def _accuracy_cell(value: float | None, status: VersionStatus, source: str) -> str:
    """The value, marked when it is past a threshold."""
    if value is None:
        return '<td class="num">&ndash;</td>'
    mark = status.marks.get((source, "accuracy"))
    if mark is None:
        return f'<td class="num">{value:.3f}</td>'
    return (
        f'<td class="num breach-{mark.severity}" title="{escape(mark.text)}">{value:.3f}'
        f'<br><span class="small">{mark.severity}</span></td>'
    )


def _row(model: ModelView, view: VersionView, live: Live, now: float) -> tuple[str, VersionStatus]:
    key = (view.model, view.version)
    tallies, health = live.tallies.get(key), live.health.get(key)
    status = version_status(model, view, tallies, health)
    window = {} if tallies is None else tallies.window.metrics
    evaluation = view.metrics.accuracy if view.metrics is not None else None
    if health is not None and health.score is not None:
        reasons = sorted(health.retrain_reasons) if health.retrain_recommended else []
        health_cell = f"{health.score:.0f} {escape(health.level or '')}"
        if reasons:
            health_cell += (
                '<br><span class="small">retrain: ' + escape(", ".join(reasons)) + "</span>"
            )
    else:
        health_cell = '<span class="muted">&ndash;</span>'
    n_features = 0 if tallies is None else len(tallies.window.features)
    if status.drifted:
        drifted = (
            '<span class="drifted">'
            + escape(", ".join(status.drifted))
            + "</span>"
            + f'<br><span class="small muted">{len(status.drifted)} of {n_features} '
            f"features ({window.get('data_drift_share', 0.0):.2f})</span>"
        )
    elif "data_drift_share" in window:
        drifted = f'<span class="muted">none of {n_features}</span>'
    else:
        drifted = '<span class="muted">&ndash;</span>'
    worst = status.worst
    trouble = None if tallies is None else accuracy_trouble_since(model, view, tallies)
    version_cell = escape(view.version) + (
        ' <span class="small" title="the serving version">(active)</span>' if view.active else ""
    )
    cells = [
        f'<th scope="row">{version_cell}</th>',
        "<td>"
        + status_badge(status.status, worst.text if worst else "")
        + ("<br>" + since(trouble, now, TROUBLE) if trouble is not None else "")
        + "</td>",
        f'<td class="why">{findings_list(status)}</td>',
        f"<td>{health_cell}</td>",
        f"<td>{drifted}</td>",
        _accuracy_cell(evaluation, status, "evaluation"),
        _accuracy_cell(window.get("accuracy"), status, "live"),
        _accuracy_cell(window.get("estimated_accuracy"), status, "estimated"),
        f'<td class="num">{"&ndash;" if tallies is None else tallies.predictions}</td>',
        f"<td>{when(last_data(view, live), now) if tallies is not None else '&ndash;'}</td>",
    ]
    css = "active" if view.active else "inactive"
    data = f'data-version="{escape(view.version)}" data-status="{status.status}"'
    return f'<tr class="{css}" {data}>' + "".join(cells) + "</tr>", status


def _model_panel(index: int, model: ModelView, live: Live, now: float) -> tuple[str, str]:
    """The model's panel and its status (the active version's, else the worst)."""
    rows, statuses = [], {}
    for view in sorted(model.versions, key=lambda v: (not v.active, v.version)):
        row, status = _row(model, view, live, now)
        rows.append(row)
        statuses[view.version] = status
    if model.active_version in statuses:
        overall = statuses[model.active_version].status
        which = f"active version {model.active_version}"
    else:
        seen = {v.status for v in statuses.values()}
        overall = next((s for s in STATUSES if s in seen), "no data")
        which = "no active version"
    flagged_old = [v for v, s in statuses.items() if not s.serving and s.status == "critical"]
    note = (
        '<p class="small muted">Inactive below a critical threshold: '
        f"{escape(', '.join(flagged_old))}</p>"
        if flagged_old
        else ""
    )
    head = "".join(f'<th scope="col"{_num(h)}>{h}</th>' for h in HEADERS)
    body_rows = "\n".join(rows)
    css = "nodata" if overall == "no data" else overall
    panel = (
        f'<section class="model status-{css}" aria-labelledby="model-{index}" '
        f'data-model="{escape(model.name)}" data-status="{overall}">'
        f'<h2 id="model-{index}"><a href="{escape(model_href(model.name))}">'
        f"{escape(model.name)}</a> {status_badge(overall)} "
        f'<span class="small muted">{escape(which)}</span></h2>{note}'
        f'<div class="scroll"><table class="board"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body_rows}</tbody></table></div></section>\n"
    )
    return panel, overall


def _num(header: str) -> str:
    return ' class="num"' if "accuracy" in header or header == "Predictions" else ""


def board(snapshot: Snapshot, live: Live, shard: Shard | None, now: float) -> str:
    """The refreshed part of the landing page."""
    panels = [_model_panel(i, m, live, now) for i, m in enumerate(snapshot.models.values())]
    order: dict[str, int] = {s: i for i, s in enumerate(STATUSES)}
    panels.sort(key=lambda p: order[p[1]])  # the models in trouble first
    counts = {s: sum(1 for _, st in panels if st == s) for s in STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    scanned = (
        f"{relative(snapshot.last_scan, now)} ({timestamp(snapshot.last_scan)})"
        if snapshot.last_scan
        else "not yet"
    )
    sharded = (
        f'<p class="note">Shard {shard.index} of {shard.count} (numbered from 0): this '
        "instance exports only the models whose name hashes to it; the other shards' "
        "instances export the rest.</p>"
        if shard is not None and shard.sharded
        else ""
    )
    body = (
        "".join(p for p, _ in panels)
        if panels
        else '<p class="empty">No model versions found yet.</p>'
    )
    return (
        f'<p class="summary"><strong>{len(panels)} model{"s" if len(panels) != 1 else ""}'
        f"</strong>{': ' + summary if summary else ''}. Last full scan {scanned}. "
        f'<span class="muted small">Updated {updated(now)}.</span></p>{sharded}{body}'
        '<p class="note">Each version is judged against its own model\'s thresholds '
        "(<code>baseline_metrics.json</code>, the configuration, or the defaults); its status "
        "is the worst of its findings. Evaluation accuracy comes from "
        "<code>metrics.json</code>; live accuracy from feedback, estimated accuracy from "
        "calibrated confidence (no labels), both over the live window. Last data is when "
        "the exporter last read a record of the version's logs.</p>"
    )


def landing_html(
    snapshot: Snapshot, exporter_version: str, live: Live, shard: Shard | None, now: float
) -> bytes:
    part = board(snapshot, live, shard, now)
    return page(
        "model-health-exporter: status",
        top_bar(exporter_version),
        part,
        etag=live_etag(part.encode()),  # its first refresh can already be a 304
    )

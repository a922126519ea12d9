"""`/models/<name>`: one model's versions against its thresholds, the health score of a
version broken into its checks, charts over the live window's buckets, features ranked
by drift with their data quality, and serving latency and errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from model_health_exporter.exposition import svg
from model_health_exporter.exposition.board import TROUBLE, findings_list, last_data
from model_health_exporter.exposition.html import (
    fmt,
    page,
    percent,
    since,
    status_badge,
    timestamp,
    top_bar,
    when,
)
from model_health_exporter.exposition.status import (
    accuracy_trouble_since,
    breach,
    version_status,
)
from model_health_exporter.quality_metrics import QUALITY_METRICS
from model_health_exporter.state.health import CHECKS, HealthView
from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import ModelView, VersionView
from model_health_exporter.state.series import MIN_POINT_SAMPLES, BucketPoint, Series

if TYPE_CHECKING:  # pages imports this module
    from model_health_exporter.exposition.pages import Live


DRIFT_STATS: Final = (
    ("psi", "PSI", 3),
    ("js_distance", "JS distance", 3),
    ("kl_divergence", "KL divergence", 3),
    ("ks_statistic", "KS statistic", 3),
    ("drift_p_value", "p-value", 4),
    ("wasserstein", "Wasserstein / std", 3),
)
QUALITY_STATS: Final = (
    ("missing_ratio", "Missing"),
    ("out_of_range_ratio", "Out of range"),
    ("unseen_category_ratio", "Unseen category"),
)


_TICK_STEPS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600)


def time_ticks(low: float, high: float, most: int = 7) -> list[float]:
    """Round moments in [low, high] (seconds since the epoch): multiples of the smallest
    step of 1 s ... 6 h that gives at most `most` of them."""
    step = next((s for s in _TICK_STEPS if (high - low) / s <= most), _TICK_STEPS[-1])
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) // step) + 1)]


def _clock(at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def _generated(view: VersionView) -> str:
    m = view.metrics
    if m is None or m.generated_at is None:
        return "&ndash;"
    return m.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---- versions ---------------------------------------------------------------------------


def _versions_table(model: ModelView, live: Live) -> str:
    present = {
        name for v in model.versions if v.metrics is not None for name in v.metrics.quality()
    }
    metrics = [m for m in QUALITY_METRICS if m.name in present]
    levels = model.baseline.levels
    head = "".join(
        f'<th scope="col" class="num">{escape(m.name)}'
        + (
            f'<br><span class="small muted">warn {fmt(lv.warning, 2)} / crit '
            f"{fmt(lv.critical, 2)}</span>"
            if (lv := levels.get(m.name)) is not None
            and (lv.warning is not None or lv.critical is not None)
            else ""
        )
        + "</th>"
        for m in metrics
    )
    rows = []
    for view in sorted(model.versions, key=lambda v: (not v.active, v.version)):
        key = (view.model, view.version)
        status = version_status(model, view, live.tallies.get(key), live.health.get(key))
        values = {} if view.metrics is None else view.metrics.quality()
        cells = []
        for m in metrics:
            value = values.get(m.name)
            lv = levels.get(m.name)
            severity = (
                None if value is None or lv is None else breach(value, lv, m.higher_is_better)
            )
            if value is None:
                cells.append('<td class="num">&ndash;</td>')
            elif severity is None:
                cells.append(f'<td class="num">{value:.3f}</td>')
            else:
                limit = getattr(lv, severity)
                cells.append(
                    f'<td class="num breach-{severity}" title="{severity}: '
                    f'{"below" if m.higher_is_better else "above"} {limit}">{value:.3f} '
                    f'<span class="small">({severity})</span></td>'
                )
        samples = view.metrics.training_samples if view.metrics is not None else None
        active = ' <span class="small">(active)</span>' if view.active else ""
        rows.append(
            f'<tr class="{"active" if view.active else "inactive"}">'
            f'<th scope="row"><a href="?version={quote(view.version, safe="")}">'
            f"{escape(view.version)}</a>{active}</th>"
            f"<td>{status_badge(status.status, status.worst.text if status.worst else '')}</td>"
            f"<td>{_generated(view)}</td>"
            f'<td class="num">{"&ndash;" if samples is None else samples}</td>'
            + "".join(cells)
            + "</tr>"
        )
    return (
        '<div class="scroll"><table class="versions"><caption>Evaluation metrics from each '
        "version's "
        "<code>metrics.json</code>, against the model's thresholds</caption><thead><tr>"
        '<th scope="col">Version</th><th scope="col">Status</th><th scope="col">Generated</th>'
        f'<th scope="col" class="num">Training samples</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


# ---- health -----------------------------------------------------------------------------

CHECK_NAMES: Final = {
    "performance": "Performance",
    "data_drift": "Data drift",
    "prediction_drift": "Prediction drift",
    "latency": "Latency",
    "error_rate": "Error rate",
    "data_quality": "Data quality",
}


def _health(health: HealthView | None) -> str:
    if health is None or health.score is None:
        return '<p class="muted">No health score yet: no check has data.</p>'
    scores, weights = dict(health.checks), dict(health.weights)
    rows = []
    for check in CHECKS:
        score, weight = scores.get(check), weights.get(check, 0.0)
        bar = (
            f'<span class="bar" style="width:{max(0.0, min(score, 100.0)) * 1.2:.0f}px"></span> '
            if score is not None
            else ""
        )
        rows.append(
            f'<tr><th scope="row">{CHECK_NAMES.get(check, escape(check))}</th>'
            f'<td class="num">{"&ndash;" if score is None else f"{score:.0f}"}</td>'
            f"<td>{bar}</td>"
            f'<td class="num">{weight:.2f}</td>'
            f'<td class="num">{"&ndash;" if score is None else f"{score * weight:.1f}"}</td></tr>'
        )
    reasons = (
        "Retraining recommended: " + escape(", ".join(sorted(health.retrain_reasons))) + "."
        if health.retrain_recommended
        else "Retraining not recommended"
        + (
            " (conditions holding: " + escape(", ".join(sorted(health.retrain_reasons))) + ")."
            if health.retrain_reasons
            else "."
        )
    )
    source = (
        f" Performance is judged on {escape(health.performance_source)} accuracy."
        if health.performance_source
        else ""
    )
    return (
        f"<p><strong>Health {health.score:.0f}/100 ({escape(health.level or '')})</strong>. "
        f"{reasons}{source}</p>"
        '<table class="checks auto"><caption>The score is the weighted sum of the checks with data '
        "(weights renormalised over them)</caption><thead><tr>"
        '<th scope="col">Check</th><th scope="col" class="num">Score</th>'
        '<th scope="col">&nbsp;</th><th scope="col" class="num">Weight</th>'
        '<th scope="col" class="num">Points</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


# ---- charts -----------------------------------------------------------------------------


# The x axis spans at least this many buckets, and from the oldest bucket with data on.
MIN_AXIS_BUCKETS: Final = 10


def _window_range(series: Series, now: float) -> tuple[float, float]:
    """From the oldest point's bucket (not the window's start: a daemon started minutes
    ago would squeeze its points into the right edge) to now."""
    window_start = now - series.bucket_seconds * series.buckets
    shortest = now - series.bucket_seconds * min(MIN_AXIS_BUCKETS, series.buckets)
    oldest = series.points[0].start if series.points else shortest
    return max(window_start, min(oldest, shortest)), now


def _window_chart(series: Series, now: float, **chart: Any) -> str:
    """A line chart over the live window, its x axis in clock time."""
    x_range = _window_range(series, now)
    return svg.line_chart(x_range=x_range, x_format=_clock, x_ticks=time_ticks(*x_range), **chart)


def _mid(point: BucketPoint, series: Series, now: float) -> float:
    return min(point.start + series.bucket_seconds / 2, now)


def _thresholds(model: ModelView, metric: str) -> list[svg.Threshold]:
    levels = model.baseline.levels.get(metric)
    out = []
    for severity in ("warning", "critical"):
        value = None if levels is None else getattr(levels, severity)
        if value is not None:
            out.append(svg.Threshold(severity, float(value), severity))
    return out


def accuracy_chart(model: ModelView, view: VersionView, series: Series, now: float) -> str:
    """Live, estimated and evaluation accuracy per bucket; for a regression model (its
    buckets have an MAE and no accuracy) the live MAE against its own thresholds."""
    points = series.points
    regression = any(p.mae is not None for p in points) and all(p.accuracy is None for p in points)
    metric = "mae" if regression else "accuracy"
    live_points = [
        (_mid(p, series, now), value)
        for p in points
        if (value := p.mae if regression else p.accuracy) is not None
        and p.labelled >= MIN_POINT_SAMPLES
    ]
    estimated_points = [
        (_mid(p, series, now), p.estimated_accuracy)
        for p in points
        if p.estimated_accuracy is not None and p.estimated >= MIN_POINT_SAMPLES
    ]
    x_range = _window_range(series, now)
    evaluated = None if view.metrics is None else view.metrics.quality().get(metric)
    lines = [svg.Line("live (feedback)", live_points, "live")]
    if not regression:
        lines.append(svg.Line("estimated (no labels)", estimated_points, "estimated", dashed=True))
    if evaluated is not None:
        lines.append(
            svg.Line(
                "evaluation (metrics.json)",
                [(x_range[0], evaluated), (x_range[1], evaluated)],
                "evaluation",
                markers=False,
            )
        )
    minutes = series.bucket_seconds / 60
    name = "Mean absolute error" if regression else "Accuracy"
    return _window_chart(
        series,
        now,
        title=f"{name} per {minutes:g}-minute bucket of the live window",
        lines=lines,
        thresholds=_thresholds(model, metric),
        y_format=(lambda v: f"{v:.4g}") if regression else (lambda v: f"{v:.2f}"),
        y_label="MAE (target's unit)" if regression else "accuracy (0-1)",
    )


def error_chart(series: Series, now: float) -> str:
    points = [
        (_mid(p, series, now), p.errors / p.predictions)
        for p in series.points
        if p.predictions >= MIN_POINT_SAMPLES
    ]
    return _window_chart(
        series,
        now,
        title="Failed predictions per bucket",
        lines=[svg.Line("error rate", points, "live")],
        thresholds=[
            svg.Threshold("warning", 0.05, "warning"),
            svg.Threshold("critical", 0.10, "critical"),
        ],
        y_format=lambda v: f"{v * 100:.0f}%",
        y_label="failed (%)",
        y_range=(0.0, 0.12),
    )


def latency_chart(series: Series, now: float) -> str:
    points = [
        (_mid(p, series, now), p.latency_mean_seconds * 1000)
        for p in series.points
        if p.latency_mean_seconds is not None
    ]
    # the newest bucket is still filling: its rate is over the time it has been open
    volume = [
        (
            _mid(p, series, now),
            p.predictions / max(1.0, min(series.bucket_seconds, now - p.start)),
        )
        for p in series.points
    ]
    latency = _window_chart(
        series,
        now,
        title="Mean prediction latency per bucket",
        lines=[svg.Line("mean latency", points, "live")],
        y_format=lambda v: f"{v:g} ms",
        y_label="latency (ms)",
        y_range=(0.0, 0.0),
    )
    traffic = _window_chart(
        series,
        now,
        title="Predictions per second per bucket",
        lines=[svg.Line("predictions/s", volume, "volume")],
        y_format=lambda v: f"{v:g}/s",
        y_label="predictions per second",
        y_range=(0.0, 0.0),
    )
    return latency + traffic


# ---- drift and quality ------------------------------------------------------------------


def _drift_table(tallies: TalliesView) -> str:
    features = tallies.window.features
    if not features:
        return (
            '<p class="muted">No feature statistics yet: the window needs a reference and '
            "enough predictions with features.</p>"
        )
    ranked = sorted(
        features.items(),
        key=lambda item: (
            -item[1].get("drift_detected", 0.0),
            -item[1].get("psi", 0.0),
            item[0],
        ),
    )
    max_psi = max((s.get("psi", 0.0) for _, s in ranked), default=0.0) or 1.0
    rows = []
    for name, stats in ranked:
        flagged = bool(stats.get("drift_detected"))
        flag = (
            '<span class="status warning">drifted</span>'
            if flagged
            else '<span class="muted">no</span>'
            if "drift_detected" in stats
            else "&ndash;"
        )
        psi = stats.get("psi")
        bar = (
            ""
            if psi is None
            else f'<span class="bar{" drift" if flagged else ""}" '
            f'style="width:{60 * min(psi / max_psi, 1.0):.0f}px"></span>'
        )
        cells = "".join(
            f'<td class="num">{fmt(stats.get(key), digits)}</td>' for key, _, digits in DRIFT_STATS
        )
        quality = "".join(
            f'<td class="num">{percent(stats.get(key))}</td>' for key, _ in QUALITY_STATS
        )
        row_css = ' class="drifted"' if flagged else ""
        rows.append(
            f'<tr{row_css}><th scope="row">{escape(name)}</th>'
            f"<td>{flag}</td><td>{bar}</td>{cells}{quality}</tr>"
        )
    head = "".join(f'<th scope="col" class="num">{label}</th>' for _, label, _ in DRIFT_STATS)
    qhead = "".join(f'<th scope="col" class="num">{label}</th>' for _, label in QUALITY_STATS)
    share = tallies.window.metrics.get("data_drift_share")
    caption = (
        "Features ranked by drift over the live window "
        f"({tallies.window.samples.get('features', 0)} predictions against the "
        f"{escape(tallies.window.reference_source or 'unknown')} reference"
        + ("" if share is None else f"; drifted share {share:.2f}")
        + "); data quality per feature on the right"
    )
    return (
        f'<div class="scroll"><table class="drift"><caption>{caption}</caption><thead><tr>'
        '<th scope="col">Feature</th><th scope="col">Drifted</th>'
        '<th scope="col"><span class="sr">PSI as a bar</span></th>'
        f"{head}{qhead}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


# ---- serving ----------------------------------------------------------------------------


def histogram_quantile(q: float, cumulative: Sequence[tuple[float, int]]) -> float | None:
    """The q-quantile of a histogram given as (upper bound, cumulative count) pairs ending
    with +Inf, interpolated linearly inside the bucket as Prometheus' histogram_quantile
    does (the +Inf bucket answers with the largest finite bound)."""
    if not cumulative or cumulative[-1][1] == 0:
        return None
    total = cumulative[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def _serving(tallies: TalliesView) -> str:
    window = tallies.window.metrics
    errors = sum(n for _, n in tallies.errors)
    by_type = ", ".join(f"{escape(t)} {n}" for t, n in sorted(tallies.errors, key=lambda e: -e[1]))
    p50 = histogram_quantile(0.5, tallies.latency)
    p95 = histogram_quantile(0.95, tallies.latency)
    p99 = histogram_quantile(0.99, tallies.latency)

    def ms(v: float | None) -> str:
        return "&ndash;" if v is None else f"{v * 1000:.0f} ms"

    return (
        '<table class="serving auto"><caption>Serving figures</caption><tbody>'
        '<tr><th scope="row">Predictions since counting began</th>'
        f'<td class="num">{tallies.predictions}</td></tr>'
        f'<tr><th scope="row">Failed predictions</th><td class="num">{errors}</td>'
        f"<td>{by_type or '&ndash;'}</td></tr>"
        f'<tr><th scope="row">Error rate over the window</th><td class="num">'
        f"{percent(window.get('error_ratio'))}</td>"
        '<td class="small muted">warning over 5%, critical over 10%</td></tr>'
        f'<tr><th scope="row">Mean latency over the window</th><td class="num">'
        f'{ms(window.get("latency_mean_seconds"))}</td><td class="small muted">reference '
        f"{ms(window.get('reference_latency_mean_seconds'))}</td></tr>"
        f'<tr><th scope="row">Latency p50 / p95 / p99 since counting began</th>'
        f'<td class="num">{ms(p50)} / {ms(p95)} / {ms(p99)}</td>'
        '<td class="small muted">from the latency histogram\'s buckets</td></tr>'
        f'<tr><th scope="row">Feedback joined / waiting / expired</th><td class="num">'
        f"{tallies.feedback_matched} / {tallies.feedback_waiting} / "
        f"{tallies.feedback_expired}</td></tr>"
        "</tbody></table>"
    )


# ---- the page ---------------------------------------------------------------------------


def pick_version(model: ModelView, wanted: str | None) -> VersionView | None:
    """The version asked for, else the active one, else the newest listed."""
    by_name = {v.version: v for v in model.versions}
    if wanted is not None and wanted in by_name:
        return by_name[wanted]
    if model.active_version in by_name:
        return by_name[model.active_version]
    return model.versions[-1] if model.versions else None


def model_body(model: ModelView, live: Live, wanted: str | None, now: float) -> str:
    """The refreshed part of the model page."""
    view = pick_version(model, wanted)
    parts = [
        f'<p class="small"><a href="/">&larr; all models</a> &middot; updated {timestamp(now)}</p>',
        "<h2>Versions</h2>",
        _versions_table(model, live),
    ]
    if model.baseline_problem:
        parts.append(
            '<p class="breach-warning">baseline_metrics.json invalid: '
            f"{escape(model.baseline_problem)}</p>"
        )
    if view is None:
        return "".join(parts)
    key = (view.model, view.version)
    tallies, health = live.tallies.get(key), live.health.get(key)
    status = version_status(model, view, tallies, health)
    role = "active version" if view.active else "inactive version"
    parts += [
        f'<h2 id="version">Version {escape(view.version)} '
        f'<span class="small muted">({role})</span> {status_badge(status.status)} '
        + (since(accuracy_trouble_since(model, view, tallies), now, TROUBLE) if tallies else "")
        + "</h2>",
        findings_list(status, limit=None),
        "<p>Last data: "
        + (when(last_data(view, live), now) if tallies is not None else "no prediction logs read")
        + ".</p>",
        "<h2>Health</h2>",
        _health(health),
    ]
    series = None if tallies is None else tallies.window.series
    if tallies is None or series is None:
        parts.append(
            '<p class="muted">No prediction logs read for this version: no live window, '
            "drift or serving figures.</p>"
        )
        return "".join(parts)
    minutes = series.bucket_seconds * series.buckets / 60
    parts += [
        f'<h2>Live window <span class="small muted">(the last {minutes:g} minutes, '
        f"{series.bucket_seconds:g}-second buckets)</span></h2>",
        '<div class="grid2">',
        accuracy_chart(model, view, series, now),
        error_chart(series, now),
        latency_chart(series, now),
        "</div>",
        f'<p class="note">A bucket\'s accuracy is drawn once {MIN_POINT_SAMPLES} or more of its '
        "predictions are labelled (live) or estimated; the evaluation accuracy is that of "
        "<code>metrics.json</code>.</p>",
        "<h2>Drift and data quality</h2>",
        _drift_table(tallies),
        "<h2>Serving</h2>",
        _serving(tallies),
    ]
    return "".join(parts)


def model_html(
    model: ModelView, exporter_version: str, live: Live, wanted: str | None, now: float
) -> bytes:
    return page(
        f"{model.name}: model-health-exporter",
        top_bar(exporter_version, f'<h1 class="model">{escape(model.name)}</h1>'),
        model_body(model, live, wanted, now),
    )


def not_found_html(name: str, exporter_version: str) -> bytes:
    return page(
        "unknown model: model-health-exporter",
        top_bar(exporter_version),
        f"<h2>No model named &ldquo;{escape(name)}&rdquo;</h2>"
        '<p>It may have been removed, or belong to another shard. <a href="/">All models</a>.</p>',
    )

"""`model-health-exporter report`: what a models directory says across versions, as trend
data per model and a Markdown and an HTML summary linking the plots (`report_plots`
draws them). Built from the registry's views, the daemon's own reading of the files."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Final

from model_health_exporter.quality_gate import Finding, compare
from model_health_exporter.quality_metrics import BY_NAME
from model_health_exporter.schema import Levels
from model_health_exporter.state.registry import ModelView, VersionView
from model_health_exporter.stats.degradation import SeverityBands, degradation_severity

# Missing-data shares that read as a problem: above the default max_missing_rate (10%) a
# column needs cleaning before retraining; above half of it, watching.
MISSING_HIGH: Final = 0.10
MISSING_MEDIUM: Final = 0.05
PLOTTED: Final = ("accuracy", "f1_score")  # trend plots with warning and critical lines
BAD: Final = ' class="bad"'  # how the HTML marks a breached threshold

PLOT_TITLES: Final = {
    "quality": "Accuracy and F1 over time, with warning and critical thresholds",
    "samples": "Training samples per version",
    "duration": "Training duration over time",
    "missing": "Missing data by column",
}


@dataclass(frozen=True, slots=True)
class Point:
    """One version with a valid metrics.json and a generated_at, oldest first."""

    version: str
    generated_at: datetime
    active: bool
    quality: Mapping[str, float]  # canonical metric name -> value
    training_samples: int | None
    training_duration: float | None
    missing_rates: Mapping[str, float]
    degradation: Mapping[str, float]


@dataclass(slots=True)
class ModelReport:
    name: str
    slug: str  # folder of its plots, unique within the report
    active_version: str | None
    levels: Mapping[str, Levels]
    min_samples: int | None
    max_missing_rate: float
    points: list[Point]
    skipped: list[str]  # versions left out of the trends, and why
    trends: Mapping[str, float]  # metric -> least-squares slope per day across versions
    plots: dict[str, str] = field(default_factory=dict)  # kind -> path relative to the out dir


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _point(view: VersionView) -> Point | str:
    m = view.metrics
    if m is None:
        return f"{view.version}: no valid metrics.json ({view.problem})"
    if m.generated_at is None:
        return f"{view.version}: no generated_at"
    return Point(
        view.version,
        m.generated_at,
        view.active,
        m.quality(),
        m.training_samples,
        m.training_duration_sec,
        dict(view.missing_rates),
        dict(view.degradation),
    )


def model_reports(models: Sequence[ModelView]) -> list[ModelReport]:
    taken: set[str] = set()
    reports = []
    for model in models:
        points: list[Point] = []
        skipped: list[str] = []
        for view in model.versions:
            made = _point(view)
            (skipped if isinstance(made, str) else points).append(made)  # type: ignore[arg-type]  # either list takes its kind
        points.sort(key=lambda p: (p.generated_at, p.version))
        expected = model.baseline.expected
        reports.append(
            ModelReport(
                name=model.name,
                slug=_slug(model.name, taken),
                active_version=model.active_version,
                levels=model.baseline.levels,
                min_samples=expected.min_samples,
                max_missing_rate=(
                    MISSING_HIGH if expected.max_missing_rate is None else expected.max_missing_rate
                ),
                points=points,
                skipped=skipped,
                trends=model.trends,
            )
        )
    return reports


def comparison(report: ModelReport) -> tuple[Point, Point, list[Finding]] | None:
    """The newest version against the one before it, on every metric with a level."""
    if len(report.points) < 2:
        return None
    previous, latest = report.points[-2], report.points[-1]
    return previous, latest, _compare(previous, latest, report.levels)


def _compare(previous: Point, latest: Point, levels: Mapping[str, Levels]) -> list[Finding]:
    from model_health_exporter.schema import ModelMetrics  # noqa: PLC0415 - pydantic model

    def metrics(p: Point) -> ModelMetrics:
        return ModelMetrics.model_validate({BY_NAME[k].field: v for k, v in p.quality.items()})

    return compare(metrics(previous), metrics(latest), levels)


def _status(value: float, levels: Levels | None, higher_is_better: bool) -> str:
    if levels is None:
        return "ok"
    for name in ("critical", "warning"):
        limit = getattr(levels, name)
        if limit is not None and (value < limit if higher_is_better else value > limit):
            return name.upper()
    return "ok"


def _missing_status(rate: float, limit: float) -> str:
    if rate > limit:
        return "HIGH"
    return "medium" if rate > min(MISSING_MEDIUM, limit / 2) else "ok"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---- rows shared by both formats ------------------------------------------------------


def _version_rows(report: ModelReport) -> list[list[str]]:
    rows = []
    for p in report.points:
        cells = [p.version + (" (active)" if p.active else ""), p.generated_at.isoformat()]
        for name in PLOTTED:
            value = p.quality.get(name)
            status = (
                ""
                if value is None
                else _status(value, report.levels.get(name), BY_NAME[name].higher_is_better)
            )
            cells.append(_fmt(value) + ("" if status in ("", "ok") else f" {status}"))
        cells += [
            "-" if p.training_samples is None else str(p.training_samples),
            _fmt(p.training_duration, 1),
        ]
        rows.append(cells)
    return rows


_DEGRADATION_HEADER: Final = ["Metric", "Degradation (+ is worse)", "Severity"]
_VERSION_HEADER: Final = ["Version", "Generated", "Accuracy", "F1", "Samples", "Duration (s)"]


def _trend_line(report: ModelReport) -> str | None:
    """The slope per day of each quality metric across the versions' generated_at."""
    if not report.trends:
        return None
    parts = [f"{name} {slope * 30:+.4f}" for name, slope in sorted(report.trends.items())]
    return "Trend across versions, per 30 days (least squares): " + ", ".join(parts) + "."


def _degradation_rows(point: Point, bands: SeverityBands) -> list[list[str]]:
    return [
        [name, f"{ratio:+.1%}", degradation_severity(ratio, bands)]
        for name, ratio in sorted(point.degradation.items())
    ]


def _finding_line(f: Finding) -> str:
    mark = "ok" if f.severity == "ok" else f.severity.upper()
    return f"{mark}: {f.describe()}"


def _missing_rows(point: Point, limit: float) -> list[list[str]]:
    ordered = sorted(point.missing_rates.items(), key=lambda kv: (-kv[1], kv[0]))
    return [[col, f"{rate:.1%}", _missing_status(rate, limit)] for col, rate in ordered]


def _focus(report: ModelReport) -> Point | None:
    """The version the degradation and missing-data sections describe: the active one
    if it has a point, else the newest."""
    for p in report.points:
        if p.version == report.active_version:
            return p
    return report.points[-1] if report.points else None


# ---- Markdown ---------------------------------------------------------------------------


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    return [
        "| " + " | ".join(map(cell, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(cell, row)) + " |" for row in rows),
    ]


def _md_model(report: ModelReport, bands: SeverityBands) -> list[str]:
    lines = [f"## {report.name}", ""]
    lines.append(f"Active version: {report.active_version or 'none'}.")
    if report.skipped:
        lines.append("Left out of the trends: " + "; ".join(report.skipped) + ".")
    lines.append("")
    if report.points:
        lines += [*_md_table(_VERSION_HEADER, _version_rows(report)), ""]
    if (trend := _trend_line(report)) is not None:
        lines += [trend, ""]
    for kind, path in report.plots.items():
        lines += [f"![{PLOT_TITLES[kind]}]({path})", ""]
    focus = _focus(report)
    if focus is not None and focus.degradation:
        lines += [f"### Degradation of {focus.version} against the baseline targets", ""]
        lines += [*_md_table(_DEGRADATION_HEADER, _degradation_rows(focus, bands)), ""]
    compared = comparison(report)
    if compared is not None:
        previous, latest, findings = compared
        lines += [f"### {latest.version} compared with {previous.version}", ""]
        lines += [f"- {_finding_line(f)}" for f in findings] or ["- no metric has thresholds"]
        lines.append("")
    if focus is not None and focus.missing_rates:
        lines += [f"### Missing data in the training set of {focus.version}", ""]
        rows = _missing_rows(focus, report.max_missing_rate)
        lines += [*_md_table(["Column", "Missing", "Status"], rows), ""]
        high = [r[0] for r in rows if r[2] == "HIGH"]
        if high:
            lines += [
                f"Warning: {len(high)} column(s) with more than {report.max_missing_rate:.0%} "
                "missing; consider cleaning or imputation before retraining.",
                "",
            ]
    return lines


def markdown(reports: Sequence[ModelReport], title: str, bands: SeverityBands) -> str:
    lines = [f"# {title}", ""]
    for report in reports:
        lines += _md_model(report, bands)
    if not reports:
        lines.append("No models found.")
    return "\n".join(lines).rstrip() + "\n"


# ---- HTML -------------------------------------------------------------------------------


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)

    def row(cells: Sequence[str]) -> str:
        out = []
        for c in cells:
            marked = any(word in c for word in ("CRITICAL", "WARNING", "HIGH", "critical"))
            out.append(f"<td{BAD if marked else ''}>{escape(c)}</td>")
        return "<tr>" + "".join(out) + "</tr>"

    body = "\n".join(row(r) for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _html_model(report: ModelReport, bands: SeverityBands) -> list[str]:
    out = [f'<section id="{escape(report.slug)}"><h2>{escape(report.name)}</h2>']
    out.append(f"<p>Active version: {escape(report.active_version or 'none')}.</p>")
    if report.skipped:
        out.append("<p>Left out of the trends: " + escape("; ".join(report.skipped)) + ".</p>")
    if report.points:
        out.append(_html_table(_VERSION_HEADER, _version_rows(report)))
    if (trend := _trend_line(report)) is not None:
        out.append(f"<p>{escape(trend)}</p>")
    for kind, path in report.plots.items():
        title = escape(PLOT_TITLES[kind])
        out.append(
            f'<figure><a href="{escape(path)}"><img src="{escape(path)}" alt="{title}" '
            f'width="800"></a><figcaption>{title}</figcaption></figure>'
        )
    focus = _focus(report)
    if focus is not None and focus.degradation:
        out.append(f"<h3>Degradation of {escape(focus.version)} against the baseline targets</h3>")
        out.append(_html_table(_DEGRADATION_HEADER, _degradation_rows(focus, bands)))
    compared = comparison(report)
    if compared is not None:
        previous, latest, findings = compared
        out.append(f"<h3>{escape(latest.version)} compared with {escape(previous.version)}</h3>")
        items = "".join(
            f"<li{'' if f.severity == 'ok' else BAD}>{escape(_finding_line(f))}</li>"
            for f in findings
        )
        out.append(f"<ul>{items or '<li>no metric has thresholds</li>'}</ul>")
    if focus is not None and focus.missing_rates:
        out.append(f"<h3>Missing data in the training set of {escape(focus.version)}</h3>")
        out.append(
            _html_table(
                ["Column", "Missing", "Status"], _missing_rows(focus, report.max_missing_rate)
            )
        )
    out.append("</section>")
    return out


def html(reports: Sequence[ModelReport], title: str, bands: SeverityBands) -> str:
    sections = [line for r in reports for line in _html_model(r, bands)]
    toc = "".join(f'<li><a href="#{escape(r.slug)}">{escape(r.name)}</a></li>' for r in reports)
    body = "\n".join(sections) or "<p>No models found.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: .25em .6em; text-align: left; }}
.bad {{ color: #b00; font-weight: bold; }}
img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
</style></head>
<body>
<h1>{escape(title)}</h1>
<ul>{toc}</ul>
{body}
</body></html>
"""

"""PNG trend plots of `model-health-exporter report`, drawn with matplotlib's Agg backend
(no display needed). matplotlib comes with the optional `report` extra; importing this
module without it raises ImportError, which the command turns into a clear message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: files only, never a window

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from model_health_exporter.quality_metrics import BY_NAME
from model_health_exporter.report import (
    MISSING_MEDIUM,
    PLOTTED,
    ModelReport,
)

DPI: Final = 100
_LABELS: Final = {"accuracy": "Accuracy", "f1_score": "F1 (weighted)"}
_MAX_MISSING_VERSIONS: Final = 4  # bars per column: the newest versions


def _date_axis(ax: Any) -> None:
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]  # unannotated in matplotlib
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]  # the same
    ax.xaxis.set_major_formatter(formatter)


def _quality(report: ModelReport, fig: Any) -> bool:
    plotted = [n for n in PLOTTED if any(n in p.quality for p in report.points)]
    if not plotted:
        return False
    axes = fig.subplots(len(plotted), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, plotted, strict=True):
        points = [p for p in report.points if name in p.quality]
        x = [p.generated_at for p in points]
        y = [p.quality[name] for p in points]
        ax.plot(x, y, marker="o", color="tab:blue", label=_LABELS[name])
        for p, xv, yv in zip(points, x, y, strict=True):
            ax.annotate(
                p.version + (" *" if p.active else ""),
                (xv, yv),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
            )
        levels = report.levels.get(name)
        if levels is not None:
            for value, colour, style, label in (
                (levels.target, "grey", ":", "target"),
                (levels.warning, "orange", "--", "warning"),
                (levels.critical, "red", "--", "critical"),
            ):
                if value is not None:
                    ax.axhline(value, color=colour, linestyle=style, label=f"{label} {value:g}")
        ax.margins(x=0.08, y=0.2)  # room for the version labels
        ax.set_ylabel(_LABELS[name] if BY_NAME[name].is_ratio else name)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
        _date_axis(ax)
    axes[0].set_title(f"{report.name}: evaluation quality per version (* active)")
    axes[-1].set_xlabel("generated_at")
    return True


def _samples(report: ModelReport, fig: Any) -> bool:
    points = [p for p in report.points if p.training_samples is not None]
    if not points:
        return False
    ax = fig.subplots()
    names = [p.version for p in points]
    minimum = report.min_samples
    # a version trained on fewer samples than expected stands out
    colours = [
        "tab:red" if minimum is not None and (p.training_samples or 0) < minimum else "tab:blue"
        for p in points
    ]
    ax.bar(names, [p.training_samples for p in points], color=colours)
    if report.min_samples is not None:
        ax.axhline(
            report.min_samples,
            color="orange",
            linestyle="--",
            label=f"expected minimum {report.min_samples}",
        )
        ax.legend(fontsize=8)
    ax.set_title(f"{report.name}: training samples per version")
    ax.set_ylabel("samples")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    return True


def _duration(report: ModelReport, fig: Any) -> bool:
    points = [p for p in report.points if p.training_duration is not None]
    if not points:
        return False
    ax = fig.subplots()
    ax.plot(
        [p.generated_at for p in points],
        [p.training_duration for p in points],
        marker="s",
        color="tab:purple",
    )
    for p in points:
        ax.annotate(
            p.version,
            (p.generated_at, p.training_duration),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    ax.set_title(f"{report.name}: training duration per version")
    ax.set_ylabel("seconds")
    ax.set_xlabel("generated_at")
    ax.margins(x=0.08, y=0.2)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _date_axis(ax)
    return True


def _missing(report: ModelReport, fig: Any) -> bool:
    points = [p for p in report.points if p.missing_rates][-_MAX_MISSING_VERSIONS:]
    if not points:
        return False
    columns = sorted({c for p in points for c in p.missing_rates})
    ax = fig.subplots()
    height = 0.8 / len(points)
    for i, p in enumerate(points):
        ax.barh(
            [j + i * height for j in range(len(columns))],
            [100 * p.missing_rates.get(c, 0.0) for c in columns],
            height=height,
            label=p.version,
        )
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(columns))], columns)
    ax.invert_yaxis()
    limit = report.max_missing_rate
    ax.axvline(100 * MISSING_MEDIUM, color="orange", linestyle="--", label="5%")
    ax.axvline(100 * limit, color="red", linestyle="--", label=f"max {limit:.0%}")
    ax.set_xlabel("missing (%)")
    ax.set_title(f"{report.name}: missing data by column")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return True


_PLOTS: Final[dict[str, tuple[Callable[[ModelReport, Any], bool], tuple[float, float]]]] = {
    "quality": (_quality, (10, 7)),
    "samples": (_samples, (10, 4.5)),
    "duration": (_duration, (10, 4.5)),
    "missing": (_missing, (10, 5)),
}


def draw(report: ModelReport, out_dir: Path) -> dict[str, str]:
    """Draw every plot the data allows into out_dir/<slug>/; returns kind -> path
    relative to out_dir."""
    folder = out_dir / report.slug
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for kind, (plot, size) in _PLOTS.items():
        fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
        try:
            if plot(report, fig):
                fig.savefig(folder / f"{kind}.png", dpi=DPI)
                made[kind] = f"{report.slug}/{kind}.png"
        finally:
            plt.close(fig)
    return made

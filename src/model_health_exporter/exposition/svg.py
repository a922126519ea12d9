"""Line charts as inline SVG, rendered on the server from a handful of points: axes with
ticks and units, threshold lines, a legend, and a tooltip per point. No script, no font
or style sheet from elsewhere: the page stays whole where there is no internet.

Every text that reaches the SVG is escaped here, so callers pass plain strings."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    points: Sequence[tuple[float, float]]  # (x, y), x ascending
    css: str  # class of the stroke colour, from the page's style sheet
    dashed: bool = False
    markers: bool = True  # a dot with a tooltip per point


@dataclass(frozen=True, slots=True)
class Threshold:
    label: str
    value: float
    css: str


@dataclass(frozen=True, slots=True)
class Frame:
    width: int = 640
    height: int = 240
    left: int = 56
    right: int = 112  # room for the threshold labels
    top: int = 16
    bottom: int = 40


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about `count` of them, spaced by 1, 2 or 5
    times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"tick range must be finite, got [{low}, {high}]")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12) + 0.0)
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Callable[[float], float]:
    span = hi - lo or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def line_chart(
    *,
    title: str,
    lines: Sequence[Line],
    x_range: tuple[float, float],
    x_format: Format,
    y_format: Format,
    y_label: str,
    thresholds: Sequence[Threshold] = (),
    y_range: tuple[float, float] | None = None,
    frame: Frame | None = None,
    x_ticks: int | Sequence[float] = 6,
) -> str:
    """An <svg> with `lines` over `x_range` (the y range from the data and thresholds when
    not given, rounded to ticks), a horizontal dashed line per threshold, and a <title>
    naming the chart for screen readers. Lines without points are left out of the plot
    but kept in the legend, marked "no data". `x_ticks`: how many even steps, or the
    tick values themselves (those outside `x_range` are left out)."""
    f = frame or Frame()
    values = [y for line in lines for _, y in line.points] + [t.value for t in thresholds]
    if y_range is None:
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    else:
        lo, hi = y_range
        lo, hi = min([lo, *values]), max([hi, *values])
    y_ticks = nice_ticks(lo, hi)
    y_lo, y_hi = y_ticks[0], y_ticks[-1]
    plot_left, plot_right = f.left, f.width - f.right
    plot_top, plot_bottom = f.top, f.height - f.bottom
    sx = _scale(x_range[0], x_range[1], plot_left, plot_right)
    sy = _scale(y_lo, y_hi, plot_bottom, plot_top)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {f.width} {f.height}" width="{f.width}" height="{f.height}">',
        f"<title>{escape(title)}</title>",
    ]
    # y grid and ticks
    for tick in y_ticks:
        y = sy(tick)
        out.append(
            f'<line class="grid" x1="{plot_left}" x2="{plot_right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{plot_left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(y_format(tick))}</text>"
        )
    if isinstance(x_ticks, int):
        x_values = [
            x_range[0] + (x_range[1] - x_range[0]) * i / x_ticks for i in range(x_ticks + 1)
        ]
    else:
        x_values = [v for v in x_ticks if x_range[0] <= v <= x_range[1]]
    for value in x_values:
        x = sx(value)
        out.append(
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{plot_bottom}" '
            f'y2="{plot_bottom + 4}"/><text class="tick" x="{x:.1f}" y="{plot_bottom + 16}" '
            f'text-anchor="middle">{escape(x_format(value))}</text>'
        )
    out.append(
        f'<line class="axis" x1="{plot_left}" x2="{plot_right}" y1="{plot_bottom}" '
        f'y2="{plot_bottom}"/><line class="axis" x1="{plot_left}" x2="{plot_left}" '
        f'y1="{plot_top}" y2="{plot_bottom}"/>'
        f'<text class="unit" x="12" y="{(plot_top + plot_bottom) / 2:.1f}" '
        f'transform="rotate(-90 12 {(plot_top + plot_bottom) / 2:.1f})" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    for t in thresholds:
        y = sy(t.value)
        out.append(
            f'<g class="threshold {escape(t.css)}"><line x1="{plot_left}" x2="{plot_right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/><text x="{plot_right + 4}" y="{y + 4:.1f}">'
            f"{escape(t.label)} {escape(y_format(t.value))}</text>"
            f"<title>{escape(t.label)}: {escape(y_format(t.value))}</title></g>"
        )
    for line in lines:
        if not line.points:
            continue
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line.points)
        dash = " dashed" if line.dashed else ""
        out.append(f'<g class="series {escape(line.css)}{dash}">')
        if len(line.points) > 1:
            out.append(f'<polyline points="{coords}"/>')
        for x, y in line.points if line.markers else ():
            out.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5"><title>'
                f"{escape(line.label)} {escape(y_format(y))} at {escape(x_format(x))}"
                "</title></circle>"
            )
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(
        f'<li class="{escape(line.css)}{" dashed" if line.dashed else ""}">'
        f'<span class="swatch" aria-hidden="true"></span>{escape(line.label)}'
        f"{'' if line.points else ' (no data)'}</li>"
        for line in lines
    )
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'{"".join(out)}<ul class="legend">{legend}</ul></figure>'
    )

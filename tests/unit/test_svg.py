"""The inline SVG charts: round ticks covering the data, points and threshold lines where
the axes put them (hand-computed), every label escaped, and well-formed XML."""

from __future__ import annotations

import itertools
import math
import random
import xml.etree.ElementTree as ET

import pytest

from model_health_exporter.exposition import svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse_xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own output, under test


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.8, 0.95, [0.8, 0.85, 0.9, 0.95]),
        (0.0, 0.12, [0.0, 0.05, 0.1, 0.15]),
        (0.0, 23.0, [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]),
        (3.0, 3.0, [2.6, 2.8, 3.0, 3.2, 3.4]),
        (-1.0, 1.0, [-1.0, -0.5, 0.0, 0.5, 1.0]),
    ],
)
def test_nice_ticks_hand_computed(low: float, high: float, expected: list[float]) -> None:
    assert svg.nice_ticks(low, high) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(50))
def test_nice_ticks_cover_the_range_with_round_steps(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - seeded test data
    low = rng.uniform(-1000, 1000) * 10 ** rng.randint(-4, 2)
    high = low + rng.uniform(1e-6, 1000) * 10 ** rng.randint(-4, 2)
    ticks = svg.nice_ticks(low, high)
    assert ticks[0] <= low + 1e-9 * abs(low) and ticks[-1] >= high - 1e-9 * abs(high)
    assert 3 <= len(ticks) <= 12
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    step = ticks[1] - ticks[0]
    assert all(math.isclose(s, step, rel_tol=1e-6) for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))


def test_nice_ticks_refuse_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        svg.nice_ticks(0.0, math.inf)


def chart(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "title": "Accuracy",
        "lines": [svg.Line("live", [(0.0, 0.9), (50.0, 0.95), (100.0, 0.8)], "live")],
        "thresholds": [svg.Threshold("warning", 0.85, "warning")],
        "x_range": (0.0, 100.0),
        "x_format": lambda x: f"{x:g}s",
        "y_format": lambda y: f"{y:.2f}",
        "y_label": "accuracy (0-1)",
    }
    arguments.update(overrides)
    return svg.line_chart(**arguments)  # type: ignore[arg-type]  # test overrides


def test_points_and_thresholds_sit_where_the_axes_say() -> None:
    figure = parse_xml(chart())
    root = figure.find("svg:svg", NS)
    assert root is not None
    assert root.get("role") == "img"
    assert root.findtext("svg:title", namespaces=NS) == "Accuracy"
    # Frame(): plot x from 56 to 640 - 112 = 528, y from 240 - 40 = 200 up to 16; the y
    # ticks are 0.80..0.95, so y(v) = 200 - (v - 0.8) / 0.15 * 184.
    polyline = root.find("svg:g[@class='series live']/svg:polyline", NS)
    assert polyline is not None
    points = [tuple(map(float, p.split(","))) for p in (polyline.get("points") or "").split()]
    expected = [(56.0, 200 - 0.1 / 0.15 * 184), (292.0, 16.0), (528.0, 200.0)]
    assert points == [pytest.approx(p, abs=0.06) for p in expected]
    line = root.find("svg:g[@class='threshold warning']/svg:line", NS)
    assert line is not None
    assert float(line.get("y1") or "nan") == pytest.approx(200 - 0.05 / 0.15 * 184, abs=0.06)
    assert line.get("x1") == "56" and line.get("x2") == "528"
    ticks = [t.text for t in root.findall("svg:text[@class='tick']", NS)]
    assert ticks[:4] == ["0.80", "0.85", "0.90", "0.95"]
    assert ticks[4:] == [f"{x:g}s" for x in (0, 16.6667, 33.3333, 50, 66.6667, 83.3333, 100)]
    # one tooltip per point
    titles = [t.text for t in root.findall("svg:g[@class='series live']/svg:circle/svg:title", NS)]
    assert titles == ["live 0.90 at 0s", "live 0.95 at 50s", "live 0.80 at 100s"]


def test_a_y_range_is_widened_to_the_data_never_narrowed() -> None:
    root = parse_xml(chart(y_range=(0.0, 0.5))).find("svg:svg", NS)
    assert root is not None
    ticks = [t.text for t in root.findall("svg:text[@class='tick']", NS)][:-7]
    assert ticks[0] == "0.00" and float(ticks[-1] or "nan") >= 0.95


def test_every_label_is_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    text = chart(
        title=evil,
        lines=[svg.Line(evil, [(0.0, 1.0), (1.0, 2.0)], evil)],
        thresholds=[svg.Threshold(evil, 1.5, evil)],
        y_label=evil,
        x_format=lambda x: evil,
    )
    assert "<script>" not in text
    figure = parse_xml(text)  # still well-formed
    assert figure.findtext("figcaption") == evil


def test_a_line_without_points_is_in_the_legend_only() -> None:
    text = chart(
        lines=[svg.Line("live", [], "live"), svg.Line("estimated", [(0.0, 0.9)], "estimated")]
    )
    figure = parse_xml(text)
    assert figure.find(".//svg:g[@class='series live']", NS) is None
    estimated = figure.find(".//svg:g[@class='series estimated']", NS)
    assert estimated is not None
    assert estimated.find("svg:polyline", NS) is None  # one point: a dot, no line
    assert len(estimated.findall("svg:circle", NS)) == 1
    legend = [li.text for li in figure.iter("li")]
    assert [("".join(li.itertext())) for li in figure.iter("li")] == [
        "live (no data)",
        "estimated",
    ], legend


def test_no_data_at_all_still_draws_axes() -> None:
    figure = parse_xml(chart(lines=[svg.Line("live", [], "live")], thresholds=[]))
    root = figure.find("svg:svg", NS)
    assert root is not None
    assert root.findall("svg:line[@class='axis']", NS)


def test_given_x_ticks_outside_the_range_are_left_out() -> None:
    root = parse_xml(chart(x_ticks=[-10.0, 0.0, 30.0, 100.0, 130.0])).find("svg:svg", NS)
    assert root is not None
    labels = [t.text for t in root.findall("svg:text[@class='tick']", NS)][4:]
    assert labels == ["0s", "30s", "100s"]

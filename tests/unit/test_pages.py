"""The status board and the model page, rendered from snapshots and live views: each
version's status against its own thresholds (the worst finding, never hidden by a good
health score), inactive versions past a critical threshold flagged, names from users'
folders and files escaped everywhere, model names URL-quoted, unknown models 404."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from model_health_exporter.exposition import status as status_module
from model_health_exporter.exposition.html import ago, etag_matches, live_etag
from model_health_exporter.exposition.model_page import histogram_quantile, time_ticks
from model_health_exporter.exposition.pages import Live, landing_page, model_page_response
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.health import HealthView
from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import (
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    Snapshot,
    initial_error_keys,
)
from model_health_exporter.state.series import BucketPoint, Series, pack
from model_health_exporter.state.windows import WindowSummary
from tests.support import good_metrics, write_json

NOW = 1_800_000_000.0
EVIL = "<script>alert(1)</script>"


def snapshot_of(root: Path) -> Snapshot:
    registry = ModelRegistry(
        RegistryConfig(roots=(RootConfig(root),)),
        LabelledCounter(initial_error_keys()),
        LabelledCounter([("max_models",), ("max_columns",)]),
    )
    registry.full_scan()
    return registry.snapshot


def models(
    tmp_path: Path, spec: dict[str, dict[str, dict[str, Any]]], active: dict[str, str]
) -> Snapshot:
    root = tmp_path / "models"
    for model, versions in spec.items():
        for version, metrics in versions.items():
            write_json(root / model / version / "metrics.json", metrics)
        if model in active:
            (root / model / "ACTIVE").write_text(active[model] + "\n")
    return snapshot_of(root)


def series(points: int = 3, accuracy: float | None = 0.84, mae: float | None = None) -> Series:
    return Series(
        60.0,
        60,
        tuple(
            pack(
                BucketPoint(
                    start=NOW - 60.0 * (points - i),
                    predictions=600,
                    errors=6,
                    latency_mean_seconds=0.02,
                    labelled=300,
                    accuracy=accuracy,
                    mae=mae,
                    estimated=590,
                    estimated_accuracy=0.92,
                )
            )
            for i in range(points)
        ),
        NOW - 180.0,
    )


def tallies(
    model: str,
    version: str,
    metrics: dict[str, float],
    features: dict[str, dict[str, float]] | None = None,
    points: Series | None = None,
) -> TalliesView:
    window = WindowSummary(
        MappingProxyType(metrics),
        MappingProxyType({"predictions": 1800, "labelled": 900, "features": 1700}),
        MappingProxyType({k: MappingProxyType(v) for k, v in (features or {}).items()}),
        "jsonl",
        series=points or series(),
    )
    return TalliesView(
        model, version, 1800, (("Timeout", 18),), 900,
        ((0.01, 100), (0.025, 1500), (float("inf"), 1800)), 36.0,
        ((1.0, 1782),), 1600.0, window, 900, 0, 0, 12,
    )  # fmt: skip


def health(model: str, version: str, score: float, level: str, *reasons: str) -> HealthView:
    checks = (("performance", 60.0), ("data_drift", 70.0), ("error_rate", 95.0))
    return HealthView(
        model, version, score, level, checks,
        (("performance", 0.46), ("data_drift", 0.38), ("error_rate", 0.16)),
        "live", frozenset(reasons), bool(reasons),
    )  # fmt: skip


class Rows(HTMLParser):
    """data-* attributes of the board's model panels and version rows, and every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "section" and a.get("data-model") is not None:
            self.models[a["data-model"] or ""] = a.get("data-status") or ""
        if tag == "tr" and a.get("data-version") is not None:
            self.versions[a["data-version"] or ""] = a.get("data-status") or ""


def parse(body: bytes) -> Rows:
    rows = Rows()
    rows.feed(body.decode())
    return rows


# ---- the status -----------------------------------------------------------------------


def test_a_good_health_score_does_not_hide_live_accuracy_under_the_warning_threshold(
    tmp_path: Path,
) -> None:
    snap = models(
        tmp_path, {"routing": {"v3": good_metrics("v3", accuracy=0.93)}}, {"routing": "v3"}
    )
    live = Live(
        MappingProxyType({("routing", "v3"): tallies("routing", "v3", {"accuracy": 0.84})}),
        MappingProxyType({("routing", "v3"): health("routing", "v3", 75.0, "good")}),
    )
    body = landing_page(snap, "test", live, now=NOW)
    page = parse(body)
    assert page.versions == {"v3": "warning"}
    assert page.models == {"routing": "warning"}
    text = body.decode()
    assert "live accuracy 0.84 below warning 0.85" in text
    assert "live accuracy 9.7% below evaluation accuracy (limit 5%)" in text
    assert re.search(r'class="num breach-warning"[^>]*>0\.840<', text)
    assert "75 good" in text  # the health is still shown, beside the worse finding


def test_live_accuracy_under_critical_makes_the_version_critical(tmp_path: Path) -> None:
    snap = models(tmp_path, {"m": {"v1": good_metrics(accuracy=0.93)}}, {"m": "v1"})
    view = snap.models["m"].versions[0]
    result = status_module.version_status(
        snap.models["m"], view, tallies("m", "v1", {"accuracy": 0.78, "error_ratio": 0.01}), None
    )
    assert result.status == "critical"
    assert result.worst is not None and result.worst.severity == "critical"
    assert [f.text for f in result.findings][:2] == [
        "live accuracy 0.78 below critical 0.8",
        "live accuracy 16.1% below evaluation accuracy (limit 10%)",
    ]


def test_an_inactive_version_below_its_critical_threshold_is_flagged(tmp_path: Path) -> None:
    snap = models(
        tmp_path,
        {"routing": {"v2": good_metrics("v2", accuracy=0.78), "v3": good_metrics("v3", 0.93)}},
        {"routing": "v3"},
    )
    body = landing_page(snap, "test", Live(), now=NOW)
    page = parse(body)
    assert page.versions == {"v3": "ok", "v2": "critical"}
    assert page.models == {"routing": "ok"}  # the serving version decides the model's status
    assert "Inactive below a critical threshold: v2" in body.decode()


def test_thresholds_come_from_the_models_baseline_and_lower_is_better_for_log_loss(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    write_json(root / "m" / "v1" / "metrics.json", good_metrics(log_loss=0.4))
    write_json(
        root / "m" / "baseline_metrics.json",
        {
            "quality_thresholds": {
                "accuracy": {"warning": 0.95, "critical": 0.5},
                "log_loss": {"warning": 0.3, "critical": 0.6},
            }
        },
    )
    snap = snapshot_of(root)
    model = snap.models["m"]
    result = status_module.version_status(model, model.versions[0], None, None)
    assert result.status == "warning"
    # one finding per severity, each metric marked with its own
    assert [f.text for f in result.findings] == [
        "evaluation accuracy 0.92 below warning 0.95, also log_loss 0.4 > 0.3"
    ]
    assert {k: f.text for k, f in result.marks.items()} == {
        ("evaluation", "accuracy"): "evaluation accuracy 0.92 below warning 0.95",
        ("evaluation", "log_loss"): "evaluation log_loss 0.4 above warning 0.3",
    }


def test_nothing_to_judge_is_no_data(tmp_path: Path) -> None:
    snap = models(
        tmp_path, {"m": {"v1": {"generated_at": "2026-11-01T12:00:00+00:00"}}}, {"m": "v1"}
    )
    model = snap.models["m"]
    assert status_module.version_status(model, model.versions[0], None, None).status == "no data"
    assert parse(landing_page(snap, "test", Live(), now=NOW)).versions == {"v1": "no data"}


def test_drifted_features_named_most_drifted_first_and_errors_judged(tmp_path: Path) -> None:
    snap = models(tmp_path, {"m": {"v1": good_metrics()}}, {"m": "v1"})
    features = {
        "a": {"psi": 0.3, "drift_detected": 1.0},
        "b": {"psi": 0.5, "drift_detected": 1.0},
        "c": {"psi": 0.9, "drift_detected": 0.0},
    }
    view = tallies("m", "v1", {"error_ratio": 0.07, "data_drift_share": 2 / 3}, features)
    model = snap.models["m"]
    result = status_module.version_status(model, model.versions[0], view, None)
    assert result.drifted == ("b", "a")
    assert {f.text for f in result.findings} == {
        "data drift in: b, a",
        "7.0% of predictions failed (limit 5%)",
    }
    body = landing_page(snap, "test", Live(MappingProxyType({("m", "v1"): view})), now=NOW)
    assert '<span class="drifted">b, a</span>' in body.decode()


# ---- escaping and addresses -------------------------------------------------------------


def test_names_from_folders_and_files_are_escaped_everywhere(tmp_path: Path) -> None:
    model, version = "m<b><script>x", "v<i>1"  # a folder name holds no "/"
    snap = models(
        tmp_path,
        {model: {version: good_metrics(accuracy=0.5, note=EVIL)}},
        {model: version},
    )
    key = (model, version)
    view = tallies(*key, {"accuracy": 0.5}, {EVIL: {"psi": 1.0, "drift_detected": 1.0}})
    live = Live(
        MappingProxyType({key: view}),
        MappingProxyType({key: health(*key, 40.0, "poor", "data_drift")}),
    )
    board = landing_page(snap, "<v>", live, now=NOW)
    code, page = model_page_response(snap, "<v>", live, "/models/" + model, now=NOW)
    assert code == 200
    for body in (board, page, landing_page(snap, "<v>", live, now=NOW, part=True)):
        text = body.decode()
        assert text.count("<script>") == (0 if b"<html" not in body else 1)  # only ours
        assert "<b>" not in text and "<i>" not in text and "<v>" not in text
        tags = set(parse(body).tags)
        assert not tags & {"b", "i", "v", "img"}
    assert 'href="/models/m%3Cb%3E%3Cscript%3Ex"' in board.decode()
    assert parse(board).versions == {version: "critical"}  # attribute values decode back


def test_model_addresses_are_quoted_and_unknown_models_404(tmp_path: Path) -> None:
    name = "modèle a/b"[:6] + " x"  # a space and a non-ASCII letter
    snap = models(tmp_path, {name: {"v1": good_metrics()}}, {})
    board = landing_page(snap, "test", Live(), now=NOW).decode()
    assert 'href="/models/mod%C3%A8le%20x"' in board
    # PATH_INFO arrives unquoted, its bytes read as latin-1 (PEP 3333)
    path_info = "/models/" + name.encode().decode("latin-1")
    code, body = model_page_response(snap, "test", Live(), path_info, now=NOW)
    assert code == 200 and b'<h1 class="model">mod\xc3\xa8le x</h1>' in body
    assert model_page_response(snap, "test", Live(), path_info + "/", now=NOW)[0] == 200
    code, body = model_page_response(snap, "test", Live(), "/models/" + EVIL, now=NOW)
    assert code == 404
    assert "No model named &ldquo;&lt;script&gt;" in body.decode()


def test_the_live_part_is_a_fragment(tmp_path: Path) -> None:
    snap = models(tmp_path, {"m": {"v1": good_metrics()}}, {"m": "v1"})
    whole = landing_page(snap, "test", Live(), now=NOW)
    part = landing_page(snap, "test", Live(), now=NOW, part=True)
    assert whole.startswith(b"<!doctype html>") and b'<main id="live"' in whole
    assert b"<html" not in part and part in whole
    code, fragment = model_page_response(snap, "t", Live(), "/models/m", "part=live", now=NOW)
    assert code == 200 and b"<html" not in fragment and b"<h2>Versions</h2>" in fragment


def test_the_live_parts_etag_changes_with_the_data_not_with_the_time(tmp_path: Path) -> None:
    """Times relative to now are left out of the ETag (the refresh script moves them on
    after a 304); everything else is in it."""
    snap = models(tmp_path, {"m": {"v1": good_metrics(accuracy=0.93)}}, {"m": "v1"})
    runs = [(NOW - 180, 0.93), (NOW - 120, 0.7), (NOW - 60, 0.7)]  # in trouble since -120 s
    points = (BucketPoint(at, 600, 0, None, 300, a, None, 0, None) for at, a in runs)
    bad = Series(60.0, 60, tuple(pack(p) for p in points), NOW - 30)  # last record 30 s ago
    live = Live(MappingProxyType({("m", "v1"): tallies("m", "v1", {"accuracy": 0.7}, points=bad)}))
    part = landing_page(snap, "t", live, now=NOW, part=True)
    later = landing_page(snap, "t", live, now=NOW + 125, part=True)
    for relative in (">30 s ago<", '"for">2 min<'):  # last data; trouble since
        assert relative in part.decode()
    assert ">2 min ago<" in later.decode() and '"for">4 min<' in later.decode()
    assert part != later
    assert live_etag(part) == live_etag(later)
    whole = landing_page(snap, "t", live, now=NOW + 125)
    assert (
        f'<main id="live" data-etag="{live_etag(part).replace(chr(34), "&quot;")}">'.encode()
        in whole
    )
    changed = Live(
        MappingProxyType({("m", "v1"): tallies("m", "v1", {"accuracy": 0.71}, points=bad)})
    )
    assert live_etag(landing_page(snap, "t", changed, now=NOW, part=True)) != live_etag(part)


@pytest.mark.parametrize(
    ("header", "matches"),
    [('"a"', True), ('W/"a"', True), ('"b", "a"', True), ("*", True), ('"b"', False), ("", False)],
)
def test_if_none_match(header: str, matches: bool) -> None:
    assert etag_matches(header, '"a"') is matches


def test_the_page_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    snap = models(tmp_path, {"m": {"v1": good_metrics()}}, {"m": "v1"})
    key = ("m", "v1")
    live = Live(
        MappingProxyType({key: tallies(*key, {"accuracy": 0.9})}),
        MappingProxyType({key: health(*key, 90.0, "excellent")}),
    )
    for body in (
        landing_page(snap, "t", live, now=NOW),
        model_page_response(snap, "t", live, "/models/m", now=NOW)[1],
    ):
        text = body.decode()
        assert not re.search(r"(src|href)=\"(https?:)?//", text)
        assert "@import" not in text and "url(" not in text


# ---- the model page ---------------------------------------------------------------------


def test_the_model_page_shows_checks_charts_and_ranked_drift(tmp_path: Path) -> None:
    snap = models(
        tmp_path,
        {"m": {"v1": good_metrics(), "v0": good_metrics("v0", accuracy=0.79)}},
        {"m": "v1"},
    )
    key = ("m", "v1")
    features = {
        "quiet": {"psi": 0.01, "drift_detected": 0.0, "missing_ratio": 0.0},
        "moved": {"psi": 0.4, "drift_detected": 1.0, "drift_p_value": 1e-9, "missing_ratio": 0.2},
    }
    live = Live(
        MappingProxyType({key: tallies(*key, {"accuracy": 0.84}, features)}),
        MappingProxyType({key: health(*key, 72.0, "good", "performance_drop")}),
    )
    code, body = model_page_response(snap, "t", live, "/models/m", now=NOW)
    assert code == 200
    text = body.decode()
    assert text.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 4
    assert 'class="threshold warning"' in text and 'class="threshold critical"' in text
    # ranked: the drifted feature first
    assert text.index('<th scope="row">moved</th>') < text.index('<th scope="row">quiet</th>')
    assert "live values missing over 10% in: moved" in text
    # the checks with their weights and points
    assert re.search(r"Performance</th><td class=\"num\">60</td>.*?0\.46</td>.*?27\.6<", text)
    # the inactive version's evaluation accuracy is marked critical
    assert re.search(r'breach-critical"[^>]*>0\.790 <span class="small">\(critical\)', text)
    # a version can be picked
    code, other = model_page_response(snap, "t", live, "/models/m", "version=v0", now=NOW)
    assert b"Version v0 <span" in other and b"inactive version" in other


def test_a_regression_models_chart_is_its_mae_against_its_thresholds(tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_json(root / "r" / "v1" / "metrics.json", {"mae": 1.2, "training_samples": 5000})
    write_json(
        root / "r" / "baseline_metrics.json",
        {"quality_thresholds": {"mae": {"warning": 2.0, "critical": 3.0}}},
    )
    snap = snapshot_of(root)
    key = ("r", "v1")
    view = tallies(*key, {"mae": 2.5}, points=series(accuracy=None, mae=2.5))
    code, body = model_page_response(snap, "t", Live(MappingProxyType({key: view})), "/models/r")
    assert code == 200
    text = body.decode()
    assert "<title>Mean absolute error per 1-minute bucket of the live window</title>" in text
    assert ">warning 2</text>" in text and ">critical 3</text>" in text
    assert text.count("<title>live (feedback) 2.5 at") == 3
    assert "live mae 2.5 above warning 2" in text


def test_trouble_since_the_first_bucket_of_the_bad_run(tmp_path: Path) -> None:
    snap = models(tmp_path, {"m": {"v1": good_metrics(accuracy=0.93)}}, {"m": "v1"})
    model = snap.models["m"]
    accuracies = [(0.84, 300), (0.93, 300), (0.70, 10), (0.84, 300), (0.82, 300), (0.7, 5)]
    points = Series(
        60.0,
        60,
        tuple(
            pack(BucketPoint(NOW - 60.0 * (6 - i), 600, 0, None, n, a, None, 0, None))
            for i, (a, n) in enumerate(accuracies)
        ),
        NOW,
    )
    view = tallies("m", "v1", {"accuracy": 0.83}, points=points)
    # newest first: too few labels (skipped), 0.82 and 0.84 (under warning 0.85), too
    # few again, then 0.93: fine, the run starts after it
    since = status_module.accuracy_trouble_since(model, model.versions[0], view)
    assert since == NOW - 60.0 * 3
    body = landing_page(snap, "t", Live(MappingProxyType({("m", "v1"): view})), now=NOW)
    assert (
        '>since <time datetime="2027-01-15T07:57:00+00:00">07:57 UTC</time> '
        '(<time datetime="2027-01-15T07:57:00+00:00" data-rel="for">3 min</time>)'
    ) in body.decode()
    fine = tallies("m", "v1", {"accuracy": 0.92}, points=series(accuracy=0.92))
    assert status_module.accuracy_trouble_since(model, model.versions[0], fine) is None


def test_histogram_quantile_hand_computed() -> None:
    cumulative = [(0.1, 10), (0.2, 30), (float("inf"), 40)]
    assert histogram_quantile(0.05, cumulative) == pytest.approx(0.02)
    assert histogram_quantile(0.5, cumulative) == pytest.approx(0.15)
    assert histogram_quantile(0.95, cumulative) == pytest.approx(0.2)  # in +Inf: the last bound
    assert histogram_quantile(0.5, [(0.1, 0), (float("inf"), 0)]) is None


@pytest.mark.parametrize(
    ("delta", "text"),
    [(2, "just now"), (42, "42 s ago"), (185, "3 min ago"), (7300, "2 h ago"), (-120, "in 2 min")],
)
def test_ago(delta: float, text: str) -> None:
    assert ago(NOW - delta, NOW) == text


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (1000.0, 1600.0, [1080.0, 1200.0, 1320.0, 1440.0, 1560.0]),  # 10 min: every 2 min
        (0.0, 3600.0, [0.0, 600.0, 1200.0, 1800.0, 2400.0, 3000.0, 3600.0]),  # 1 h: 10 min
        (5.0, 65.0, [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]),  # a minute: every 10 s
    ],
)
def test_time_ticks_are_round_moments(low: float, high: float, expected: list[float]) -> None:
    assert time_ticks(low, high) == expected

"""The pages in a real browser (Debian's headless chromium): a daemon fed by the demo
until its injected drift shows, then the status board and the model page as a browser
renders them. The DOM must mark the breached threshold and name the drifted features,
the board must refresh itself in place, and the screenshots must be real pictures."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser import Element, dump_dom, png_info, screenshot
from tests.support import RunningDaemon, wait_until, write_json

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
ROUTING = {"model": "routing", "version": "production-v3"}
FRAUD = {"model": "fraud", "version": "2026-11-01"}
WARNING_ACCURACY = 0.85  # examples/models/routing/baseline_metrics.json


@pytest.fixture
def drifted(tmp_path: Path, start_daemon: Callable[..., RunningDaemon]) -> RunningDaemon:
    """A daemon on a copy of the examples after the demo wrote a few seconds of drifted
    predictions and feedback, once it has judged them."""
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES, root, symlinks=True)
    daemon = start_daemon(f"--models.dir={root}", "--logs.poll-interval=0.05")
    run = subprocess.run(
        [
            *(sys.executable, "-m", "model_health_exporter", "demo", f"--models.dir={root}"),
            *("--rate", "400", "--duration", "4", "--drift-after", "0", "--seed", "4"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    wait_until(
        lambda: (
            daemon.value("routing_ml_feature_drift_detected", feature="QTY", **ROUTING) == 1
            and daemon.value("routing_ml_feature_drift_detected", feature="amount", **FRAUD) == 1
            and daemon.value("routing_ml_live_accuracy", **ROUTING) is not None
        ),
        30,
        "the injected drift detected and live accuracy known",
    )
    return daemon


def panel(dom: Element, model: str) -> Element:
    return dom.find("section", data_model=model)


def row(dom: Element, model: str, version: str) -> Element:
    return panel(dom, model).find("tr", data_version=version)


def cells(dom: Element, tr: Element) -> dict[str, Element]:
    """A board row's cells by their column header."""
    table = next(t for t in dom.find_all("table") if any(r is tr for r in t.iter()))
    headers = [th.text() for th in table.find("thead").find_all("th")]
    return dict(zip(headers, [c for c in tr.children if isinstance(c, Element)], strict=True))


def test_the_board_and_the_model_page_in_a_browser(drifted: RunningDaemon, tmp_path: Path) -> None:
    live_accuracy = drifted.value("routing_ml_live_accuracy", **ROUTING)
    assert live_accuracy is not None and live_accuracy < WARNING_ACCURACY

    # ---- the status board, after its refresh script ran once (10 s of virtual time)
    dom = dump_dom(drifted.url + "/", wait_ms=12_000)
    main = dom.find("main", id="live")
    assert main.attrs.get("data-refreshed"), "the board did not refresh itself"
    routing = panel(dom, "routing")
    assert routing.attrs["data-status"] in {"warning", "critical"}  # not "ok" after the drift
    active = row(dom, "routing", "production-v3")
    by_column = cells(dom, active)
    status = by_column["Status"].find("span", class_="status")
    assert status.text() == active.attrs["data-status"] != "ok"  # a word, not a colour only
    assert status.attrs.get("title")
    assert by_column["Status"].find("span", class_="since").find("time").attrs["datetime"]
    live_cell = by_column["Live accuracy"]
    marked = live_cell.attrs["class"].split()[-1]
    assert marked in {"breach-warning", "breach-critical"}
    # the board shows the value when it last refreshed: the one read before loading it,
    # or a newer one if the last of the demo's lines were still being read meanwhile
    shown = {live_accuracy, drifted.value("routing_ml_live_accuracy", **ROUTING)}
    word = marked.removeprefix("breach-")
    assert live_cell.text() in {f"{value:.3f} {word}" for value in shown if value is not None}
    assert "below" in live_cell.attrs["title"]
    assert by_column["Drifted features"].find("span", class_="drifted").text() == "QTY"
    assert "live accuracy" in by_column["Why"].text()
    assert by_column["Last data"].find("time").attrs["datetime"]
    assert "excellent" not in by_column["Health"].text()
    fraud_row = cells(dom, row(dom, "fraud", "2026-11-01"))
    assert fraud_row["Drifted features"].find("span", class_="drifted").text() == "amount"
    # an old version below its critical threshold is flagged, the serving one decides
    assert row(dom, "routing", "production-v2").attrs["data-status"] == "critical"
    assert "Inactive below a critical threshold: production-v2" in routing.text()
    # the models in trouble first
    order = ["critical", "warning", "ok", "no data"]
    shown = [order.index(s.attrs["data-status"]) for s in dom.find_all("section", class_="model")]
    assert shown == sorted(shown)

    # ---- the model page
    page = dump_dom(drifted.url + "/models/routing")
    charts = page.find_all("svg", class_="chart")
    assert len(charts) == 4
    accuracy = charts[0]
    assert accuracy.find("title").text().startswith("Accuracy per 1-minute bucket")
    thresholds = {
        g.attrs["class"]: g.find("text").text() for g in accuracy.find_all("g", class_="threshold")
    }
    assert thresholds == {
        "threshold warning": "warning 0.85",
        "threshold critical": "critical 0.80",
    }
    assert accuracy.find_all("g", class_="live")[0].find_all("circle")
    drift_rows = page.find("table", class_="drift").find("tbody").find_all("tr")
    assert drift_rows[0].find("th").text() == "QTY"
    assert drift_rows[0].attrs.get("class") == "drifted"
    assert all(r.attrs.get("class") != "drifted" for r in drift_rows[1:])
    checks = page.find("table", class_="checks").find("tbody").find_all("tr")
    assert [r.find("th").text() for r in checks] == [
        "Performance",
        "Data drift",
        "Prediction drift",
        "Latency",
        "Error rate",
        "Data quality",
    ]
    versions = page.find("table", class_="versions")
    v2 = next(r for r in versions.find_all("tr") if "production-v2" in r.text())
    assert v2.find_all("td", class_="breach-critical")

    # ---- unknown model
    status_code, body, _ = drifted.get("/models/no-such-model")
    assert status_code == 404 and b"No model named" in body

    # ---- pictures
    board_png = png_info(screenshot(drifted.url + "/", tmp_path / "board.png", 1400, 1000))
    model_png = png_info(
        screenshot(drifted.url + "/models/routing", tmp_path / "routing.png", 1400, 2400)
    )
    assert (board_png.width, board_png.height) == (1400, 1000)
    assert (model_png.width, model_png.height) == (1400, 2400)
    for info in (board_png, model_png):
        assert info.distinct_bytes > 100, info  # text, colours and lines, not a blank page
        assert info.nonzero_share > 0.02, info


def test_an_unchanged_board_is_kept_and_its_times_moved_on(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    """The refresh script asks with the board's ETag; the daemon answers 304 (nothing on
    the board changes: no logs, no rescan) and the script keeps the board, bringing its
    times relative to now up to date, without an error on the way."""
    models = tmp_path / "models"
    write_json(models / "m" / "v1" / "metrics.json", {"accuracy": 0.9})
    daemon = start_daemon(f"--models.dir={models}", "--models.resync-interval=3600")
    dom = dump_dom(daemon.url + "/", wait_ms=12_000)
    main = dom.find("main", id="live")
    assert main.attrs.get("data-refresh") == "unchanged", main.attrs
    assert main.attrs["data-etag"] == daemon.get("/?part=live")[2]["ETag"]
    stamp = main.find("time", data_rel="now").text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", stamp), stamp
    scanned = main.find("time", data_rel="ago").text()
    assert re.fullmatch(r"just now|\d+ s ago", scanned), scanned
    assert main.find("section", data_model="m")  # the board itself is still there

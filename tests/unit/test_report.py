"""`model-health-exporter report`: PNG trend plots and the HTML / Markdown summary."""

from __future__ import annotations

import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

import model_health_exporter
from model_health_exporter.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.links.append(value)


def _check_png(path: Path, min_width: int = 600, min_height: int = 300) -> None:
    pixels = mpimg.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width, path
    assert height >= min_height, path
    rgb = pixels[..., :3].reshape(-1, 3)
    # not blank: many distinct colours, and a good share of the canvas is not background
    assert len(np.unique(rgb, axis=0)) > 50, path
    background = np.all(rgb > 0.98, axis=1).mean()
    assert background < 0.97, path


def test_report_on_the_example_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["report", str(EXAMPLES), "--out", str(out)]) == 0
    assert "2 model(s), 7 plot(s)" in capsys.readouterr().out
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == [
        "fraud/duration.png",
        "fraud/quality.png",
        "fraud/samples.png",
        "routing/duration.png",
        "routing/missing.png",
        "routing/quality.png",
        "routing/samples.png",
    ]
    for png in pngs:
        _check_png(out / png)

    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert sorted(set(parser.links)) == pngs
    for link in parser.links:
        assert (out / link).is_file(), link
    anchors = re.findall(r'href="#([^"]+)"', page)
    for anchor in anchors:
        assert f'id="{anchor}"' in page

    markdown = (out / "report.md").read_text()
    md_links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(md_links) == pngs
    for link in md_links:
        assert (out / link).is_file(), link

    # What the summary says: thresholds breached, the comparison, missing data.
    assert "| production-v2 | 2026-10-01T12:00:00+00:00 | 0.780 CRITICAL | 0.750 CRITICAL |" in (
        markdown
    )
    assert "### production-v3 compared with production-v2" in markdown
    assert "- ok: accuracy = 0.930 (baseline 0.780, +19.2%)" in markdown
    assert "### Degradation of production-v3 against the baseline targets" in markdown
    assert "| accuracy | -1.1% | none |" in markdown
    assert "| MATERIAL | 2.0% | ok |" in markdown
    assert '<td class="bad">0.780 CRITICAL</td>' in page
    # the trend: a least-squares line through the three versions, computed here by numpy
    days = [
        np.datetime64(d, "s").astype(float) / 86400
        for d in ("2026-09-01T12:00", "2026-10-01T12:00", "2026-11-01T12:00")
    ]
    slope = np.polyfit(days, [0.92, 0.78, 0.93], 1)[0]
    assert f"Trend across versions, per 30 days (least squares): accuracy {slope * 30:+.4f}," in (
        markdown
    )


def test_degraded_newest_version_and_high_missing_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """production-v2 made the newest (and active): the comparison warns, and its
    15% missing MATERIAL column is flagged."""
    models = tmp_path / "models"
    shutil.copytree(EXAMPLES / "routing", models / "routing")
    shutil.rmtree(models / "routing" / "production-v3")
    (models / "routing" / "ACTIVE").write_text("production-v2\n")
    out = tmp_path / "out"
    assert main(["report", str(models), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "### production-v2 compared with production-v1" in markdown
    assert "CRITICAL: accuracy = 0.780 (baseline 0.920, -15.2%) < critical threshold 0.800" in (
        markdown
    )
    assert "| MATERIAL | 15.2% | HIGH |" in markdown
    assert "Warning: 1 column(s) with more than 10% missing" in markdown
    assert "| accuracy | +15.2% | high |" in markdown
    capsys.readouterr()


def test_a_version_without_generated_at_or_valid_metrics_is_named(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(EXAMPLES / "fraud", models / "fraud")
    broken = models / "fraud" / "2026-12-01"
    broken.mkdir()
    (broken / "metrics.json").write_text('{"accuracy": 2.5}')
    out = tmp_path / "out"
    assert main(["report", str(models), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "Left out of the trends: 2026-12-01: no valid metrics.json" in markdown
    for png in out.rglob("*.png"):
        _check_png(png)


def test_without_matplotlib_a_clear_message_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # as if the 'report' extra were not installed: importing matplotlib fails
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "model_health_exporter.report_plots", raising=False)
    monkeypatch.delattr(model_health_exporter, "report_plots", raising=False)
    out = tmp_path / "out"
    assert main(["report", str(EXAMPLES), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'model-health-exporter[report]'" in err
    assert "matplotlib" in err
    assert not out.exists()


def test_bad_models_dir_and_unwritable_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope: not a directory" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["report", str(EXAMPLES), "--out", str(blocker / "sub")]) == 3
    assert "cannot write the report" in capsys.readouterr().err

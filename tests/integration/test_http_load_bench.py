"""bench/http_load.py runs in CI in its short mode: it must complete and report every
phase. Its timings are recorded in docs/benchmarks.md, not asserted here; what is
asserted is that every scrape was answered, with idle clients held, with clients
trickling request heads, and with the
open-files limit exhausted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_http_load_benchmark_short(tmp_path: Path) -> None:
    output = tmp_path / "http_load.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "http_load.py"), "--short", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| load " in result.stdout and "| fd limit " in result.stdout
    report = json.loads(output.read_text())
    assert report["load"]["n"] == report["parameters"]["requests"]
    assert report["load"]["errors"] == 0
    probes = report["parameters"]["probes"]
    assert report["idle"]["held"] == report["parameters"]["idle"]
    assert report["idle"]["answered"] == probes
    assert report["trickle"]["answered"] == probes
    assert report["trickle"]["min_bytes_sent"] >= 5  # every client was mid-head
    assert report["fd_limit"]["answered"] == probes
    assert report["fd_limit"]["opened"] > 256 - 64  # connections were held to the limit
    assert "256" in report["daemon_open_files_limit"][0]
    assert set(report["met"]) == {"load", "idle", "trickle", "fd_limit"}

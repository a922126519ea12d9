"""Every query of the shipped Grafana dashboards returns data from a real Prometheus that
scrapes the daemon running on the example models fed by the demo writer, with every
shipped rule (recording rules included) loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .routing_stack import RoutingStack
from .stack import REPO_ROOT, write_atomic

EXAMPLES = REPO_ROOT / "examples" / "models"
DASHBOARDS = sorted((REPO_ROOT / "grafana" / "dashboards").glob("*.json"))
# Grafana's variables, as a user looking at the example routing model would set them.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$model": "routing",
    "$version": "production-v3",
    "$job": "model-health-exporter",
    "$instance": ".+",  # All
}
DEADLINE_S = 120.0


def _queries() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
        for panel in panels:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
                    expr = expr.replace(name, value)
                assert "$" not in expr, expr
                out.append((f"{path.stem}: {panel['title']}", expr))
    return out


@pytest.fixture
def fed_stack(tmp_path: Path) -> Iterator[RoutingStack]:
    models = tmp_path / "models"
    shutil.copytree(EXAMPLES, models, symlinks=True)
    # A broken model too, so that the alert panels (ALERTS) have something to show.
    write_atomic(
        models / "bad" / "v1" / "metrics.json",
        json.dumps({"generated_at": "2026-11-20T00:00:00Z", "accuracy": 0.5}),
    )
    stack = RoutingStack(tmp_path / "stack", models)
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "model_health_exporter", "demo", f"--models.dir={models}"),
            *("--rate", "100", "--drift-after", "20", "--seed", "11"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        stack.start()
        yield stack
    finally:
        demo.terminate()
        try:
            demo.wait(timeout=10)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        stack.stop()


@pytest.mark.e2e
def test_every_dashboard_query_returns_data(fed_stack: RoutingStack) -> None:
    queries = _queries()
    assert len(queries) > 40

    def empty() -> list[tuple[str, str]]:
        missing = []
        for where, expr in queries:
            result: list[Any] = fed_stack.query(expr)  # raises on a query Prometheus rejects
            # "offset 1d" (latency a day earlier) can only be empty in a Prometheus started
            # seconds ago; that it parses and runs is checked all the same.
            if not result and " offset " not in expr:
                missing.append((where, expr))
        return missing

    left: list[tuple[str, str]] = []

    def all_answered() -> bool:
        nonlocal left
        left = empty()
        return not left

    try:
        fed_stack.wait(all_answered, "every dashboard query answered", timeout=DEADLINE_S)
    except AssertionError as exc:
        raise AssertionError(f"queries without data: {left}") from exc

"""The shipped Prometheus artifacts pass promtool: rule syntax, rule unit tests, example config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.example.yml"


def _promtool(*args: str | Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: install the Debian package 'prometheus'")
    result = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(map(str, args))} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {PROMETHEUS_DIR / 'rules'}"
    assert TEST_FILES, f"no rule unit tests in {PROMETHEUS_DIR / 'tests'}"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_check_rules(rule_file: Path) -> None:
    _promtool("check", "rules", rule_file)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_rule_unit_tests_pass(test_file: Path) -> None:
    _promtool("test", "rules", test_file)


def test_every_alert_has_a_unit_test() -> None:
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in _load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in TEST_FILES
        for test in _load(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts - tested == set(), "alerts with no promtool test that expects them to fire"


def test_example_config_is_valid() -> None:
    _promtool("check", "config", EXAMPLE_CONFIG)

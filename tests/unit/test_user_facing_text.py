"""What users read speaks the project's own terms: no references to documents they have
never seen ("seed 001", "the seed's weights"); a random seed (`--seed`) is fine.
Also the small things a first hour trips over: colour codes in files, a README grep
that matches HELP lines."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model_health_exporter.config import ConfigError, load_settings
from tests.support import RunningDaemon

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "model_health_exporter"
# Read by users: docs, the README and everything shipped for them to deploy or copy.
SHIPPED = [
    ROOT / "README.md",
    ROOT / "Dockerfile",
    *sorted((ROOT / "docs").glob("*.md")),
    *(
        p
        for top in ("prometheus", "grafana", "deploy", "systemd", "examples")
        for p in sorted((ROOT / top).rglob("*"))
        if p.is_file() and p.suffix in {".yml", ".yaml", ".json", ".md", ".service", ".txt"}
    ),
]
COMMANDS = ([], ["validate"], ["check"], ["reference"], ["demo"], ["inspect"], ["report"])
_SEED = re.compile(r"\bseed(s|'s|s')?\b", re.IGNORECASE)
# The random-number seed of the demo and benchmarks is a different word.
_RANDOM_SEED = re.compile(r"--seed\b|\brandom seed\b|\bseeded\b", re.IGNORECASE)


def seed_mentions(text: str) -> list[str]:
    text = _RANDOM_SEED.sub("", text)
    return [
        text[max(0, m.start() - 40) : m.end() + 40].replace("\n", " ") for m in _SEED.finditer(text)
    ]


def test_the_check_finds_what_it_must() -> None:
    assert seed_mentions("weights of seed 001") and seed_mentions("the seed's defaults")
    assert seed_mentions("(Seeds 000 and 004)") and seed_mentions("seed weights, renormalised")
    assert not seed_mentions("--seed 7: a random seed; 200 seeded trials")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_files(path: Path) -> None:
    assert seed_mentions(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "run")
def test_help_output(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_health_exporter", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "usage:" in result.stdout
    assert seed_mentions(result.stdout) == []


def test_docstrings_and_comments_of_the_package() -> None:
    # help(save_model_metrics), API docs and anyone reading the code see these.
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        texts = [
            ast.get_docstring(node, clean=False) or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        texts += [line.partition("#")[2] for line in source.splitlines() if "#" in line]
        found += [f"{path.name}: {m}" for text in texts for m in seed_mentions(text)]
    assert found == []


def test_help_strings_of_a_real_metrics_page(tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(ROOT / "examples" / "models", models)
    daemon = RunningDaemon(tmp_path, [f"--models.dir={models}"])
    try:
        daemon.wait_ready()
        text = daemon.metrics_text()
    finally:
        daemon.stop()
    helps = [line for line in text.splitlines() if line.startswith("# HELP ")]
    assert any(line.startswith("# HELP routing_ml_model_health_score ") for line in helps)
    assert [m for line in helps for m in seed_mentions(line)] == []


def test_console_logs_have_no_colour_codes_when_not_a_terminal() -> None:
    code = (
        "import structlog\n"
        "from model_health_exporter.logging import configure_logging\n"
        "configure_logging('info', 'console')\n"
        "structlog.get_logger().warning('cannot listen', address='127.0.0.1:9188')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "cannot listen" in result.stdout
    assert "address=127.0.0.1:9188" in result.stdout
    assert "\x1b[" not in result.stdout


def test_the_readme_watch_command_shows_only_samples() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"curl -s \S+/metrics \| grep -E '([^']+)'", readme)
    assert match, "the README's watch command"
    pattern = re.compile(match.group(1))
    exposition = [
        "# HELP routing_ml_live_accuracy Accuracy over the window.",
        "# TYPE routing_ml_live_accuracy gauge",
        'routing_ml_live_accuracy{model="fraud",version="v1"} 0.91',
        'routing_ml_predictions_total{model="fraud",version="v1"} 120',
    ]
    shown = [line for line in exposition if pattern.search(line)]
    assert shown == exposition[2:]


def test_config_errors_name_the_value_given_once(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "baselines:\n  defaults:\n    quality_thresholds:\n      accuracy: {warning: high}\n"
    )
    overrides = {"models": {"layout": "round"}, "logs": {"low_confidence_threshold": "often"}}
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides, config)
    assert sorted(caught.value.problems) == [
        "baselines.defaults.quality_thresholds.accuracy.warning: expected a number, got str 'high'",
        "logs.low_confidence_threshold: Input should be a valid number, unable to parse string "
        "as a number (got 'often')",
        "models.layout: Input should be 'auto', 'flat' or 'nested' (got 'round')",
    ]


def test_help_starts_with_a_short_usage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_health_exporter", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    usage = result.stdout.split("\n\n")[0].splitlines()
    assert len(usage) <= 3, usage  # argparse's own listed every flag: 38 lines
    assert "--models.dir DIR" in usage[0]
    assert "--models.dir DIR " in result.stdout and "--logs.path PATH " in result.stdout

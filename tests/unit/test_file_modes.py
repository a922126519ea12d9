"""Files the project writes for users (metrics.json, reference profiles) are readable by
the exporter's service user: the umask decides, as for any new file, not mkstemp's 0600."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from model_health_exporter import save_model_metrics
from model_health_exporter.cli import main
from model_health_exporter.fsutil import atomic_write_bytes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
REFERENCE_CSV = EXAMPLES / "fraud" / "2026-11-01" / "reference.csv"


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp_path is 0700 below /tmp)."""
    with umask(0o022):
        path = Path(
            subprocess.check_output(["mktemp", "-d", "/tmp/mhe-modes.XXXXXX"], text=True).strip()
        )
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
    ids=["022", "002", "077"],
)
def test_new_files_follow_the_umask(tmp_path: Path, mask: int, expected: int) -> None:
    with umask(mask):
        written = save_model_metrics(tmp_path / "v1", {"accuracy": 0.9})
        atomic_write_bytes(tmp_path / "plain.json", b"{}")
    assert mode(written) == expected
    assert mode(tmp_path / "plain.json") == expected


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_bytes(b"{}")
    target.chmod(0o640)
    with umask(0o022):
        atomic_write_bytes(target, b'{"accuracy": 0.9}')
    assert mode(target) == 0o640
    assert target.read_bytes() == b'{"accuracy": 0.9}'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def test_reference_build_output_follows_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "reference_profile.json"
    with umask(0o022):
        assert main(["reference", "build", str(REFERENCE_CSV), "-o", str(out)]) == 0
    assert mode(out) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as another user needs root to switch")
def test_another_user_can_read_what_the_pipeline_wrote(shared_dir: Path) -> None:
    # The systemd unit runs with DynamicUser=yes and the container as a non-root user:
    # neither is the user whose training pipeline wrote the files.
    with umask(0o022):
        metrics = save_model_metrics(shared_dir / "v1", {"accuracy": 0.9})
        profile = shared_dir / "v1" / "reference_profile.json"
        assert main(["reference", "build", str(REFERENCE_CSV), "-o", str(profile)]) == 0
    (shared_dir / "v1").chmod(0o755)
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to read as another user"
    for path in (metrics, profile):
        result = subprocess.run(
            [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
             "-c", "import sys; print(len(open(sys.argv[1], 'rb').read()))", str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert int(result.stdout) == path.stat().st_size

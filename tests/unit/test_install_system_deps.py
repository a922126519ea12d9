"""scripts/install-system-deps.sh (run by `make test`) leaves the machine's service policy
as it found it: the policy-rc.d that stops postinst scripts from starting services
exists only while apt-get installs, and one that was there before is left alone.

apt-get, id and the probed tools are stubs on a PATH of their own (apt itself is not
what is tested), and POLICY_RC_D points the script at a scratch file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"
TOOLS = (
    "promtool",
    "prometheus",
    "amtool",
    "prometheus-alertmanager",
    "docker-compose",
    "podman",
    "runc",
    "debootstrap",
    "chromium",
)
# apt-get stub: logs its arguments and whether the policy file forbids starting services
# at that moment; STUB_APT_INSTALL=fail|hang changes what `install` does.
APT_GET = """#!{bash}
echo "apt-get $*" >> "$STUB_LOG"
if [ "$1" = install ]; then
  if [ -x "$POLICY_RC_D" ]; then "$POLICY_RC_D"; echo "policy exit $?" >> "$STUB_LOG"; fi
  case "$STUB_APT_INSTALL" in
    fail) exit 100 ;;
    hang) touch "$STUB_LOG.installing"; exec {sleep} 60 ;;
  esac
fi
"""


def stub(bin_dir: Path, name: str, text: str) -> None:
    path = bin_dir / name
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sort", "tr", "chmod", "rm", "touch"):  # what the script itself runs
        real = shutil.which(tool)
        assert real, tool
        (bin_dir / tool).symlink_to(real)
    stub(bin_dir, "id", "#!/bin/sh\necho 0\n")  # as root, whoever runs the test
    stub(bin_dir, "apt-get", APT_GET.format(bash=BASH, sleep=shutil.which("sleep")))
    return {
        "PATH": str(bin_dir),
        "POLICY_RC_D": str(tmp_path / "policy-rc.d"),
        "STUB_LOG": str(tmp_path / "apt.log"),
        "STUB_APT_INSTALL": "ok",
    }


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_policy_exists_during_the_install_only(sandbox: dict[str, str]) -> None:
    result = run(sandbox)
    assert result.returncode == 0, result.stderr
    log = Path(sandbox["STUB_LOG"]).read_text().splitlines()
    assert log[0] == "apt-get update -qq"
    assert log[1].startswith("apt-get install -y -qq --no-install-recommends ")
    for package in (
        "prometheus",
        "prometheus-alertmanager",
        "docker-compose",
        "systemd",
        "podman",
        "runc",
        "debootstrap",
        "chromium",
    ):
        assert package in log[1].split()
    assert log[2] == "policy exit 101"  # services could not start during the install
    assert not Path(sandbox["POLICY_RC_D"]).exists()  # and can after it
    assert "Installing the Debian packages the tests need" in result.stdout


def test_a_policy_that_was_there_is_left_alone(sandbox: dict[str, str]) -> None:
    policy = Path(sandbox["POLICY_RC_D"])
    policy.write_text("#!/bin/sh\n# the image's own\nexit 101\n")
    policy.chmod(0o755)
    assert run(sandbox).returncode == 0
    assert policy.read_text() == "#!/bin/sh\n# the image's own\nexit 101\n"


def test_removed_when_the_install_fails(sandbox: dict[str, str]) -> None:
    result = run({**sandbox, "STUB_APT_INSTALL": "fail"})
    assert result.returncode == 100
    assert "policy exit 101" in Path(sandbox["STUB_LOG"]).read_text()
    assert not Path(sandbox["POLICY_RC_D"]).exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_removed_when_interrupted(sandbox: dict[str, str], signum: signal.Signals) -> None:
    # Ctrl-C in a terminal signals the whole process group, apt-get included.
    proc = subprocess.Popen(
        [BASH, str(SCRIPT)],
        env={**sandbox, "STUB_APT_INSTALL": "hang"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        installing = Path(sandbox["STUB_LOG"] + ".installing")
        wait_until(installing.exists, 20, "the stub install to start")
        assert Path(sandbox["POLICY_RC_D"]).exists()
        os.killpg(proc.pid, signum)
        assert proc.wait(20) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert not Path(sandbox["POLICY_RC_D"]).exists()


def test_nothing_missing_nothing_done(sandbox: dict[str, str]) -> None:
    bin_dir = Path(sandbox["PATH"])
    for tool in (*TOOLS, "systemd-analyze"):
        stub(bin_dir, tool, "#!/bin/sh\n")
    result = run(sandbox)
    assert result.returncode == 0
    assert "all present" in result.stdout
    assert not Path(sandbox["STUB_LOG"]).exists()
    assert not Path(sandbox["POLICY_RC_D"]).exists()

"""scripts/install-system-deps.sh (run by `make test`) leaves the machine's service policy
as it found it: the policy-rc.d that stops postinst scripts from starting services
exists only while apt-get installs, and one that was there before is left alone.

It also waits, with a deadline, for the package manager's locks (unattended-upgrades
holds them on a freshly booted machine) and says what it waits for.

apt-get, id and the probed tools are stubs on a PATH of their own (apt itself is not
what is tested), POLICY_RC_D points the script at a scratch file and APT_LOCK_FILES at
scratch lock files, locked here the way apt and dpkg lock theirs (fcntl)."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
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
if [[ " $* " == *" install "* ]]; then
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
    for tool in ("sort", "tr", "chmod", "rm", "touch", "lslocks", "sleep"):  # what it runs
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
        "APT_LOCK_FILES": f"{tmp_path / 'lock-frontend'} {tmp_path / 'lists-lock'}",
    }


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_policy_exists_during_the_install_only(sandbox: dict[str, str]) -> None:
    result = run(sandbox)
    assert result.returncode == 0, result.stderr
    log = Path(sandbox["STUB_LOG"]).read_text().splitlines()
    # apt-get waits for the dpkg lock itself for what is left of the 300 s by default
    assert re.fullmatch(r"apt-get -o DPkg::Lock::Timeout=(29\d|300) update -qq", log[0])
    assert re.match(
        r"apt-get -o DPkg::Lock::Timeout=(29\d|300) install -y -qq --no-install-recommends ",
        log[1],
    )
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


# A test run started in the background (`make test &`) passes SIGINT on ignored, and bash
# cannot trap a signal ignored when it starts: the script runs with SIGINT as a terminal
# leaves it (exec keeps the default disposition).
SIGINT_AS_IN_A_TERMINAL = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_removed_when_interrupted(sandbox: dict[str, str], signum: signal.Signals) -> None:
    # Ctrl-C in a terminal signals the whole process group, apt-get included.
    proc = subprocess.Popen(
        [*SIGINT_AS_IN_A_TERMINAL, BASH, str(SCRIPT)],
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


def hold_lock(path: str) -> int:
    """Locks `path` as apt and dpkg lock theirs (a POSIX record lock); close the fd to
    release it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_waits_for_a_held_lock_then_installs(sandbox: dict[str, str], tmp_path: Path) -> None:
    lists_lock = sandbox["APT_LOCK_FILES"].split()[1]
    fd = hold_lock(lists_lock)
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [BASH, str(SCRIPT)], env=sandbox, stdout=stdout, stderr=subprocess.PIPE, text=True
        )
    try:
        wait_until(lambda: "Waiting for" in out.read_text(), 20, "the script to say it waits")
        said = out.read_text()
        assert f"Waiting for the package manager lock {lists_lock}, held by " in said
        assert f"(pid {os.getpid()})" in said
        assert "unattended-upgrades" in said
        assert proc.poll() is None
        assert not Path(sandbox["STUB_LOG"]).exists()  # apt-get not run while it is held
        assert not Path(sandbox["POLICY_RC_D"]).exists()
    finally:
        os.close(fd)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    log = Path(sandbox["STUB_LOG"]).read_text().splitlines()
    assert " update -qq" in log[0]
    assert " install -y " in log[1]
    assert said.count("Waiting for") == 1  # said once, not once a second


def test_gives_up_at_the_deadline_naming_the_holder(sandbox: dict[str, str]) -> None:
    frontend = sandbox["APT_LOCK_FILES"].split()[0]
    fd = hold_lock(frontend)
    try:
        result = run({**sandbox, "APT_LOCK_TIMEOUT": "1"})
    finally:
        os.close(fd)
    assert result.returncode == 1
    assert (
        f"Gave up after waiting 1 s for the package manager: {frontend} is still held by "
        in result.stderr
    )
    assert f"(pid {os.getpid()})" in result.stderr
    assert "APT_LOCK_TIMEOUT" in result.stderr
    assert not Path(sandbox["STUB_LOG"]).exists()  # neither update nor install ran
    assert not Path(sandbox["POLICY_RC_D"]).exists()


def test_a_bad_timeout_is_refused(sandbox: dict[str, str]) -> None:
    result = run({**sandbox, "APT_LOCK_TIMEOUT": "5m"})
    assert result.returncode == 2
    assert "APT_LOCK_TIMEOUT must be a whole number of seconds, not '5m'" in result.stderr

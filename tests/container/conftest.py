"""Fixtures for the container tests: podman, the image built once per session, and what
each test makes, removed by id when it ends (failed or not)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .podman import Podman, ensure_base_image

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
NET_DEVICES = Path("/sys/class/net")


def _podman() -> Podman:
    executable = shutil.which("podman")
    if executable is None:
        pytest.fail(
            "podman not found: `make test` installs it with runc and debootstrap "
            "(scripts/install-system-deps.sh); deselect these tests with -m 'not container'"
        )
    if os.geteuid() != 0:
        pytest.fail("the container tests run podman as root (debootstrap and chroot need it)")
    return Podman(executable)


def _network_state() -> tuple[str, list[str], list[str]]:
    """IP forwarding, the network devices and the firewall's chains and rules."""
    devices = sorted(device.name for device in NET_DEVICES.iterdir())
    rules: list[str] = []
    iptables_save = shutil.which("iptables-save")
    if iptables_save is not None:
        saved = subprocess.run([iptables_save], capture_output=True, text=True, check=False)
        for line in saved.stdout.splitlines():
            if line.startswith("-"):
                rules.append(line)
            elif line.startswith(":"):  # a chain and its policy, without its packet counts
                rules.append(" ".join(line.split()[:2]))
    return IP_FORWARD.read_text(encoding="ascii").strip(), devices, rules


@pytest.fixture(scope="session", autouse=True)
def _network_left_alone() -> Iterator[None]:
    """Host networking only: no bridge, no veth, no forwarding, no firewall rules."""
    before = _network_state()
    yield
    after = _network_state()
    assert after == before, f"the machine's network changed: {before} -> {after}"


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Dockerfile's image, built once per session on the local base; removed at the end."""
    podman = _podman()
    try:
        base = ensure_base_image(podman)
        yield podman.build(base, tmp_path_factory.mktemp("build"))
    finally:
        podman.remove_made()


@pytest.fixture
def podman() -> Iterator[Podman]:
    """Containers and volumes made through it are removed by id when the test ends."""
    made = _podman()
    try:
        yield made
    finally:
        made.remove_made()


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    """examples/models, copied so a test can change the logs the container reads."""
    copy = tmp_path / "models"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "models", copy)
    copy.chmod(0o755)
    return copy

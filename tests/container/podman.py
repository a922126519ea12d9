"""The repository's Dockerfile built and run with podman, on a machine without a registry:

- the base image (the Dockerfile's `ARG PYTHON_IMAGE`) is a Debian rootfs made with
  debootstrap and imported, kept between runs under a tag keyed by its recipe;
- every podman call runs with `--runtime=runc` (crun refuses a hybrid cgroup layout),
  ulimits no higher than this process's hard limits (podman as root asks for more open
  files than a container host may allow), and host networking with the exporter on
  127.0.0.1 (publishing ports with a bridge network adds iptables rules and turns on IP
  forwarding on the machine);
- everything else a test makes (containers, volumes, the built image) is recorded by id
  and removed by id when the test or the session ends, failed or not."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import Samples, parse_samples, wait_until

REPO = Path(__file__).resolve().parents[2]

# The Dockerfile's default base is python:3.11-slim-bookworm: the same Debian release and
# Python minor version, with pip in a virtual environment first on PATH (where the
# official image has its own Python), so `python` and `pip` are found as the Dockerfile
# expects.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv")
BASE_VENV = "/opt/python"
BASE_PATH = f"{BASE_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# pip 23 in Debian's venv trusts only its own certifi bundle; the build mounts the host's
# CA bundle at this path, so pip trusts what the host trusts (e.g. a TLS-inspecting proxy).
CA_BUNDLE_IN_IMAGE = "/etc/ssl/certs/ca-certificates.crt"
BASE_PIP_CONF = f"[global]\ncert = {CA_BUNDLE_IN_IMAGE}\n"
BASE_RECIPE = {
    "suite": BASE_SUITE,
    "variant": "minbase",
    "packages": BASE_PACKAGES,
    "venv": BASE_VENV,
    "path": BASE_PATH,
    "pip.conf": BASE_PIP_CONF,
}
BASE_REPOSITORY = "localhost/model-health-exporter-test-base"
BASE_LOCK = Path("/var/tmp/model-health-exporter-test-base.lock")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def base_image_ref() -> str:
    """The cached base's tag: a new recipe gets a new tag, never an old rootfs."""
    digest = hashlib.sha256(json.dumps(BASE_RECIPE, sort_keys=True).encode()).hexdigest()
    return f"{BASE_REPOSITORY}:{BASE_SUITE}-{digest[:12]}"


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 or one-line sources)."""
    sources = Path("/etc/apt")
    candidates = [sources / "sources.list", *sorted(sources.glob("sources.list.d/*"))]
    for path in candidates:
        if not path.is_file() or path.suffix not in {".list", ".sources"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.MULTILINE)
        uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE)
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return str(uri).rstrip("/")
    return DEFAULT_MIRROR


def host_ca_bundle() -> Path:
    configured = os.environ.get("SSL_CERT_FILE")
    path = Path(configured) if configured else Path("/etc/ssl/certs/ca-certificates.crt")
    assert path.is_file(), f"no CA bundle at {path} to give pip inside the build"
    return path.resolve()


def ulimit_options() -> list[str]:
    """Limits the container's first process may set (it cannot raise a hard limit).

    As root, podman asks for 1048576 open files and processes by default, above the hard
    limits of a container host. Open files: this process's hard limit. Processes: podman
    lowers its own limit (here from 96362 to 32768, the kernel's pid_max), and `-1` or
    `host` pass on the higher one, so the least of the hard limit, pid_max and 32768."""
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text(encoding="ascii"))
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576  # podman's own default, allowed here
    limits = {"nofile": nofile, "nproc": min(nproc, pid_max, 32768)}
    return [f"--ulimit={name}={value}:{value}" for name, value in limits.items()]


@dataclass
class Podman:
    executable: str
    made: list[tuple[str, str]] = field(default_factory=list)  # (kind, id), in order

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.executable, "--runtime=runc", *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    # ---- what a test makes, removed by id -------------------------------------------------

    def record(self, kind: str, ident: str) -> str:
        assert ident, f"podman gave no {kind} id"
        self.made.append((kind, ident))
        return ident

    def remove_made(self) -> None:
        """Containers, then the volumes they used, then images; every one is tried."""
        order = {"container": 0, "volume": 1, "image": 2}
        problems = []
        for kind, ident in sorted(self.made, key=lambda m: order[m[0]]):
            argv = {
                "container": ["rm", "--force", "--volumes", "--time=0", ident],
                "volume": ["volume", "rm", "--force", ident],
                "image": ["rmi", "--force", ident],
            }[kind]
            result = self(*argv, timeout=120, check=False)
            if result.returncode != 0 and "no such" not in result.stderr.lower():
                problems.append(f"{kind} {ident}: {result.stderr.strip()}")
        self.made.clear()
        assert not problems, "could not remove:\n" + "\n".join(problems)

    def volume(self) -> str:
        return self.record("volume", self("volume", "create").stdout.strip())

    def volume_path(self, volume: str) -> Path:
        return Path(self("volume", "inspect", "--format={{.Mountpoint}}", volume).stdout.strip())

    def build(self, base: str, workdir: Path) -> str:
        """The Dockerfile's image on `base`; its id (the image is recorded for removal)."""
        iidfile = workdir / "image-id"
        result = self(
            "build",
            "--format=docker",  # OCI images have no HEALTHCHECK: podman would drop it
            "--pull=never",
            "--layers=false",  # no intermediate images left behind
            "--force-rm",  # nor build containers when a step fails
            "--network=host",
            *ulimit_options(),
            f"--volume={host_ca_bundle()}:{CA_BUNDLE_IN_IMAGE}:ro",
            f"--build-arg=PYTHON_IMAGE={base}",
            f"--iidfile={iidfile}",
            f"--file={REPO / 'Dockerfile'}",
            str(REPO),
            timeout=900,
            check=False,
        )
        image = ""
        if iidfile.exists():
            image = self.record("image", iidfile.read_text().strip().removeprefix("sha256:"))
        if result.returncode != 0:
            raise AssertionError(f"podman build failed:\n{result.stdout}\n{result.stderr}")
        return image

    def start(self, image: str, *options: str, args: Sequence[str] = ()) -> Container:
        """Create (its id recorded), then start, on the host network."""
        cid = self.record(
            "container",
            self("create", "--network=host", *ulimit_options(), *options, image, *args)
            .stdout.strip()
            .splitlines()[-1],
        )
        self("start", cid)
        return Container(self, cid)


@dataclass
class Container:
    podman: Podman
    id: str

    def inspect(self, template: str) -> str:
        return self.podman("inspect", f"--format={template}", self.id).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def logs(self) -> str:
        result = self.podman("logs", self.id, check=False)
        return result.stdout + result.stderr

    def exec(self, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        options = [f"--user={user}"] if user else []
        return self.podman("exec", *options, self.id, *argv, check=False)

    def sigterm(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM to the exporter; its exit status and the seconds it took to exit."""
        started = time.monotonic()
        self.podman("kill", "--signal=TERM", self.id)
        status = int(self.podman("wait", self.id, timeout=timeout).stdout.strip())
        return status, time.monotonic() - started


@dataclass
class Exporter:
    """The exporter in a container, on 127.0.0.1:port of the host network."""

    container: Container
    port: int

    def get(self, path: str) -> tuple[int, bytes]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            if not self.container.running():
                raise AssertionError(f"the container exited:\n{self.container.logs()}")
            return self.get("/readyz")[0] == 200

        try:
            wait_until(ready, timeout, "/readyz of the container", interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.container.logs()}") from exc

    def samples(self) -> Samples:
        status, body = self.get("/metrics")
        assert status == 200, body
        return parse_samples(body.decode())

    def wait_value(
        self, name: str, labels: Mapping[str, str], expected: float, timeout: float = 60
    ) -> None:
        key = (name, frozenset(labels.items()))
        try:
            wait_until(
                lambda: self.samples().get(key) == expected,
                timeout,
                f"{name}{dict(labels)} == {expected}",
                interval=0.5,
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; last value {self.samples().get(key)}\n{self.container.logs()}"
            ) from exc


# ---- the base image ---------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One session at a time makes the base; the others wait and then find it."""
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _mounts_under(root: Path) -> list[str]:
    with Path("/proc/self/mounts").open(encoding="utf-8") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    prefix = str(root) + "/"
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_rootfs(root: Path) -> None:
    """Never delete through a /proc or /dev that debootstrap left mounted after a failure."""
    for point in _mounts_under(root):
        subprocess.run(["umount", point], check=False, capture_output=True, timeout=60)
    left = _mounts_under(root)
    assert not left, f"still mounted, so {root} was left in place: {left}"
    shutil.rmtree(root, ignore_errors=True)


def ensure_base_image(podman: Podman) -> str:
    """The base image, made once per recipe (about a minute) and kept for later runs."""
    ref = base_image_ref()
    debootstrap = shutil.which("debootstrap")
    with _locked(BASE_LOCK):
        if podman("image", "exists", ref, check=False).returncode == 0:
            return ref
        if debootstrap is None:
            pytest.fail("debootstrap not found: `make test` installs it (scripts/)")
        workdir = Path(tempfile.mkdtemp(prefix="mhe-base-", dir="/var/tmp"))
        rootfs = workdir / "rootfs"
        try:
            subprocess.run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    BASE_SUITE,
                    str(rootfs),
                    debian_mirror(),
                ],
                capture_output=True,
                check=True,
                timeout=900,
            )
            subprocess.run(
                ["chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", BASE_VENV],
                capture_output=True,
                check=True,
                timeout=300,
            )
            (rootfs / "etc/pip.conf").write_text(BASE_PIP_CONF, encoding="utf-8")
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / cache).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            tarball = workdir / "rootfs.tar"
            subprocess.run(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."],
                capture_output=True,
                check=True,
                timeout=600,
            )
            podman(
                "import",
                f"--change=ENV PATH={BASE_PATH}",
                '--change=CMD ["python"]',
                str(tarball),
                ref,
                timeout=600,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout or b"") + (exc.stderr or b"")
            log = rootfs / "debootstrap/debootstrap.log"  # where debootstrap says what failed
            if log.is_file():
                output += log.read_bytes()
            raise AssertionError(
                f"making the base image failed: {' '.join(map(str, exc.cmd))} exited "
                f"{exc.returncode}:\n{output[-6000:].decode(errors='replace')}"
            ) from exc
        finally:
            _remove_rootfs(workdir)
    return ref

"""The shipped systemd units, the single instance's and the template with one instance
per shard: systemd accepts them, their sandbox is strict (and the same), their command
lines and environment file are valid settings, and the exporter works inside their W^X
sandbox."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

from model_health_exporter.cli import main
from model_health_exporter.config import ENV_PREFIX, load_settings, parse_listen_address
from tests.support import cli_flags, free_port, good_metrics, wait_until, write_json

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "model-health-exporter.service"
TEMPLATE = REPO / "systemd" / "model-health-exporter@.service"
INSTANCE = "1"  # what the template's %i stands for here
SHARDS = "2"  # SHARDS=, as the environment file would set it for the template
ENV_FILE = REPO / "systemd" / "model-health-exporter.env"
CONSOLE_SCRIPT = Path(sys.executable).with_name("model-health-exporter")
MAX_EXPOSURE = 2.0  # systemd-analyze security: "OK" is below 4.0; this unit scores ~1.2

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Sections of key/value pairs in file order (keys repeat, e.g. Environment=)."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):  # continuation
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not Key=Value inside a section: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def instantiate(text: str) -> str:
    """The template as systemd reads it for instance INSTANCE (no-op for the plain unit)."""
    return text.replace("%i", INSTANCE)


@cache
def unit(path: Path = UNIT) -> Unit:
    return parse_unit(instantiate(path.read_text(encoding="utf-8")))


def service_values(key: str, path: Path = UNIT) -> list[str]:
    return [v for k, v in unit(path)["Service"] if k == key]


def service_value(key: str, path: Path = UNIT) -> str:
    values = service_values(key, path)
    assert len(values) == 1, f"[Service] {key}= is set {len(values)} times: {values}"
    return values[0]


# Every check of the sandbox runs on both units.
both_units = pytest.mark.parametrize("shipped", [UNIT, TEMPLATE], ids=["unit", "template"])


def parse_env_file(text: str, *, examples: bool = False) -> dict[str, str]:
    """VAR=value lines, or with `examples` the commented-out `#VAR=value` ones."""
    pattern = r"(#)?\s*([A-Z][A-Z0-9_]*)=(.*)"
    env: dict[str, str] = {}
    for line in text.splitlines():
        match = re.fullmatch(pattern, line.strip())
        if match and bool(match[1]) == examples:
            env[match[2]] = match[3].strip()
    return env


def env_file(*, examples: bool = False) -> dict[str, str]:
    return parse_env_file(ENV_FILE.read_text(encoding="utf-8"), examples=examples)


def unit_environment(path: Path = UNIT) -> dict[str, str]:
    """Environment= defaults, then the EnvironmentFile, as systemd layers them (for the
    template, with the SHARDS the environment file's example sets)."""
    env: dict[str, str] = {}
    for assignments in service_values("Environment", path):
        for word in shlex.split(assignments):
            name, _, value = word.partition("=")
            env[name] = value
    env.update(env_file())
    if path == TEMPLATE:
        env["SHARDS"] = env_file(examples=True)["SHARDS"]
    return env


def expand_exec(command: str, env: dict[str, str]) -> list[str]:
    """systemd's ExecStart expansion: ${VAR} is one word, $VAR splits into words."""
    words: list[str] = []
    for word in shlex.split(command):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", word):
            words.extend(env.get(word[1:], "").split())
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m[1]], word))
    return words


def flag_names(argv: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in argv if arg.startswith("--")]


# ---- the file itself ----------------------------------------------------------------


@both_units
def test_unit_is_notify_with_watchdog_and_reload(shipped: Path) -> None:
    assert service_value("Type", shipped) == "notify"
    assert service_value("NotifyAccess", shipped) == "main"
    assert int(service_value("WatchdogSec", shipped)) > 0
    assert service_value("ExecReload", shipped) == "/bin/kill -HUP $MAINPID"
    assert service_value("Restart", shipped) == "on-failure"
    assert "2" in service_value("RestartPreventExitStatus", shipped).split()  # config error
    assert "--state.dir=${STATE_DIRECTORY}" in shlex.split(service_value("ExecStart", shipped))
    # the single instance's settings are every shard's
    assert service_values("EnvironmentFile", shipped)[0] == "-/etc/default/model-health-exporter"


def test_unit_state_directory() -> None:
    assert service_value("StateDirectory") == "model-health-exporter"
    assert service_value("EnvironmentFile") == "-/etc/default/model-health-exporter"


def test_template_runs_one_shard_per_instance_with_its_own_state_and_port() -> None:
    """%i is the shard index; SHARDS (the shared environment file) the count; each
    instance its own state directory, address and optional environment file."""
    env = {**unit_environment(TEMPLATE), "STATE_DIRECTORY": "/var/lib/x"}
    argv = expand_exec(service_value("ExecStart", TEMPLATE), env)
    assert f"--models.shard={INSTANCE}/{SHARDS}" in argv
    assert service_value("StateDirectory", TEMPLATE) == f"model-health-exporter/shard-{INSTANCE}"
    assert service_values("EnvironmentFile", TEMPLATE)[1:] == [
        f"-/etc/default/model-health-exporter@{INSTANCE}"
    ]
    ports = set()
    for index in range(10):
        text = TEMPLATE.read_text(encoding="utf-8").replace("%i", str(index))
        env = {
            k: v
            for line in parse_unit(text)["Service"]
            if line[0] == "Environment"
            for k, _, v in [w.partition("=") for w in shlex.split(line[1])]
        }
        ports.add(parse_listen_address(env["SHARD_LISTEN_ADDRESS"]))
    assert len(ports) == 10, "two shards of ten listen on the same address"
    assert ("127.0.0.1", 9188) not in ports, "the single instance's port"


def test_template_without_shards_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A forgotten SHARDS= must stop the instance (exit 2, not restarted), naming it."""
    env = {**unit_environment(TEMPLATE), "SHARDS": "", "STATE_DIRECTORY": "/nonexistent"}
    argv = expand_exec(service_value("ExecStart", TEMPLATE), env)
    assert main([*argv[1:], "--models.dir=/"]) == 2
    assert "models.shard" in capsys.readouterr().err


def test_template_shares_every_other_setting_with_the_unit() -> None:
    """The sandbox is written twice (systemd has no include), so it is compared here:
    the template differs only in what makes an instance a shard."""
    per_shard = {"Description", "Documentation", "Environment", "EnvironmentFile", "ExecStart"}
    per_shard |= {"StateDirectory", "User"}
    for section in ("Unit", "Service", "Install"):
        single = [kv for kv in unit(UNIT)[section] if kv[0] not in per_shard]
        template = [kv for kv in unit(TEMPLATE)[section] if kv[0] not in per_shard]
        assert template == single, section
    environment = set(service_values("Environment", TEMPLATE))
    assert set(service_values("Environment", UNIT)) - environment == {
        "MHE_WEB__LISTEN_ADDRESS=127.0.0.1:9188"  # the template's comes from a flag
    }


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ],
)
@both_units
def test_hardening(key: str, expected: str, shipped: Path) -> None:
    assert service_value(key, shipped) == expected


@both_units
def test_syscall_filter_allows_only_system_service_calls(shipped: Path) -> None:
    assert service_values("SystemCallFilter", shipped)[0] == "@system-service"
    assert all(v.startswith("~") for v in service_values("SystemCallFilter", shipped)[1:])


@both_units
def test_models_dir_is_read_only_and_matches_the_default(shipped: Path) -> None:
    paths = service_values("ReadOnlyPaths", shipped)
    read_only = {p.lstrip("-") for v in paths for p in v.split()}
    models = unit_environment(shipped)["MHE_MODELS__DIRS"].split(":")
    assert set(models) <= read_only, f"models dirs {models} not all in ReadOnlyPaths"


@both_units
def test_exec_start_flags_are_cli_options(shipped: Path) -> None:
    env = {**unit_environment(shipped), "STATE_DIRECTORY": "/var/lib/model-health-exporter"}
    examples = env_file(examples=True)
    for args in {env["ARGS"], examples["ARGS"]}:
        argv = expand_exec(service_value("ExecStart", shipped), {**env, "ARGS": args})
        assert Path(argv[0]).name == "model-health-exporter"
        unknown = set(flag_names(argv[1:])) - cli_flags()
        assert not unknown, f"ExecStart uses flags --help does not list: {sorted(unknown)}"
    assert "--config.file" in flag_names(examples["ARGS"].split())


def test_environment_variables_are_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every MHE_* of the unit and of the env file (commented examples too) is a setting
    with a valid value; path settings point at temporary directories here."""
    env = {**unit_environment()}
    env.update(env_file(examples=True))
    settings_env = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    assert "MHE_MODELS__DIRS" in settings_env and "MHE_WEB__LISTEN_ADDRESS" in settings_env
    models = tmp_path / "models"
    models.mkdir()
    settings_env["MHE_MODELS__DIRS"] = str(models)
    if "MHE_LOGS__PATHS" in settings_env:
        pattern = Path(settings_env["MHE_LOGS__PATHS"])
        settings_env["MHE_LOGS__PATHS"] = str(tmp_path / pattern.name)
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings({})  # raises ConfigError naming any unknown or bad one
    assert settings.models.dirs == [models]
    assert settings.web.listen_address == env["MHE_WEB__LISTEN_ADDRESS"]


# ---- systemd's own checks -----------------------------------------------------------


def _unit_for_this_host(tmp_path: Path, shipped: Path) -> Path:
    """systemd-analyze checks that ExecStart's binary exists: point it at this venv's.
    Returns the unit to check: for the template, its instance INSTANCE (systemd finds
    the template beside it)."""
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"{CONSOLE_SCRIPT} not installed")
    installed = shlex.split(service_value("ExecStart", shipped))[0]
    copy = tmp_path / shipped.name
    copy.write_text(shipped.read_text(encoding="utf-8").replace(installed, str(CONSOLE_SCRIPT)))
    return copy.with_name(copy.name.replace("@.", f"@{INSTANCE}."))


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:  # scripts/install-system-deps.sh (make test) installs it
        pytest.fail("systemd-analyze not found on PATH: install the Debian package 'systemd'")
    return tool


def _verify(tool: str, unit_file: Path, shipped: Path) -> str:
    """systemd-analyze verify's complaints about `unit_file`, a copy of `shipped` ("" when none)."""
    result = subprocess.run(
        [tool, "verify", str(unit_file)],
        capture_output=True,
        text=True,
        check=False,
        cwd=unit_file.parent,
    )
    output = result.stdout + result.stderr
    return output if result.returncode != 0 or shipped.name in output else ""


@both_units
def test_systemd_analyze_verify(tmp_path: Path, shipped: Path) -> None:
    tool = _systemd_analyze()
    copy = _unit_for_this_host(tmp_path, shipped)
    assert _verify(tool, copy, shipped) == ""


@pytest.mark.parametrize(
    ("setting", "broken"),
    [("Type=notify", "Type=notfiy"), ("Restart=on-failure", "Restart=on-falure")],
)
def test_systemd_analyze_verify_catches_a_broken_unit(
    tmp_path: Path, setting: str, broken: str
) -> None:
    """The check above is not vacuous: with the binary path substituted, what is left
    to complain about is the unit itself."""
    tool = _systemd_analyze()
    copy = _unit_for_this_host(tmp_path, UNIT)
    text = copy.read_text(encoding="utf-8")
    assert f"\n{setting}\n" in text
    copy.write_text(text.replace(f"\n{setting}\n", f"\n{broken}\n"))
    assert broken.split("=")[1] in _verify(tool, copy, UNIT)


@both_units
def test_systemd_analyze_security_exposure(tmp_path: Path, shipped: Path) -> None:
    tool = _systemd_analyze()
    copy = _unit_for_this_host(tmp_path, shipped)
    result = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    if match is None and "--offline" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    assert match, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout


# ---- MemoryDenyWriteExecute=yes is safe for our dependencies ------------------------

PT_GNU_STACK = 0x6474E551
PF_X = 1


def _requires_executable_stack(path: Path) -> bool:
    """True when an ELF object's PT_GNU_STACK asks for an executable stack: loading it
    needs mprotect(PROT_EXEC) on the stack, which MemoryDenyWriteExecute refuses."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only (all our wheels)
        return False
    endian = "<" if data[5] == 1 else ">"
    phoff = struct.unpack_from(endian + "Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    for i in range(phnum):
        p_type, p_flags = struct.unpack_from(endian + "II", data, phoff + i * phentsize)
        if p_type == PT_GNU_STACK:
            return bool(p_flags & PF_X)
    return True  # no PT_GNU_STACK: the loader assumes an executable stack


def _runtime_distributions() -> set[str]:
    """model-health-exporter and its non-optional dependencies, recursively."""
    seen: set[str] = set()
    todo = ["model-health-exporter"]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def test_no_runtime_library_needs_an_executable_stack() -> None:
    objects = []
    for name in _runtime_distributions():
        dist = metadata.distribution(name)
        for file in dist.files or []:
            if re.search(r"\.so(\.|$)", file.name):
                objects.append(Path(str(dist.locate_file(file))))
    assert any("numpy" in str(p) for p in objects), "found no numpy extension modules"
    offenders = [str(p) for p in objects if p.is_file() and _requires_executable_stack(p)]
    assert not offenders, f"need an executable stack (breaks MemoryDenyWriteExecute): {offenders}"


# The kernel's own W^X switch (Linux >= 6.3), inherited across execve: like systemd's
# seccomp filter it refuses writable+executable mappings and making memory executable.
_SANDBOX = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 38, 65, 1
for option, value in ((PR_SET_NO_NEW_PRIVS, 1), (PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)):
    if libc.prctl(option, value, 0, 0, 0) != 0:
        sys.exit(f"prctl({option}) failed: {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[1], sys.argv[1:])
"""
_SANDBOX_UNAVAILABLE = 97


def _sandboxed(argv: list[str]) -> list[str]:
    probe = subprocess.run(
        [sys.executable, "-c", _SANDBOX, "/bin/true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"PR_SET_MDWE unavailable (Linux < 6.3?): {probe.stderr.decode()}")
    return [sys.executable, "-c", _SANDBOX, *argv]


def _scientific_imports() -> list[str]:
    """numpy/scipy modules our sources import (parsed, so new ones are covered)."""
    modules = {"numpy", "scipy"}
    for path in (REPO / "src" / "model_health_exporter").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
            elif isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
    return sorted(m for m in modules if m.split(".")[0] in {"numpy", "scipy"})


def test_scientific_stack_works_without_writable_executable_memory() -> None:
    code = (
        "import importlib, sys, mmap\n"
        "for name in sys.argv[1:]: importlib.import_module(name)\n"
        "import numpy as np, scipy.stats as st\n"
        "rng = np.random.default_rng(1)\n"
        "a, b = rng.normal(size=500), rng.normal(0.3, 1, size=500)\n"
        "print(st.ks_2samp(a, b).pvalue, np.linalg.inv(np.eye(4) * 2).sum())\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except OSError:\n"
        "    print('W^X enforced')\n"
    )
    result = subprocess.run(
        _sandboxed([sys.executable, "-c", code, *_scientific_imports()]),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "W^X enforced" in result.stdout  # else this test proves nothing


class Notifications:
    """The notify socket the unit's systemd would listen on, read with a deadline that
    fails at once, with the daemon's log, when the daemon exits instead."""

    def __init__(self, sock: socket.socket, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.sock, self.proc, self.log = sock, proc, log

    def wait_for(self, wanted: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                if wanted in self.sock.recv(4096):
                    return
            except TimeoutError:
                if self.proc.poll() is not None:
                    break
        raise AssertionError(
            f"no {wanted!r} within {timeout}s (exit code {self.proc.poll()}):\n"
            + self.log.read_text(errors="replace")
        )


@both_units
def test_exporter_runs_as_the_unit_starts_it(tmp_path: Path, shipped: Path) -> None:
    """ExecStart with the unit's environment and env file, NOTIFY_SOCKET and the
    unit's WatchdogSec, under W^X and no-new-privileges: ready, serving, reloads on
    ExecReload's SIGHUP, stops cleanly on SIGTERM. The template's instance exports its
    shard of the models only."""
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"{CONSOLE_SCRIPT} not installed")
    models, state = tmp_path / "models", tmp_path / "state"
    write_json(models / "fraud" / "v1" / "metrics.json", good_metrics("v1"))  # shard 1 of 2
    write_json(models / "routing" / "v1" / "metrics.json", good_metrics("v1"))  # shard 0
    state.mkdir()
    config = tmp_path / "config.yml"
    config.write_text("baselines: {}\n")
    port = free_port()
    env = {
        **unit_environment(shipped),
        "MHE_MODELS__DIRS": str(models),
        "MHE_WEB__LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "ARGS": f"--config.file={config}",
        "STATE_DIRECTORY": str(state),
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": str(int(service_value("WatchdogSec", shipped)) * 1_000_000),
    }
    if shipped == TEMPLATE:
        env["SHARD_LISTEN_ADDRESS"] = env.pop("MHE_WEB__LISTEN_ADDRESS")
    argv = expand_exec(service_value("ExecStart", shipped), env)
    argv[0] = str(CONSOLE_SCRIPT)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    log_path = tmp_path / "daemon.log"
    log = log_path.open("wb")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(env["NOTIFY_SOCKET"])
        proc = subprocess.Popen(
            _sandboxed(argv), env={**base_env, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        notifications = Notifications(sock, proc, log_path)
        try:
            notifications.wait_for(b"READY=1")
            wait_until(
                lambda: b"routing_ml_model_accuracy" in _get(port, "/metrics"),
                10,
                "metrics of the example model",
            )
            metrics = _get(port, "/metrics").decode()
            assert 'model="fraud"' in metrics
            assert ('model="routing"' in metrics) is (shipped == UNIT)
            shard = (INSTANCE, SHARDS) if shipped == TEMPLATE else ("0", "1")
            assert f'exporter_shard_info{{shard="{shard[0]}",shards="{shard[1]}"}} 1.0' in metrics
            proc.send_signal(signal.SIGHUP)  # what ExecReload sends
            notifications.wait_for(b"RELOADING=1")
            notifications.wait_for(b"READY=1")  # reloaded, config file and all
            proc.send_signal(signal.SIGTERM)
            notifications.wait_for(b"STOPPING=1")
            rc = proc.wait(20)
            assert rc == 0, log_path.read_text(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            log.close()
    assert any(state.iterdir()), "the final checkpoint is not in the state directory"


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        body: bytes = response.read()
        return body

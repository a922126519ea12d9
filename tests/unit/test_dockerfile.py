"""The Dockerfile, checked without a Docker engine: stages, user, copied paths against
.dockerignore and what the build needs, settings, and the HEALTHCHECK command run for
real against the exporter."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from model_health_exporter.config import ENV_PREFIX, load_settings, parse_listen_address
from tests.support import RunningDaemon, cli_flags, free_port, good_metrics, write_json

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
COMMANDS = {"run", "validate", "check", "demo"}


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case
    args: str
    stage: int  # index of the FROM it belongs to


@cache
def instructions() -> tuple[Instruction, ...]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    logical = ""
    stage = -1
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comment lines inside a continuation are dropped too
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        name, _, args = line.partition(" ")
        if name.upper() == "FROM":
            stage += 1
        out.append(Instruction(name.upper(), args.strip(), stage))
    assert not logical, "the Dockerfile ends inside a continuation"
    return tuple(out)


def of(name: str, stage: int | None = None) -> list[Instruction]:
    return [i for i in instructions() if i.name == name and (stage is None or i.stage == stage)]


def final_stage() -> int:
    return max(i.stage for i in instructions())


def words(args: str) -> list[str]:
    """Exec form (JSON array) or shell form of CMD, ENTRYPOINT, HEALTHCHECK CMD."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(args)


def options(args: str) -> tuple[dict[str, str], str]:
    """Leading --key=value options of an instruction, and the rest."""
    opts: dict[str, str] = {}
    rest = args.split()
    while rest and rest[0].startswith("--"):
        key, _, value = rest.pop(0)[2:].partition("=")
        opts[key] = value
    return opts, " ".join(rest)


def env_assignments(stage: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in of("ENV", stage):
        for word in shlex.split(instruction.args):
            name, sep, value = word.partition("=")
            assert sep, f"use ENV NAME=value: {instruction.args!r}"
            env[name] = value
    return env


# ---- stages and user --------------------------------------------------------------------


def test_multi_stage_build_on_a_supported_python() -> None:
    froms = of("FROM")
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    args = {k: v for i in instructions() if i.name == "ARG" for k, _, v in [i.args.partition("=")]}
    build_alias = froms[0].args.split()[-1]
    assert froms[0].args.split()[-2].upper() == "AS", "name the build stage"
    for instruction in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], instruction.args.split()[0])
        match = re.fullmatch(r"python:(\d+)\.(\d+)[\w.-]*", image)
        assert match, f"not an official python image: {image}"
        assert (int(match[1]), int(match[2])) >= (3, 11), image  # requires-python >= 3.11
        assert "slim" in image, f"runtime should be slim: {image}"
    final = final_stage()
    from_build = [
        i
        for i in instructions()
        if i.stage == final and re.search(rf"(--from|from)={build_alias}\b", i.args)
    ]
    assert from_build, "the runtime stage takes nothing from the build stage"
    assert any("pip wheel" in i.args for i in of("RUN", 0)), "the build stage builds no wheel"


def test_runs_as_a_non_root_user() -> None:
    users = of("USER", final_stage())
    assert users, "no USER in the runtime stage: it would run as root"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    # numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd
    assert user.isdigit() and int(user) >= 1000


# ---- what is copied ---------------------------------------------------------------------


def ignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def _glob_regex(pattern: str) -> str:
    """Go's filepath.Match plus Docker's `**` (any number of directories)."""
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    tokens = re.split(r"(\*\*/?|\*|\?)", pattern)
    return "".join(wildcards.get(token, re.escape(token)) for token in tokens)


def is_ignored(relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches the contents
    of a matched directory."""
    ignored = False
    parts = relative.split("/")
    for negated, pattern in ignore_patterns():
        regex = _glob_regex(pattern)
        for depth in range(1, len(parts) + 1):
            if re.fullmatch(regex, "/".join(parts[:depth])):
                ignored = not negated
                break
    return ignored


def copied_sources() -> list[str]:
    sources = []
    for instruction in of("COPY") + of("ADD"):
        opts, rest = options(instruction.args)
        if "from" in opts:
            continue  # from another stage, not the build context
        sources.extend(words(rest)[:-1])
    return sources


def test_copied_paths_exist_and_are_in_the_build_context() -> None:
    sources = copied_sources()
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: no such path in the repository"
        assert not is_ignored(source.strip("/")), f"COPY {source}: excluded by .dockerignore"


def test_build_context_holds_what_the_wheel_build_reads() -> None:
    needed = ["pyproject.toml", PYPROJECT["project"]["readme"]]
    where = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]
    needed += [f"{w}/model_health_exporter/__init__.py" for w in where]
    needed += [f"{w}/model_health_exporter/py.typed" for w in where]
    copied = [s.strip("/").removeprefix("./") for s in copied_sources()]
    for path in needed:
        assert (REPO / path).exists(), path
        assert not is_ignored(path), f"{path} is excluded by .dockerignore"
        assert any(path == c or path.startswith(c + "/") for c in copied), (
            f"{path} is needed by the wheel build but not copied"
        )


@pytest.mark.parametrize(
    "path", [".venv/bin/python", ".git/HEAD", "tests/conftest.py", "src/x/__pycache__/a.pyc"]
)
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    assert is_ignored(path)


# ---- how it starts ----------------------------------------------------------------------


def test_entrypoint_is_the_console_script_and_flags_are_cli_options() -> None:
    final = final_stage()
    (entrypoint,) = of("ENTRYPOINT", final)
    (cmd,) = of("CMD", final)
    argv = words(entrypoint.args) + words(cmd.args)
    assert argv[0] in PYPROJECT["project"]["scripts"], argv
    # a command first, so that `docker run IMAGE validate /models` replaces it cleanly
    assert argv[1] in COMMANDS, f"CMD should start with a command, got {argv[1:]}"
    flags = {a.split("=", 1)[0] for a in argv[2:] if a.startswith("--")}
    assert flags <= cli_flags(), f"not options of the CLI: {sorted(flags - cli_flags())}"


def test_environment_defaults_are_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in env_assignments(final_stage()).items() if k.startswith(ENV_PREFIX)}
    assert env, "no MHE_* defaults"
    (tmp_path / "models").mkdir()
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # it must exist to validate; the image creates it
    monkeypatch.setenv("MHE_MODELS__DIRS", str(tmp_path / "models"))
    settings = load_settings({})  # raises ConfigError naming any unknown or bad one
    host, port = parse_listen_address(settings.web.listen_address)
    assert host == "", "inside the container the exporter must listen on all interfaces"
    exposed = {p.split("/")[0] for i in of("EXPOSE", final_stage()) for p in i.args.split()}
    assert exposed == {str(port)}
    volumes = {v for i in of("VOLUME", final_stage()) for v in words(i.args)}
    assert settings.state.dir is not None
    assert {env["MHE_MODELS__DIRS"], str(settings.state.dir)} <= volumes


# ---- the health check, for real ---------------------------------------------------------


def healthcheck_argv() -> list[str]:
    (instruction,) = of("HEALTHCHECK", final_stage())
    opts, rest = options(instruction.args)
    assert {"interval", "timeout", "retries"} <= set(opts)
    kind, _, command = rest.partition(" ")
    assert kind == "CMD"
    argv = words(command)
    assert argv[0] == "python", "the runtime image has python, not curl or wget"
    return [sys.executable, *argv[1:]]


def _health_exit_code(listen: str) -> int:
    env = {**os.environ, "MHE_WEB__LISTEN_ADDRESS": listen}
    return subprocess.run(
        healthcheck_argv(), env=env, capture_output=True, check=False, timeout=30
    ).returncode


def test_healthcheck_passes_against_a_serving_exporter(
    tmp_path: Path, start_daemon: Callable[..., RunningDaemon]
) -> None:
    models = tmp_path / "models"
    write_json(models / "m" / "v1" / "metrics.json", good_metrics())
    daemon = start_daemon(f"--models.dir={models}")
    # the check reads the port from the image's listen address, e.g. ":9188"
    assert _health_exit_code(f":{daemon.port}") == 0


def test_healthcheck_fails_when_nothing_serves() -> None:
    assert _health_exit_code(f":{free_port()}") != 0

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import RunningDaemon


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., RunningDaemon]]:
    """Start daemons with extra flags; each is stopped by PID when the test ends."""
    started: list[RunningDaemon] = []

    def start(
        *args: str,
        ready: bool = True,
        env: dict[str, str] | None = None,
        wrapper: tuple[str, ...] = (),
    ) -> RunningDaemon:
        daemon = RunningDaemon(tmp_path, args, env, wrapper)
        started.append(daemon)
        if ready:
            daemon.wait_ready()
        return daemon

    yield start
    for daemon in started:
        daemon.stop()

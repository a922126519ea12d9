"""Fixtures for end-to-end tests: a models directory and an unstarted Stack on top of it."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from .stack import ModelsDir, Stack

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def models(tmp_path: Path) -> ModelsDir:
    return ModelsDir(tmp_path / "models")


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path, models: ModelsDir) -> Iterator[Stack]:
    """Write the initial model files, then call stack.start(). On failure the process logs
    and webhook payloads are printed (pytest shows them under "Captured stdout teardown")."""
    stack = Stack(workdir=tmp_path / "stack", models_dir=models.root)
    yield stack
    stack.stop()
    if any(report.failed for report in request.node.stash.get(_REPORTS, {}).values()):
        print(stack.report())

"""The daemon freezes what start-up built out of the cyclic GC's full collections (see
`daemon._settle_heap` and docs/benchmarks.md section 3)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from model_health_exporter import daemon


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # leave the test process as it was
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("unfrozen")
def test_garbage_is_collected_before_the_heap_is_frozen() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the cyclic GC frees it
    dead = weakref.ref(a)
    kept = _Node()
    del a, b
    daemon._settle_heap()
    assert dead() is None  # collected, not frozen for the process's lifetime
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(kept)
    assert not any(o is kept for o in gc.get_objects())  # frozen: no collection walks it
    assert gc.get_threshold()[0] == daemon.GC_YOUNG_OBJECTS  # young collections less often

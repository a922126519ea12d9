"""Thread-safe monotonic counters of the exporter's own problems."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType


class LabelledCounter:
    """Counts per label tuple; pre-initialised keys are exported as 0 from the start,
    so that `rate()` and `increase()` see the first error."""

    def __init__(self, initial: Iterable[tuple[str, ...]] = ()) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], float] = dict.fromkeys(initial, 0.0)

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def values(self) -> Mapping[tuple[str, ...], float]:
        with self._lock:
            return MappingProxyType(dict(self._values))

"""The daemon's computation once, without a server or threads: one scan of the model
directories, the prediction logs read once to their end, one refresh of every view, and
the snapshot the daemon would publish (`model-health-exporter inspect`).

The daemon's own parts do the work (registry, ingester, health views), configured by the
same settings, so what this returns is what `/api/v1/models` serves for the same files."""

from __future__ import annotations

import glob
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from model_health_exporter.config import Settings
from model_health_exporter.daemon import ingest_config, registry_config
from model_health_exporter.exposition.pages import Live
from model_health_exporter.sources.prediction_logs import list_log_files
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import (
    DROP_LIMIT_FEATURES,
    LOG_DIRS,
    IngestWorker,
)
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    Snapshot,
    initial_error_keys,
)

Progress = Callable[[int, int], None]
"""Called with (bytes read, bytes to read) of the prediction logs as reading goes on."""

# A round that reads nothing while a file still looks behind: its last line is still
# being written (no newline yet). The daemon would wait for the rest; a single pass stops.
_IDLE_ROUNDS: Final = 2


@dataclass(frozen=True, slots=True)
class Inspection:
    snapshot: Snapshot
    live: Live
    errors: LabelledCounter  # (source, reason) -> count, as routing_ml_exporter_errors_total
    lines: int  # log lines read


def _gzip_size(path: Path) -> int:
    """A gzip file's decompressed size (its trailer holds it modulo 2^32): for progress."""
    try:
        with path.open("rb") as f:
            f.seek(-4, 2)
            return int(struct.unpack("<I", f.read(4))[0])
    except (OSError, struct.error):
        return 0


def _size(path: Path) -> int:
    if path.suffix == ".gz":
        return _gzip_size(path)
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_bytes(snapshot: Snapshot, patterns: Iterable[str]) -> int:
    """Bytes in the log files the ingester will read (decompressed for gzip)."""
    files = [
        path
        for view in snapshot.versions()
        for name in LOG_DIRS
        for path in list_log_files(view.directory / name)
    ]
    for pattern in patterns:
        files += [Path(p) for p in glob.glob(pattern)]  # noqa: PTH207 - a user's glob pattern
    return sum(map(_size, files))


def inspect_models(settings: Settings, progress: Progress | None = None) -> Inspection:
    """Scan, read every log once, refresh: the daemon's state after it caught up."""
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in (*DROP_LIMITS, DROP_LIMIT_FEATURES))
    registry = ModelRegistry(registry_config(settings), errors, dropped)
    registry.full_scan()
    # No checkpoint (nothing is saved, nothing earlier is trusted), and window summaries
    # only once at the end rather than while reading.
    config = replace(ingest_config(settings), state_dir=None, summary_interval=math.inf)
    ingest = IngestWorker(config, lambda: registry.snapshot, errors, dropped)
    total = log_bytes(registry.snapshot, settings.logs.paths) if progress else 0
    lines = ingest.poll_once()
    idle = 0
    while ingest.behind and idle < _IDLE_ROUNDS:
        if progress is not None:
            progress(ingest.bytes_read, total)
        read = ingest.poll_once(behind_only=True)
        lines += read
        idle = 0 if read else idle + 1
    if progress is not None:
        progress(ingest.bytes_read, max(total, ingest.bytes_read))
    ingest.refresh()
    return Inspection(registry.snapshot, Live(ingest.tallies, ingest.health), errors, lines)

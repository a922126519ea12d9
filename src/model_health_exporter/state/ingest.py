"""The prediction-log ingester: one thread that tails `<version>/predictions/` and
`<version>/feedback/` of every known model version, tallies what it reads, and saves
read positions and tallies together in one atomic checkpoint.

Exactly once: a chunk's lines are tallied, then its position is advanced, both in
memory; the checkpoint writes positions and tallies of the same moment. After a crash
(even `kill -9`) the last checkpoint comes back and the lines after it are read again,
so every line is counted once."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple, cast

import msgspec
import structlog

from model_health_exporter import heap
from model_health_exporter.fsutil import atomic_write_chunks
from model_health_exporter.records import (
    LINE_ERROR_REASONS,
    Decode,
    Feedback,
    Prediction,
    in_line_order,
    parse_lines,
    typed_decoder,
)
from model_health_exporter.schema import excerpt
from model_health_exporter.sharding import Shard
from model_health_exporter.sources.prediction_logs import (
    FORGET_AFTER_SECONDS,
    READ_BYTES,
    Chunk,
    LogTail,
    Position,
)
from model_health_exporter.sources.reference import (
    ERROR_REASONS as REFERENCE_ERROR_REASONS,
)
from model_health_exporter.sources.reference import (
    ReferenceError,
    ReferenceProfileFile,
    find_reference,
    read_reference,
)
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.health import HealthConfig, HealthInputs, HealthView, health_view
from model_health_exporter.state.live import (
    DEFAULT_CONFIDENCE_BUCKETS,
    DEFAULT_LATENCY_BUCKETS,
    TalliesView,
    VersionTallies,
    run_facts,
)
from model_health_exporter.state.registry import ModelView, Snapshot
from model_health_exporter.state.shared_references import shared
from model_health_exporter.state.windows import LiveWindow, WindowConfig, WindowSummary, summaries
from model_health_exporter.stats.reference import ModelReference, build_reference

log = structlog.get_logger(__name__)

CHECKPOINT_FILE: Final = "checkpoint.json"
# 2: closed buckets saved as their packed bytes (`LiveWindow.to_dict`); 1 still loads.
CHECKPOINT_FORMAT: Final = 2
_LOADABLE_FORMATS: Final = (1, 2)
LOG_DIRS: Final = ("predictions", "feedback")  # in this order: a prediction before its feedback
_LOG_DIR_NAMES: Final = frozenset(LOG_DIRS)
ERROR_SOURCE: Final = "prediction_log"
REFERENCE_SOURCE: Final = "reference"
_LOG_EVERY_SECONDS: Final = 10.0
# The checkpoint cannot be saved: counted at every attempt, logged at most this often.
STATE_SOURCE: Final = "state_dir"
STATE_ERROR_REASONS: Final = ("permission_denied", "unwritable")
_STATE_LOG_EVERY_SECONDS: Final = 300.0
# A version's predictions/ or feedback/ folder, or a log file in one, that is a symlink
# leading out of the models directories: not read (unless the user allows it).
OUTSIDE_ROOT: Final = "outside_root"
# The shortest record lines (`{"id":"1","prediction":1}`, `{"id":"1","actual":1}`): a read
# of `room` times this many bytes holds at most `room` records.
_MIN_LINE_BYTES: Final = {"predictions": 24, "feedback": 20}
_PARTNER: Final = {"predictions": "feedback", "feedback": "predictions"}

VersionKey = tuple[str, str]  # (model, version)


# Label of routing_ml_exporter_dropped_total: features of a reference beyond
# --drift.max-features (the most frequent kept), counted once per reference built.
DROP_LIMIT_FEATURES: Final = "max_features"


def initial_error_keys() -> list[tuple[str, str]]:
    return (
        [(ERROR_SOURCE, reason) for reason in LINE_ERROR_REASONS]
        + [(REFERENCE_SOURCE, reason) for reason in REFERENCE_ERROR_REASONS]
        + [(STATE_SOURCE, reason) for reason in STATE_ERROR_REASONS]
        + [(ERROR_SOURCE, OUTSIDE_ROOT)]
    )


# A reference file as last seen: path, modification time, size.
_Stamp = tuple[str, int, int]


def _is_dir(path: Path) -> bool:
    """False also for a folder that cannot be searched (the registry counts that one):
    one unreadable version must not stop the ingestion of all the others."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    state_dir: Path | None
    poll_interval: float = 0.5
    checkpoint_interval: float = 5.0
    max_line_bytes: int = 64 * 1024
    max_error_types: int = 20
    window: WindowConfig = field(default_factory=WindowConfig)
    paths: tuple[str, ...] = ()  # globs of logs outside the version folders
    latency_buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
    confidence_buckets: tuple[float, ...] = DEFAULT_CONFIDENCE_BUCKETS
    summary_refresh: float = 10.0  # seconds: windows also change as time passes
    # While lines stream in, a window's summary (drift tests, merged buckets: far more
    # than tallying a chunk) is recomputed at most this often; counters are always fresh,
    # and the first poll that finds nothing new brings the summaries up to date.
    summary_interval: float = 1.0
    health: HealthConfig = field(default_factory=HealthConfig)
    # the read position of a log file gone this long is dropped
    forget_logs_after: float = FORGET_AFTER_SECONDS
    # Records in logs outside the version folders go to the shard of the model they name;
    # lines that name none, or are not a valid record, are counted by shard 0.
    shard: Shard = field(default_factory=Shard)
    # Seconds between looks for new log folders and files, and for changed reference
    # files, when nothing said where to look. The daemon tells of them as they come (file
    # events: `notify`) and sets this long, as a safety net; alone, a worker looks often.
    rediscover_interval: float = 1.0
    # Seconds between giving the heap's freed pages back to the system (`heap`) while
    # lines arrive: ingesting, the refreshes and checkpoints that follow leave freed
    # blocks between the windows' long-lived ones. Idle, nothing is freed and nothing
    # is done.
    heap_trim_interval: float = 5.0


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _window_json(window: LiveWindow) -> bytes:
    data = window.to_dict()
    pending = data.pop("pending")
    # The pending joins are most of a window, and finite numbers only (times, class
    # indices or logged outputs, probabilities): msgspec writes them ten times faster
    # than json, which is kept for the rest (it writes an infinite sum as Infinity,
    # msgspec as null).
    return _json(data)[:-1] + b',"pending":' + msgspec.json.encode(pending) + b"}"


def _view_current(view: TalliesView, window: LiveWindow, summary: WindowSummary) -> bool:
    """Whether `view` (of tallies that did not change since) still says what the window
    does: the same summary, and the join counts that time alone moves (waits expiring)."""
    return (
        view.window is summary
        and view.feedback_matched == window.matched
        and view.feedback_expired == window.expired
        and view.feedback_unmatched == window.unmatched
        and view.feedback_waiting == window.feedback_waiting
    )


def _position(saved: list[Any]) -> Position:
    """A position as saved: [offset, line, finished, check]; checkpoints written before
    the check was kept have three items, and their offsets are trusted as they are."""
    check = saved[3] if len(saved) > 3 else None
    if check is not None and not isinstance(check, str):
        raise ValueError(f"position check {check!r} is not a string")
    return Position(int(saved[0]), int(saved[1]), bool(saved[2]), check)


def _position_json(p: Position) -> list[object]:
    return [p.offset, p.line, p.finished, p.check]


def _check_format(data: object, shard: Shard) -> None:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") not in _LOADABLE_FORMATS:
        raise ValueError(f"unknown checkpoint format {data.get('format')!r}")
    # Positions in shared logs are only right for the shard that read them.
    saved = data.get("shard", str(Shard()))
    if saved != str(shard):
        raise ValueError(
            f"it was written by shard {saved}, not {shard}: give each shard its own --state.dir"
        )


class _Decoders(NamedTuple):
    """A version's typed decoders (`IngestWorker._decoders`)."""

    reference: ModelReference  # the reference they decode against
    decode: Decode
    fallback: Decode | None  # for the lines `decode` rejects
    in_line_order: bool  # their features follow the order the lines write them in


class IngestWorker:
    """Owns the tails and tallies; `tallies` (an immutable mapping) may be read from any
    thread. `stop()` writes a final checkpoint."""

    def __init__(
        self,
        config: IngestConfig,
        snapshot: Callable[[], Snapshot],
        errors: LabelledCounter,
        dropped: LabelledCounter | None = None,
        arm: Callable[[Path], bool] | None = None,
        *,
        on_checkpoint: Callable[[Mapping[str, Mapping[str, Position]]], None] | None = None,
    ) -> None:
        """`arm`, if given, is called with a log folder just before its files are read;
        it returns whether the next append there will be told by `notify` (a file event).
        Then a folder is read only when told, and otherwise at every poll.
        `on_checkpoint`, if given, is called after each saved checkpoint with the read
        positions of the `paths` logs it holds (by pattern), e.g. to delete what was read."""
        self._config = config
        self._on_checkpoint = on_checkpoint
        self._arm = arm
        self._snapshot = snapshot
        self._errors = errors
        self._dropped = LabelledCounter() if dropped is None else dropped
        self._tails: dict[str, LogTail] = {}
        # Logs outside the version folders: their records name model and version.
        self._path_tails = {
            pattern: LogTail(
                Path(pattern).parent,
                max_line_bytes=config.max_line_bytes,
                pattern=Path(pattern).name,
                forget_after=config.forget_logs_after,
            )
            for pattern in config.paths
        }
        self._tallies: dict[VersionKey, VersionTallies] = {}
        # Per version, the decoders of the reference its lines were last decoded against.
        self._decoder_cache: dict[VersionKey, _Decoders] = {}
        self._windows: dict[VersionKey, LiveWindow] = {}
        self._views: dict[VersionKey, TalliesView] = {}
        self._changed: set[VersionKey] = set()
        # The window summary each view holds, and when it was computed (monotonic);
        # versions whose view holds an older summary than their window's state.
        self._summaries: dict[VersionKey, tuple[float, WindowSummary]] = {}
        self._stale_summaries: set[VersionKey] = set()
        self._saved_positions: dict[str, dict[str, Position]] = {}
        self._held: set[str] = set()  # tails not read in the last round (_read_limit 0)
        self._held_before: set[str] = set()  # the same, the round before
        self._last_error_log = 0.0
        self._reference_stamps: dict[VersionKey, _Stamp | None] = {}
        self._synced_models: object = None
        self._synced_versions: frozenset[tuple[str, str, Path]] = frozenset()
        self._next_rediscovery = 0.0
        self._tail_versions: dict[str, VersionKey] = {}
        # Paths the file events named since the last poll, or None: look everywhere.
        self._events_lock = threading.Lock()
        self._event_paths: set[Path] | None = None
        # Something the checkpoint holds changed since it was last written.
        self._unsaved = False
        # Tails to read at the next poll even if no event names their folder: new, not
        # read to their end, or without a watch.
        self._unsettled: set[LogTail] = set(self._path_tails.values())
        self._outside_root: set[Path] = set()  # log paths refused, each reported once
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self.tallies: Mapping[VersionKey, TalliesView] = MappingProxyType({})
        # Active versions and versions with logs; rebuilt with the tallies.
        self.health: Mapping[VersionKey, HealthView] = MappingProxyType({})
        self._health_inputs: dict[VersionKey, HealthInputs] = {}
        # False while the checkpoint cannot be written to the state dir (the daemon counts
        # on, but a restart would count again what came after the last save).
        self.state_writable = True
        self._next_state_log = 0.0
        self._load_checkpoint()
        self._probe_state_dir()

    # ---- checkpoint ---------------------------------------------------------------------

    @property
    def _checkpoint_path(self) -> Path | None:
        d = self._config.state_dir
        return None if d is None else d / CHECKPOINT_FILE

    def _load_checkpoint(self) -> None:
        path = self._checkpoint_path
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_bytes())
            _check_format(data, self._config.shard)
            for key, positions in data["positions"].items():
                self._saved_positions[key] = {fp: _position(p) for fp, p in positions.items()}
            for key, tallies in data["tallies"].items():
                model, version = key.split("/", 1)
                self._tallies_for((model, version)).load(tallies)
            for pattern, positions in data.get("path_positions", {}).items():
                if pattern in self._path_tails:
                    self._path_tails[pattern].positions = {
                        fp: _position(p) for fp, p in positions.items()
                    }
            for key, window in data["windows"].items():
                model, version = key.split("/", 1)
                self._load_window((model, version), window)
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            AttributeError,  # a list where an object belongs, e.g. "positions": []
            RecursionError,  # nested far too deep to be ours
        ) as exc:
            # Starting over would count every line again; refuse to guess.
            raise RuntimeError(
                f"checkpoint {path} is unreadable ({exc}); move it away to start counting anew"
            ) from exc
        self._publish(everything=True)
        log.info(
            "checkpoint loaded", path=str(path), files=sum(map(len, self._saved_positions.values()))
        )

    def _probe_state_dir(self) -> None:
        """Find out at start, not at the first checkpoint, whether the state dir takes one."""
        path = self._checkpoint_path
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
            os.close(fd)
            Path(probe).unlink()
        except OSError as exc:
            self._state_unwritable(path, exc)

    def _state_unwritable(self, path: Path, exc: OSError) -> None:
        reason = "permission_denied" if isinstance(exc, PermissionError) else "unwritable"
        self._errors.inc((STATE_SOURCE, reason))
        now = time.monotonic()
        if self.state_writable or now >= self._next_state_log:
            self._next_state_log = now + _STATE_LOG_EVERY_SECONDS
            log.error(
                "cannot save the checkpoint; counting goes on, but a restart would count "
                "the logs since the last save again",
                path=str(path),
                reason=reason,
                problem=exc.strerror or str(exc),
            )
        self.state_writable = False

    def save_checkpoint(self) -> bool:
        """Write the checkpoint; False (counted, logged) if the state dir refuses it."""
        path = self._checkpoint_path
        if path is None:
            return True
        positions = dict(self._saved_positions)
        positions.update({key: tail.positions for key, tail in self._tails.items()})
        saved_path_positions = {
            pattern: dict(tail.positions) for pattern, tail in self._path_tails.items()
        }
        data = {
            "format": CHECKPOINT_FORMAT,
            "shard": str(self._config.shard),
            "saved_at": time.time(),
            "positions": {
                key: {fp: _position_json(p) for fp, p in fps.items()}
                for key, fps in positions.items()
            },
            "path_positions": {
                pattern: {fp: _position_json(p) for fp, p in tail.positions.items()}
                for pattern, tail in self._path_tails.items()
            },
            "tallies": {f"{m}/{v}": t.to_dict() for (m, v), t in self._tallies.items()},
        }
        # Written as it is encoded, a window at a time: never the whole file in memory
        # (hundreds of megabytes with many versions). Each window on its own also lets
        # scrapes in between: one json.dumps of everything would hold the GIL throughout.
        windows = self._windows

        def chunks() -> Iterator[bytes]:
            yield _json(data)[:-1] + b',"windows":{'
            for i, ((m, v), w) in enumerate(windows.items()):
                yield (b"," if i else b"") + _json(f"{m}/{v}") + b":"
                yield _window_json(w)
            yield b"}}"

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_chunks(path, chunks())
        except OSError as exc:
            self._state_unwritable(path, exc)
            return False
        if not self.state_writable:
            log.info("checkpoint saved again", path=str(path))
            self.state_writable = True
        if self._on_checkpoint is not None:
            try:
                self._on_checkpoint(saved_path_positions)
            except OSError as exc:  # a spool file that cannot be deleted now: later
                log.warning("after the checkpoint", problem=exc.strerror or str(exc))
        return True

    # ---- reading ------------------------------------------------------------------------

    def _tallies_for(self, key: VersionKey) -> VersionTallies:
        tallies = self._tallies.get(key)
        if tallies is None:
            tallies = VersionTallies.create(
                self._config.latency_buckets,
                self._config.confidence_buckets,
                self._config.max_error_types,
            )
            self._tallies[key] = tallies
        self._changed.add(key)
        return tallies

    def _load_window(self, key: VersionKey, data: dict[str, Any]) -> None:
        try:
            self._window_for(key).load(data)
        except (ValueError, KeyError, TypeError) as exc:
            # Window settings changed (bins, classes): the window restarts empty. Counters
            # and positions are unaffected, so nothing is counted twice.
            self._windows.pop(key, None)
            log.warning("window state not restored", model=key[0], version=key[1], error=str(exc))
            return
        reference = self._windows[key].reference
        if reference is not None and reference.source == "predictions":
            # counted again at each start, as a reference file's are when it is read
            self._count_dropped_features(reference)

    def _window_for(self, key: VersionKey) -> LiveWindow:
        window = self._windows.get(key)
        if window is None:
            window = LiveWindow(self._config.window)
            self._windows[key] = window
        return window

    # ---- where to look ----------------------------------------------------------------

    def notify(self, path: Path) -> None:
        """A file or folder changed (called from the watcher's thread): the log folder
        it is in, or that it is, is listed again at the next poll."""
        with self._events_lock:
            if self._event_paths is not None:
                self._event_paths.add(path)

    def rediscover(self) -> None:
        """Events were lost (called from the watcher's thread): look everywhere once."""
        with self._events_lock:
            self._event_paths = None

    def _take_events(self) -> set[Path] | None:
        """The paths events named since the last call, or None when everything is to be
        looked at: events were lost, or the safety-net interval has passed."""
        clock = time.monotonic()
        with self._events_lock:
            paths, self._event_paths = self._event_paths, set()
        if clock >= self._next_rediscovery:
            self._next_rediscovery = clock + self._config.rediscover_interval
            return None
        return paths

    def _sync_tails(self, events: set[Path] | None) -> dict[str, VersionKey]:
        """One tail per existing log directory of a known version. A version that is
        gone takes its tallies and positions with it: no stale series. Looking for the
        directories costs two stats per known version, so it is done only when versions
        came, went or moved (not when a metrics.json changed), when an event named a log
        folder, or when everything is to be looked at (`events` None)."""
        models = self._snapshot().models
        if models is not self._synced_models:
            self._synced_models = models
            present = frozenset(
                (view.model, view.version, view.directory)
                for m in models.values()
                for view in m.versions
            )
            if present != self._synced_versions:
                self._synced_versions = present
                events = None
        if events is not None and not any(p.name in LOG_DIRS for p in events):
            return self._tail_versions
        self._tail_versions = self._find_tails()
        return self._tail_versions

    def _find_tails(self) -> dict[str, VersionKey]:
        wanted: dict[str, tuple[VersionKey, Path]] = {}
        present = {(view.model, view.version) for view in self._snapshot().versions()}
        stale = (set(self._tallies) | set(self._windows)) - present
        for version_key in stale:
            self._tallies.pop(version_key, None)
            self._windows.pop(version_key, None)
            self._views.pop(version_key, None)
            self._decoder_cache.pop(version_key, None)
        if stale:
            self._unsaved = True
            self._publish(everything=True)
        for tail_key in list(self._saved_positions):
            model, version, _ = tail_key.split("/", 2)
            if (model, version) not in present:
                del self._saved_positions[tail_key]
                self._unsaved = True
        for view in self._snapshot().versions():
            for name in LOG_DIRS:
                directory = view.directory / name
                if _is_dir(directory) and self._contained(directory):
                    wanted[f"{view.model}/{view.version}/{name}"] = (
                        (view.model, view.version),
                        directory,
                    )
        for key in [k for k in self._tails if k not in wanted]:
            gone = self._tails.pop(key)
            self._unsettled.discard(gone)
            self._saved_positions[key] = gone.positions
            self._unsaved = True
        for key, (_, directory) in wanted.items():
            tail = self._tails.get(key)
            if tail is None or tail.directory != directory:
                self._unsaved = True
                positions = self._saved_positions.pop(key, None)
                if tail is not None:
                    self._unsettled.discard(tail)
                self._tails[key] = LogTail(
                    directory,
                    positions,
                    max_line_bytes=self._config.max_line_bytes,
                    forget_after=self._config.forget_logs_after,
                    keep=self._contained,
                )
                self._unsettled.add(self._tails[key])
        return {key: version for key, (version, _) in wanted.items()}

    def _contained(self, path: Path) -> bool:
        """Whether a log folder of a version, or a file in one, may be read: not one that
        is a symlink leading out of the models directories, unless the user allows it.
        Each refused path is counted and logged once."""
        containment = self._snapshot().containment
        if containment is None or containment.allows_child(path):
            return True
        if path not in self._outside_root:
            self._outside_root.add(path)
            self._errors.inc((ERROR_SOURCE, OUTSIDE_ROOT))
            log.error(
                "log not read: a symlink leading outside the models directories "
                "(--models.follow-external-symlinks=true allows it)",
                path=str(path),
            )
        return False

    @property
    def behind(self) -> bool:
        """Whether a log file has more to read than the last poll took from it."""
        return (
            bool(self._held)
            or any(t.behind for t in self._tails.values())
            or any(t.behind for t in self._path_tails.values())
        )

    def _read_limit(self, key: str, version: VersionKey) -> int | None:
        """How far a version's predictions (or feedback) log may be read this round
        (bytes; None: the usual chunk). While its partner log has a backlog, a log is
        read no further than the window has room to keep its records waiting: feedback
        read far ahead of its predictions (or the reverse, as after downtime) would push
        waiting records out before their partner is read. 0: not this round."""
        tail = self._tails[key]
        if tail.polled and not tail.behind and key not in self._held_before:
            return None  # reads what is new in one chunk: no backlog on this side
        model, ver, name = key.split("/", 2)
        partner = self._tails.get(f"{model}/{ver}/{_PARTNER[name]}")
        if partner is None:
            return None
        window = self._windows.get(version)
        if window is None:
            waiting = 0
        elif name == "predictions":
            waiting = window.predictions_waiting
        else:
            waiting = window.feedback_waiting
        limit = max(0, self._config.window.max_pending - waiting) * _MIN_LINE_BYTES[name]
        # A partner backlog under one line's worth may be a line still being written.
        if limit >= READ_BYTES or not partner.unread(beyond=self._config.max_line_bytes):
            return None
        return limit

    def poll_once(self, behind_only: bool = False) -> int:
        """Read and tally what is new, at most one bounded chunk per file; returns the
        number of lines read. A full poll looks where file events point (or everywhere,
        when events were lost or the safety net is due): a folder is listed again only
        when an event named it. A `behind_only` round reads on from the files the last
        round left behind and leaves the events for the next full poll."""
        named: set[Path] | None = set()
        if behind_only:
            versions = self._tail_versions
        else:
            versions, named = self._follow_events()
        lines = 0
        held = self._held_before = self._held
        self._held = set()
        for key, tail in self._tails.items():
            if behind_only and not tail.behind and key not in held:
                continue
            limit = self._read_limit(key, versions[key])
            if limit == 0 and key.endswith("/predictions"):
                partner = key.removesuffix("predictions") + "feedback"
                if self._read_limit(partner, versions[key]) == 0:
                    limit = None  # both full: predictions go on, pushing the oldest out
            if limit == 0:
                self._held.add(key)
                self._unsettled.add(tail)  # read in a later round, event or not
                continue
            lines += self._read_tail(
                tail, named, versions[key], behind_only and key not in held, limit
            )
        present = (
            {(v.model, v.version) for v in self._snapshot().versions()}
            if self._path_tails
            else set()
        )
        for tail in self._path_tails.values():
            if behind_only and not tail.behind:
                continue
            lines += self._read_tail(tail, named, present, behind_only)
        if lines:
            self._publish()
        elif self._stale_summaries:
            self._publish(fresh=self._stale_summaries)
        return lines

    def _follow_events(self) -> tuple[dict[str, VersionKey], set[Path] | None]:
        """Take the file events since the last poll: the log tails and references they
        touch are brought up to date. Returns the tails' versions and the folders to list
        again (None: all of them)."""
        events = self._take_events()
        versions = self._sync_tails(events)
        if events is None:
            self._sync_references()
            return versions, None
        # a reference file, or a version folder (one moved in comes with its files)
        outside_logs = {p for p in events if _LOG_DIR_NAMES.isdisjoint((p.name, p.parent.name))}
        if outside_logs:
            self._sync_references(outside_logs | {p.parent for p in outside_logs})
        return versions, {p if p.name in LOG_DIRS else p.parent for p in events}

    def _read_tail(
        self,
        tail: LogTail,
        named: set[Path] | None,
        target: VersionKey | set[VersionKey],
        behind_only: bool = False,
        limit: int | None = None,
    ) -> int:
        """Read what is new in one folder's logs, if anything can be: with file events,
        only when one named the folder (or everything is looked at, or it is unsettled).
        The folder is listed again only when named or when everything is looked at."""
        relist = named is None or tail.directory in named
        if self._arm is not None:
            if not relist and tail not in self._unsettled:
                return 0  # read to its end, and no event since
            if self._arm(tail.directory):  # before reading: a later append is told
                self._unsettled.discard(tail)
            else:
                self._unsettled.add(tail)  # no watch: read at every poll
        lines = 0
        for chunk in tail.poll(behind_only, limit, relist=relist):
            lines += self._tally(chunk, target)
            tail.commit(chunk)
            self._unsaved = True
        if tail.behind:
            self._unsettled.add(tail)
        return lines

    def _tally(self, chunk: Chunk, target: VersionKey | set[VersionKey]) -> int:
        """Tally a chunk's lines for the version of their folder (`target` a key), or for
        logs outside the version folders for the known version each record names."""
        now = time.time()
        texts, numbers = chunk.texts, chunk.numbers
        # Bad lines in a version's own folder count against its data quality.
        window = self._window_for(target) if isinstance(target, tuple) else None
        reference = None if window is None else window.reference
        if reference is None or not reference.features:
            records, rejected = parse_lines(texts)
        else:  # features decoded straight into the struct the drift tally reads
            key = cast("VersionKey", target)  # a version's window: its own folder
            records, rejected = parse_lines(texts, *self._decoders(key, reference, texts))
        shard = self._config.shard
        # A bad line of a shared log belongs to no model we can tell: shard 0 counts it.
        count_bad = window is not None or shard.index == 0
        for number in chunk.too_long if count_bad else ():
            self._line_error(chunk, number, "line_too_long", "line over the length limit")
            if window is not None:
                window.observe_invalid(now)
        for i, exc in rejected if count_bad else ():
            self._line_error(chunk, numbers[i], exc.reason, exc.message)
            if window is not None:
                window.observe_invalid(now)
        if isinstance(target, tuple):
            self._tally_records(target, records, now)
            return len(texts) + len(chunk.too_long)
        # The line numbers of the records, for the unknown_model messages.
        skipped = {i for i, _ in rejected}
        record_numbers = [n for i, n in enumerate(numbers) if i not in skipped]
        routed: dict[VersionKey, list[Prediction | Feedback]] = {}
        for record, number in zip(records, record_numbers, strict=True):
            if not (shard.owns(record.model) if record.model else shard.index == 0):
                continue  # another shard's
            key = (record.model or "", record.version or "")
            if key not in target:
                self._line_error(
                    chunk,
                    number,
                    "unknown_model",
                    f"no model version {excerpt(record.model)}/{excerpt(record.version)} is known",
                )
                continue
            routed.setdefault(key, []).append(record)
        for key, version_records in routed.items():
            self._tally_records(key, version_records, now)
        return len(texts) + len(chunk.too_long)

    def _tally_records(
        self, key: VersionKey, records: list[Prediction | Feedback], now: float
    ) -> None:
        """One version's records of a chunk, in their order, all counted at `now`. Runs
        of predictions and of feedback go to the window in batches: a feedback line
        after its prediction finds it waiting, as it would one line at a time."""
        if not records:
            return
        tallies, window = self._tallies_for(key), self._window_for(key)
        for kind, group in groupby(records, type):
            if kind is Feedback:
                feedback = cast("list[Feedback]", list(group))
                tallies.feedback += len(feedback)
                window.observe_feedbacks(feedback, now)
            else:
                run = cast("list[Prediction]", list(group))
                facts = run_facts(run)  # read once for the counters and the window
                collecting = window.reference is None
                window.observe_predictions(run, now, facts)
                if collecting and window.reference is not None:  # built from these
                    self._count_dropped_features(window.reference)
                tallies.observe(facts)
        window.flush_rows()

    # ---- references -------------------------------------------------------------------

    def _sync_references(self, directories: set[Path] | None = None) -> None:
        """Give each version's window the reference next to its metrics.json, re-read
        when the file changes; without one the window builds its own from the first
        predictions. Only the versions in `directories`, if given (file events named
        them); else every version (the safety net)."""
        for view in self._snapshot().versions():
            if directories is not None and view.directory not in directories:
                continue
            key = (view.model, view.version)
            path = find_reference(view.directory)
            stamp = None if path is None else _stamp(path)
            if key in self._reference_stamps and self._reference_stamps[key] == stamp:
                continue
            if path is None and key not in self._windows:
                continue  # nothing to tell a window that does not exist yet
            self._reference_stamps[key] = stamp
            reference = None if path is None else self._load_reference(view.model, path)
            if path is not None and reference is None:
                continue  # unusable file: keep what the window has
            self._window_for(key).set_reference(reference)
            self._decoder_cache.pop(key, None)  # made again for the new one when lines come
            self._changed.add(key)
            self._unsaved = True
        present = {(v.model, v.version) for v in self._snapshot().versions()}
        for key in [k for k in self._reference_stamps if k not in present]:
            del self._reference_stamps[key]

    def _count_dropped_features(self, reference: ModelReference) -> None:
        if reference.dropped_features:
            self._dropped.inc((DROP_LIMIT_FEATURES,), reference.dropped_features)

    def _load_reference(self, model: str, path: Path) -> ModelReference | None:
        containment = self._snapshot().containment
        try:
            if containment is not None and not containment.allows(path):
                raise ReferenceError(  # noqa: TRY301 - counted and logged like the others
                    path,
                    "outside_root",
                    "a symlink leading outside the models directories "
                    "(--models.follow-external-symlinks=true allows it)",
                )
            reference = self._read_reference(path)
        except ReferenceError as exc:
            self._errors.inc((REFERENCE_SOURCE, exc.reason))
            log.error(
                "reference unusable; drift keeps the previous one", model=model, problem=str(exc)
            )
            return None
        log.info(
            "reference loaded",
            path=str(path),
            rows=reference.n,
            features=len(reference.features),
            dropped_features=reference.dropped_features,
            calibrated=reference.calibrator is not None and reference.calibrator.calibrated,
        )
        self._count_dropped_features(reference)
        return shared(reference)

    def _read_reference(self, path: Path) -> ModelReference:
        """Raises ReferenceError."""
        loaded = read_reference(path)
        if isinstance(loaded, ReferenceProfileFile):
            try:
                return ModelReference.from_dict(loaded.data, source="profile")
            except ValueError as exc:
                raise ReferenceError(path, "invalid_profile", str(exc)) from None
        if loaded.skipped:
            self._errors.inc((REFERENCE_SOURCE, "invalid_row"), loaded.skipped)
            log.warning(
                "skipped reference rows",
                path=str(path),
                skipped=loaded.skipped,
                first_problem=loaded.first_problem,
            )
        if not len(loaded):
            raise ReferenceError(path, "invalid_row", "no usable rows")
        window = self._config.window
        return build_reference(
            loaded.source,
            loaded.features,
            **loaded.columns(),
            n_bins=window.reference_bins,
            top_k=window.reference_top_k,
            max_features=window.max_features,
            max_classes=window.max_classes,
        )

    def _decoders(
        self, key: VersionKey, reference: ModelReference, lines: Sequence[bytes]
    ) -> tuple[Decode, Decode | None]:
        """The typed decode for lines against `reference` whose categorical features take
        the reference's categories only (no new string per value), and the one that
        takes any string, for the lines the first rejects (None: no categories). Their
        features are in the order the lines write them (learnt from the first `lines`
        with features)."""
        cached = self._decoder_cache.get(key)
        if cached is None or cached.reference is not reference or not cached.in_line_order:
            schema = in_line_order(reference.feature_schema(), lines)
            ordered = schema is not None
            if schema is None:  # no features in these lines: learnt from the next ones
                schema = reference.feature_schema()
            categories = tuple(
                None if numeric else reference.known_categories.get(name)
                for name, numeric in schema
            )
            any_string = typed_decoder(schema)[0]
            if any(categories):
                known = typed_decoder(schema, categories)[0]
                cached = _Decoders(reference, known, any_string, ordered)
            else:
                cached = _Decoders(reference, any_string, None, ordered)
            self._decoder_cache[key] = cached
        return cached.decode, cached.fallback

    def _line_error(self, chunk: Chunk, number: int, reason: str, message: str) -> None:
        self._errors.inc((ERROR_SOURCE, reason))
        now = time.monotonic()
        if now - self._last_error_log >= _LOG_EVERY_SECONDS:  # rate-limited: logs can be huge
            self._last_error_log = now
            log.warning(
                "skipped a log line (further ones counted, logged at most every 10 s)",
                path=str(chunk.path),
                line=number,
                reason=reason,
                problem=message,
            )

    def _publish(self, everything: bool = False, fresh: set[VersionKey] | None = None) -> None:
        """Refresh the views of the versions that changed (all of them when asked: the
        windows move on with time) and publish a new immutable mapping. Window summaries
        are recomputed for `everything`, for the versions in `fresh`, and for the others
        once `summary_interval` has passed since their last one."""
        now = time.time()
        clock = time.monotonic()
        fresh = set(fresh or ())
        changed = set(self._tallies) if everything else (self._changed | fresh) & set(self._tallies)
        due = []
        for key in changed:
            last = self._summaries.get(key)
            recent = last is not None and clock - last[0] < self._config.summary_interval
            if last is not None and recent and not everything and key not in fresh:
                self._stale_summaries.add(key)
            else:
                due.append(key)
        # one batch: the drift of every due window in a few numpy calls
        for key, summary in zip(
            due, summaries([self._window_for(key) for key in due], now), strict=True
        ):
            self._summaries[key] = (clock, summary)
            self._stale_summaries.discard(key)
        renewed = set()
        for key in changed:
            window, summary = self._window_for(key), self._summaries[key][1]
            old = self._views.get(key)
            if key not in self._changed and old is not None and _view_current(old, window, summary):
                continue  # a refresh with nothing new: the view stays, the same object
            self._views[key] = TalliesView.of(key, self._tallies[key], window, now, summary)
            renewed.add(key)
        self._changed.clear()
        for key in [k for k in self._summaries if k not in self._tallies]:
            del self._summaries[key]
            self._stale_summaries.discard(key)
        if renewed or self.tallies.keys() != self._views.keys():
            self.tallies = MappingProxyType(dict(sorted(self._views.items())))
        self._publish_health(now, None if everything else changed)

    def _follow_registry(
        self, old: Mapping[str, ModelView] | None, new: Mapping[str, ModelView]
    ) -> bool:
        """Refresh the health views of the models whose view changed (a metrics.json
        or marker changed, a version came); False if that is not enough: a model or
        version went (its series go too), or there was nothing before."""
        if old is new:
            return True
        if old is None or old.keys() - new.keys():
            return False
        keys: set[VersionKey] = set()
        for name, view in new.items():
            before = old.get(name)
            if before is view:
                continue
            versions = {v.version for v in view.versions}
            if before is not None and {v.version for v in before.versions} - versions:
                return False
            keys |= {(name, version) for version in versions}
        self._publish_health(time.time(), keys)
        return True

    def _publish_health(self, now: float, only: set[VersionKey] | None) -> None:
        """A view per active version and per version with logs (all of them, or those in
        `only`); a view equal to the one before is kept, so its rendered text is reused.
        A view whose inputs are those it was made of (the same model and tallies views,
        and the same side of the model-age trigger) is not made again."""
        previous = self.health
        views = {} if only is None else dict(previous)
        for key in only or ():  # rebuilt below if still wanted (no longer active: not)
            views.pop(key, None)
        models = self._snapshot().models
        if only is not None:  # the few that changed, not every known version
            models = {name: models[name] for name, _ in only if name in models}
        for model in models.values():
            for version in model.versions:
                key = (model.name, version.version)
                if only is not None and key not in only:
                    continue
                tallies = self.tallies.get(key)
                if tallies is None and not version.active:
                    continue
                old = previous.get(key)
                inputs = HealthInputs.of(model, version, tallies, now, self._config.health)
                made = self._health_inputs.get(key)
                if old is not None and made is not None and made.same(inputs):
                    views[key] = old
                    continue
                view = health_view(model, version, tallies, now, self._config.health)
                views[key] = old if old == view else view
                self._health_inputs[key] = inputs
        for key in [k for k in self._health_inputs if k not in views]:
            del self._health_inputs[key]
        if views.keys() != previous.keys() or any(v is not previous[k] for k, v in views.items()):
            self.health = MappingProxyType(dict(sorted(views.items())))

    # ---- one pass, without the thread (`model-health-exporter inspect`) ------------------

    def refresh(self) -> None:
        """Bring every view up to date now, as the thread's periodic refresh does."""
        self._publish(everything=True)

    @property
    def bytes_read(self) -> int:
        """Bytes consumed of every log file followed (decompressed for gzip): progress."""
        tails = [*self._tails.values(), *self._path_tails.values()]
        return sum(p.offset for tail in tails for p in tail.positions.values())

    # ---- thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        if not self.save_checkpoint():
            log.error(
                "final checkpoint not saved: a restart counts again what was read since "
                "the last save",
                path=str(self._checkpoint_path),
            )

    def _run(self) -> None:
        """Poll every poll_interval; while a file has a backlog, read on from the files
        that have one, a bounded chunk of each per round (fair, and the views are
        published between rounds); a folder is listed again when a file event names it."""
        next_checkpoint = time.monotonic() + self._config.checkpoint_interval
        next_refresh = time.monotonic() + self._config.summary_refresh
        next_trim = time.monotonic() + self._config.heap_trim_interval
        freed_since_trim = False  # lines read or a checkpoint written since the last trim
        next_poll = 0.0
        seen_models: Mapping[str, ModelView] | None = None
        while not self._stopping.is_set():
            try:
                draining = time.monotonic() < next_poll
                if not draining:
                    next_poll = time.monotonic() + self._config.poll_interval
                lines = self.poll_once(behind_only=draining)
                # Health also follows metrics.json, active markers and new versions: when
                # the registry's models change every view is refreshed at once, not at the
                # next period. (A resync that found nothing new keeps the same object.)
                models = self._snapshot().models
                if time.monotonic() >= next_refresh or not self._follow_registry(
                    seen_models, models
                ):
                    self._publish(everything=True)
                    next_refresh = time.monotonic() + self._config.summary_refresh
                seen_models = models
                if time.monotonic() >= next_checkpoint:
                    # Unchanged, it would be written with the same content; a failed save
                    # is tried again at the next interval.
                    if self._unsaved and self.save_checkpoint():
                        self._unsaved = False
                        freed_since_trim = True
                    next_checkpoint = time.monotonic() + self._config.checkpoint_interval
                freed_since_trim = freed_since_trim or lines > 0
                if freed_since_trim and time.monotonic() >= next_trim:
                    heap.release_free_pages()
                    freed_since_trim = False
                    next_trim = time.monotonic() + self._config.heap_trim_interval
            except Exception:  # keep ingesting; the next poll retries
                log.exception("ingest failed")
                self._stopping.wait(self._config.poll_interval)
                continue
            if not lines or not self.behind:
                self._stopping.wait(max(0.0, next_poll - time.monotonic()))

"""The model registry: what the model directories hold, kept current from scans and
file events by a single writer thread, published as an immutable `Snapshot` that
readers (the collector, the HTTP API) use without locks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final, Generic, Literal, TypeVar

import structlog

from model_health_exporter.baselines import Baseline, BaselineOverrides, merge_baseline
from model_health_exporter.fsutil import read_capped
from model_health_exporter.quality_metrics import BY_NAME
from model_health_exporter.schema import (
    FILE_ERROR_REASONS,
    BaselineFile,
    InvalidFileError,
    ModelMetrics,
    excerpt,
    parse_baseline,
    parse_metrics,
)
from model_health_exporter.sharding import Shard
from model_health_exporter.sources.metrics_files import (
    Containment,
    DirectoryError,
    FileSignature,
    Layout,
    ModelDir,
    ModelListing,
    detect_layout,
    discover_models,
    file_signature,
    is_utf8_name,
    list_model,
    printable_path,
)
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.stats.degradation import degradation_ratio
from model_health_exporter.stats.trend import slope_per_day

log = structlog.get_logger(__name__)

ERROR_SOURCES: Final = ("metrics_file", "baseline_file")
OTHER_ERRORS: Final = (
    ("active_marker", "unknown_version"),
    ("active_marker", "unreadable"),
    ("active_marker", "outside_root"),
    ("models_dir", "duplicate_model"),
    ("models_dir", "unreadable"),
    ("models_dir", "permission_denied"),
    ("models_dir", "not_utf8"),
    ("models_dir", "outside_root"),
)
_FOLLOW_HINT: Final = "--models.follow-external-symlinks=true allows it"
DROP_LIMITS: Final = ("max_models", "max_columns")


def _containment(config: RegistryConfig) -> Containment:
    return Containment.of([r.path for r in config.roots], config.follow_external_symlinks)


def initial_error_keys() -> list[tuple[str, str]]:
    return [(s, r) for s in ERROR_SOURCES for r in FILE_ERROR_REASONS] + list(OTHER_ERRORS)


@dataclass(frozen=True, slots=True)
class RootConfig:
    path: Path
    layout: Literal["auto", "flat", "nested"] = "auto"
    default_name: str | None = None


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    roots: tuple[RootConfig, ...]
    max_file_bytes: int = 4 * 1024 * 1024
    max_models: int = 1000
    max_columns: int = 100
    baseline_defaults: BaselineOverrides = field(default_factory=BaselineOverrides)
    baseline_models: Mapping[str, BaselineOverrides] = field(default_factory=dict)
    # Read files and folders that symlinks lead to outside the roots.
    follow_external_symlinks: bool = False
    shard: Shard = field(default_factory=Shard)  # models of other shards are not read at all


@dataclass(frozen=True, slots=True)
class VersionView:
    model: str
    version: str
    directory: Path
    metrics: ModelMetrics | None  # the last valid content; kept while the file is bad
    valid: bool
    problem: str | None
    loaded_at: float | None  # when `metrics` was read
    active: bool
    missing_rates: Mapping[str, float]  # capped to the configured number of columns
    degradation: Mapping[str, float]  # quality metric -> relative degradation vs target


@dataclass(frozen=True, slots=True)
class ModelView:
    name: str
    directory: Path
    layout: Layout
    versions: tuple[VersionView, ...]
    active_version: str | None
    active_source: str | None  # ACTIVE, current, active, production or newest
    baseline: Baseline
    baseline_problem: str | None
    # quality metric -> least-squares slope per day across the valid versions'
    # generated_at; only metrics with two or more points
    trends: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def quality_trends(versions: Iterable[VersionView]) -> Mapping[str, float]:
    points: dict[str, tuple[list[float], list[float]]] = {}
    for view in versions:
        metrics = view.metrics
        if metrics is None or metrics.generated_at is None:
            continue
        at = metrics.generated_at.timestamp()
        for name, value in metrics.quality().items():
            times, values = points.setdefault(name, ([], []))
            times.append(at)
            values.append(value)
    trends = {}
    for name, (times, values) in sorted(points.items()):
        slope = slope_per_day(times, values)
        if slope is not None:
            trends[name] = slope
    return MappingProxyType(trends)


@dataclass(frozen=True, slots=True)
class Snapshot:
    # The same object from one snapshot to the next while no model changed (a resync
    # that found nothing new), so readers can tell with `is`.
    models: Mapping[str, ModelView]
    ready: bool
    last_scan: float | None
    # What files next to metrics.json (references, logs) may be read: None, anything.
    containment: Containment | None = None

    def versions(self) -> Iterable[VersionView]:
        for model in self.models.values():
            yield from model.versions


EMPTY_SNAPSHOT: Final = Snapshot(MappingProxyType({}), ready=False, last_scan=None)


_T = TypeVar("_T")


@dataclass(slots=True)
class _LoadedFile(Generic[_T]):
    signature: FileSignature | None = None
    value: _T | None = None  # last valid content
    problem: str | None = None
    loaded_at: float | None = None


@dataclass(slots=True)
class _ModelRecord:
    model: ModelDir
    root_index: int
    versions: dict[str, _LoadedFile[ModelMetrics]] = field(default_factory=dict)
    baseline: _LoadedFile[BaselineFile] = field(default_factory=_LoadedFile)
    marker_problem: str | None = None
    listing: ModelListing | None = None
    # The model folder cannot be listed: its versions keep their last values, invalid.
    dir_problem: str | None = None


@dataclass(frozen=True, slots=True)
class RootKey:
    """Rediscover the models under a root."""

    root_index: int


@dataclass(frozen=True, slots=True)
class ModelKey:
    """Re-list one model's versions and re-read what changed."""

    root_index: int
    model_path: Path


RefreshKey = RootKey | ModelKey


class ModelRegistry:
    """Owned by one thread: `full_scan`, `refresh` and `configure` must not run
    concurrently. `snapshot` may be read from any thread."""

    def __init__(
        self, config: RegistryConfig, errors: LabelledCounter, dropped: LabelledCounter
    ) -> None:
        self._config = config
        self._errors = errors
        self._dropped = dropped
        self._records: dict[str, _ModelRecord] = {}
        self._views: dict[str, ModelView] = {}
        self._layouts: list[Layout | None] = [None] * len(config.roots)
        self._dropped_models: set[str] = set()
        self._containment = _containment(config)
        # Folders skipped (name not UTF-8, leading out of the roots) or unlistable, by
        # path: each is counted and logged when it first appears or its problem changes.
        self._skipped: set[Path] = set()
        self._dir_problems: dict[Path, str] = {}
        self._ready = False
        self._last_scan: float | None = None
        self._views_changed = True
        self.snapshot: Snapshot = EMPTY_SNAPSHOT

    @property
    def roots(self) -> tuple[RootConfig, ...]:
        return self._config.roots

    def configure(self, config: RegistryConfig) -> None:
        """Apply a reloaded configuration; callers follow with `full_scan`."""
        self._config = config
        self._layouts = [None] * len(config.roots)
        self._records.clear()
        self._views.clear()
        self._views_changed = True
        self._dropped_models.clear()
        self._containment = _containment(config)
        self._skipped.clear()
        self._dir_problems.clear()

    # ---- scanning -------------------------------------------------------------------

    def full_scan(self) -> None:
        """Rediscover every root and re-check every model (the periodic resync)."""
        for index in range(len(self._config.roots)):
            self._scan_root(index, refresh_existing=True)
        # A skipped folder that is gone is counted again if it comes back.
        self._skipped = {path for path in self._skipped if os.path.lexists(path)}
        self._ready = True
        self._last_scan = time.time()
        self._publish()

    def refresh(self, keys: Iterable[RefreshKey]) -> None:
        for key in set(keys):
            if key.root_index >= len(self._config.roots):
                continue  # from before a reload
            if isinstance(key, RootKey):
                self._scan_root(key.root_index, refresh_existing=False)
            else:
                self._refresh_model_at(key)
        self._publish()

    def key_for_path(self, path: Path) -> RefreshKey | None:
        """Which refresh a file-system event at `path` calls for, if any."""
        for index, root in enumerate(self._config.roots):
            try:
                parts = path.relative_to(root.path).parts
            except ValueError:
                continue
            layout = self._layouts[index]
            if layout is None or not parts:
                return RootKey(index)
            if layout == "flat":
                # <root>/<version>/metrics.json; deeper paths (logs) are not ours.
                return ModelKey(index, root.path) if len(parts) <= 2 else None
            if len(parts) == 1:
                return RootKey(index)  # a model folder came or went
            return ModelKey(index, root.path / parts[0]) if len(parts) <= 3 else None
        return None

    def _scan_root(self, index: int, refresh_existing: bool) -> None:
        root = self._config.roots[index]
        try:
            layout = detect_layout(root.path) if root.layout == "auto" else root.layout
            self._layouts[index] = layout
            found = [] if layout is None else discover_models(root.path, layout, root.default_name)
            found = [model for model in found if self._config.shard.owns(model.name)]
        except DirectoryError as exc:
            # Keep what this root held: a passing permission problem loses nothing.
            self._directory_problem(exc)
            return
        self._directory_ok(root.path)
        if layout is not None and not root.path.is_dir():
            self._errors.inc(("models_dir", "unreadable"))
        present = set()
        for model in found:
            if layout == "nested" and not self._containment.allows_child(model.path):
                self._skip(model.path, "outside_root", f"leads outside the roots; {_FOLLOW_HINT}")
                continue
            if model.name in self._records and self._records[model.name].root_index != index:
                self._report_duplicate(model)
                continue
            present.add(model.name)
            if refresh_existing or model.name not in self._records:
                self._refresh_model(index, model)
        for name in [n for n, r in self._records.items() if r.root_index == index]:
            if name not in present:
                self._forget(name)

    def _refresh_model_at(self, key: ModelKey) -> None:
        root = self._config.roots[key.root_index]
        layout = self._layouts[key.root_index]
        if layout is None:
            self._scan_root(key.root_index, refresh_existing=False)
            return
        name = root.default_name or root.path.resolve().name
        if layout == "nested":
            name = key.model_path.name
        if not self._config.shard.owns(name):
            return
        if not key.model_path.is_dir():
            record = self._records.get(name)
            if record is not None and record.root_index == key.root_index:
                self._forget(name)
            return
        existing = self._records.get(name)
        if existing is not None and existing.root_index != key.root_index:
            self._report_duplicate(existing.model)
            return
        if layout == "nested" and not self._containment.allows_child(key.model_path):
            self._skip(key.model_path, "outside_root", f"leads outside the roots; {_FOLLOW_HINT}")
            return
        self._refresh_model(key.root_index, ModelDir(name, key.model_path, layout))

    def _report_duplicate(self, model: ModelDir) -> None:
        if model.name not in self._dropped_models:
            self._dropped_models.add(model.name)
            self._errors.inc(("models_dir", "duplicate_model"))
            log.error(
                "model name used by two roots; keeping the first",
                model=model.name,
                path=str(model.path),
            )

    def _skip(self, path: Path, reason: str, why: str) -> None:
        """Count and log a folder that is left out, once while it stays."""
        if path not in self._skipped:
            self._skipped.add(path)
            self._errors.inc(("models_dir", reason))
            log.warning("folder skipped", path=printable_path(path), reason=reason, problem=why)

    def _directory_problem(self, exc: DirectoryError) -> None:
        """Count and log a folder that cannot be listed, once per change of its problem."""
        problem = f"{exc.reason}: cannot list {printable_path(exc.path)}: {exc.message}"
        if self._dir_problems.get(exc.path) != problem:
            self._dir_problems[exc.path] = problem
            self._errors.inc(("models_dir", exc.reason))
            log.error(
                "folder cannot be listed; keeping the last values",
                path=printable_path(exc.path),
                reason=exc.reason,
                problem=exc.message,
            )

    def _directory_ok(self, path: Path) -> None:
        if self._dir_problems.pop(path, None) is not None:
            log.info("folder readable again", path=printable_path(path))

    def _forget(self, name: str) -> None:
        self._records.pop(name, None)
        if self._views.pop(name, None) is not None:
            self._views_changed = True  # the published mapping is rebuilt

    def _refresh_model(self, root_index: int, model: ModelDir) -> None:
        if not is_utf8_name(model.name):
            # Its name cannot be a label value; a version named so is skipped the same way.
            self._skip(model.path, "not_utf8", "folder name is not UTF-8")
            return
        record = self._records.get(model.name)
        if record is None:
            if len(self._records) >= self._config.max_models:
                if model.name not in self._dropped_models:
                    self._dropped_models.add(model.name)
                    self._dropped.inc(("max_models",))
                    log.warning(
                        "model limit reached; model not exported",
                        model=model.name,
                        limit=self._config.max_models,
                    )
                return
            record = _ModelRecord(model, root_index)
            self._records[model.name] = record
        record.model = model
        listing = self._list(record)
        if listing is None:
            return
        changed = listing != record.listing
        record.listing = listing
        for version in [v for v in record.versions if v not in listing.versions]:
            del record.versions[version]
        for version, path in listing.versions.items():
            loaded = record.versions.setdefault(version, _LoadedFile())
            changed |= self._load(loaded, path, "metrics_file", parse_metrics, model=model.name)
        if listing.baseline_path is None:
            record.baseline = _LoadedFile()
        else:
            changed |= self._load(
                record.baseline,
                listing.baseline_path,
                "baseline_file",
                parse_baseline,
                model=model.name,
            )
        # An unchanged model keeps its view object, so caches keyed on it stay valid
        # across the periodic resync.
        if changed or model.name not in self._views:
            self._set_view(model.name, self._build_view(record, listing))

    def _set_view(self, name: str, view: ModelView) -> None:
        """Every change of a model's view goes through here: the published mapping is
        rebuilt only after one (a resync that changed nothing keeps the same object)."""
        self._views[name] = view
        self._views_changed = True

    def _list(self, record: _ModelRecord) -> ModelListing | None:
        """The model's folder listing, or None (counted, logged, the view marked) if the
        folder cannot be listed."""
        model = record.model
        try:
            listing = list_model(model, self._containment)
        except DirectoryError as exc:
            self._directory_problem(exc)
            problem = self._dir_problems[exc.path]
            if record.dir_problem != problem or model.name not in self._views:
                record.dir_problem = problem
                if record.listing is None:  # never listed: a model without versions yet
                    record.listing = ModelListing(model, {}, None, None)
                self._set_view(model.name, self._build_view(record, record.listing))
            return None
        if record.dir_problem is not None:
            record.dir_problem = None
            self._directory_ok(model.path)
            record.listing = None  # rebuild the view: its versions are valid again
        for path in listing.not_utf8:
            self._skip(path, "not_utf8", "folder name is not UTF-8")
        for path in listing.outside:
            self._skip(path, "outside_root", f"leads outside the roots; {_FOLLOW_HINT}")
        return listing

    def _read(self, path: Path) -> bytes:
        """A user file's bytes; raises InvalidFileError."""
        if not self._containment.allows(path):
            raise InvalidFileError(
                "outside_root", f"a symlink leading outside the roots; {_FOLLOW_HINT}"
            )
        return read_capped(path, self._config.max_file_bytes)

    def _load(
        self,
        loaded: _LoadedFile[_T],
        path: Path,
        source: str,
        parse: Callable[[bytes], _T],
        model: str,
    ) -> bool:
        """Re-read `path` if it changed since the last read; True if it did."""
        signature = file_signature(path)
        if signature is not None and signature == loaded.signature:
            return False
        if signature is None and loaded.signature is None and loaded.problem is not None:
            return False  # still missing or dangling; already reported
        loaded.signature = signature
        try:
            loaded.value = parse(self._read(path))
        except InvalidFileError as exc:
            self._errors.inc((source, exc.reason))
            loaded.problem = f"{exc.reason}: {exc.message}"
            log.error(
                "invalid file; keeping the last valid values",
                path=printable_path(path),
                model=model,
                reason=exc.reason,
                problem=exc.message,
            )
            return True
        if loaded.problem is not None:
            log.info("file valid again", path=printable_path(path), model=model)
        loaded.problem = None
        loaded.loaded_at = time.time()
        if isinstance(loaded.value, ModelMetrics):
            self._count_dropped_columns(loaded.value)
        return True

    def _count_dropped_columns(self, metrics: ModelMetrics) -> None:
        stats = metrics.dataset_stats
        extra = 0 if stats is None else len(stats.missing_rates) - self._config.max_columns
        if extra > 0:
            self._dropped.inc(("max_columns",), extra)

    # ---- views ----------------------------------------------------------------------

    def _build_view(self, record: _ModelRecord, listing: ModelListing) -> ModelView:
        name = record.model.name
        baseline = merge_baseline(
            self._config.baseline_defaults,
            *(
                [BaselineOverrides.from_file(record.baseline.value)]
                if record.baseline.value is not None and listing.baseline_path is not None
                else []
            ),
            *([self._config.baseline_models[name]] if name in self._config.baseline_models else []),
        )
        active, source = self._resolve_active(record, listing)
        versions = tuple(
            self._version_view(
                model=name,
                version=version,
                directory=listing.versions[version].parent
                if version in listing.versions
                else record.model.path / version,
                loaded=loaded,
                active=version == active,
                baseline=baseline,
                dir_problem=record.dir_problem,
            )
            for version, loaded in sorted(record.versions.items())
        )
        return ModelView(
            name=name,
            directory=record.model.path,
            layout=record.model.layout,
            versions=versions,
            active_version=active,
            active_source=source,
            baseline=baseline,
            baseline_problem=record.baseline.problem,
            trends=quality_trends(versions),
        )

    def _resolve_active(
        self, record: _ModelRecord, listing: ModelListing
    ) -> tuple[str | None, str | None]:
        marker = listing.marker
        problem: str | None = None
        if marker is not None:
            if marker.problem is not None:
                problem = f"{marker.source}: {marker.problem}"
                reason = marker.reason
            elif marker.version in record.versions:
                record.marker_problem = None
                return marker.version, marker.source
            else:
                named = excerpt(marker.version)
                problem = f"{marker.source} names version {named}, which does not exist"
                reason = "unknown_version"
            if problem != record.marker_problem:
                self._errors.inc(("active_marker", reason))
                log.error(
                    "active-version marker unusable; using the newest version",
                    model=record.model.name,
                    path=str(record.model.path),
                    problem=problem,
                )
        record.marker_problem = problem
        if not record.versions:
            return None, None
        oldest = datetime.min.replace(tzinfo=UTC)

        def newest_first(item: tuple[str, _LoadedFile[ModelMetrics]]) -> tuple[datetime, str]:
            version, loaded = item
            generated = loaded.value.generated_at if loaded.value is not None else None
            return (generated or oldest, version)

        return max(record.versions.items(), key=newest_first)[0], "newest"

    def _version_view(
        self,
        *,
        model: str,
        version: str,
        directory: Path,
        loaded: _LoadedFile[ModelMetrics],
        active: bool,
        baseline: Baseline,
        dir_problem: str | None = None,
    ) -> VersionView:
        metrics = loaded.value
        missing: dict[str, float] = {}
        degradation: dict[str, float] = {}
        if metrics is not None:
            if metrics.dataset_stats is not None:
                rates = metrics.dataset_stats.missing_rates
                # Keep the worst columns when capping: those are the ones worth alerting on.
                top = sorted(rates.items(), key=lambda kv: (-kv[1], kv[0]))
                missing = dict(top[: self._config.max_columns])
            for name, value in metrics.quality().items():
                levels = baseline.levels.get(name)
                if levels is None or levels.target is None:
                    continue
                ratio = degradation_ratio(value, levels.target, BY_NAME[name].higher_is_better)
                if ratio is not None:
                    degradation[name] = ratio
        return VersionView(
            model=model,
            version=version,
            directory=directory,
            metrics=metrics,
            valid=loaded.problem is None and dir_problem is None and metrics is not None,
            problem=dir_problem or loaded.problem,
            loaded_at=loaded.loaded_at,
            active=active,
            missing_rates=MappingProxyType(missing),
            degradation=MappingProxyType(degradation),
        )

    def _publish(self) -> None:
        models = self.snapshot.models
        if self._views_changed:
            models = MappingProxyType(dict(sorted(self._views.items())))
            self._views_changed = False
        self.snapshot = Snapshot(
            models, ready=self._ready, last_scan=self._last_scan, containment=self._containment
        )

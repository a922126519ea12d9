"""Lifecycle: wire sources, state and exposition together, then serve until a signal.

One signal path: SIGTERM, SIGINT and SIGHUP are blocked in every thread and taken
synchronously by the main thread with sigtimedwait (no async handlers, no race with
whichever thread the kernel picks), which stops, or reloads the configuration keeping
the old one if the new one is invalid."""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Final

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from model_health_exporter import __version__, exit_codes, heap, systemd
from model_health_exporter.baselines import BaselineOverrides
from model_health_exporter.config import ConfigError, Settings
from model_health_exporter.exposition.collector import (
    ExporterCollector,
    ExporterStatus,
    health_families,
    model_families,
    prediction_families,
)
from model_health_exporter.exposition.http_server import ServerLimits
from model_health_exporter.exposition.pages import Live
from model_health_exporter.exposition.render import CachedExposition, CachedSection
from model_health_exporter.exposition.server import WebServer, make_app
from model_health_exporter.exposition.web_config import (
    WebConfig,
    WebConfigPoller,
    load_web_config,
)
from model_health_exporter.ingress.exposure import push_exposure_problem
from model_health_exporter.ingress.push import (
    PushCollector,
    PushConfig,
    PushEndpoint,
    PushModel,
    push_error_keys,
)
from model_health_exporter.logging import configure_logging
from model_health_exporter.sharding import Shard
from model_health_exporter.sources.prediction_logs import Position
from model_health_exporter.sources.spool import Spool
from model_health_exporter.sources.watcher import ERROR_REASONS as WATCH_ERROR_REASONS
from model_health_exporter.sources.watcher import ERROR_SOURCE as WATCH_ERROR_SOURCE
from model_health_exporter.sources.watcher import ModelDirWatcher
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.health import HealthConfig, HealthView
from model_health_exporter.state.ingest import DROP_LIMIT_FEATURES, IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    ModelView,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from model_health_exporter.state.scan_worker import ScanWorker
from model_health_exporter.state.windows import WindowConfig
from model_health_exporter.stats.degradation import SeverityBands
from model_health_exporter.stats.health import RetrainTriggers
from model_health_exporter.stats.reference import DriftSettings

log = structlog.get_logger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_RELOAD_FAILED: Final = "configuration reload failed; keeping the running one"
WEB_CONFIG_POLL_S: Final = 3.0  # how soon a changed web config or certificate is used


def registry_config(settings: Settings, shard: Shard | None = None) -> RegistryConfig:
    """`shard`: the one the daemon started with (changes need a restart); default the
    configured one."""
    models = settings.models
    return RegistryConfig(
        roots=tuple(RootConfig(d, models.layout, models.default_name) for d in models.dirs),
        max_file_bytes=models.max_file_bytes,
        max_models=models.max_models,
        max_columns=models.max_columns,
        follow_external_symlinks=models.follow_external_symlinks,
        baseline_defaults=BaselineOverrides.from_file(settings.baselines.defaults),
        baseline_models={
            name: BaselineOverrides.from_file(b) for name, b in settings.baselines.models.items()
        },
        shard=models.shard if shard is None else shard,
    )


def spool_dir(settings: Settings) -> Path | None:
    """Where pushed batches are spooled; None while push is off."""
    if not settings.web.enable_push or settings.state.dir is None:
        return None
    return settings.push.spool_dir or settings.state.dir / "spool"


def spool_pattern(directory: Path) -> str:
    return str(directory / "spool-*.jsonl")


def push_config(settings: Settings) -> PushConfig:
    push = settings.push
    return PushConfig(
        max_request_bytes=push.max_request_bytes,
        max_line_bytes=settings.logs.max_line_bytes,
        join_wait=push.join_wait,
        max_waiting=push.max_waiting,
        max_waiting_bytes=push.max_waiting_bytes,
        models={
            name: PushModel(
                m.model,
                m.version,
                None if m.features is None else tuple(m.features),
                None if m.classes is None else tuple(m.classes),
            )
            for name, m in push.models.items()
        },
    )


def ingest_config(settings: Settings, shard: Shard | None = None) -> IngestConfig:
    logs, health = settings.logs, settings.health
    spool = spool_dir(settings)
    return IngestConfig(
        shard=settings.models.shard if shard is None else shard,
        state_dir=settings.state.dir,
        poll_interval=logs.poll_interval,
        checkpoint_interval=logs.checkpoint_interval,
        max_line_bytes=logs.max_line_bytes,
        max_error_types=logs.max_error_types,
        # the push spool is read like a --logs.path log: its records name model and version
        paths=(*logs.paths, *([] if spool is None else [spool_pattern(spool)])),
        latency_buckets=tuple(logs.latency_buckets),
        confidence_buckets=tuple(logs.confidence_buckets),
        window=WindowConfig(
            bucket_seconds=logs.window_bucket_seconds,
            buckets=logs.window_buckets,
            short_buckets=logs.window_short_buckets,
            max_classes=logs.max_classes,
            low_confidence_threshold=logs.low_confidence_threshold,
            max_pending=logs.max_pending,
            pending_max_age=logs.pending_max_age,
            min_samples=logs.window_min_samples,
            drift=DriftSettings(
                method=settings.drift.method,
                threshold=settings.drift.threshold,
                correction=settings.drift.correction,
            ),
            reference_predictions=settings.drift.reference_predictions,
            reference_bins=settings.drift.bins,
            reference_top_k=settings.drift.top_categories,
            max_features=settings.drift.max_features,
        ),
        # File events tell of new log folders and files and changed reference files as
        # they come; the ingester looks for them on its own as often as models are
        # rescanned, the same safety net for lost events.
        rediscover_interval=settings.models.resync_interval,
        health=HealthConfig(
            triggers=RetrainTriggers(
                performance_drop=health.retrain_performance_drop,
                drift=health.retrain_drift,
                max_age_days=health.retrain_max_age_days,
                min_new_data_points=health.retrain_min_new_data,
                error_rate=health.retrain_error_rate,
            ),
            bands=severity_bands(settings),
        ),
    )


def severity_bands(settings: Settings) -> SeverityBands:
    low, medium, high = settings.health.severity_bands
    return SeverityBands(low, medium, high)


@dataclass
class _Running:
    """What a configuration is running: rebuilt on reload as far as it changed."""

    server: WebServer
    watcher: ModelDirWatcher
    worker: ScanWorker
    ingest: IngestWorker


# Ingesting creates and frees a few tuples and lists a line (rows of a block, columns
# of a drift tally): with Python's default of 700 the young generation is walked every
# few hundred lines, about 1,000 instructions a line (bench/ingest_instructions.py,
# docs/benchmarks.md section 21), and a full collection comes ten times as often.
# Objects freed by reference counting (nearly all) never wait for a collection; only
# cycles do, at most this many objects.
GC_YOUNG_OBJECTS: Final = 10_000


def _settle_heap() -> None:
    """Take what start-up (or a reload) built out of the cyclic GC's full collections: the
    registry's views, references and loaded windows live until the next reload. A full
    collection walks every tracked object while holding the GIL (50-90 ms at 1,000
    versions), and ingesting flat out brings one on about every second, each one a stall
    for a scrape that arrives meanwhile (docs/benchmarks.md, section 3). Frozen objects
    are still freed by reference counting; only cycles among them wait for a reload.
    Young-generation collections come after GC_YOUNG_OBJECTS new containers instead of
    Python's 700 (see there)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_OBJECTS, *gc.get_threshold()[1:])


class Daemon:
    def __init__(self, settings: Settings, reload_settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._reload_settings = reload_settings
        self.status = ExporterStatus(
            errors=LabelledCounter(
                initial_error_keys()
                + ingest_error_keys()
                + [(WATCH_ERROR_SOURCE, reason) for reason in WATCH_ERROR_REASONS]
                + push_error_keys()
            ),
            dropped=LabelledCounter((limit,) for limit in (*DROP_LIMITS, DROP_LIMIT_FEATURES)),
            config_reload_timestamp=time.time(),
            state_writable=lambda: self._ingest is None or self._ingest.state_writable,
            shard=settings.models.shard,
        )
        self.registry = ModelRegistry(
            registry_config(settings), self.status.errors, self.status.dropped
        )
        self._ingest: IngestWorker | None = None
        self._watcher: ModelDirWatcher | None = None
        self._spool: Spool | None = None
        self._push: PushEndpoint | None = None
        self._server: WebServer | None = None
        self._web_poller = WebConfigPoller(WEB_CONFIG_POLL_S, self._web_config_changed)

    def _tallies(self) -> Mapping[tuple[str, str], TalliesView]:
        return {} if self._ingest is None else self._ingest.tallies

    def _health(self) -> Mapping[tuple[str, str], HealthView]:
        return {} if self._ingest is None else self._ingest.health

    def _start_ingest(self, settings: Settings) -> IngestWorker:
        """Raises RuntimeError if the checkpoint cannot be used."""
        ingest = IngestWorker(
            ingest_config(settings, self.status.shard),
            lambda: self.registry.snapshot,
            self.status.errors,
            self.status.dropped,
            arm=lambda directory: self._watcher is not None and self._watcher.arm(directory),
            on_checkpoint=self._after_checkpoint,
        )
        ingest.start()
        self._ingest = ingest
        return ingest

    def _after_checkpoint(self, positions: Mapping[str, Mapping[str, Position]]) -> None:
        """Spool files read to their end and checkpointed are no longer needed."""
        spool = self._spool
        if spool is None:
            return
        read = positions.get(spool_pattern(spool.directory), {})
        spool.rotate_if_read(read)
        spool.release(read)

    def _open_push(self, settings: Settings) -> None:
        """The spool and the push endpoints, if enabled. Raises OSError."""
        directory = spool_dir(settings)
        if directory is None:
            return
        push = settings.push
        spool = Spool(
            directory,
            file_bytes=push.spool_file_bytes,
            max_bytes=push.spool_max_bytes,
            keys_max=push.idempotency_keys,
            keys_age=push.idempotency_horizon,
            retry_after=max(1, round(settings.logs.checkpoint_interval)),
        )
        tell = directory / "spool"  # a path in the folder: the ingester lists it again

        def notify() -> None:
            if self._ingest is not None:
                self._ingest.notify(tell)

        self._spool = spool
        self._push = PushEndpoint(
            spool, lambda: self.registry.snapshot, push_config(settings), self.status.errors, notify
        )

    # ---- wiring -----------------------------------------------------------------------

    def _make_server(self, settings: Settings) -> WebServer:
        collectors = CollectorRegistry(auto_describe=True)
        snapshot = lambda: self.registry.snapshot  # noqa: E731 - always the newest snapshot
        # Model and prediction families come from render caches, built by the same
        # functions as ModelCollector and PredictionCollector but per model / version;
        # this registry holds only what changes on every scrape.
        collectors.register(
            ExporterCollector(snapshot, self.status, settings.namespace, __version__)
        )
        ProcessCollector(registry=collectors)
        PlatformCollector(registry=collectors)
        GCCollector(registry=collectors)
        collectors.register(
            PushCollector(
                settings.namespace,
                lambda: self._push,
                lambda: 0 if self._spool is None else self._spool.total_bytes,
            )
        )
        ns = settings.namespace

        def models() -> tuple[object, Iterable[ModelView]]:
            models = self.registry.snapshot.models  # the same object until a model changes
            return models, models.values()

        def versions() -> tuple[object, Iterable[TalliesView]]:
            tallies = self._tallies()
            return tallies, tallies.values()

        def health() -> tuple[object, Iterable[HealthView]]:
            views = self._health()
            return views, views.values()

        sections: list[CachedSection[Any]] = [
            CachedSection(
                CachedExposition(partial(model_families, ns, bands=severity_bands(settings))),
                models,
            ),
            CachedSection(CachedExposition(partial(prediction_families, ns)), versions),
            CachedSection(CachedExposition(partial(health_families, ns)), health),
        ]
        web = settings.web
        return WebServer(
            web.listen_address,
            make_app(
                collectors,
                sections,
                snapshot,
                __version__,
                lambda: Live(self._tallies(), self._health()),
                shard=self.status.shard,
                push=self._push,
                # Ready once the models are scanned and the checkpoint's counts restored:
                # a scrape before that would miss the restored series.
                ready=lambda: self._ingest is not None and self.registry.snapshot.ready,
            ),
            self._web_config(settings),
            limits=ServerLimits(
                max_connections=web.max_connections,
                header_timeout=web.header_timeout,
                idle_timeout=web.idle_timeout,
            ),
            probes_without_auth=web.probes_without_auth,
        )

    def _web_config(self, settings: Settings) -> WebConfig:
        """The one `settings` read (once, for all that use it). Raises ConfigError."""
        config = settings.web_config
        self._web_poller.watch(config)
        return config

    def _web_config_changed(self) -> None:
        """The poller saw the web config file or a certificate change: apply it, or keep
        the running one if it is now invalid."""
        server = self._server
        if server is None:
            return
        try:
            config = load_web_config(self._settings.web.config_file)  # as it is now
        except ConfigError as exc:
            self.status.web_config_reload_ok = False
            log.error(
                "web configuration reload failed; keeping the running one",
                path=str(self._settings.web.config_file),
                problems=exc.problems,
            )
            return
        self._web_poller.watch(config)
        server.configure(config)
        self.status.web_config_reload_ok = True
        log.info("web configuration reloaded", path=str(self._settings.web.config_file))

    def _start_watching(self, settings: Settings) -> tuple[ModelDirWatcher, ScanWorker]:
        worker = ScanWorker(
            self.registry, settings.models.resync_interval, settings.models.debounce
        )

        def on_path(path: Path) -> None:
            worker.notify(path)
            if self._ingest is not None:
                self._ingest.notify(path)

        def on_overflow() -> None:  # events were lost: one rescan of everything
            self.status.errors.inc((WATCH_ERROR_SOURCE, "inotify_overflow"))
            worker.request_full_scan()
            if self._ingest is not None:
                self._ingest.rediscover()

        watcher = ModelDirWatcher(
            settings.models.dirs,
            on_path,
            extra_dirs=[Path(pattern).parent for pattern in ingest_config(settings).paths],
            on_overflow=on_overflow,
            on_watch_limit=lambda: self.status.errors.inc((WATCH_ERROR_SOURCE, "watch_limit")),
        )
        watcher.start()  # before the scan below, so no change between them is missed
        self._watcher = watcher
        if self._ingest is not None:  # a reload: appends meanwhile were told to no one
            self._ingest.rediscover()
        self.registry.full_scan()
        worker.start()
        return watcher, worker

    # ---- lifecycle --------------------------------------------------------------------

    def run(self) -> int:
        settings = self._settings
        heap.tune_malloc()
        try:
            self._open_push(settings)
        except OSError as exc:
            log.error(
                "cannot open the push spool",
                path=str(spool_dir(settings)),
                problem=exc.strerror or str(exc),
            )
            return exit_codes.USAGE
        try:
            server = self._make_server(settings)
        except OSError as exc:
            log.error("cannot listen", address=settings.web.listen_address, error=exc.strerror)
            return exit_codes.RUNTIME
        except ConfigError as exc:  # the web config file changed since it was checked
            log.error("invalid web configuration", problems=exc.problems)
            return exit_codes.USAGE
        self._server = server
        # Blocked before any thread starts, so every thread inherits the mask.
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            server.start()
            self._web_poller.start()
            log.info(
                "listening",
                url=f"http://{settings.web.listen_address}/",
                models_dirs=[str(d) for d in settings.models.dirs],
                shard=str(settings.models.shard),
            )
            watcher, worker = self._start_watching(settings)
            if settings.state.dir is None:
                log.warning(
                    "no --state.dir: prediction-log positions and counters are not saved, "
                    "so a restart counts the logs from the start"
                )
            try:
                ingest = self._start_ingest(settings)
            except RuntimeError as exc:
                log.error("cannot start", problem=str(exc))
                for stoppable in (watcher, worker, server, self._web_poller):
                    stoppable.stop()
                # a person must move the checkpoint away; a restart would fail the same way
                return exit_codes.USAGE
            running = _Running(server, watcher, worker, ingest)
            snap = self.registry.snapshot
            log.info(
                "initial scan done",
                models=len(snap.models),
                versions=sum(len(m.versions) for m in snap.models.values()),
            )
            _settle_heap()
            systemd.notify("READY=1", "STATUS=serving")
            self._serve(running)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        return exit_codes.OK

    def _serve(self, running: _Running) -> None:
        period = systemd.watchdog_period()
        while True:
            received = signal.sigtimedwait(_SIGNALS, period or 3600.0)
            if received is None:
                if period is not None:
                    systemd.notify("WATCHDOG=1")
                continue
            signum = received.si_signo
            if signum == signal.SIGHUP:
                running = self._reload(running)
                continue
            log.info("stopping", signal=signal.Signals(signum).name)
            systemd.notify("STOPPING=1")
            running.watcher.stop()
            running.worker.stop()
            self._web_poller.stop()
            running.server.stop()  # no more pushes ...
            if self._push is not None:
                self._push.close()
            running.ingest.stop()  # ... then the final checkpoint
            if self._spool is not None:
                self._spool.close()
            return

    def _reload(self, running: _Running) -> _Running:
        systemd.notify("RELOADING=1", systemd.reloading_message())
        gc.unfreeze()  # what the reload replaces can be collected again
        try:
            return self._apply_reload(running)
        finally:
            _settle_heap()

    def _keep_running(
        self,
        running: _Running,
        message: str = "configuration reload failed; keeping the running one",
        **details: Any,
    ) -> _Running:
        """A reload that cannot apply: say why, keep what runs, tell systemd we are back."""
        self.status.config_reload_ok = False
        log.error(message, **details)
        systemd.notify("READY=1")
        return running

    def _apply_reload(self, running: _Running) -> _Running:
        try:
            settings = self._reload_settings()
        except ConfigError as exc:
            return self._keep_running(running, problems=exc.problems)
        old = self._settings
        if settings.web.enable_push != old.web.enable_push or settings.push != old.push:
            log.warning("changes to web.enable_push and push.* take effect at the next restart")
        problem = (
            push_exposure_problem(
                settings.web.listen_address,
                auth_configured=settings.web_config.requires_auth,
                opted_in=settings.web.push_without_auth,
            )
            if self._push is not None
            else None
        )
        if problem is not None:
            return self._keep_running(running, problems=[problem])
        server = running.server
        if (settings.web.listen_address, settings.namespace) != (
            old.web.listen_address,
            old.namespace,
        ):
            try:
                server = self._make_server(settings)
            except ConfigError as exc:
                return self._keep_running(running, problems=exc.problems)
            except OSError as exc:
                return self._keep_running(
                    running,
                    "configuration reload failed: cannot listen; keeping the running one",
                    address=settings.web.listen_address,
                    error=exc.strerror,
                )
            running.server.stop()
            server.start()
            self._server = server
        else:
            try:
                server.configure(self._web_config(settings), settings.web.probes_without_auth)
            except ConfigError as exc:
                return self._keep_running(running, problems=exc.problems)
        limits = ("max_connections", "header_timeout", "idle_timeout")
        if any(getattr(settings.web, k) != getattr(old.web, k) for k in limits):
            log.warning(
                "changes to web.max_connections and the timeouts take effect at the next restart"
            )
        configure_logging(settings.log.level, settings.log.format)
        shard = self.status.shard  # what the checkpoint and the other shards expect
        if settings.models.shard != shard:
            log.warning(
                "models.shard takes effect at the next restart; still exporting shard",
                shard=str(shard),
                configured=str(settings.models.shard),
            )
        # (the safety-net interval follows --models.resync-interval; not worth a warning)
        if replace(ingest_config(settings, shard), rediscover_interval=0) != replace(
            ingest_config(old, shard), rediscover_interval=0
        ):
            # Swapping checkpoints under a running ingester could count lines twice.
            log.warning("changes to logs.* and state.dir take effect at the next restart")
        running.watcher.stop()
        running.worker.stop()
        self.registry.configure(registry_config(settings, shard))
        watcher, worker = self._start_watching(settings)
        self._settings = settings
        self.status.config_reload_ok = True
        self.status.web_config_reload_ok = True
        self.status.config_reload_timestamp = time.time()
        log.info("configuration reloaded", url=f"http://{settings.web.listen_address}/")
        systemd.notify("READY=1")
        return _Running(server, watcher, worker, running.ingest)

"""The push endpoints (docs/integrations.md): POST /api/v1/predictions and
/api/v1/feedback take batches of records, POST /api/v1/events the payload-logger
CloudEvents of KServe and Seldon. What is taken is in the spool (written and fsync'ed)
before the answer, and the prediction-log tailer counts it from there.

A batch is taken whole or refused whole: one bad record refuses the batch with 400, its
index and the reason, and nothing of it is written."""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from model_health_exporter.ingress.payloads import (
    Half,
    PayloadError,
    binary_event,
    decode_batch,
    join,
    request_rows,
    response_rows,
    split_batch,
    structured_event,
)
from model_health_exporter.records import LINE_ERROR_REASONS, Feedback, Prediction, parse_lines
from model_health_exporter.schema import excerpt
from model_health_exporter.sources.reference import CSV_FILE, csv_feature_columns, find_reference
from model_health_exporter.sources.spool import Spool, SpoolFullError
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import ModelView, Snapshot

log = structlog.get_logger(__name__)

ERROR_SOURCE: Final = "push"
# reasons of routing_ml_exporter_errors_total{source="push"}: every refused request
ERROR_REASONS: Final = (
    *(r for r in LINE_ERROR_REASONS if r != "line_too_long"),
    "line_too_long",
    "invalid_event",
    "unknown_event_type",
    "invalid_chunked",
    "too_large",
    "unsupported_media_type",
    "spool_full",
    "unwritable",
)
RESULTS: Final = ("accepted", "duplicate", "waiting")
ROUTES: Final = ("predictions", "feedback", "events")
_JSON_TYPES: Final = frozenset(
    ("application/json", "application/x-ndjson", "application/jsonl", "application/json-lines")
)
_STRUCTURED: Final = "application/cloudevents+json"
_MAX_KEY_CHARS: Final = 256
# Room left in a line for the batch mark the spool adds to a batch's first line.
_MARK_BYTES: Final = 64 + 4 * _MAX_KEY_CHARS
_LOG_EVERY_SECONDS: Final = 10.0
_MAX_CACHED_REFERENCES: Final = 10_000
_READ_PIECE: Final = 64 * 1024  # a chunked body is read in pieces up to its limit


@dataclass(frozen=True, slots=True)
class PushModel:
    """How the events of one served model map to a model here (YAML `push.models`)."""

    model: str | None = None  # the model folder's name, if not the event's name
    version: str | None = None  # default: the model's active version
    features: tuple[str, ...] | None = None  # names of positional inputs, in order
    classes: tuple[str, ...] | None = None  # names of probability columns, in order


@dataclass(frozen=True, slots=True)
class PushConfig:
    max_request_bytes: int = 16 << 20
    max_line_bytes: int = 64 * 1024  # the tailer's: a longer record would be skipped
    join_wait: float = 60.0
    max_waiting: int = 10_000
    max_waiting_bytes: int = 64 << 20  # the waiting events' JSON, in memory and on disk
    models: Mapping[str, PushModel] = field(default_factory=dict)


class RefusedError(Exception):
    def __init__(
        self,
        status: str,
        reason: str,
        message: str,
        index: int | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.index, self.headers = index, list(headers)


@dataclass(slots=True)
class _Waiting:
    half: Half
    model: str
    version: str
    since: float  # monotonic
    size: int  # bytes of its JSON
    at: float  # Unix time it came


def is_push_path(path: str) -> bool:
    """/api/v1/predictions, /api/v1/feedback (each optionally /<model>[/<version>]) and
    /api/v1/events."""
    parts = path.strip("/").split("/")
    return (
        len(parts) >= 3
        and parts[:2] == ["api", "v1"]
        and parts[2] in ROUTES
        and len(parts) <= (3 if parts[2] == "events" else 5)
        and all(parts)
    )


def _header_map(environ: Mapping[str, Any]) -> dict[str, str]:
    return {
        key[5:].lower().replace("_", "-"): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }


def _read_within(stream: Any, limit: int, too_large: RefusedError) -> bytes:
    """A chunked body, refused with `too_large` as soon as it is over `limit` bytes."""
    parts: list[bytes] = []
    total = 0
    try:
        while piece := stream.read(min(_READ_PIECE, limit + 1 - total)):
            parts.append(piece)
            total += len(piece)
            if total > limit:
                raise too_large
    except ValueError as exc:  # the server's decoder: a malformed chunk
        raise _bad("invalid_chunked", f"Transfer-Encoding chunked: {exc}") from None
    return b"".join(parts)


def _bad(reason: str, message: str, index: int | None = None) -> RefusedError:
    return RefusedError("400 Bad Request", reason, message, index)


class PushEndpoint:
    """The WSGI application of the push routes; `close()` stops its timer."""

    def __init__(
        self,
        spool: Spool,
        snapshot: Callable[[], Snapshot],
        config: PushConfig,
        errors: LabelledCounter,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self._spool = spool
        self._snapshot = snapshot
        self._config = config
        self._errors = errors
        self._notify = notify
        self.results = LabelledCounter((r,) for r in RESULTS)
        self.unpaired = LabelledCounter((h,) for h in ("request", "response"))
        self.records = LabelledCounter([("records",)])
        self._lock = threading.Lock()  # the waiting halves
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()
        self._waiting_bytes = 0
        # reference.csv -> (its stat when read, its feature columns)
        self._reference_cache: dict[Path, tuple[tuple[int, int, int], tuple[str, ...] | None]] = {}
        self._halves_written = 0
        self._last_log = 0.0
        self._stop = threading.Event()
        self._restore()
        self._timer = threading.Thread(target=self._expire_loop, name="push-joins", daemon=True)
        self._timer.start()

    # ---- WSGI -------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not is_push_path(path):
            return self._answer(start_response, "404 Not Found", {"error": "not found"})
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                return self._answer(
                    start_response,
                    "405 Method Not Allowed",
                    {"error": "POST only"},
                    [("Allow", "POST")],
                )
            status, body = self._handle(path, environ)
        except RefusedError as exc:
            self._errors.inc((ERROR_SOURCE, exc.reason))
            self._log_refusal(path, exc)
            answer: dict[str, Any] = {"error": exc.message, "reason": exc.reason}
            if exc.index is not None:
                answer["index"] = exc.index
            return self._answer(start_response, exc.status, answer, exc.headers)
        return self._answer(start_response, status, body)

    @staticmethod
    def _answer(
        start_response: Callable[..., Any],
        status: str,
        body: Mapping[str, Any],
        headers: Sequence[tuple[str, str]] = (),
    ) -> list[bytes]:
        data = orjson.dumps(body) + b"\n"
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers],
        )
        return [data]

    def _log_refusal(self, path: str, exc: RefusedError) -> None:
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_SECONDS:
            self._last_log = now
            log.warning(
                "push refused (further ones counted, logged at most every 10 s)",
                path=path,
                status=exc.status,
                reason=exc.reason,
                index=exc.index,
                problem=exc.message,
            )

    def _body(self, environ: Mapping[str, Any]) -> bytes:
        limit = self._config.max_request_bytes
        too_large = RefusedError(
            "413 Content Too Large", "too_large", f"the body is over the {limit}-byte limit"
        )
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise _bad("invalid_json", "Content-Length is not a number") from None
        if length > limit:
            raise too_large
        if chunked:  # no length to tell from: read until the limit is passed, no further
            body = _read_within(environ["wsgi.input"], limit, too_large)
        else:
            body = environ["wsgi.input"].read(length) if length else b""
        encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
        if encoding == "gzip":
            try:
                inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                body = inflate.decompress(body, limit + 1)
            except zlib.error as exc:
                raise _bad("invalid_json", f"Content-Encoding gzip: {exc}") from None
            if len(body) > limit:
                raise too_large
        elif encoding not in ("identity", ""):
            raise RefusedError(
                "415 Unsupported Media Type",
                "unsupported_media_type",
                f"Content-Encoding {excerpt(encoding)}: gzip or identity only",
            )
        return body

    def _handle(self, path: str, environ: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        parts = path.strip("/").split("/")  # api, v1, route[, model[, version]]
        route = parts[2]
        content_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        # Read (within the size limit) before any other refusal: a server that answers
        # and closes with a body unread may reset the connection under its answer.
        body = self._body(environ)
        headers = _header_map(environ)
        is_event = content_type == _STRUCTURED or "ce-type" in headers
        if not is_event and route == "events":
            raise RefusedError(
                "415 Unsupported Media Type",
                "unsupported_media_type",
                "events: a CloudEvent in binary mode (ce-* headers) or structured mode "
                f"({_STRUCTURED})",
            )
        if content_type not in _JSON_TYPES and content_type != _STRUCTURED:
            raise RefusedError(
                "415 Unsupported Media Type",
                "unsupported_media_type",
                f"Content-Type {excerpt(content_type)}: expected application/json, "
                f"application/x-ndjson or {_STRUCTURED}",
            )
        if is_event:
            try:
                half = (
                    structured_event(body)
                    if content_type == _STRUCTURED
                    else binary_event(headers, body)
                )
            except PayloadError as exc:
                raise _bad(exc.reason, exc.message) from None
            return self._event(half)
        key = headers.get("idempotency-key")
        if key is not None and len(key) > _MAX_KEY_CHARS:
            raise _bad(
                "invalid_record", f"Idempotency-Key: longer than {_MAX_KEY_CHARS} characters"
            )
        model = parts[3] if len(parts) > 3 else None
        version = parts[4] if len(parts) > 4 else None
        lines = self._fast_lines(body, content_type, route, model, version)
        if lines is None:
            try:
                records = decode_batch(body, content_type)
            except PayloadError as exc:
                raise _bad(exc.reason, exc.message, exc.index) from None
            lines = self._lines(records, route, model, version)
        written = self._append(lines, None if key is None else f"batch:{key}")
        return "200 OK", {"accepted": len(lines) if written else 0, "duplicate": not written}

    # ---- records ----------------------------------------------------------------------

    def _resolve(self, model: str | None, version: str | None, index: int) -> tuple[str, str]:
        if not model:
            raise _bad(
                "unknown_model",
                f"record {index}: no model (in the path /api/v1/<route>/<model> or the record)",
                index,
            )
        view = self._snapshot().models.get(model)
        if view is None:
            raise _bad(
                "unknown_model", f"record {index}: no model {excerpt(model)} is known", index
            )
        if version is None:
            version = view.active_version
            if version is None:
                raise _bad(
                    "unknown_model", f"record {index}: model {excerpt(model)} has no version", index
                )
        elif not any(v.version == version for v in view.versions):
            raise _bad(
                "unknown_model",
                f"record {index}: model {excerpt(model)} has no version {excerpt(version)}",
                index,
            )
        return model, version

    def _fast_lines(
        self, body: bytes, content_type: str, route: str, model: str | None, version: str | None
    ) -> list[bytes] | None:
        """The spool lines of a batch whose records name no model or version of their own
        (the path does), made from the records' text: model and version written in
        front, no dict built and encoded again. None where `_lines` must decide."""
        if model is None:
            return None
        raws = split_batch(body, content_type)
        if raws is None or not raws:
            return None
        for raw in raws:
            if raw[:1] != b"{" or b'"model"' in raw or b'"version"' in raw:
                return None
        model, version = self._resolve(model, version, 0)
        head = orjson.dumps({"model": model, "version": version})[:-1]
        max_bytes = self._config.max_line_bytes - _MARK_BYTES
        lines = []
        for i, raw in enumerate(raws):
            rest = raw[1:]
            line = head + (rest if rest.lstrip()[:1] == b"}" else b"," + rest)
            if len(line) > max_bytes:
                raise _bad("line_too_long", f"record {i}: over {max_bytes} bytes", i)
            lines.append(line)
        self._check(lines, route)
        return lines

    def _check(self, lines: list[bytes], route: str) -> None:
        """Raises RefusedError at the first line the tailer would not count as `route`."""
        parsed, rejected = parse_lines(lines)
        if rejected:
            i, exc = rejected[0]
            raise _bad(exc.reason, f"record {i}: {exc.message}", i)
        kind = Feedback if route == "feedback" else Prediction
        for i, item in enumerate(parsed):
            if not isinstance(item, kind):
                what = "feedback (id and actual)" if route == "feedback" else "a prediction"
                raise _bad("invalid_record", f"record {i}: /api/v1/{route} takes {what}", i)

    def _lines(
        self,
        records: list[dict[str, Any]],
        route: str,
        model: str | None,
        version: str | None,
    ) -> list[bytes]:
        """Each record as the spool line the tailer will read, model and version filled
        in; raises RefusedError at the first record the tailer would not count."""
        lines = []
        max_bytes = self._config.max_line_bytes - _MARK_BYTES
        resolved: dict[tuple[str | None, str | None], tuple[str, str]] = {}
        for i, record in enumerate(records):
            is_feedback = "actual" in record and "prediction" not in record
            if is_feedback != (route == "feedback"):
                what = "feedback (id and actual)" if route == "feedback" else "a prediction"
                raise _bad("invalid_record", f"record {i}: /api/v1/{route} takes {what}", i)
            wanted = (record.get("model", model), record.get("version", version))
            if wanted not in resolved:
                if not all(isinstance(x, str | None) for x in wanted):
                    raise _bad(
                        "invalid_record", f"record {i}: model and version must be strings", i
                    )
                resolved[wanted] = self._resolve(wanted[0], wanted[1], i)
            record["model"], record["version"] = resolved[wanted]
            line = orjson.dumps(record)
            if len(line) > max_bytes:
                raise _bad("line_too_long", f"record {i}: over {max_bytes} bytes", i)
            lines.append(line)
        self._check(lines, route)
        return lines

    def _append(self, lines: list[bytes], key: str | None) -> bool:
        if not lines:
            return True
        try:
            written = self._spool.append(lines, key)
        except SpoolFullError as exc:
            raise RefusedError(
                "503 Service Unavailable",
                "spool_full",
                "the spool is full until the exporter has read it; retry later",
                headers=[("Retry-After", str(exc.retry_after))],
            ) from None
        except OSError as exc:
            log.error("cannot write the push spool", problem=exc.strerror or str(exc))
            raise RefusedError(
                "503 Service Unavailable",
                "unwritable",
                "the spool cannot be written; retry later",
                headers=[("Retry-After", "30")],
            ) from None
        if written:
            self.records.inc(("records",), len(lines))
            self.results.inc(("accepted",))
            self._notify()
        else:
            self.results.inc(("duplicate",))
        return written

    # ---- events -----------------------------------------------------------------------

    def _mapping(self, half: Half) -> tuple[str, str, PushModel]:
        models = self._config.models
        known = self._snapshot().models
        for name in half.names:
            if name in models:
                mapped = models[name]
                model, version = self._resolve(mapped.model or name, mapped.version, 0)
                return model, version, mapped
        for name in half.names:
            if name in known:
                model, version = self._resolve(name, None, 0)
                return model, version, PushModel()
        raise _bad(
            "unknown_model",
            f"no model named {', '.join(excerpt(n) for n in half.names)} is known "
            "(a model folder of that name, or push.models in the configuration)",
        )

    def _columns(self, model: str, version: str, mapped: PushModel) -> tuple[str, ...] | None:
        """Names of positional inputs: configured, else the column order of the version's
        reference.csv (what drift compares with), else metrics.json's column_names."""
        if mapped.features is not None:
            return mapped.features
        snapshot = self._snapshot()
        view: ModelView | None = snapshot.models.get(model)
        for v in view.versions if view is not None else ():
            if v.version != version:
                continue
            reference = v.directory / CSV_FILE
            if find_reference(v.directory) == reference and (
                snapshot.containment is None or snapshot.containment.allows(reference)
            ):
                columns = self._reference_columns(reference)
                if columns:
                    return columns
            if v.metrics is not None and v.metrics.dataset_stats:
                names = v.metrics.dataset_stats.column_names
                return tuple(names) if names else None
        return None

    def _reference_columns(self, path: Path) -> tuple[str, ...] | None:
        """A reference.csv's feature columns, read again only when the file changed."""
        try:
            st = path.stat()
        except OSError:
            return None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._reference_cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        columns = csv_feature_columns(path)
        if len(self._reference_cache) >= _MAX_CACHED_REFERENCES:
            self._reference_cache.clear()
        self._reference_cache[path] = (stamp, columns)
        return columns

    def _event(self, half: Half) -> tuple[str, dict[str, Any]]:
        model, version, mapped = self._mapping(half)
        columns = self._columns(model, version, mapped)
        try:  # each half is checked as it comes: its sender hears about it
            if half.kind == "request":
                request_rows(half.data, columns)
            else:
                response_rows(half.data, mapped.classes)
        except ValueError as exc:
            raise _bad("invalid_event", f"{half.kind}: {exc}") from None
        key = f"pair:{half.pair}"
        with self._lock:
            waiting = self._waiting.get(half.pair)
            if waiting is not None and waiting.half.kind == half.kind:
                self.results.inc(("duplicate",))
                return "200 OK", {"accepted": 0, "duplicate": True}
            if self._spool.seen(key):
                self.results.inc(("duplicate",))
                return "200 OK", {"accepted": 0, "duplicate": True}
            if waiting is None:
                at = time.time()
                data = orjson.dumps(
                    {"half": half.to_dict(), "model": model, "version": version, "at": at}
                )
                if (
                    len(self._waiting) >= self._config.max_waiting
                    or self._waiting_bytes + len(data) > self._config.max_waiting_bytes
                ):
                    raise RefusedError(
                        "503 Service Unavailable",
                        "spool_full",
                        f"{len(self._waiting)} events ({self._waiting_bytes} bytes) wait for "
                        "their partner; retry later",
                        headers=[("Retry-After", "5")],
                    )
                try:
                    self._spool.add_half(data)
                except OSError as exc:
                    raise RefusedError(
                        "503 Service Unavailable",
                        "unwritable",
                        f"spool: {exc}",
                        headers=[("Retry-After", "30")],
                    ) from None
                self._halves_written += 1
                self._keep(_Waiting(half, model, version, time.monotonic(), len(data), at))
                self.results.inc(("waiting",))
                return "200 OK", {"accepted": 0, "duplicate": False, "waiting": True}
            self._drop(half.pair)
            request, response = (
                (half, waiting.half) if half.kind == "request" else (waiting.half, half)
            )
            try:
                records = join(request, response, columns, mapped.classes)
                lines = self._lines(records, "predictions", model, version)
                self._append(lines, key)
            except PayloadError as exc:
                raise _bad(exc.reason, exc.message) from None
            self._compact()
            return "200 OK", {"accepted": len(lines), "duplicate": False}

    def _keep(self, waiting: _Waiting) -> None:
        self._waiting[waiting.half.pair] = waiting
        self._waiting_bytes += waiting.size

    def _drop(self, pair: str) -> _Waiting:
        waiting = self._waiting.pop(pair)
        self._waiting_bytes -= waiting.size
        return waiting

    def _compact(self) -> None:
        """Rewrite halves.jsonl with the halves still waiting once most of its lines
        are of pairs already joined (call with the lock held)."""
        if self._halves_written > 2 * len(self._waiting) + 100:
            self._spool.rewrite_halves(
                {"half": w.half.to_dict(), "model": w.model, "version": w.version, "at": w.at}
                for w in self._waiting.values()
            )
            self._halves_written = len(self._waiting)

    def _restore(self) -> None:
        """The events that waited for their partner before a restart wait again, for a
        full `join_wait`; those older than the idempotency horizon (their pair's key may
        be forgotten, so a joined pair could not be told) are dropped."""
        now, oldest = time.monotonic(), time.time() - self._spool.keys_age
        lines = 0
        for item in self._spool.load_halves():
            lines += 1
            try:
                half = Half.from_dict(item["half"])
                model, version = str(item["model"]), str(item["version"])
                at = float(item.get("at", 0.0))
            except (KeyError, TypeError, ValueError):
                continue
            if at < oldest or self._spool.seen(f"pair:{half.pair}"):
                continue  # joined before the restart, or too old to tell
            if half.pair in self._waiting:
                continue  # (a pair's second event is joined, never written here)
            self._keep(_Waiting(half, model, version, now, len(orjson.dumps(item)), at))
        self._halves_written = lines

    def expire(self, now: float | None = None) -> None:
        """Give up on halves that waited `join_wait`: a response alone becomes records
        without features; a request alone is dropped. Both are counted."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = []
            while self._waiting:
                pair, waiting = next(iter(self._waiting.items()))
                if now - waiting.since < self._config.join_wait:
                    break
                due.append(self._drop(pair))
            for waiting in due:
                half = waiting.half
                self.unpaired.inc((half.kind,))
                if half.kind == "response":
                    mapped = self._config.models.get(half.names[0], PushModel())
                    try:
                        records = join(None, half, None, mapped.classes)
                        self._append(
                            self._lines(records, "predictions", waiting.model, waiting.version),
                            f"pair:{half.pair}",
                        )
                    except (PayloadError, RefusedError) as exc:
                        log.warning(
                            "a response that waited for its request was not taken", problem=str(exc)
                        )
            if due:
                self._compact()

    def _expire_loop(self) -> None:
        while not self._stop.wait(min(1.0, self._config.join_wait / 4)):
            try:
                self.expire()
            except Exception:  # keep the timer alive; the next round retries
                log.exception("push join expiry failed")

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        self._stop.set()
        self._timer.join()


class PushCollector(Collector):
    """The push endpoints' own series; all zero while push is off."""

    def __init__(
        self,
        namespace: str,
        endpoint: Callable[[], PushEndpoint | None],
        spool_bytes: Callable[[], int],
    ) -> None:
        self._ns = namespace
        self._endpoint = endpoint
        self._spool_bytes = spool_bytes

    def collect(self) -> Iterator[Metric]:
        ns, endpoint = self._ns, self._endpoint()
        results = CounterMetricFamily(
            f"{ns}_exporter_push_requests",
            "Push requests answered 2xx by result: accepted (spooled), duplicate (an "
            "idempotency key or event id seen before; nothing spooled) or waiting (an event "
            "held for its request or response partner). RefusedError ones are in "
            'exporter_errors_total{source="push"}.',
            labels=["result"],
        )
        values = endpoint.results.values() if endpoint is not None else {}
        for (result,) in ((r,) for r in RESULTS):
            results.add_metric([result], values.get((result,), 0.0))
        yield results
        records = CounterMetricFamily(
            f"{ns}_exporter_push_records",
            "Records written to the push spool (each counted by the tailer once it reads it).",
        )
        records.add_metric(
            [], endpoint.records.values().get(("records",), 0.0) if endpoint else 0.0
        )
        yield records
        unpaired = CounterMetricFamily(
            f"{ns}_exporter_push_unpaired_events",
            "Payload-logger events whose partner did not come within --push.join-wait: a "
            "response alone is counted as predictions without features, a request alone "
            "is dropped.",
            labels=["half"],
        )
        values = endpoint.unpaired.values() if endpoint is not None else {}
        for half in ("request", "response"):
            unpaired.add_metric([half], values.get((half,), 0.0))
        yield unpaired
        waiting = GaugeMetricFamily(
            f"{ns}_exporter_push_events_waiting",
            "Payload-logger events waiting for their partner.",
        )
        waiting.add_metric([], float(endpoint.waiting) if endpoint is not None else 0.0)
        yield waiting
        spool = GaugeMetricFamily(
            f"{ns}_exporter_push_spool_bytes",
            "Bytes in the push spool's files (deleted once read and checkpointed).",
        )
        spool.add_metric([], float(self._spool_bytes()))
        yield spool


def push_error_keys() -> list[tuple[str, str]]:
    return [(ERROR_SOURCE, reason) for reason in ERROR_REASONS]

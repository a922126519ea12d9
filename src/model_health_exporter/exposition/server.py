"""The HTTP server: /metrics, /, /healthz, /readyz and /api/v1/models."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from model_health_exporter.exposition.html import etag_matches, live_etag
from model_health_exporter.exposition.http_server import WebServer
from model_health_exporter.exposition.pages import (
    MODELS_PATH,
    Live,
    landing_page,
    model_page_response,
    models_json,
)
from model_health_exporter.exposition.render import CachedSection
from model_health_exporter.ingress.push import is_push_path
from model_health_exporter.sharding import Shard
from model_health_exporter.state.registry import Snapshot

__all__ = ["WebServer", "make_app", "metrics_body"]  # WebServer: the daemon's import

Encoder = Callable[..., bytes]  # takes a registry or a restricted view of one


def _encoder_for(accept: str) -> tuple[Encoder, str]:
    """prometheus_client's choice by Accept, over the media ranges it can parse: it raises
    on some (`text/plain; version=x.y` compares "x" with 1), and a client's odd header
    must not turn a scrape into a 500. With none left it is the text format."""
    ranges = []
    for media_range in accept.split(","):
        try:
            choose_encoder(media_range)
        except (TypeError, ValueError, IndexError):
            continue
        ranges.append(media_range)
    return choose_encoder(",".join(ranges))


def metrics_body(
    environ: WSGIEnvironment,
    sections: Sequence[CachedSection[Any]],
    registry: CollectorRegistry,
) -> tuple[list[bytes], list[tuple[str, str]]]:
    """/metrics as prometheus_client serves it (text or OpenMetrics by Accept, gzip by
    Accept-Encoding, `name[]` filters): the per-model and per-version families from the
    render caches, then the exporter's own, which change on every scrape. Returned as
    chunks: joining them would copy tens of megabytes at 10,000 versions."""
    encoder, content_type = _encoder_for(environ.get("HTTP_ACCEPT", ""))
    requested = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
    names = frozenset(requested) if requested else None
    compress = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))
    live = registry.restricted_registry(names) if names is not None else registry
    chunks = [s.render(encoder, content_type, names, compress) for s in sections]
    own = encoder(live)
    headers = [("Content-Type", content_type)]
    if compress:
        # Concatenated gzip members form one valid gzip stream (RFC 1952, 2.2).
        own = gzip.compress(own, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    return [*chunks, own], headers


# Pages and the JSON API are sent gzip-compressed to clients that accept it, from this
# size on (a smaller body gains little); the board at 1,000 models is about 3.6 MB of
# HTML, which compresses about twentyfold. Level 1: the fastest, most of the gain.
GZIP_MIN_BYTES: Final = 1024


def _encoded(
    environ: WSGIEnvironment, body: bytes, headers: list[tuple[str, str]]
) -> tuple[bytes, list[tuple[str, str]]]:
    """`body` with its Content-Length, gzip-compressed if the client accepts it and it
    is large enough to gain. Its ETag, if any, becomes weak when compressed: the
    compressed and the plain body are the same content, not the same bytes
    (RFC 9110, 8.8.1), and a refresh that sends either back still matches."""
    headers = [*headers, ("Vary", "Accept-Encoding")]
    if _compresses(environ, body):
        body = gzip.compress(body, compresslevel=1)
        headers = [(k, f"W/{v}" if k == "ETag" else v) for k, v in headers]
        headers.append(("Content-Encoding", "gzip"))
    return body, [*headers, ("Content-Length", str(len(body)))]


def _compresses(environ: WSGIEnvironment, body: bytes) -> bool:
    return len(body) >= GZIP_MIN_BYTES and gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))


def _conditional(
    environ: WSGIEnvironment, start_response: StartResponse, part: bytes
) -> list[bytes]:
    """A page's live part with its ETag; 304 Not Modified without the body when the
    refresh script already has it (at 1,000 models the board's is about 3 MiB)."""
    etag = live_etag(part)
    headers = [("ETag", etag), ("Cache-Control", "no-cache")]
    if etag_matches(environ.get("HTTP_IF_NONE_MATCH", ""), etag):
        # the ETag the 200 would carry: weak for a client that gets it compressed
        if _compresses(environ, part):
            headers[0] = ("ETag", f"W/{etag}")
        start_response("304 Not Modified", [*headers, ("Vary", "Accept-Encoding")])
        return []
    body, headers = _encoded(
        environ, part, [*headers, ("Content-Type", "text/html; charset=utf-8")]
    )
    start_response("200 OK", headers)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def make_app(
    registry: CollectorRegistry,
    sections: Sequence[CachedSection[Any]],
    snapshot: Callable[[], Snapshot],
    version: str,
    live: Callable[[], Live] = Live,
    *,
    shard: Shard | None = None,
    push: WSGIApplication | None = None,
    ready: Callable[[], bool] | None = None,
) -> WSGIApplication:
    """`push`: the push endpoints' application (ingress/push.py), when enabled.
    `ready`: whether /readyz answers 200; by default, once the initial scan is done."""
    is_ready = ready or (lambda: snapshot().ready)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if push is not None and is_push_path(path):
            return push(environ, start_response)
        if path == "/metrics" and method in ("GET", "HEAD"):
            chunks, headers = metrics_body(environ, sections, registry)
            length = sum(map(len, chunks))
            start_response("200 OK", [*headers, ("Content-Length", str(length))])
            return [] if method == "HEAD" else chunks

        def respond(status: str, content_type: str, body: bytes) -> list[bytes]:
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            if status.startswith("405"):
                headers.append(("Allow", "GET, HEAD"))
            start_response(status, headers)
            return [] if method == "HEAD" else [body]

        def respond_encoded(status: str, content_type: str, body: bytes) -> list[bytes]:
            """A page or the JSON API: compressed for a client that accepts it."""
            body, headers = _encoded(environ, body, [("Content-Type", content_type)])
            start_response(status, headers)
            return [] if method == "HEAD" else [body]

        if method not in ("GET", "HEAD"):
            return respond("405 Method Not Allowed", "text/plain", b"GET or HEAD only\n")
        query = environ.get("QUERY_STRING", "")
        if path == "/":
            part = "part=live" in query.split("&")
            body = landing_page(snapshot(), version, live(), shard, part=part)
            if part:
                return _conditional(environ, start_response, body)
            return respond_encoded("200 OK", "text/html; charset=utf-8", body)
        if path.startswith(MODELS_PATH):
            code, body = model_page_response(snapshot(), version, live(), path, query)
            status = "200 OK" if code == 200 else "404 Not Found"
            return respond_encoded(status, "text/html; charset=utf-8", body)
        if path == "/healthz":
            return respond("200 OK", "text/plain", b"ok\n")
        if path == "/readyz":
            if is_ready():
                return respond("200 OK", "text/plain", b"ready\n")
            return respond("503 Service Unavailable", "text/plain", b"starting\n")
        if path == "/api/v1/models":
            body = models_json(snapshot(), live(), shard)
            return respond_encoded("200 OK", "application/json", body)
        return respond("404 Not Found", "text/plain", b"not found\n")

    return app

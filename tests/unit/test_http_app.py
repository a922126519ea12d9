"""The WSGI application of make_app, called directly: what /metrics answers for each
Accept header, including ones prometheus_client cannot parse."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

from model_health_exporter.exposition.server import make_app
from model_health_exporter.state.registry import EMPTY_SNAPSHOT

TEXT = "text/plain; version=0.0.4; charset=utf-8"


def call(app: Any, path: str, **environ: str) -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, dict(headers)
        return lambda data: None

    body: Iterable[bytes] = app(
        {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": "", **environ},
        start_response,
    )
    return captured["status"], captured["headers"], b"".join(body)


@pytest.fixture
def app() -> Any:
    registry = CollectorRegistry()
    Gauge("up_probe", "A gauge.", registry=registry).set(1)
    return make_app(registry, [], lambda: EMPTY_SNAPSHOT, "0.0.0")


@pytest.mark.parametrize(
    "accept",
    [
        "text/plain; version=x.y",
        "application/openmetrics-text; version=x.y",
        "text/plain; version=1.x",
        "text/plain; version=",
    ],
)
def test_unparseable_accept_falls_back_to_text(app: Any, accept: str) -> None:
    status, headers, body = call(app, "/metrics", HTTP_ACCEPT=accept)
    assert status == "200 OK"
    assert headers["Content-Type"] == TEXT
    assert b"up_probe 1.0" in body


def test_a_bad_range_does_not_hide_a_good_one(app: Any) -> None:
    accept = "text/plain; version=x.y, application/openmetrics-text; version=1.0.0"
    status, headers, body = call(app, "/metrics", HTTP_ACCEPT=accept)
    assert status == "200 OK"
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")


def test_openmetrics_and_default(app: Any) -> None:
    _, headers, _ = call(app, "/metrics", HTTP_ACCEPT="application/openmetrics-text;version=1.0.0")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    _, headers, _ = call(app, "/metrics")
    assert headers["Content-Type"] == TEXT

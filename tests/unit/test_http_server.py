# ruff: noqa: S106 - test passwords
"""The HTTP(S) server in-process with a tiny WSGI app: basic auth and headers, TLS with
and without client certificates, silent and idle clients closed, the connection cap
closing idle ones rather than refusing a scrape, keep-alive, IPv6."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_health_exporter.exposition.http_server import ServerLimits, WebServer
from model_health_exporter.exposition.web_config import WebConfig, load_web_config
from tests.support import closed_by_server, wait_until
from tests.tls_support import Pki, bcrypt_hash, make_pki


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = f"hello {environ['PATH_INFO']}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def serve() -> Iterator[Callable[..., WebServer]]:
    servers: list[WebServer] = []

    def start(
        config: WebConfig | None = None, address: str = "127.0.0.1:0", **kw: Any
    ) -> WebServer:
        server = WebServer(address, hello, config, **kw)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def web_config(tmp_path: Path, doc: dict[str, Any]) -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(doc))
    return load_web_config(path)


def get(
    server: WebServer,
    path: str = "/metrics",
    *,
    user: str | None = None,
    password: str = "",
    context: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(host, server.port, timeout=5)
    else:
        conn = http.client.HTTPSConnection(host, server.port, timeout=5, context=context)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


# ---- basic auth and headers ------------------------------------------------------------


def test_basic_auth(tmp_path: Path, serve: Callable[..., WebServer]) -> None:
    config = web_config(
        tmp_path,
        {
            "basic_auth_users": {"prometheus": bcrypt_hash("s3cret")},
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
        },
    )
    server = serve(config)
    status, headers, _ = get(server)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="model-health-exporter", charset="UTF-8"'
    assert headers["X-Frame-Options"] == "deny"
    assert get(server, user="prometheus", password="wrong")[0] == 401
    assert get(server, user="nobody", password="s3cret")[0] == 401
    status, headers, body = get(server, user="prometheus", password="s3cret")
    assert (status, body) == (200, b"hello /metrics\n")
    assert headers["X-Frame-Options"] == "deny"
    assert get(server, "/healthz")[0] == 401  # probes are protected unless asked


def test_probes_without_auth(tmp_path: Path, serve: Callable[..., WebServer]) -> None:
    config = web_config(tmp_path, {"basic_auth_users": {"p": bcrypt_hash("x")}})
    server = serve(config, probes_without_auth=True)
    assert get(server, "/healthz")[0] == 200
    assert get(server, "/readyz")[0] == 200
    assert get(server, "/metrics")[0] == 401
    assert get(server, "/")[0] == 401


@pytest.mark.parametrize(
    "authorization", ["Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()]
)
def test_malformed_authorization_is_401(
    tmp_path: Path, serve: Callable[..., WebServer], authorization: str
) -> None:
    server = serve(web_config(tmp_path, {"basic_auth_users": {"p": bcrypt_hash("x")}}))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/metrics", headers={"Authorization": authorization})
    assert conn.getresponse().status == 401
    conn.close()


# ---- TLS --------------------------------------------------------------------------------


def tls_doc(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {
        "tls_server_config": {
            "cert_file": str(pki.server_cert),
            "key_file": str(pki.server_key),
            **extra,
        }
    }


def test_https(tmp_path: Path, pki: Pki, serve: Callable[..., WebServer]) -> None:
    server = serve(web_config(tmp_path, tls_doc(pki)))
    status, _, body = get(server, context=client_context(pki))
    assert (status, body) == (200, b"hello /metrics\n")
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        get(server)  # plain HTTP on the TLS port: closed


def test_client_certificate_required(
    tmp_path: Path, pki: Pki, serve: Callable[..., WebServer]
) -> None:
    doc = tls_doc(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca))
    server = serve(web_config(tmp_path, doc))
    good = client_context(pki, pki.client_cert, pki.client_key)
    assert get(server, context=good)[0] == 200
    for context in (
        client_context(pki),
        client_context(pki, pki.other_client_cert, pki.other_client_key),
    ):
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            get(server, context=context)
    assert get(server, context=good)[0] == 200  # failures leave the server serving


def test_client_allowed_sans(tmp_path: Path, pki: Pki, serve: Callable[..., WebServer]) -> None:
    doc = tls_doc(
        pki,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=str(pki.ca),
        client_allowed_sans=["someone-else"],
    )
    server = serve(web_config(tmp_path, doc))
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        get(server, context=client_context(pki, pki.client_cert, pki.client_key))


def test_silent_client_does_not_hold_up_tls_handshakes(
    tmp_path: Path, pki: Pki, serve: Callable[..., WebServer]
) -> None:
    server = serve(web_config(tmp_path, tls_doc(pki)))
    with socket.create_connection(("127.0.0.1", server.port)):
        start = time.monotonic()
        assert get(server, context=client_context(pki))[0] == 200
        assert time.monotonic() - start < 2  # the handshake timeout is 10 s


def test_tls_switched_on_while_serving(
    tmp_path: Path, pki: Pki, serve: Callable[..., WebServer]
) -> None:
    server = serve()
    assert get(server)[0] == 200
    server.configure(web_config(tmp_path, tls_doc(pki)))
    assert get(server, context=client_context(pki))[0] == 200


# ---- slow, silent and many clients -----------------------------------------------------


def test_silent_and_idle_connections_are_closed(serve: Callable[..., WebServer]) -> None:
    server = serve(limits=ServerLimits(header_timeout=0.3, idle_timeout=1.0))
    silent = socket.create_connection(("127.0.0.1", server.port))
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    kept.request("GET", "/metrics")
    response = kept.getresponse()
    response.read()
    assert response.getheader("Connection", "").lower() != "close"  # HTTP/1.1 keep-alive
    with silent:
        wait_until(lambda: closed_by_server(silent), 5, "the silent connection closed")
    assert kept.sock is not None and not closed_by_server(kept.sock)  # within its idle time
    wait_until(lambda: closed_by_server(kept.sock), 5, "the idle keep-alive connection closed")
    kept.close()
    wait_until(lambda: server.open_connections == 0, 5, "no open connections")


def test_keep_alive_serves_many_requests_on_one_connection(serve: Callable[..., WebServer]) -> None:
    server = serve()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(5):
        conn.request("GET", "/metrics")
        assert conn.getresponse().read() == b"hello /metrics\n"
    assert server.open_connections == 1
    conn.close()


def test_at_the_cap_idle_connections_make_room_for_a_scrape(
    serve: Callable[..., WebServer],
) -> None:
    server = serve(limits=ServerLimits(max_connections=5))
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(5)]
    try:
        wait_until(lambda: server.open_connections == 5, 5, "5 connections open")
        for _ in range(3):
            assert get(server)[0] == 200
        assert server.open_connections <= 5
        assert closed_by_server(held[0])  # the oldest made room
        assert sum(closed_by_server(s) for s in held) < 5
    finally:
        for s in held:
            s.close()


def test_ipv6_loopback(serve: Callable[..., WebServer]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        server = serve(address="[::1]:0")
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    conn = http.client.HTTPConnection("::1", server.port, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"hello /healthz\n"
    conn.close()


def test_port_in_use_fails_at_construction(serve: Callable[..., WebServer]) -> None:
    server = serve()
    with pytest.raises(OSError, match="in use"):
        WebServer(f"127.0.0.1:{server.port}", hello)


def test_silent_client_after_the_handshake_holds_no_worker(
    tmp_path: Path, pki: Pki, serve: Callable[..., WebServer]
) -> None:
    """With one worker: a client that completes the TLS handshake and then sends nothing
    waits in the selector, so the next client is served at once."""
    server = serve(web_config(tmp_path, tls_doc(pki)), limits=ServerLimits(workers=1))
    context = client_context(pki)
    raw = socket.create_connection(("127.0.0.1", server.port))
    with context.wrap_socket(raw, server_hostname="127.0.0.1"):  # handshake, then silence
        start = time.monotonic()
        assert get(server, context=context)[0] == 200
        assert time.monotonic() - start < 2  # the header timeout is 10 s


def test_the_web_config_in_force_says_whether_auth_is_required(
    tmp_path: Path, serve: Callable[..., WebServer]
) -> None:
    server = serve()
    assert server.web_config.requires_auth is False
    server.configure(web_config(tmp_path, {"basic_auth_users": {"p": bcrypt_hash("x")}}))
    assert server.web_config.requires_auth is True


def test_headers_trickled_slowly_are_cut_off_at_the_header_timeout(
    serve: Callable[..., WebServer],
) -> None:
    """A byte every 0.2 s never hits a per-read timeout of 1 s, but the whole request
    head must arrive within it: the server answers 408 and closes."""
    server = serve(limits=ServerLimits(header_timeout=1.0))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        start = time.monotonic()
        answer = b""
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if closed_or_answered := select_readable(sock):
                answer = closed_or_answered
                break
        assert b"408" in answer.split(b"\r\n", 1)[0], answer
        assert time.monotonic() - start < 4
    assert get(server)[0] == 200  # others are served meanwhile and after


def trickle(
    sock: socket.socket,
    data: bytes,
    every: float,
    stop: threading.Event,
    sent: list[int] | None = None,
) -> None:
    """Sends `data` a byte at a time, `every` seconds apart, until done or `stop`; counts
    the bytes sent in `sent[0]`."""
    for byte in data:
        if stop.wait(every):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        if sent is not None:
            sent[0] += 1


def read_until(sock: socket.socket, ending: bytes) -> bytes:
    """What the server sends up to and including `ending`; fails if it closes first."""
    answer = b""
    while not answer.endswith(ending):
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    return answer


def test_clients_trickling_headers_hold_no_worker(serve: Callable[..., WebServer]) -> None:
    """Six clients trickle request heads at two workers: until a head is complete its
    connection waits in the selector, so a scrape is answered at once, not after the
    header timeout."""
    server = serve(limits=ServerLimits(workers=2, header_timeout=8.0))
    head = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    stop = threading.Event()
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]
    sent = [[0] for _ in socks]
    threads = [
        threading.Thread(target=trickle, args=(s, head, 0.02, stop, n))
        for s, n in zip(socks, sent, strict=True)
    ]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: min(n[0] for n in sent) >= 10, 5, "every client trickling")
        for _ in range(5):
            start = time.monotonic()
            assert get(server)[0] == 200
            assert time.monotonic() - start < 1.0  # the header timeout is 8 s
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for s in socks:
            s.close()


def test_heads_trickled_within_the_timeout_are_served_on_a_kept_connection(
    serve: Callable[..., WebServer],
) -> None:
    server = serve(limits=ServerLimits(workers=1, header_timeout=5.0))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for path in (b"/first", b"/second"):
            trickle(sock, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n", 0.01, threading.Event())
            answer = read_until(sock, b"hello " + path + b"\n")
            assert answer.startswith(b"HTTP/1.1 200 "), answer


def test_clients_trickling_heads_over_tls_hold_no_worker(
    tmp_path: Path, pki: Pki, serve: Callable[..., WebServer]
) -> None:
    """Over TLS each trickled byte is a record of its own; with one worker, a client
    trickling its head still leaves the worker to a scrape, and its own head, once
    complete, is served (twice on the kept connection)."""
    server = serve(
        web_config(tmp_path, tls_doc(pki)), limits=ServerLimits(workers=1, header_timeout=8.0)
    )
    context = client_context(pki)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as slow:
        for path in (b"/first", b"/second"):
            stop, sent = threading.Event(), [0]
            head = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            thread = threading.Thread(target=trickle, args=(slow, head, 0.05, stop, sent))
            thread.start()
            try:
                wait_until(lambda s=sent: s[0] >= 5, 5, "the client trickling")
                start = time.monotonic()
                assert get(server, context=context)[0] == 200
                assert time.monotonic() - start < 1.0  # the header timeout is 8 s
            finally:
                thread.join(10)
            answer = read_until(slow, b"hello " + path + b"\n")
            assert answer.startswith(b"HTTP/1.1 200 "), answer


def select_readable(sock: socket.socket) -> bytes:
    sock.settimeout(0.01)
    try:
        return sock.recv(4096) or b"<closed>"
    except TimeoutError:
        return b""


def shapes(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Answers of every shape the server frames: a sized body, an empty one, one in
    two chunks, and one without a Content-Length (sent chunked)."""
    path = environ["PATH_INFO"]
    if path == "/empty":
        start_response("204 No Content", [("Content-Length", "0")])
        return []
    if path == "/unsized":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"no ", b"length\n"]
    body = [b"sized ", b"body\n"] if path == "/two" else [b"sized body\n"]
    start_response("200 OK", [("Content-Length", str(sum(map(len, body))))])
    return body


def test_responses_of_every_shape_on_one_connection() -> None:
    """The head is held and sent with the body's first bytes: answers with no body, a
    HEAD, several chunks or chunked framing still arrive whole and in order."""
    server = WebServer("127.0.0.1:0", shapes)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        for method, path, status, body in [
            ("GET", "/one", 200, b"sized body\n"),
            ("GET", "/empty", 204, b""),
            ("HEAD", "/one", 200, b""),
            ("GET", "/two", 200, b"sized body\n"),
            ("GET", "/unsized", 200, b"no length\n"),
            ("GET", "/one", 200, b"sized body\n"),
        ]:
            conn.request(method, path)
            response = conn.getresponse()
            assert (response.status, response.read()) == (status, body), (method, path)
            assert response.getheader("Date", "").endswith(" GMT")
        conn.close()
    finally:
        server.stop()

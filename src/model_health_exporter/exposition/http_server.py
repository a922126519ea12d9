"""The HTTP(S) server under the WSGI application: cheroot (CherryPy's server), with the
changes that keep /metrics answering while idle, slow or many clients are connected.

cheroot gives a fixed pool of worker threads, a request queue, keep-alive, socket
timeouts and a selector that holds idle keep-alive connections without a thread each.
On top of it:

- A new connection waits in the selector, like an idle keep-alive one, until its first
  bytes arrive; only then does a worker take it. (cheroot hands every accepted
  connection straight to a worker, so N silent clients stop N workers for the timeout.)
- Connections are counted, at most `max_connections` (and never more than the open-files
  limit allows). At the cap, or when accept() fails for want of file descriptors, the
  connection idle the longest is closed to make room, those that never sent a request
  first: a scrape, which sends its request at once, is not the one that waits.
- Connections that sent nothing for `header_timeout` seconds are closed, keep-alive ones
  after `idle_timeout` (long enough to outlast Prometheus' scrape interval).
- TLS handshakes run in the worker, not in the accept loop, where one silent client
  would hold up every other; a client silent after its handshake goes back to the
  selector.
- The request line and headers must arrive within the header timeout in total (cheroot's
  timeout is per read: a client sending a byte now and then would keep a worker), and a
  worker parses them only once they are all there: until then the connection waits in the
  selector (the bytes stay in the kernel, read with MSG_PEEK), so clients trickling their
  headers hold no worker. Over TLS the kernel holds ciphertext: what has been decrypted
  is read without waiting and kept in front of the parse's reads.
- The web configuration (TLS context, users, headers) can be swapped while serving.
- A chunked request body (Transfer-Encoding: chunked) is decoded as the application
  reads it, never further than it asks and with bounded size lines (cheroot's decoder
  reads each chunk whole, whatever size the client declares); a connection whose chunked
  body was not read to its end is closed after the answer. A request whose body could
  be framed two ways (Transfer-Encoding in HTTP/1.0, or beside a Content-Length) is
  refused, so no body is read as a request.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import errno
import re
import resource
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import structlog
from cheroot import connections, wsgi
from cheroot import server as cheroot_server
from cheroot.makefile import MakeFile, StreamReader, StreamWriter
from cheroot.ssl import Adapter

from model_health_exporter.config import parse_listen_address
from model_health_exporter.exposition.web_config import BasicAuth, WebConfig

log = structlog.get_logger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

PROBE_PATHS: Final = frozenset({"/healthz", "/readyz"})
REALM: Final = "model-health-exporter"
_FD_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# File descriptors kept for everything but connections (logs, checkpoints, inotify).
_FD_RESERVE: Final = 64
_LOG_EVERY_S: Final = 60.0
# How far a request head is looked for before parsing it; a longer head is parsed as it
# comes (cheroot limits it).
_HEAD_PEEK_BYTES: Final = 65536
_HEAD_ENDS: Final = (b"\r\n\r\n", b"\n\n")


@dataclass(frozen=True)
class ServerLimits:
    workers: int = 8
    max_connections: int = 1000
    backlog: int = 1024
    header_timeout: float = 10.0
    idle_timeout: float = 120.0


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered to leave _FD_RESERVE descriptors of the open-files limit free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - _FD_RESERVE))


# ---- authentication and headers (WSGI middleware) ------------------------------------


class _DateHeader:
    """The Date header's value, formatted once a second rather than by cheroot for every
    response (a few percent of a small request's CPU)."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # (racing threads both write the same value)
            self._value = email.utils.formatdate(now, usegmt=True)
            self._second = second
        return self._value


class _Guard:
    """The web configuration's users and headers in front of the application."""

    def __init__(self, app: WSGIApp, probes_without_auth: bool) -> None:
        self._app = app
        self.probes_open = probes_without_auth
        self._auth: BasicAuth | None = None
        self._headers: tuple[tuple[str, str], ...] = ()
        self._date = _DateHeader()

    def configure(self, config: WebConfig, probes_without_auth: bool) -> None:
        self._auth = BasicAuth(config.users) if config.users else None
        self._headers = config.headers
        self.probes_open = probes_without_auth

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        auth, extra, date = self._auth, self._headers, self._date

        def respond(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, *extra, ("Date", date())], *exc)

        open_probe = self.probes_open and environ.get("PATH_INFO") in PROBE_PATHS
        if auth is not None and not open_probe and not _authorised(auth, environ):
            body = b"Unauthorized\n"
            respond(
                "401 Unauthorized",
                [
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'),
                ],
            )
            return [body]
        return self._app(environ, respond)


def _authorised(auth: BasicAuth, environ: dict[str, Any]) -> bool:
    scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep) and auth.check(user, password)


# ---- TLS --------------------------------------------------------------------------------


class _LazyTLS(Adapter):
    """Wraps accepted sockets without the handshake; _Connection does it in a worker."""

    def __init__(self, context: ssl.SSLContext, allowed_sans: frozenset[str]) -> None:
        self.context = context
        self.allowed_sans = allowed_sans

    def bind(self, sock: Any) -> Any:
        return sock

    def wrap(self, sock: Any) -> tuple[Any, dict[str, str]]:
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def get_environ(self) -> dict[str, str]:
        return {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def makefile(self, sock: Any, mode: str = "r", bufsize: int = -1) -> Any:
        size = bufsize if bufsize > 0 else 8192
        return StreamReader(sock, mode, size) if "r" in mode else StreamWriter(sock, mode, size)


def _readable(sock: Any) -> bool:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _sans(cert: dict[str, Any]) -> set[str]:
    return {str(value) for _, value in cert.get("subjectAltName", ())}


# ---- connections --------------------------------------------------------------------------


class _DeadlineSocket:
    """A socket whose reads end at `deadline` (monotonic seconds) when one is set: the
    request line and headers must arrive within the header timeout in total, however
    slowly a client trickles them."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.deadline: float | None = None
        # Decrypted bytes read ahead while a TLS request head was arriving: read first.
        self.prefix = bytearray()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        prefix = self.prefix
        if prefix:
            n = min(len(prefix), nbytes or len(buffer))
            memoryview(buffer)[:n] = prefix[:n]
            del prefix[:n]
            return n
        deadline = self.deadline
        if deadline is None:
            return int(self._sock.recv_into(buffer, nbytes, flags))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        default = self._sock.gettimeout()
        self._sock.settimeout(remaining)
        try:
            return int(self._sock.recv_into(buffer, nbytes, flags))
        finally:
            self._sock.settimeout(default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _HeldBytes:
    """Stands in for a connection's writer while cheroot writes a response head."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


class ChunkedBodyError(ValueError):
    """A chunked request body that does not follow RFC 9112, section 7.1."""


_CHUNK_LINE_MAX: Final = 4096  # a chunk size line with its extensions, or a trailer line
_TRAILERS_MAX: Final = 64
_CHUNK_READ: Final = 64 * 1024
_CHUNK_SIZE_RE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ChunkedBody:
    """`wsgi.input` of a request with Transfer-Encoding: chunked: the chunks' data, read
    from the connection only as far as asked. Raises ChunkedBodyError where the body is
    malformed or ends early."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._left = 0  # data bytes of the current chunk not read yet
        self._after_data = False  # a chunk's data was read: its CRLF comes next
        self.done = False  # read to its end, trailer section included

    def _line(self, what: str) -> bytes:
        line: bytes = self._rfile.readline(_CHUNK_LINE_MAX + 1)
        if not line.endswith(b"\n"):
            if len(line) > _CHUNK_LINE_MAX:
                raise ChunkedBodyError(f"a {what} is longer than {_CHUNK_LINE_MAX} bytes")
            raise ChunkedBodyError(f"the body ends in a {what}")
        return line.rstrip(b"\r\n")

    def _next_chunk(self) -> None:
        if self._after_data:
            if self._rfile.read(2) != b"\r\n":
                raise ChunkedBodyError("a chunk's data is not followed by CRLF")
            self._after_data = False
        size = self._line("chunk size line").partition(b";")[0].strip()  # extensions ignored
        if not _CHUNK_SIZE_RE.fullmatch(size):
            shown = size[:20].decode("ascii", "replace")
            raise ChunkedBodyError(f"chunk size {shown!r} is not a hexadecimal number")
        self._left = int(size, 16)
        if self._left:
            self._after_data = True
            return
        for _ in range(_TRAILERS_MAX):  # the last chunk: trailer fields up to an empty line
            if not self._line("trailer line"):
                self.done = True
                return
        raise ChunkedBodyError(f"more than {_TRAILERS_MAX} trailer lines")

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None or size < 0 else size
        parts: list[bytes] = []
        while wanted and not self.done:
            if not self._left:
                self._next_chunk()
                continue
            ask = min(self._left, _CHUNK_READ if wanted < 0 else min(wanted, _CHUNK_READ))
            piece: bytes = self._rfile.read(ask)
            if not piece:
                raise ChunkedBodyError("the body ends inside a chunk")
            parts.append(piece)
            self._left -= len(piece)
            if wanted > 0:
                wanted -= len(piece)
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        line = bytearray()
        while size is None or size < 0 or len(line) < size:
            byte = self.read(1)
            line += byte
            if byte in (b"", b"\n"):
                break
        return bytes(line)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def close(self) -> None:
        """The connection's reader stays open for the next request."""


class _Request(cheroot_server.HTTPRequest):
    _head: bytes | None = None  # the response head, held until the body's first bytes
    _body: Any = None

    @property
    def rfile(self) -> Any:
        return self._body

    @rfile.setter
    def rfile(self, reader: Any) -> None:
        """cheroot sets its ChunkedRFile here for a chunked body: ChunkedBody instead."""
        if isinstance(reader, cheroot_server.ChunkedRFile):
            reader = ChunkedBody(reader.rfile)
        self._body = reader

    def send_headers(self) -> None:
        """cheroot's, but a response with a Content-Length sends its head together with
        the body's first chunk: one send() for a small answer instead of two (and one
        GIL hand-over fewer)."""
        body = self._body
        if isinstance(body, ChunkedBody) and not body.done:
            self.close_connection = True  # what is left of it would be read as a request
        wfile, held = self.conn.wfile, _HeldBytes()
        self.conn.wfile = held
        try:
            super().send_headers()
        finally:
            self.conn.wfile = wfile
        if self.chunked_write:  # cheroot writes the chunks' framing itself: no holding
            wfile.write(held.data)
        else:
            self._head = held.data

    def write(self, chunk: bytes) -> None:
        head, self._head = self._head, None
        if head is not None:
            self.conn.wfile.write(head + chunk)
        else:
            super().write(chunk)

    def respond(self) -> None:
        try:
            super().respond()
        finally:
            head, self._head = self._head, None
            if head is not None:  # no body (HEAD, or empty): the head alone
                self.conn.wfile.write(head)

    def read_request_headers(self) -> bool:
        """cheroot's, but a body that could be framed two ways is refused with a 400 and
        the connection closed (RFC 9112, 6.1 and 6.3): Transfer-Encoding in an HTTP/1.0
        request, which cheroot ignores, reading no body and then the body's bytes as the
        next request; or Transfer-Encoding beside a Content-Length."""
        if not super().read_request_headers():  # type: ignore[no-untyped-call]  # untyped in cheroot
            return False
        if b"Transfer-Encoding" not in self.inheaders:
            return True
        if self.response_protocol != "HTTP/1.1":
            problem = "Transfer-Encoding in an HTTP/1.0 request"
        elif b"Content-Length" in self.inheaders:
            problem = "both Transfer-Encoding and Content-Length"
        else:
            return True
        self.close_connection = True
        self.simple_response("400 Bad Request", f"{problem}: the body's length is ambiguous")
        return False

    def parse_request(self) -> None:
        reader: _DeadlineSocket | None = getattr(self.conn, "deadline_reader", None)
        if reader is not None:
            since = getattr(self.conn, "head_since", None)  # its first bytes came then
            reader.deadline = (since or time.monotonic()) + self.server.timeout
        try:
            super().parse_request()
        finally:
            self.conn.head_since = None  # the next request on the connection starts afresh
            if reader is not None:
                reader.deadline = None  # the body: the per-read timeout only


class _Connection(cheroot_server.HTTPConnection):
    RequestHandlerClass = _Request
    served = False  # has sent a request
    head_since: float | None = None  # when the first bytes of a request head came
    _counted = False
    _handshaken = False

    def __init__(self, server: Any, sock: Any, makefile: Any = None) -> None:
        super().__init__(server, sock, makefile or MakeFile)
        raw = getattr(self.rfile, "raw", None)  # the SocketIO under cheroot's reader
        if raw is not None and hasattr(raw, "_sock"):
            self.deadline_reader = _DeadlineSocket(raw._sock)
            raw._sock = self.deadline_reader

    def communicate(self) -> bool:
        sock = self.socket
        if isinstance(sock, ssl.SSLSocket) and not self._handshaken:
            try:
                sock.do_handshake()
                adapter = self.server.ssl_adapter
                sans = adapter.allowed_sans if isinstance(adapter, _LazyTLS) else frozenset()
                if sans and not sans & _sans(sock.getpeercert() or {}):
                    raise ssl.SSLError("client certificate has no allowed SAN")
            except (OSError, ValueError) as exc:
                self.server.note_tls_failure(exc)
                return False
            self._handshaken = True
            if not sock.pending() and not _readable(sock):
                return True  # the request is not here yet: wait in the selector, not here
        if not self._head_complete():
            return True  # the rest of the head comes later: wait in the selector
        self.served = True
        return bool(super().communicate())  # type: ignore[no-untyped-call]  # untyped in cheroot's stubs

    def _head_complete(self) -> bool:
        """Whether parsing can start without waiting for the client: the whole request
        head has arrived, or its header timeout has passed (the parse then answers 408),
        or there is nothing to look at (bytes already buffered, end of stream)."""
        sock = self.socket
        if self.rfile.has_data():
            return True
        if isinstance(sock, ssl.SSLSocket):
            return self._tls_head_complete(sock)
        if not _readable(sock):
            return True
        try:  # plain TCP: the bytes stay in the kernel until the parse reads them
            seen = sock.recv(_HEAD_PEEK_BYTES, socket.MSG_PEEK)
        except OSError:
            return True  # the parse meets the same error and closes the connection
        return not seen or self._head_seen(seen)

    def _tls_head_complete(self, sock: ssl.SSLSocket) -> bool:
        """The kernel holds ciphertext, so what has been decrypted is read without
        waiting and kept in front of the parse's reads."""
        reader: _DeadlineSocket | None = getattr(self, "deadline_reader", None)
        if reader is None:
            return True
        default = sock.gettimeout()
        sock.settimeout(0)
        try:
            while len(reader.prefix) < _HEAD_PEEK_BYTES:
                chunk = sock.recv(_HEAD_PEEK_BYTES - len(reader.prefix))
                if not chunk:
                    return True  # end of stream: the parse closes the connection
                reader.prefix += chunk
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass  # all there is for now
        except OSError:
            return True  # the parse meets the same error and closes the connection
        finally:
            sock.settimeout(default)
        return self._head_seen(reader.prefix)

    def _head_seen(self, seen: bytes | bytearray) -> bool:
        if len(seen) >= _HEAD_PEEK_BYTES or any(end in seen for end in _HEAD_ENDS):
            return True
        now = time.monotonic()
        if self.head_since is None:
            self.head_since = now
        return now - self.head_since >= float(self.server.timeout)

    def close(self) -> None:
        if self._counted:
            self._counted = False
            self.server.connection_closed()
        super().close()


class _Connections(connections.ConnectionManager):
    server: _Server
    _selector: Any  # cheroot's _ThreadsafeSelector, absent from its stubs

    def put(self, conn: Any) -> None:
        pending = isinstance(conn.socket, ssl.SSLSocket) and conn.socket.pending()
        if pending:  # decrypted bytes the kernel socket no longer signals
            conn.last_used = time.time()
            self.server.process_conn(conn)
        else:
            super().put(conn)

    def _from_server_socket(self, server_socket: Any) -> None:
        server = self.server
        if server.open_connections >= server.max_connections:
            self.evict_one()
        try:
            conn = super()._from_server_socket(server_socket)  # type: ignore[misc]  # private, not in cheroot's stubs
        except OSError as exc:
            if exc.errno not in _FD_ERRORS:
                raise
            server.note_fd_shortage(exc)
            if not self.evict_one():
                time.sleep(0.01)  # nothing to close: do not spin on the listening socket
            return
        if conn is None:
            return
        conn._counted = True
        server.connection_opened()
        if _readable(conn.socket):  # the request came with the connection: no detour
            conn.last_used = time.time()
            server.process_conn(conn)
        else:
            self.put(conn)  # waits in the selector for its first bytes, not in a worker

    def evict_one(self) -> bool:
        """Close the connection idle the longest, preferring ones that never sent a request."""
        idle = [
            (conn.served, conn.last_used, fd, conn)
            for fd, conn in self._selector.connections
            if conn is not self.server
        ]
        if not idle:
            return False
        *_, fd, conn = min(idle, key=lambda item: item[:2])
        self._selector.unregister(fd)
        conn.close()
        self.server.evicted += 1
        return True

    def _expire(self, threshold: float) -> None:
        now = time.time()
        server = self.server
        expired = [
            (fd, conn)
            for fd, conn in self._selector.connections
            if conn is not server
            and now - conn.last_used > (server.idle_timeout if conn.served else server.timeout)
        ]
        for fd, conn in expired:
            self._selector.unregister(fd)
            conn.close()


class _Server(wsgi.Server):
    ConnectionClass = _Connection

    def __init__(self, bind_addr: tuple[str, int], app: WSGIApp, limits: ServerLimits) -> None:
        super().__init__(
            bind_addr,
            app,
            numthreads=limits.workers,
            max=limits.workers,
            request_queue_size=limits.backlog,
            timeout=limits.header_timeout,  # type: ignore[arg-type]  # any float works
            shutdown_timeout=2,
            # ready requests beyond this get a 503 at once, never a stalled accept loop
            accepted_queue_size=max(64, 8 * limits.workers),
            accepted_queue_timeout=0,
            server_name="model-health-exporter",
        )
        self.idle_timeout = limits.idle_timeout
        self.max_connections = connection_cap(limits.max_connections)
        self.keep_alive_conn_limit = None  # type: ignore[assignment]  # None: no limit; the cap above bounds them all
        self.max_request_header_size = 64 * 1024
        self.max_request_body_size = 0
        self.open_connections = 0
        self.evicted = 0
        self.bind_error: OSError | None = None
        self._count_lock = threading.Lock()
        self._last_log: dict[str, float] = {}

    def bind(self, family: int, type: int, proto: int = 0) -> Any:
        """cheroot's, but closing the socket when bind() fails (it leaks it)."""
        sock = self.prepare_socket(
            self.bind_addr, family, type, proto, self.nodelay, self.ssl_adapter, self.reuse_port
        )
        try:
            sock.bind(self.bind_addr)
        except OSError as exc:
            sock.close()
            self.bind_error = exc  # cheroot's prepare() re-raises it without errno
            raise
        self.socket = sock
        self.bind_addr = sock.getsockname()[:2]
        return sock

    def prepare(self) -> None:
        super().prepare()
        # cheroot builds its own manager in prepare(): replaced by ours before serving
        plain: Any = self._connections  # type: ignore[has-type]  # set in cheroot's prepare()
        plain._selector.close()
        self._connections = _Connections(self)

    def connection_opened(self) -> None:
        with self._count_lock:
            self.open_connections += 1

    def connection_closed(self) -> None:
        with self._count_lock:
            self.open_connections -= 1

    def _rate_limited(self, what: str) -> bool:
        now = time.monotonic()
        if now - self._last_log.get(what, -_LOG_EVERY_S) < _LOG_EVERY_S:
            return True
        self._last_log[what] = now
        return False

    def note_fd_shortage(self, exc: OSError) -> None:
        if not self._rate_limited("fd"):
            log.warning(
                "out of file descriptors: closing the longest idle connection",
                error=exc.strerror,
                open_connections=self.open_connections,
            )

    def note_tls_failure(self, exc: BaseException) -> None:
        if not self._rate_limited("tls"):
            log.info("TLS handshake failed (logged once a minute)", error=str(exc))

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        """cheroot's messages, into the daemon's log instead of raw stderr."""
        if level >= 30 and not self._rate_limited(f"error:{msg[:40]}"):
            log.warning("http server", message=msg)


# ---- the server as the daemon uses it ---------------------------------------------------


class WebServer:
    """Serves `app` on a background thread; `stop()` returns once it has stopped."""

    def __init__(
        self,
        listen_address: str,
        app: WSGIApp,
        web_config: WebConfig | None = None,
        *,
        limits: ServerLimits | None = None,
        probes_without_auth: bool = False,
    ) -> None:
        host, port = parse_listen_address(listen_address)
        self._guard = _Guard(app, probes_without_auth)
        self._server = _Server((host or "0.0.0.0", port), self._guard, limits or ServerLimits())  # noqa: S104 - ":port" asks for every interface
        self.configure(web_config or WebConfig(), probes_without_auth)
        try:
            self._server.prepare()  # binds now, so a busy port fails here, as before
        except OSError as exc:
            raise self._server.bind_error or exc from None
        self._thread = threading.Thread(target=self._serve, name="http-server", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.serve()
        except Exception:
            log.exception("http server stopped")

    def configure(self, config: WebConfig, probes_without_auth: bool | None = None) -> None:
        """Apply a (re)loaded web configuration: new connections use its TLS settings,
        requests its users and headers."""
        if probes_without_auth is None:
            probes_without_auth = self._guard.probes_open
        self._guard.configure(config, probes_without_auth)
        self.web_config = config  # the one in force; .requires_auth for routes that write
        tls = config.tls
        self._server.ssl_adapter = None if tls is None else _LazyTLS(tls.context, tls.allowed_sans)

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def open_connections(self) -> int:
        return int(self._server.open_connections)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=10)

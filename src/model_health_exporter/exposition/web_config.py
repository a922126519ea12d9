"""`--web.config.file`: TLS, client certificates, basic auth and response headers in the
format of Prometheus' exporter-toolkit, so one file serves this exporter and Go ones.

`load_web_config` reads and checks the whole file and raises ConfigError listing every
problem, each with its key. Relative file names are taken from the file's folder, as
exporter-toolkit does. What Python's TLS cannot do is refused by name, never ignored:
`RequestClientCert` and `RequireAnyClientCert` (it always verifies a certificate it asks
for) and `rate_limit`."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import bcrypt
import yaml

from model_health_exporter.config import ConfigError

CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_CLIENT_AUTH: Final = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's names (crypto/tls CipherSuites()) -> OpenSSL's. TLS 1.3 suites are not
# configurable in Go either; they are accepted and left to OpenSSL.
CIPHER_SUITES: Final = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
}
# Go's curve names -> OpenSSL's. Python's ssl sets one ECDH curve: the first is used.
CURVES: Final = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
_BCRYPT_RE: Final = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_TOP_KEYS: Final = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS_KEYS: Final = (
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
_MAX_FILE_BYTES: Final = 1024 * 1024
_AUTH_CACHE_SIZE: Final = 256


@dataclass(frozen=True)
class TLSSettings:
    context: ssl.SSLContext = field(compare=False)
    client_auth_type: str
    allowed_sans: frozenset[str]
    files: tuple[Path, ...]  # watched for changes (certificate rotation)


@dataclass(frozen=True)
class WebConfig:
    """What the web configuration file asks for; the default is plain HTTP, no auth."""

    tls: TLSSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash
    headers: tuple[tuple[str, str], ...] = ()
    path: Path | None = None
    # mtime, size and inode of the watched files as they were read, so a change between
    # reading and watching them is still seen
    read_as: tuple[tuple[int, int, int] | None, ...] = field(default=(), compare=False)

    @property
    def requires_auth(self) -> bool:
        """True when every request must prove who sent it: basic auth users are set, or
        TLS requires a verified client certificate. (The push endpoint refuses to open
        beyond loopback without it.)"""
        return bool(self.users) or (
            self.tls is not None and self.tls.client_auth_type == "RequireAndVerifyClientCert"
        )

    @property
    def watched_files(self) -> tuple[Path, ...]:
        """The file itself and the certificates and keys it names."""
        if self.path is None:
            return ()
        return (self.path, *(self.tls.files if self.tls is not None else ()))


def _read_text(path: Path, key: str, problems: list[str]) -> str | None:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        problems.append(f"{key}: cannot read {path}: {exc.strerror or exc}")
        return None
    if len(data) > _MAX_FILE_BYTES:
        problems.append(f"{key}: {path} is larger than {_MAX_FILE_BYTES} bytes")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{key}: {path} is not text (PEM expected)")
        return None


def _strings(value: Any, key: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key}: expected a list of strings")
        return []
    return list(value)


def _string(value: Any, key: str, problems: list[str]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(f"{key}: expected a string, got {type(value).__name__}")
        return ""
    return value


def _load_chain(context: ssl.SSLContext, cert_pem: str, key_pem: str, problems: list[str]) -> None:
    """load_cert_chain reads files only: give it in-memory ones (inline PEM stays off disk)."""
    fds = []
    try:
        for name, pem in (("cert", cert_pem), ("key", key_pem)):
            fd = os.memfd_create(f"web-config-{name}", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, pem.encode())
        context.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
    except ssl.SSLError as exc:
        problems.append(f"tls_server_config: certificate and key do not load: {exc.reason or exc}")
    finally:
        for fd in fds:
            os.close(fd)


def _tls(raw: Any, base: Path, problems: list[str]) -> TLSSettings | None:  # noqa: PLR0912, PLR0915 - one check per key of the format, in its order
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("tls_server_config: expected a mapping")
        return None
    problems += [f"tls_server_config.{k}: unknown setting" for k in raw if k not in _TLS_KEYS]
    key_of = {k: f"tls_server_config.{k}" for k in _TLS_KEYS}
    cert_file = _string(raw.get("cert_file"), key_of["cert_file"], problems)
    key_file = _string(raw.get("key_file"), key_of["key_file"], problems)
    cert = _string(raw.get("cert"), key_of["cert"], problems)
    key = _string(raw.get("key"), key_of["key"], problems)
    ca_file = _string(raw.get("client_ca_file"), key_of["client_ca_file"], problems)
    ca = _string(raw.get("client_ca"), key_of["client_ca"], problems)
    auth = _string(raw.get("client_auth_type"), key_of["client_auth_type"], problems)
    auth = auth or "NoClientCert"
    if not (cert_file or cert or key_file or key):
        if ca_file or ca or auth != "NoClientCert":
            problems.append("tls_server_config: client settings given without cert_file")
        return None  # exporter-toolkit serves plain HTTP without a certificate
    files: list[Path] = []
    if cert and cert_file:
        problems.append("tls_server_config: cert and cert_file are mutually exclusive")
    if key and key_file:
        problems.append("tls_server_config: key and key_file are mutually exclusive")
    if ca and ca_file:
        problems.append("tls_server_config: client_ca and client_ca_file are mutually exclusive")
    if not (cert or cert_file):
        problems.append("tls_server_config.cert_file: missing (key_file is set)")
    if not (key or key_file):
        problems.append("tls_server_config.key_file: missing (cert_file is set)")

    def from_file(name: str, key_name: str) -> str | None:
        path = base / name
        files.append(path)
        return _read_text(path, key_of[key_name], problems)

    cert_pem = from_file(cert_file, "cert_file") if cert_file else cert or None
    key_pem = from_file(key_file, "key_file") if key_file else key or None
    ca_pem = from_file(ca_file, "client_ca_file") if ca_file else ca or None

    verify = CLIENT_AUTH.get(auth)
    if auth in _UNSUPPORTED_CLIENT_AUTH:
        problems.append(
            f"tls_server_config.client_auth_type: {auth} is not supported (Python's TLS "
            "verifies every client certificate it asks for): use VerifyClientCertIfGiven "
            "or RequireAndVerifyClientCert"
        )
    elif verify is None:
        problems.append(
            f"tls_server_config.client_auth_type: {auth!r} is not one of {', '.join(CLIENT_AUTH)}"
        )
    if ca_pem is not None and auth == "NoClientCert":
        problems.append(
            "tls_server_config: client CA configured without a client_auth_type that "
            "verifies certificates"
        )
    if verify in (ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED) and not (ca or ca_file):
        problems.append(f"tls_server_config.client_ca_file: required by {auth}")
    sans = frozenset(
        _strings(raw.get("client_allowed_sans"), key_of["client_allowed_sans"], problems)
    )
    if sans and auth != "RequireAndVerifyClientCert":
        problems.append(
            "tls_server_config.client_allowed_sans: needs client_auth_type "
            "RequireAndVerifyClientCert"
        )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = _string(raw.get(name), key_of[name], problems) or default
        if value not in TLS_VERSIONS:
            problems.append(f"{key_of[name]}: {value!r} is not one of {', '.join(TLS_VERSIONS)}")
            value = default
        versions[name] = TLS_VERSIONS[value]
    if versions["min_version"] > versions["max_version"]:
        problems.append("tls_server_config: min_version is above max_version")
    else:
        try:
            context.minimum_version = versions["min_version"]
            context.maximum_version = versions["max_version"]
        except ValueError as exc:
            problems.append(f"tls_server_config: TLS versions not available: {exc}")
    suites = _strings(raw.get("cipher_suites"), key_of["cipher_suites"], problems)
    unknown = [s for s in suites if s not in CIPHER_SUITES]
    if unknown:
        problems.append(
            f"tls_server_config.cipher_suites: unknown or insecure: {', '.join(unknown)}"
        )
    openssl_suites = [CIPHER_SUITES[s] for s in suites if CIPHER_SUITES.get(s)]
    if openssl_suites:
        try:
            context.set_ciphers(":".join(openssl_suites))
        except ssl.SSLError:
            problems.append("tls_server_config.cipher_suites: none is available here")
    prefer = raw.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        problems.append("tls_server_config.prefer_server_cipher_suites: expected true or false")
    elif prefer:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    curves = _strings(raw.get("curve_preferences"), key_of["curve_preferences"], problems)
    bad_curves = [c for c in curves if c not in CURVES]
    if bad_curves:
        problems.append(
            f"tls_server_config.curve_preferences: unknown: {', '.join(bad_curves)} "
            f"(known: {', '.join(CURVES)})"
        )
    elif curves:
        context.set_ecdh_curve(CURVES[curves[0]])
    if cert_pem is not None and key_pem is not None:
        _load_chain(context, cert_pem, key_pem, problems)
    if verify is not None:
        context.verify_mode = verify
    if ca_pem is not None and verify in (ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
        try:
            context.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            problems.append(f"tls_server_config.client_ca_file: not a PEM certificate: {exc}")
    return TLSSettings(context, auth, sans, tuple(files))


def _headers(raw: Any, problems: list[str]) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.append("http_server_config: expected a mapping")
        return ()
    for key in raw:
        if key not in ("http2", "headers"):
            problems.append(f"http_server_config.{key}: unknown setting")
    if not isinstance(raw.get("http2", True), bool):
        problems.append("http_server_config.http2: expected true or false")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict):
        problems.append("http_server_config.headers: expected a mapping")
        return ()
    out = []
    for name, value in headers.items():
        where = f"http_server_config.headers.{name}"
        if name not in SECURITY_HEADERS:
            problems.append(
                f"{where}: this header cannot be configured (only {', '.join(SECURITY_HEADERS)})"
            )
            continue
        text = _string(value, where, problems)
        allowed = SECURITY_HEADERS[name]
        if text and allowed is not None and text.lower() not in allowed:
            problems.append(f"{where}: {text!r} is not one of {', '.join(allowed)}")
        elif text and ("\r" in text or "\n" in text):
            problems.append(f"{where}: must be one line")
        elif text:
            out.append((name, text))
    return tuple(out)


def _users(raw: Any, problems: list[str]) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("basic_auth_users: expected a mapping of user names to bcrypt hashes")
        return {}
    users = {}
    for name, hashed in raw.items():
        if not isinstance(name, str) or not name or ":" in name:
            problems.append(f"basic_auth_users: {name!r} is not a valid user name")
        elif not isinstance(hashed, str) or not _BCRYPT_RE.match(hashed):
            problems.append(
                f"basic_auth_users.{name}: not a bcrypt hash (generate one with "
                "htpasswd -nBC 10 \"\" | tr -d ':\\n')"
            )
        else:
            users[name] = hashed.encode()
    return users


def load_web_config(path: Path | None) -> WebConfig:
    """The configuration the file at `path` asks for; plain HTTP, no auth, without a
    file (None). Raises ConfigError listing every problem, each naming its key."""
    if path is None:
        return WebConfig()
    where = f"--web.config.file {path}"
    problems: list[str] = []
    text = _read_text(path, where, problems)
    if text is None:
        raise ConfigError(problems)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{where}: invalid YAML: nested too deeply"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: expected a mapping at the top level"])
    for key in data:
        if key == "rate_limit":
            problems.append("rate_limit: not supported by this exporter")
        elif key not in _TOP_KEYS:
            problems.append(f"{key}: unknown setting")
    base = path.parent
    tls = _tls(data.get("tls_server_config"), base, problems)
    headers = _headers(data.get("http_server_config"), problems)
    users = _users(data.get("basic_auth_users"), problems)
    if problems:
        raise ConfigError([f"{where}: {p}" for p in problems])
    config = WebConfig(tls=tls, users=users, headers=headers, path=path)
    return replace(config, read_as=_signature(config.watched_files))


class BasicAuth:
    """Checks `Authorization: Basic ...` against bcrypt hashes. Unknown users are checked
    against a dummy hash of the same cost, so the time taken does not tell whether a
    user exists. Successful checks are remembered, keyed by a SHA-256 of user, password
    and stored hash (as exporter-toolkit does), so scrapes do not pay bcrypt each time;
    bcrypt runs one at a time, so wrong passwords cannot take every core."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        cost = max((int(h.split(b"$")[2]) for h in users.values()), default=10)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        self._ok: dict[bytes, None] = {}
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()

    def check(self, user: str, password: str) -> bool:
        stored = self._users.get(user)
        hashed = stored if stored is not None else self._dummy
        secret = password.encode("utf-8", "surrogateescape")
        key = hashlib.sha256(
            b"\0".join((user.encode("utf-8", "surrogateescape"), secret, hashed))
        ).digest()
        with self._lock:
            if key in self._ok and stored is not None:
                return True
        with self._bcrypt:
            matches = bcrypt.checkpw(secret, hashed)
        if not (matches and stored is not None):
            return False
        with self._lock:
            if len(self._ok) >= _AUTH_CACHE_SIZE:
                self._ok.pop(next(iter(self._ok)))  # the oldest
            self._ok[key] = None
        return True


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class WebConfigPoller:
    """Calls `on_change` from its own thread when the web configuration file or a
    certificate, key or CA file it names changes (mtime, size or inode, looked at every
    `interval` seconds: a renamed-in file, a Kubernetes Secret update, a rotated
    certificate)."""

    def __init__(self, interval: float, on_change: Callable[[], None]) -> None:
        self._interval = interval
        self._on_change = on_change
        self._files: tuple[Path, ...] = ()
        self._seen: tuple[tuple[int, int, int] | None, ...] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-config", daemon=True)

    def watch(self, config: WebConfig) -> None:
        """Look for changes from the files of `config`, as they were read."""
        files = config.watched_files
        self._files, self._seen = files, config.read_as or _signature(files)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            files = self._files
            now = _signature(files)
            if files and now != self._seen:
                self._seen = now
                self._on_change()

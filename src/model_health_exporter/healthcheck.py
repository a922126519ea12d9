"""The container's HEALTHCHECK: `python -m model_health_exporter.healthcheck` exits 0
while the exporter serves on the port of MHE_WEB__LISTEN_ADDRESS, 1 otherwise.

It asks /healthz on loopback, over TLS when MHE_WEB__CONFIG_FILE configures it. The
check is about liveness, not identity: the server certificate is not verified (it is
issued for the service's name, not 127.0.0.1), and a 401 (basic auth without
--web.probes-without-auth) counts as alive. A server that requires client certificates
is alive when it completes a TLS handshake (or refuses the missing certificate with its
alert). No proxy: an HTTP_PROXY given to the container must not intercept a loopback
request."""

from __future__ import annotations

import os
import socket
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from model_health_exporter.config import ConfigError
from model_health_exporter.exposition.web_config import load_web_config

_ALIVE_TLS_ALERTS = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE")


def main() -> int:
    port = os.environ.get("MHE_WEB__LISTEN_ADDRESS", ":9188").rsplit(":", 1)[1]
    web_config = os.environ.get("MHE_WEB__CONFIG_FILE")
    context = None
    if web_config:
        try:
            tls = load_web_config(Path(web_config)).tls
        except ConfigError as exc:
            print("\n".join(exc.problems), file=sys.stderr)
            return 1
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # liveness on loopback, see above
            if tls.client_auth_type == "RequireAndVerifyClientCert":
                return _handshake(int(port), context)
    scheme = "http" if context is None else "https"
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(f"{scheme}://127.0.0.1:{port}/healthz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        with exc:
            return 0 if exc.code == 401 else 1
    except urllib.error.URLError as exc:
        print(f"unhealthy: {exc.reason}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


def _handshake(port: int, context: ssl.SSLContext) -> int:
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=4) as sock,
            context.wrap_socket(sock),
        ):
            return 0
    except ssl.SSLError as exc:
        if any(alert in str(exc.reason or "") for alert in _ALIVE_TLS_ALERTS):
            return 0
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

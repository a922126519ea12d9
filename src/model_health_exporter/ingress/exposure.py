"""Whether the push endpoints may be opened on a listen address."""

from __future__ import annotations

import ipaddress

from model_health_exporter.config import parse_listen_address


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name (or all interfaces, ""): may be reached from elsewhere


def push_exposure_problem(listen_address: str, auth_configured: bool, opted_in: bool) -> str | None:
    """Why push must not be opened on `listen_address`, or None: anyone who reaches an
    open push endpoint can write predictions, so beyond loopback it needs basic auth
    (--web.config.file) or the explicit --web.push-without-auth."""
    host, _ = parse_listen_address(listen_address)
    if auth_configured or opted_in or _loopback(host):
        return None
    where = "all interfaces" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - named, not bound
    return (
        f"--web.enable-push on {listen_address} ({where}, beyond loopback) without "
        "authentication would let anyone who reaches it write predictions: configure basic "
        "auth in --web.config.file, listen on 127.0.0.1, or pass "
        "--web.push-without-auth=true if something in front of it authenticates"
    )

"""Who may reach the admin listener: the loopback rule and, without a token, the Host rule.

Bound to a non-loopback address the listener needs a token (``SOCKET_TRACE_ADMIN_TOKEN``);
without one :func:`check_admin_binding` raises :class:`AdminBindError` (the CLI exits 2).
Without a token, loopback alone is not enough: a page on another origin can rebind its own
host name to 127.0.0.1 (DNS rebinding) and read the API with the browser's help.  Such a
request still names the attacker's host in ``Host``, so :class:`HostGuard` answers only
requests for a loopback address, ``localhost`` (or ``*.localhost``, which browsers resolve
to loopback themselves) or a name in ``admin.allowed_hosts``.  With a token the token guards
the listener (see :mod:`proxy.admin.auth`).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from socketio_trace_proxy.config.address import split_host_port
from socketio_trace_proxy.config.admin import ADMIN_TOKEN_ENV, AdminSettings


class AdminBindError(Exception):
    """The admin listener may not start with these settings (the message says why)."""


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port)."""
    try:
        return split_host_port(listen)
    except ValueError:
        raise AdminBindError(f"admin listen address {listen!r} is not HOST:PORT") from None


def is_loopback_host(host: str) -> bool:
    """Only literal loopback addresses and ``localhost`` count; every other name may
    resolve to a public interface."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_admin_binding(settings: AdminSettings) -> None:
    """Raise :class:`AdminBindError` unless the listener is disabled, on loopback, or has a
    token."""
    if settings.listen is None:
        return
    host, _ = parse_listen(settings.listen)
    if not is_loopback_host(host) and settings.token is None:
        raise AdminBindError(
            f"refusing to start the admin listener on {settings.listen}: it is not a loopback "
            f"address and no token is set; set {ADMIN_TOKEN_ENV} in the environment, or bind "
            "it to 127.0.0.1"
        )


def host_name(host_header: str) -> str:
    """The name or address in a ``Host`` header value, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


class HostGuard:
    """Refuses (421, counted) a request whose ``Host`` is neither loopback nor allowed."""

    def __init__(self, settings: AdminSettings) -> None:
        self._allowed = frozenset(settings.allowed_hosts)
        self.refused = 0

    def allows(self, host_header: str | None) -> bool:
        if host_header is None:  # HTTP/1.0 without Host: no browser sends that
            return True
        name = host_name(host_header)
        return name in self._allowed or name.endswith(".localhost") or is_loopback_host(name)

    def middleware(self) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            host = request.headers.get("Host")
            if self.allows(host):
                return await handler(request)
            self.refused += 1
            return web.json_response(
                {
                    "error": f"Host {host!r} is not served: without an admin token this "
                    "listener answers only loopback addresses and localhost (DNS rebinding "
                    "guard); add the name to admin.allowed_hosts, or set "
                    f"{ADMIN_TOKEN_ENV}"
                },
                status=421,
                headers={"Cache-Control": "no-store"},
            )

        return middleware

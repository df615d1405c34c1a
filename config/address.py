"""Network addresses in the settings: the one ``HOST:PORT`` parser and the one upstream-URL
check, used by the settings' validators (so a bad address fails at load, naming its field)
and by the command line and the relay for what they are given directly."""

from __future__ import annotations

from urllib.parse import urlsplit

from socketio_trace_proxy.config.redact import redact_url

UPSTREAM_SCHEMES = ("http", "https", "ws", "wss")


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPV6]:PORT`` for IPv6) -> (host, port); ``ValueError`` otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT ([IPV6]:PORT for IPv6), got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def check_upstream_url(value: str) -> str:
    """``value`` if it is an http(s) or ws(s) URL with a host; ``ValueError`` (the URL's
    credentials redacted) otherwise."""
    try:
        parts = urlsplit(value)
        has_host = bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        has_host = False
    if parts.scheme not in UPSTREAM_SCHEMES or not has_host:
        raise ValueError(f"expected an http(s) or ws(s) URL with a host, got {redact_url(value)}")
    return value

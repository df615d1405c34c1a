"""Header rules of the relay: what is dropped, kept, or added on each leg.

Owns the hop-by-hop sets (RFC 9110 7.6.1) as ``istr`` names and as lower-case bytes for raw
header lines, the ``Connection``-token handling, the ``X-Forwarded-*`` values, the request
target in origin form, and the small plain-text answers the proxy gives itself.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion
from multidict import CIMultiDict, MultiMapping, istr
from yarl import URL

from socketio_trace_proxy.proxy.lean.head import underscored
from socketio_trace_proxy.proxy.upstream import UpstreamResponse

# RFC 9110 7.6.1 hop-by-hop fields, plus the proxy ones; never forwarded either way.
HOP_BY_HOP: Final = tuple(
    istr(h)
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
# Handled by the server leg itself (:func:`proxy.relay.expect` answers 100-continue) or renegotiated
# per WebSocket leg.
REQUEST_ONLY_DROP: Final = (istr("Expect"),)
WS_HANDSHAKE: Final = tuple(
    istr(h)
    for h in (
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Accept",
    )
)
# The same, as lower-case bytes for the raw header lines of the polling fast path; the
# request's Content-Length is recomputed from the body read whole.
DROP_RESPONSE_BYTES: Final = frozenset(h.lower().encode("latin-1") for h in HOP_BY_HOP)
DROP_REQUEST_BYTES: Final = DROP_RESPONSE_BYTES | {b"expect", b"content-length"}
# An upgrade request keeps the two headers that ask for it; a 101 keeps the two that grant it.
DROP_UPGRADE_BYTES: Final = frozenset({b"connection", b"upgrade"})
EXTENSIONS_BYTES: Final = frozenset({b"sec-websocket-extensions"})
METHODS_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
_FORWARDED: Final = istr("Forwarded")
_XRI: Final = istr("X-Real-IP")
_XFF: Final = istr("X-Forwarded-For")
_XFP: Final = istr("X-Forwarded-Proto")
_XFH: Final = istr("X-Forwarded-Host")
TRACEPARENT: Final = istr("traceparent")


class ClientRequest(Protocol):
    """What the legs read of a client's request: aiohttp's ``web.BaseRequest``, or the lean
    server leg's own (:class:`proxy.lean.request.LeanRequest`)."""

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def rel_url(self) -> URL: ...
    @property
    def headers(self) -> MultiMapping[str]: ...
    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def scheme(self) -> str: ...
    @property
    def version(self) -> HttpVersion: ...
    @property
    def keep_alive(self) -> bool: ...
    @property
    def query(self) -> Mapping[str, str]: ...
    @property
    def transport(self) -> asyncio.Transport | None: ...


def _tokens(value: str | None) -> list[str]:
    """The names a ``Connection`` value lists (RFC 9110 7.6.1)."""
    if not value:
        return []
    return [t for t in (t.strip() for t in value.split(",")) if t]


def connection_tokens(headers: MultiMapping[str]) -> list[str]:
    return _tokens(headers.get(hdrs.CONNECTION))


def with_connection_tokens(drop: frozenset[bytes], connection: str | None) -> frozenset[bytes]:
    """``drop`` plus the header names a ``Connection`` value lists, as lower-case bytes."""
    if not connection:
        return drop
    return _with_tokens(drop, connection)


@functools.lru_cache(maxsize=64)  # clients send a few values (keep-alive, close, Upgrade)
def _with_tokens(drop: frozenset[bytes], connection: str) -> frozenset[bytes]:
    # A value with bytes outside ASCII (decoded with surrogateescape) must not fail: such a
    # token names no header (RFC 9110 5.1: field names are tokens), whatever it encodes to.
    return drop | {t.lower().encode("utf-8", "surrogateescape") for t in _tokens(connection)}


def forwarded_values(request: ClientRequest) -> list[tuple[istr, str]]:
    """``X-Forwarded-For`` (the client's chain plus its address), ``-Proto`` and ``-Host``."""
    headers = request.headers
    return forwarded_for(request.remote, request.scheme, headers.get(_XFF), headers.get(hdrs.HOST))


def forwarded_for(
    remote: str | None, scheme: str, prior: str | None, host: str | None
) -> list[tuple[istr, str]]:
    """:func:`forwarded_values` from the client's address, the scheme and the client's
    first ``X-Forwarded-For`` and ``Host`` values."""
    out: list[tuple[istr, str]] = []
    if remote:
        out.append((_XFF, f"{prior}, {remote}" if prior else remote))
    out.append((_XFP, scheme))
    if host:
        out.append((_XFH, host))
    return out


def _forwarded_node(value: str) -> str:
    """An RFC 7239 (section 4) value: a token as is, anything else quoted (IPv6 in brackets)."""
    if ":" in value and not value.startswith("["):
        value = f"[{value}]" if value.count(":") > 1 else value
    if all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def address_values(request: ClientRequest) -> list[tuple[istr, str]]:
    """The rewritten ``Forwarded`` (the client's elements plus this hop) and ``X-Real-IP``
    (the client's address), each only when the client sent it."""
    headers = request.headers
    return address_for(
        request.remote,
        request.scheme,
        headers.getall(_FORWARDED, ()),
        _XRI in headers,
        headers.get(hdrs.HOST),
    )


def address_for(
    remote: str | None, scheme: str, prior: Sequence[str], real_ip: bool, host: str | None
) -> list[tuple[istr, str]]:
    """:func:`address_values` from the client's address, the scheme, the client's
    ``Forwarded`` values, whether it sent ``X-Real-IP``, and its first ``Host`` value."""
    out: list[tuple[istr, str]] = []
    if prior:
        hop = [f"proto={scheme}"]
        if remote:
            hop.insert(0, f"for={_forwarded_node(remote)}")
        if host:
            hop.append(f"host={_forwarded_node(host)}")
        out.append((_FORWARDED, ", ".join([*prior, ";".join(hop)])))
    if remote and real_ip:
        out.append((_XRI, remote))
    return out


def strip_address(headers: CIMultiDict[str]) -> None:
    """Drop the client's ``Forwarded``, ``X-Real-IP`` and underscore-spelled address headers."""
    for name in [n for n in headers if underscored(n.lower().encode("latin-1"))]:
        headers.popall(name, None)
    strip(headers, (_FORWARDED, _XRI))


def strip(headers: CIMultiDict[str], names: tuple[istr, ...]) -> None:
    for name in names:
        if name in headers:
            headers.popall(name)


def response_drop(
    headers: list[tuple[bytes, bytes]], keep: frozenset[bytes] = frozenset()
) -> frozenset[bytes]:
    """Response header names not for the client: hop-by-hop ones and those the upstream's
    ``Connection`` lists, less ``keep``."""
    connection = [v for n, v in headers if n.lower() == b"connection"]
    drop = DROP_RESPONSE_BYTES
    if connection:
        drop = with_connection_tokens(drop, b", ".join(connection).decode("latin-1"))
    return drop - keep if keep else drop


def switching_head(
    upstream: UpstreamResponse, major: int, minor: int
) -> tuple[bytes, bytes | None]:
    """A 101 for the client as the upstream sent it (reason, names, order; nothing added,
    issue 14): hop-by-hop lines dropped but ``Connection`` and ``Upgrade``, which grant the
    upgrade.  Also the ``Sec-WebSocket-Extensions`` value, if any."""
    drop = response_drop(upstream.headers, keep=DROP_UPGRADE_BYTES)
    parts = [b"HTTP/%d.%d 101 %s\r\n" % (major, minor, upstream.reason)]
    extensions: bytes | None = None
    for name, value in upstream.headers:
        lname = name.lower()
        if lname not in drop:
            parts.append(name + b": " + value + b"\r\n")
            if lname == b"sec-websocket-extensions" and extensions is None:
                extensions = value
    parts.append(b"\r\n")
    return b"".join(parts), extensions


def origin_form(request: ClientRequest) -> str:
    """The request target as path and query.  A client may send the absolute form
    (``GET http://host/x``, RFC 9112 3.2.2); the upstream is fixed, so only its path counts."""
    raw = request.raw_path
    return raw if raw[:1] == "/" else request.rel_url.raw_path_qs


def text_response(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n")

"""What every leg of the relay shares: settings, counters, the observer and the upstream.

:class:`RelayCore` owns the upstream's address (parsed once from ``proxy.upstream``), the
lean upstream pool (polling and upgrades) and the aiohttp ``ClientSession`` (streamed
paths and terminated WebSockets) from start-up to clean-up, the relay's counters, and the
few steps the legs have in common: the upstream request head built from the client's raw
header lines, the observer's first look at a Socket.IO request, and the 502 for an
unreachable upstream.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol, cast

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

from socketio_trace_proxy.config.address import check_upstream_url
from socketio_trace_proxy.config.proxy import AddressHeaders, ProxySettings
from socketio_trace_proxy.proxy.counters import RelayCounters, RelayStats
from socketio_trace_proxy.proxy.headers import (
    DROP_REQUEST_BYTES,
    HOP_BY_HOP,
    METHODS_WITH_BODY,
    REQUEST_ONLY_DROP,
    TRACEPARENT,
    ClientRequest,
    address_values,
    connection_tokens,
    forwarded_values,
    origin_form,
    strip,
    strip_address,
    text_response,
    with_connection_tokens,
)
from socketio_trace_proxy.proxy.lean.head import (
    ADDRESS_BYTES,
    FORWARDED_BYTES,
    HeadBuilder,
    request_head,
)
from socketio_trace_proxy.proxy.query import query_of
from socketio_trace_proxy.proxy.serverlog import Throttled
from socketio_trace_proxy.proxy.upstream import UpstreamPool
from socketio_trace_proxy.tracking.observer import RequestInfo, TrafficObserver, WebSocketObserver

if TYPE_CHECKING:  # the lean leg imports this module
    from socketio_trace_proxy.proxy.lean.request import LeanRequest

log = logging.getLogger("socketio_trace_proxy.proxy.relay")


_UNKNOWN: Final = object()


class LeanFacts(Protocol):
    """What the lean server leg's request knows besides :class:`ClientRequest`."""

    @property
    def traceparent(self) -> str | None: ...
    @property
    def remote_port(self) -> int | None: ...


def peer_port(transport: asyncio.BaseTransport | None) -> int | None:
    """The client socket's port (the records' ``client.port``); ``None`` off TCP."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    return peer[1] if isinstance(peer, tuple) and len(peer) >= 2 else None


class RelayCore:
    """The relay's shared state; the legs (polling, streaming, WebSocket) are functions of it."""

    def __init__(self, settings: ProxySettings, observer: TrafficObserver | None) -> None:
        if not settings.upstream:
            raise ValueError("proxy.upstream is not set")
        base = URL(check_upstream_url(settings.upstream))
        scheme = {"ws": "http", "wss": "https"}.get(base.scheme, base.scheme)
        # Built once; each request only appends its raw (still encoded) path and query.
        self.prefix = str(base.with_scheme(scheme).origin()) + base.path.rstrip("/")
        self.path_prefix = base.path.rstrip("/")
        self.upstream_host: str = base.host or ""  # check_upstream_url: there is one
        self.upstream_port = base.port or (443 if scheme == "https" else 80)
        self.upstream_tls = scheme == "https"
        self.settings = settings
        self.observer = observer
        self.sio_path = settings.socketio_path
        self.sio_path_bare = settings.socketio_path.rstrip("/")
        self.max = settings.max_message_size
        self.forwarded = settings.forwarded_headers
        drop = DROP_REQUEST_BYTES | FORWARDED_BYTES if self.forwarded else DROP_REQUEST_BYTES
        # The client's Forwarded / X-Real-IP: replaced below, dropped, or passed (17.15).
        self.address = settings.client_address_headers
        self.guard_address = self.address is not AddressHeaders.PASS
        self.rewrite_address = self.address is AddressHeaders.REWRITE
        self.request_drop = drop | ADDRESS_BYTES if self.guard_address else drop
        self.counters = RelayCounters()
        self.bodies_budget = settings.max_bodies_in_flight
        self.bodies_held = 0  # bytes reserved by polling bodies being read or relayed
        self._outage = Throttled(log, "upstream requests failed (answered 502)")
        self.session: aiohttp.ClientSession | None = None
        self.pool: UpstreamPool | None = None
        self.heads: HeadBuilder | None = None  # the lean leg's head builder (its server's)

    def stats(self) -> RelayStats:
        return self.counters.snapshot(self.pool, self.heads)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the upstream pool and the ``ClientSession``."""
        s = self.settings
        connector = aiohttp.TCPConnector(
            limit=s.max_upstream_connections, limit_per_host=0, ttl_dns_cache=300
        )
        self.pool = UpstreamPool(
            self.upstream_host,
            self.upstream_port,
            ssl_context=ssl.create_default_context() if self.upstream_tls else None,
            connect_timeout_s=s.connect_timeout_s,
            max_active=s.max_upstream_connections,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=s.connect_timeout_s, sock_connect=s.connect_timeout_s
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # Only what the client sent goes upstream: no default UA/Accept/Accept-Encoding.
            skip_auto_headers=(
                hdrs.USER_AGENT,
                hdrs.ACCEPT,
                hdrs.ACCEPT_ENCODING,
                hdrs.CONTENT_TYPE,
            ),
            trust_env=False,
        )

    async def close(self) -> None:
        """Close the upstream pool and session (again, harmlessly, after a shutdown)."""
        if self.pool is not None:
            self.pool.close()
        if self.session is not None:
            await self.session.close()

    # --- shared steps ----------------------------------------------------------------

    def is_socketio(self, path: str) -> bool:
        return path.startswith(self.sio_path) or path == self.sio_path_bare

    def upstream_headers(self, request: ClientRequest) -> CIMultiDict[str]:
        headers = CIMultiDict(request.headers)
        for token in connection_tokens(request.headers):
            headers.popall(token, None)
        strip(headers, HOP_BY_HOP)
        strip(headers, REQUEST_ONLY_DROP)
        if self.guard_address:
            strip_address(headers)
        if self.forwarded:
            for name, value in forwarded_values(request):
                headers[name] = value
        if self.rewrite_address:
            for name, value in address_values(request):
                headers[name] = value
        return headers

    def url(self, request: ClientRequest) -> URL:
        return URL(self.prefix + origin_form(request), encoded=True)

    def upstream_failed(self, exc: BaseException) -> web.Response:
        self.counters.upstream_errors += 1
        self._outage.hit(type(exc).__name__)
        return text_response(502, f"Bad Gateway: upstream unreachable ({type(exc).__name__})")

    def request_head(
        self,
        request: ClientRequest,
        body: bytes | None,
        *,
        keep: frozenset[bytes] = frozenset(),
        drop: frozenset[bytes] = frozenset(),
    ) -> bytes:
        """The upstream request head, from the client's raw header lines (``keep``: names
        kept although hop-by-hop, ``drop``: names dropped besides)."""
        added = forwarded_values(request) if self.forwarded else []
        if self.rewrite_address:
            added += address_values(request)
        connection = request.headers.get(hdrs.CONNECTION)
        target = origin_form(request)
        raw = request.raw_headers
        lines = [f"{n}: {v}\r\n".encode("utf-8", "surrogateescape") for n, v in added]
        return self.head(request.method, target, raw, connection, lines, body, keep=keep, drop=drop)

    def head(  # noqa: PLR0917 - the head's parts
        self,
        method: str,
        target: str,
        raw_headers: Sequence[tuple[bytes, bytes]],
        connection: str | None,
        added: list[bytes],
        body: bytes | None,
        *,
        keep: frozenset[bytes] = frozenset(),
        drop: frozenset[bytes] = frozenset(),
    ) -> bytes:
        """:meth:`request_head` from its parts: the target in origin form, the client's
        first ``Connection`` value and the lines the proxy adds (encoded, CRLF-ended)."""
        line = f"{method} {self.path_prefix}{target} HTTP/1.1\r\n"
        # With forwarding on, the client's X-Forwarded-* lines are replaced, not repeated.
        dropped = with_connection_tokens(self.request_drop, connection)
        if keep or drop:
            dropped = (dropped - keep) | drop
        length = -1
        if body is not None or method in METHODS_WITH_BODY:
            length = len(body) if body else 0
        return request_head(
            line.encode("utf-8", "surrogateescape"),
            raw_headers,
            dropped,
            self.guard_address,
            added,
            length,
        )

    def arrival(self, request: ClientRequest) -> RequestInfo | None:
        """The observer's :class:`RequestInfo` of a Socket.IO-path request, stamped on its
        clock as the head arrives: before the body is read, before an upgrade is forwarded
        (the handshake's duration runs from here).  ``None``: not observed."""
        observer = self.observer
        if observer is None:
            return None
        try:
            # The lean leg's request has both as its head was parsed (no header multidict
            # built, no socket call); aiohttp's has neither.
            noted = getattr(request, "traceparent", _UNKNOWN)
            if noted is _UNKNOWN:
                traceparent = request.headers.get(TRACEPARENT)
                port = peer_port(request.transport)
            else:
                traceparent = cast("str | None", noted)
                port = cast(LeanFacts, request).remote_port
            return observer.request_arrived(
                request.method, query_of(request.raw_path), request.remote, traceparent, port
            )
        except Exception:
            self.counters.observer_errors += 1
            return None

    def lean_arrival(self, request: LeanRequest) -> RequestInfo | None:
        """:meth:`arrival` of the lean server leg's request (once per polling request): its
        ``traceparent`` from the header values noted as its head was parsed, read here as
        ``LeanRequest.text`` reads them, without the two Python-level calls of its
        ``traceparent`` property."""
        observer = self.observer
        if observer is None:
            return None
        try:
            tp = request.noted.get(b"traceparent")
            return observer.request_arrived(
                request.method,
                query_of(request.raw_path),
                request.remote,
                None if tp is None else tp.decode("utf-8", "surrogateescape"),
                request.remote_port,
            )
        except Exception:
            self.counters.observer_errors += 1
            return None

    def websocket_observer(self, info: RequestInfo | None) -> WebSocketObserver | None:
        observer = self.observer
        if observer is None or info is None:
            return None
        try:
            return observer.websocket_opened(info)
        except Exception:
            self.counters.observer_errors += 1
            return None

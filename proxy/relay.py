"""The relay: an aiohttp server forwarding every request to one fixed upstream.

Any path is forwarded (bodies streamed both ways, hop-by-hop headers dropped,
``X-Forwarded-*`` added); the Socket.IO path is additionally observed: long-polling bodies
are read whole (bounded), forwarded, and handed to the :class:`TrafficObserver`.  WebSockets
are tunnelled frame for frame after a forwarded handshake (:mod:`proxy.wstunnel`), or, with
``websocket_relay: terminate``, relayed message by message with two legs negotiated
separately and close frames mirrored exactly.  Relay first, observe second; with no
observer nothing is decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final

import aiohttp
from aiohttp import WSMsgType, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from aiohttp.log import access_logger
from multidict import CIMultiDict, CIMultiDictProxy, istr
from yarl import URL

from socketio_trace_proxy.config.proxy import ProxySettings, WebSocketRelay
from socketio_trace_proxy.proxy.upstream import (
    PoolExhausted,
    ResponseTooLarge,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
)
from socketio_trace_proxy.proxy.wsclose import (
    AnyWebSocket,
    release_client_leg,
    release_upstream_leg,
    send_close_frame,
)
from socketio_trace_proxy.proxy.wstunnel import WebSocketTunnel
from socketio_trace_proxy.tracking.observer import RequestInfo, TrafficObserver, WebSocketObserver
from socketio_trace_proxy.tracking.traffic import Direction

log = logging.getLogger(__name__)

C2S: Final = Direction.CLIENT_TO_SERVER
S2C: Final = Direction.SERVER_TO_CLIENT

# RFC 9110 7.6.1 hop-by-hop fields, plus the proxy ones; never forwarded either way.
_HOP_BY_HOP: Final = tuple(
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
# Handled by the server leg itself (:func:`_expect` answers 100-continue) or renegotiated
# per WebSocket leg.
_REQUEST_ONLY_DROP: Final = (istr("Expect"),)
_WS_HANDSHAKE: Final = tuple(
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
_DROP_RESPONSE_BYTES: Final = frozenset(h.lower().encode("latin-1") for h in _HOP_BY_HOP)
_DROP_REQUEST_BYTES: Final = _DROP_RESPONSE_BYTES | {b"expect", b"content-length"}
# An upgrade request keeps the two headers that ask for it; a 101 keeps the two that grant it.
_DROP_UPGRADE_BYTES: Final = frozenset({b"connection", b"upgrade"})
_EXTENSIONS_BYTES: Final = frozenset({b"sec-websocket-extensions"})
_METHODS_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
_FORWARDED_BYTES: Final = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
_XFF: Final = istr("X-Forwarded-For")
_XFP: Final = istr("X-Forwarded-Proto")
_XFH: Final = istr("X-Forwarded-Host")
_TRACEPARENT: Final = istr("traceparent")
_STREAM_CHUNK: Final = 64 * 1024
# What aiohttp's web.Response would add to a relayed polling response, which the relay now
# serializes itself: the status line's default reason, Content-Length (dropped for statuses
# that have no body), a default Content-Type, Date, Server, and Connection per the client.
_REASONS: Final = {s.value: s.phrase.encode("latin-1") for s in HTTPStatus}
_NO_BODY_STATUS: Final = frozenset((204, 304, *range(100, 200)))
_OCTET_STREAM: Final = b"Content-Type: application/octet-stream\r\n"
_SERVER: Final = f"Server: {SERVER_SOFTWARE}\r\n".encode()
_KEEP_ALIVE_10: Final = b"Connection: keep-alive\r\n"
_CLOSE_11: Final = b"Connection: close\r\n"


@dataclass(frozen=True, slots=True)
class RelayStats:
    """A snapshot of the relay's counters (monotonic since start, except the gauges)."""

    http_requests: int
    polling_requests: int
    upstream_errors: int
    client_disconnects: int
    rejected_too_large: int
    ws_opened: int
    ws_active: int
    ws_refused: int
    refused_busy: int
    ws_messages_c2s: int
    ws_messages_s2c: int
    ws_bytes_c2s: int
    ws_bytes_s2c: int
    polling_bytes_c2s: int
    polling_bytes_s2c: int
    observer_errors: int
    ws_unobservable: int
    upstream_connections_opened: int  # by the polling/upgrade client
    upstream_idle_discarded: int  # keep-alive connections closed: the idle pool was full


class RelayCounters:
    """The live, mutable counters behind :class:`RelayStats` (incremented on the loop)."""

    __slots__ = (
        "client_disconnects",
        "http_requests",
        "observer_errors",
        "polling_bytes_c2s",
        "polling_bytes_s2c",
        "polling_requests",
        "refused_busy",
        "rejected_too_large",
        "upstream_errors",
        "ws_active",
        "ws_bytes_c2s",
        "ws_bytes_s2c",
        "ws_messages_c2s",
        "ws_messages_s2c",
        "ws_opened",
        "ws_refused",
        "ws_unobservable",
    )
    _POOL_COUNTERS: Final = ("connections_opened", "idle_discarded")

    def __init__(self) -> None:
        self.http_requests = 0
        self.polling_requests = 0
        self.upstream_errors = 0
        self.client_disconnects = 0
        self.rejected_too_large = 0
        self.ws_opened = 0
        self.ws_active = 0
        self.ws_refused = 0
        self.refused_busy = 0  # over max_websockets or max_upstream_connections: 503
        self.ws_messages_c2s = 0
        self.ws_messages_s2c = 0
        self.ws_bytes_c2s = 0
        self.ws_bytes_s2c = 0
        self.polling_bytes_c2s = 0
        self.polling_bytes_s2c = 0
        self.observer_errors = 0
        # tunnelled directions whose observation stopped (a message that did not inflate)
        self.ws_unobservable = 0

    def snapshot(self, pool: UpstreamPool | None = None) -> RelayStats:
        """The counters, with the upstream pool's own (zero without a pool)."""
        pooled = {f"upstream_{n}": getattr(pool, n) if pool else 0 for n in self._POOL_COUNTERS}
        return RelayStats(**{name: getattr(self, name) for name in self.__slots__}, **pooled)


def _tokens(value: str | None) -> list[str]:
    """The names a ``Connection`` value lists (RFC 9110 7.6.1)."""
    if not value:
        return []
    return [t for t in (t.strip() for t in value.split(",")) if t]


def _connection_tokens(headers: CIMultiDictProxy[str]) -> list[str]:
    return _tokens(headers.get(hdrs.CONNECTION))


def _with_connection_tokens(drop: frozenset[bytes], connection: str | None) -> frozenset[bytes]:
    """``drop`` plus the header names a ``Connection`` value lists, as lower-case bytes."""
    if not connection:
        return drop
    return drop | {t.lower().encode("latin-1") for t in _tokens(connection)}


def _forwarded_values(request: web.BaseRequest) -> list[tuple[istr, str]]:
    """``X-Forwarded-For`` (the client's chain plus its address), ``-Proto`` and ``-Host``."""
    out: list[tuple[istr, str]] = []
    remote = request.remote
    if remote:
        prior = request.headers.get(_XFF)
        out.append((_XFF, f"{prior}, {remote}" if prior else remote))
    out.append((_XFP, request.scheme))
    host = request.headers.get(hdrs.HOST)
    if host:
        out.append((_XFH, host))
    return out


def _strip(headers: CIMultiDict[str], names: tuple[istr, ...]) -> None:
    for name in names:
        if name in headers:
            headers.popall(name)


def _response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out = CIMultiDict(upstream)
    for token in _connection_tokens(upstream):
        out.popall(token, None)
    _strip(out, _HOP_BY_HOP)
    return out


def _response_drop(
    headers: list[tuple[bytes, bytes]], keep: frozenset[bytes] = frozenset()
) -> frozenset[bytes]:
    """Response header names not for the client: hop-by-hop ones and those the upstream's
    ``Connection`` lists, less ``keep``."""
    connection = [v for n, v in headers if n.lower() == b"connection"]
    drop = _DROP_RESPONSE_BYTES
    if connection:
        drop = _with_connection_tokens(drop, b", ".join(connection).decode("latin-1"))
    return drop - keep if keep else drop


def _switching_headers(upstream: UpstreamResponse) -> CIMultiDict[str]:
    """A 101's header lines for the client: ``Connection`` and ``Upgrade`` are the upgrade's."""
    drop = _response_drop(upstream.headers, keep=_DROP_UPGRADE_BYTES)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.headers:
        if name.lower() not in drop:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _expect(request: web.BaseRequest) -> None:
    """A request with an ``Expect`` header, answered as aiohttp's router did for every route
    (``web_urldispatcher._default_expect_handler``, then the drain in
    ``Application._handle``): an HTTP/1.1 ``100-continue`` gets the interim 100 before its
    body is read, any other HTTP/1.1 expectation a 417, HTTP/1.0 nothing."""
    writer = request.writer
    if request.version == HttpVersion11:
        expect = request.headers.get(hdrs.EXPECT, "")
        if expect.lower() != "100-continue":
            raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
        await writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.output_size = 0  # the final response's size counts from here
    await writer.drain()


def _origin_form(request: web.BaseRequest) -> str:
    """The request target as path and query.  A client may send the absolute form
    (``GET http://host/x``, RFC 9112 3.2.2); the upstream is fixed, so only its path counts."""
    raw = request.raw_path
    return raw if raw[:1] == "/" else request.rel_url.raw_path_qs


def _text(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n")


class _RelayedReply:
    """A relayed whole-body response (long-polling, a refused upgrade) as the client gets it,
    plus what the observer reads."""

    __slots__ = ("content_encoding", "content_type", "data", "keep_alive")

    def __init__(self, request: web.BaseRequest, upstream: UpstreamResponse) -> None:
        """Serialize ``upstream`` for the client as ``web.Response`` would, in one buffer.

        The upstream's header lines are kept as received, in order, minus hop-by-hop ones
        (and those its ``Connection`` lists); then come the lines aiohttp would have added,
        in its order.  Unlike ``web.Response`` (which re-encoded latin-1 as UTF-8), bytes
        outside ASCII in the status line and header values pass through unchanged.
        """
        status = upstream.status
        method = request.method
        version = request.version
        # Never a HEAD: :meth:`_Relay.handle` streams those.
        no_length = status in _NO_BODY_STATUS or (
            method == hdrs.METH_CONNECT and 200 <= status < 300
        )
        reason = upstream.reason or _REASONS.get(status, b"")
        parts = [b"HTTP/%d.%d %d %s\r\n" % (version.major, version.minor, status, reason)]
        if upstream.interim and version != HttpVersion10:  # RFC 9110 15.2: none to HTTP/1.0
            parts.insert(0, upstream.interim)
        append = parts.append
        headers = upstream.headers
        drop = _response_drop(headers)
        length: bytes | None = None
        content_type: bytes | None = None
        content_encoding: bytes | None = None
        date = server = False
        for name, value in headers:
            lname = name.lower()
            if lname in drop:
                continue
            if lname == b"content-length":
                if no_length:
                    continue
                if length is None:
                    length = value
            elif lname == b"content-type":
                if content_type is None:
                    content_type = value
            elif lname == b"content-encoding":
                if content_encoding is None:
                    content_encoding = value
            elif lname == b"date":
                date = True
            elif lname == b"server":
                server = True
            append(name + b": " + value + b"\r\n")
        body = upstream.body
        if length is None and not no_length:
            length = b"%d" % len(body)
            append(b"Content-Length: " + length + b"\r\n")
        if content_type is None and length is not None and int(length) != 0:
            append(_OCTET_STREAM)
        if not date:
            append(b"Date: " + formatdate(usegmt=True).encode("latin-1") + b"\r\n")
        if not server:
            append(_SERVER)
        keep_alive = request.keep_alive
        if keep_alive:
            if version == HttpVersion10:
                append(_KEEP_ALIVE_10)
        elif version == HttpVersion11:
            append(_CLOSE_11)
        append(b"\r\n")
        if not no_length:
            append(body)
        self.data = b"".join(parts)
        self.keep_alive = keep_alive
        self.content_type = None if content_type is None else content_type.decode("latin-1")
        self.content_encoding = (
            None if content_encoding is None else content_encoding.decode("latin-1")
        )


class _Written(web.StreamResponse):
    """What a handler returns once it has written the whole response itself."""

    def __init__(self, status: int, keep_alive: bool, length: int) -> None:
        super().__init__(status=status)
        self._written_keep_alive = keep_alive
        self._written_length = length

    @property
    def keep_alive(self) -> bool:
        return self._written_keep_alive

    @property
    def body_length(self) -> int:
        return self._written_length

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _WsSession:
    """One relayed WebSocket: both legs and who closed first."""

    __slots__ = ("client", "close_code", "initiator", "request", "upstream")

    def __init__(
        self,
        request: web.BaseRequest,
        client: web.WebSocketResponse[Any],
        upstream: aiohttp.ClientWebSocketResponse[Any],
    ) -> None:
        self.request = request
        self.client = client
        self.upstream = upstream
        self.initiator: Direction | None = None
        self.close_code: int | None = None


class _Relay:
    def __init__(self, settings: ProxySettings, observer: TrafficObserver | None) -> None:
        if not settings.upstream:
            raise ValueError("proxy.upstream is not set")
        base = URL(settings.upstream)
        if base.scheme not in ("http", "https", "ws", "wss") or not base.host:
            raise ValueError(f"proxy.upstream must be an http(s) URL, got {base.scheme}://")
        scheme = {"ws": "http", "wss": "https"}.get(base.scheme, base.scheme)
        # Built once; each request only appends its raw (still encoded) path and query.
        self._prefix = str(base.with_scheme(scheme).origin()) + base.path.rstrip("/")
        self._settings = settings
        self._observer = observer
        self._sio_path = settings.socketio_path
        self._sio_path_bare = settings.socketio_path.rstrip("/")
        self._max = self.max_message_size = settings.max_message_size
        self._forwarded = settings.forwarded_headers
        self._request_drop = (
            _DROP_REQUEST_BYTES | _FORWARDED_BYTES if self._forwarded else _DROP_REQUEST_BYTES
        )
        self.counters = RelayCounters()
        self._session: aiohttp.ClientSession | None = None
        self._pool: UpstreamPool | None = None
        self._path_prefix = base.path.rstrip("/")
        self._upstream_host = base.host
        self._upstream_port = base.port or (443 if scheme == "https" else 80)
        self._upstream_tls = scheme == "https"
        self._websockets: set[_WsSession] = set()
        self._tunnels: set[WebSocketTunnel] = set()

    def stats(self) -> RelayStats:
        return self.counters.snapshot(self._pool)

    # --- lifecycle -------------------------------------------------------------------

    async def on_startup(self) -> None:
        s = self._settings
        connector = aiohttp.TCPConnector(
            limit=s.max_upstream_connections, limit_per_host=0, ttl_dns_cache=300
        )
        self._pool = UpstreamPool(
            self._upstream_host,
            self._upstream_port,
            ssl_context=ssl.create_default_context() if self._upstream_tls else None,
            connect_timeout_s=s.connect_timeout_s,
            max_active=s.max_upstream_connections,
        )
        self._session = aiohttp.ClientSession(
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

    async def on_shutdown(self) -> None:
        # Going away (RFC 6455 7.4.1 code 1001) on both legs of every open WebSocket.
        for tunnel in list(self._tunnels):
            tunnel.going_away()
        for ws in list(self._websockets):
            for leg in (ws.client, ws.upstream):
                with contextlib.suppress(Exception):
                    await send_close_frame(leg, 1001, b"proxy shutting down")
            release_client_leg(ws.request)
            release_upstream_leg(ws.upstream)
        # Pending long-polls would otherwise hold the shutdown for a whole ping interval:
        # closing the pool answers them with 502 now, and the clients reconnect elsewhere.
        await self.on_cleanup()

    async def on_cleanup(self) -> None:
        """Close the upstream pool and session (again, harmlessly, after a shutdown)."""
        if self._pool is not None:
            self._pool.close()
        if self._session is not None:
            await self._session.close()

    # --- routing ---------------------------------------------------------------------

    def _is_socketio(self, path: str) -> bool:
        return path.startswith(self._sio_path) or path == self._sio_path_bare

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request the server parses: what the one catch-all route ``/{tail:.*}`` of
        an ``Application`` did first (the ``Expect`` answer, 404 for a target it did not
        match), then the relay."""
        path = request.path
        if request.headers.get(hdrs.EXPECT):
            await _expect(request)
        if path[:1] != "/" or "\n" in path:
            # ``OPTIONS *``, CONNECT's authority form, a %0A in the path: not relayed.
            raise web.HTTPNotFound()
        self.counters.http_requests += 1
        sio = self._is_socketio(path)
        method = request.method
        if method == hdrs.METH_GET:  # a WebSocket handshake is a GET (RFC 6455 4.1)
            upgrade = request.headers.get(hdrs.UPGRADE)
            if upgrade is not None and upgrade.lower() == "websocket":
                return await self._websocket(request, sio)
        elif method == hdrs.METH_HEAD:
            # A response to HEAD announces a body it does not carry (RFC 9110 9.3.2), which
            # the whole-body client (httptools) would wait for; the streaming one knows better.
            return await self._stream(request)
        if sio:
            return await self._polling(request)
        return await self._stream(request)

    def _upstream_headers(self, request: web.BaseRequest) -> CIMultiDict[str]:
        headers = CIMultiDict(request.headers)
        for token in _connection_tokens(request.headers):
            headers.popall(token, None)
        _strip(headers, _HOP_BY_HOP)
        _strip(headers, _REQUEST_ONLY_DROP)
        if self._forwarded:
            for name, value in _forwarded_values(request):
                headers[name] = value
        return headers

    def _url(self, request: web.BaseRequest) -> URL:
        return URL(self._prefix + _origin_form(request), encoded=True)

    def _upstream_failed(self, exc: BaseException) -> web.Response:
        self.counters.upstream_errors += 1
        log.warning("upstream request failed: %s", type(exc).__name__)
        return _text(502, f"Bad Gateway: upstream unreachable ({type(exc).__name__})")

    # --- long-polling and other whole-body requests on the Socket.IO path -------------

    def _request_head(
        self,
        request: web.BaseRequest,
        body: bytes | None,
        *,
        keep: frozenset[bytes] = frozenset(),
        drop: frozenset[bytes] = frozenset(),
    ) -> bytes:
        """The upstream request head, from the client's raw header lines (``keep``: names
        kept although hop-by-hop, ``drop``: names dropped besides)."""
        line = f"{request.method} {self._path_prefix}{_origin_form(request)} HTTP/1.1\r\n"
        parts = [line.encode("utf-8", "surrogateescape")]
        append = parts.append
        # With forwarding on, the client's X-Forwarded-* lines are replaced below, not repeated.
        dropped = _with_connection_tokens(self._request_drop, request.headers.get(hdrs.CONNECTION))
        if keep or drop:
            dropped = (dropped - keep) | drop
        for name, value in request.raw_headers:
            if name.lower() not in dropped:
                append(name + b": " + value + b"\r\n")
        if self._forwarded:
            for fname, fvalue in _forwarded_values(request):
                append(f"{fname}: {fvalue}\r\n".encode("latin-1"))
        if body is not None or request.method in _METHODS_WITH_BODY:
            append(b"Content-Length: %d\r\n" % (len(body) if body else 0))
        append(b"\r\n")
        return b"".join(parts)

    async def _polling(self, request: web.BaseRequest) -> web.StreamResponse:
        counters = self.counters
        counters.polling_requests += 1
        observer = self._observer
        pool = self._pool
        assert pool is not None
        info = self._arrival(request)
        body: bytes | None = None
        if request.body_exists:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                counters.rejected_too_large += 1
                return _text(413, "Payload Too Large")
            counters.polling_bytes_c2s += len(body)
        if observer is not None and info is not None and body is not None:
            # Observed before the upstream answers, not after: the reply to this body can
            # come back on another connection (a pending GET or the new WebSocket, as the
            # AetherTerm front end does during the upgrade) before this POST's own "ok".
            try:
                observer.polling_request(info, body)
            except Exception:
                counters.observer_errors += 1
        try:
            upstream = await pool.request(self._request_head(request, body), body or b"", self._max)
        except asyncio.CancelledError:
            counters.client_disconnects += 1
            raise
        except PoolExhausted:
            counters.refused_busy += 1
            return _text(503, "Service Unavailable: too many upstream exchanges in flight")
        except ResponseTooLarge:
            counters.rejected_too_large += 1
            return _text(502, "Bad Gateway: upstream response larger than max_message_size")
        except UpstreamError as exc:
            return self._upstream_failed(exc)
        reply, written = await self._write_reply(request, upstream)
        data = upstream.body
        counters.polling_bytes_s2c += len(data)
        if observer is not None and info is not None:
            try:
                observer.polling_response(
                    info, upstream.status, reply.content_type, reply.content_encoding, data
                )
            except Exception:
                counters.observer_errors += 1
        return written

    async def _write_reply(
        self, request: web.BaseRequest, upstream: UpstreamResponse
    ) -> tuple[_RelayedReply, _Written]:
        reply = _RelayedReply(request, upstream)
        try:
            await request.writer.write_eof(reply.data)
        except (ConnectionError, asyncio.CancelledError):
            self.counters.client_disconnects += 1
            raise
        return reply, _Written(upstream.status, reply.keep_alive, len(reply.data))

    # --- everything else: streamed both ways, never inspected --------------------------

    async def _stream(self, request: web.BaseRequest) -> web.StreamResponse:
        session = self._session
        assert session is not None
        data = request.content if request.body_exists else None
        try:
            upstream = await session.request(
                request.method,
                self._url(request),
                headers=self._upstream_headers(request),
                data=data,
                allow_redirects=False,
            )
        except asyncio.CancelledError:
            self.counters.client_disconnects += 1
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return self._upstream_failed(exc)
        try:
            response = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers=_response_headers(upstream.headers),
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(_STREAM_CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response
        except (ConnectionError, asyncio.CancelledError):
            self.counters.client_disconnects += 1
            upstream.close()
            raise
        except (TimeoutError, aiohttp.ClientError):
            # Upstream died after the headers went out: nothing sensible left to send.
            self.counters.upstream_errors += 1
            upstream.close()
            release_client_leg(request)
            return response
        finally:
            upstream.release()

    # --- WebSocket ---------------------------------------------------------------------

    async def _websocket(self, request: web.BaseRequest, sio: bool) -> web.StreamResponse:
        counters = self.counters
        if counters.ws_active >= self._settings.max_websockets:
            counters.refused_busy += 1
            return _text(503, "Service Unavailable: too many WebSockets relayed at once")
        if self._settings.websocket_relay is WebSocketRelay.TUNNEL:
            return await self._tunnel(request, sio)
        return await self._terminate(request, sio)

    def _arrival(self, request: web.BaseRequest) -> RequestInfo | None:
        """The observer's :class:`RequestInfo` of a Socket.IO-path request, stamped on its
        clock as the head arrives: before the body is read, before an upgrade is forwarded
        (the handshake's duration runs from here).  ``None``: not observed."""
        observer = self._observer
        if observer is None:
            return None
        try:
            return observer.request_arrived(
                request.method, request.query, request.remote, request.headers.get(_TRACEPARENT)
            )
        except Exception:
            self.counters.observer_errors += 1
            return None

    def _websocket_observer(self, info: RequestInfo | None) -> WebSocketObserver | None:
        observer = self._observer
        if observer is None or info is None:
            return None
        try:
            return observer.websocket_opened(info)
        except Exception:
            self.counters.observer_errors += 1
            return None

    async def _tunnel(self, request: web.BaseRequest, sio: bool) -> web.StreamResponse:
        """The handshake forwarded as sent, then the two connections joined frame for frame."""
        info = self._arrival(request) if sio else None
        pool = self._pool
        assert pool is not None
        counters = self.counters
        # Without compression the upstream is not told the client offered it.
        no_deflate = frozenset() if self._settings.websocket_compression else _EXTENSIONS_BYTES
        head = self._request_head(request, None, keep=_DROP_UPGRADE_BYTES, drop=no_deflate)
        try:
            upstream, transport, tail = await pool.upgrade(head, self._max)
        except asyncio.CancelledError:
            counters.client_disconnects += 1
            raise
        except UpstreamError as exc:
            counters.ws_refused += 1
            return self._upstream_failed(exc)
        if transport is None:
            # Refused (or not a WebSocket 101): the client gets the upstream's answer as is.
            counters.ws_refused += 1
            _, written = await self._write_reply(request, upstream)
            return written
        headers = _switching_headers(upstream)
        response = web.StreamResponse(
            status=101, reason=upstream.reason.decode("latin-1") or None, headers=headers
        )
        response.force_close()
        client = request.transport
        try:
            if client is None:
                raise ConnectionResetError("client gone")
            await response.prepare(request)
        except BaseException:
            transport.close()
            raise
        extensions = headers.get(hdrs.SEC_WEBSOCKET_EXTENSIONS, "")
        wobs = self._websocket_observer(info)
        tunnel = WebSocketTunnel(
            client,
            transport,
            max_message=self._max,
            deflate="permessage-deflate" in extensions.lower(),
            observer=wobs,
            counters=counters,
            close_timeout_s=self._settings.close_timeout_s,
        )
        protocol = request.protocol
        protocol.set_parser(tunnel.client_reader())  # type: ignore[arg-type]
        protocol.keep_alive(False)
        counters.ws_opened += 1
        counters.ws_active += 1
        self._tunnels.add(tunnel)
        try:
            tunnel.start(tail)
            await tunnel.finished
        finally:
            tunnel.finish()
            self._tunnels.discard(tunnel)
            counters.ws_active -= 1
            if wobs is not None:
                try:
                    wobs.closed(tunnel.initiator, tunnel.close_code or None)
                except Exception:
                    counters.observer_errors += 1
        return response

    async def _terminate(self, request: web.BaseRequest, sio: bool) -> web.StreamResponse:
        """One WebSocket per leg (each negotiated by the proxy), messages relayed."""
        info = self._arrival(request) if sio else None
        session = self._session
        assert session is not None
        counters = self.counters
        settings = self._settings
        headers = self._upstream_headers(request)
        _strip(headers, _WS_HANDSHAKE)
        # Each leg negotiates permessage-deflate on its own (RFC 7692 5); the upstream leg is
        # offered it only when the client offered it, as a direct connection would be (a
        # backend's size limit applies to frames as they arrive, compressed or not).
        deflate = settings.websocket_compression and "permessage-deflate" in request.headers.get(
            hdrs.SEC_WEBSOCKET_EXTENSIONS, ""
        )
        deflate_upstream = deflate and settings.upstream_websocket_compression
        offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL)
        protocols = tuple(p.strip() for p in offered.split(",") if p.strip()) if offered else ()
        try:
            upstream = await session.ws_connect(
                self._url(request),
                protocols=protocols,
                headers=headers,
                compress=15 if deflate_upstream else 0,
                max_msg_size=self._max,
                autoclose=False,
                autoping=False,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=settings.close_timeout_s),
            )
        except asyncio.CancelledError:
            counters.client_disconnects += 1
            raise
        except aiohttp.WSServerHandshakeError as exc:
            counters.ws_refused += 1
            status = exc.status if exc.status >= 400 else 502
            return _text(status, f"upstream refused the WebSocket upgrade ({exc.status})")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            counters.ws_refused += 1
            return self._upstream_failed(exc)

        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            compress=deflate,
            max_msg_size=self._max,
            autoclose=False,
            autoping=False,
            decode_text=False,
        )
        try:
            await client.prepare(request)
        except BaseException:
            release_upstream_leg(upstream)
            raise

        wobs = self._websocket_observer(info)
        ws = _WsSession(request, client, upstream)
        counters.ws_opened += 1
        counters.ws_active += 1
        self._websockets.add(ws)
        try:
            await self._run_websocket(ws, wobs)
        finally:
            self._websockets.discard(ws)
            counters.ws_active -= 1
            release_upstream_leg(upstream)
            release_client_leg(request)
            if wobs is not None:
                try:
                    wobs.closed(ws.initiator, ws.close_code or None)
                except Exception:
                    counters.observer_errors += 1
        return client

    async def _run_websocket(self, ws: _WsSession, wobs: WebSocketObserver | None) -> None:
        """Client->upstream runs in the handler's task, upstream->client in a second one.

        Each pump forwards the close frame it receives and stops; the other pump then
        carries the reply.  A leg that ends without a close frame is mirrored as a dropped
        connection on the other leg; a missing close reply is given ``close_timeout_s``.
        """
        loop = asyncio.get_running_loop()
        timeout = self._settings.close_timeout_s
        downstream = loop.create_task(self._pump(ws, ws.upstream, ws.client, S2C, wobs))
        abort_handle: asyncio.TimerHandle | None = None

        def upstream_done(task: asyncio.Task[bool]) -> None:
            nonlocal abort_handle
            clean = not task.cancelled() and task.exception() is None and task.result()
            if clean:
                abort_handle = loop.call_later(timeout, release_client_leg, ws.request)
            else:
                release_client_leg(ws.request)

        downstream.add_done_callback(upstream_done)
        try:
            clean = await self._pump(ws, ws.client, ws.upstream, C2S, wobs)
            if not downstream.done():
                if clean:
                    await asyncio.wait((downstream,), timeout=timeout)
                downstream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await downstream
        finally:
            if not downstream.done():
                downstream.cancel()
            if abort_handle is not None:
                abort_handle.cancel()

    async def _pump(
        self,
        ws: _WsSession,
        src: AnyWebSocket,
        dst: AnyWebSocket,
        direction: Direction,
        wobs: WebSocketObserver | None,
    ) -> bool:
        """Forward ``src`` to ``dst`` until a close frame (True) or a failure (False)."""
        counters = self.counters
        c2s = direction is C2S
        TEXT, BINARY = WSMsgType.TEXT, WSMsgType.BINARY
        try:
            while True:
                msg = await src.receive()
                kind = msg.type
                if kind is TEXT or kind is BINARY:
                    data: bytes = msg.data
                    await dst.send_frame(data, kind)
                    if c2s:
                        counters.ws_messages_c2s += 1
                        counters.ws_bytes_c2s += len(data)
                    else:
                        counters.ws_messages_s2c += 1
                        counters.ws_bytes_s2c += len(data)
                    if wobs is not None:
                        try:
                            wobs.message(
                                direction,
                                data.decode("utf-8", "replace") if kind is TEXT else data,
                            )
                        except Exception:
                            counters.observer_errors += 1
                elif kind is WSMsgType.PING or kind is WSMsgType.PONG:
                    await dst.send_frame(msg.data, kind)
                elif kind is WSMsgType.CLOSE:
                    if ws.initiator is None:
                        ws.initiator = direction
                        ws.close_code = msg.data
                    reason = msg.extra
                    await send_close_frame(
                        dst,
                        msg.data,
                        reason.encode("utf-8") if isinstance(reason, str) else b"",
                    )
                    return True
                elif kind is WSMsgType.ERROR:
                    # aiohttp already answered src with a close frame carrying the error's
                    # code (e.g. 1009 message too big); tell dst the same.
                    code = getattr(msg.data, "code", 1011)
                    with contextlib.suppress(Exception):
                        await send_close_frame(dst, code, b"")
                    return False
                else:  # CLOSED / CLOSING: the connection is gone
                    return False
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return False


class RelayServer:
    """The relay, served by aiohttp's low-level :class:`web.Server`.

    Every request goes straight to the relay's handler: no ``Application``, router or match
    info, which a proxy with one catch-all route paid for on every request.  The relay owns
    one upstream pool and ``ClientSession``, created when a runner is set up and closed when
    it is cleaned up; its counters are :attr:`counters` (live) and :meth:`stats` (a
    snapshot).
    """

    def __init__(self, settings: ProxySettings, observer: TrafficObserver | None = None) -> None:
        self._relay = _Relay(settings, observer)

    @property
    def counters(self) -> RelayCounters:
        return self._relay.counters

    def stats(self) -> RelayStats:
        """The current counters, with the upstream pool's."""
        return self._relay.stats()

    def runner(
        self, *, shutdown_timeout: float = 60.0, access_log: logging.Logger | None = access_logger
    ) -> web.BaseRunner:
        """A runner to give a ``web.TCPSite``, as ``web.AppRunner`` ran the relay's app.

        Handlers are cancelled when their client goes away (``handler_cancellation``), so a
        vanished client cancels its upstream request at once.
        """
        return _RelayRunner(self._relay, shutdown_timeout=shutdown_timeout, access_log=access_log)


class _RelayRunner(web.BaseRunner):
    """``web.ServerRunner`` plus the lifecycle ``AppRunner`` gave the app's signals: setup
    starts the relay before the server exists; cleanup stops the sites, closes idle
    connections, shuts the relay down (WebSockets closed with 1001, pending polls answered),
    waits up to ``shutdown_timeout`` for the handlers, then cleans the relay up."""

    __slots__ = ("_relay",)

    def __init__(self, relay: _Relay, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._relay = relay

    async def _make_server(self) -> web.Server:
        loop = asyncio.get_running_loop()
        await self._relay.on_startup()
        # Socket.IO bodies are read whole up to max_message_size (413 beyond); everything
        # else is streamed and not limited here.
        factory = functools.partial(
            web.BaseRequest, loop=loop, client_max_size=self._relay.max_message_size
        )
        return web.Server(
            self._relay.handle,
            request_factory=factory,
            handler_cancellation=True,
            loop=loop,
            debug=loop.get_debug(),
            **self._kwargs,
        )

    async def shutdown(self) -> None:
        await self._relay.on_shutdown()

    async def _cleanup_server(self) -> None:
        await self._relay.on_cleanup()

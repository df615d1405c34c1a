"""The lean server leg's three legs: whole-body polling, streamed paths, WebSocket upgrades.

Owns what a :class:`proxy.lean.request.LeanRequest` gets once routed: on the Socket.IO
path its body read whole and relayed through the upstream pool, the reply written as one
buffer (:class:`proxy.polling.RelayedReply`: the upstream's head as received); elsewhere
(and HEAD) the body streamed through aiohttp's client and the response streamed back with
the upstream's header lines as received; an upgrade forwarded, and on a 101 the two
connections joined by a :class:`proxy.wstunnel.WebSocketTunnel`.  Each returns whether the
client connection may carry another request.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import hdrs, web
from aiohttp.http import HttpVersion10

from socketio_trace_proxy.proxy.core import RelayCore, log
from socketio_trace_proxy.proxy.headers import (
    DROP_UPGRADE_BYTES,
    METHODS_WITH_BODY,
    origin_form,
    switching_head,
    text_response,
)
from socketio_trace_proxy.proxy.lean.connection import ClientConnection
from socketio_trace_proxy.proxy.lean.head import HeadBuilder
from socketio_trace_proxy.proxy.lean.request import LeanRequest, answer
from socketio_trace_proxy.proxy.polling import (
    CHUNKED,
    NO_BODY_STATUS,
    RelayedReply,
    connection_line,
    copy_headers,
    failed_answer,
    forward_whole,
    observe_reply,
    observe_request,
    send_whole,
)
from socketio_trace_proxy.proxy.streaming import STREAM_CHUNK, open_upstream
from socketio_trace_proxy.proxy.upstream import (
    PoolExhausted,
    ResponseTooLarge,
    UpstreamConnection,
    UpstreamError,
    UpstreamResponse,
)
from socketio_trace_proxy.proxy.websocket import WebSocketLegs
from socketio_trace_proxy.proxy.wstunnel import WebSocketTunnel
from socketio_trace_proxy.tracking.observer import RequestInfo

_SCHEME = LeanRequest.scheme.encode("ascii")


def _own(conn: ClientConnection, request: LeanRequest, response: web.Response) -> bool:
    """Write one of the proxy's own answers; whether the connection may go on."""
    conn.write(answer(response, request.version, request.keep_alive))
    return request.keep_alive


def _too_large(core: RelayCore, conn: ClientConnection, request: LeanRequest) -> bool:
    """A body over the limit answered 413; the rest of it is never read, so the connection
    ends with the answer."""
    core.counters.rejected_too_large += 1
    request.keep_alive = False
    return _own(conn, request, text_response(413, "Payload Too Large"))


async def relay_whole(core: RelayCore, conn: ClientConnection, request: LeanRequest) -> bool:
    """A Socket.IO-path request: body read whole, observed, relayed, the reply written
    whole and observed."""
    counters = core.counters
    counters.polling_requests += 1
    info = core.lean_arrival(request)
    if request.refused:
        counters.refused_bodies += 1
        busy = text_response(503, "Service Unavailable: too many request bodies in flight")
        return _own(conn, request, busy)
    body: bytes | None = None
    if request.has_body:
        body = await request.whole()
        if request.too_large:
            return _too_large(core, conn, request)
        counters.polling_bytes_c2s += len(body)
    upstream = await forward_whole(core, request, info, body)
    return _write_back(core, conn, request, info, upstream)


def _write_back(
    core: RelayCore,
    conn: ClientConnection,
    request: LeanRequest,
    info: RequestInfo | None,
    upstream: UpstreamResponse | web.Response,
) -> bool:
    """The upstream's reply (or the proxy's own answer) written and observed."""
    if isinstance(upstream, web.Response):
        return _own(conn, request, upstream)
    reply = RelayedReply(request, upstream)
    conn.write(reply.data)
    observe_reply(core, info, upstream, reply)
    return reply.keep_alive


def lean_heads(core: RelayCore) -> HeadBuilder:
    """The (compiled) builder of the lean leg's upstream request heads for ``core``'s
    settings."""
    return HeadBuilder(
        core.path_prefix,
        core.request_drop,
        core.guard_address,
        _SCHEME,
        core.forwarded,
        core.rewrite_address,
    )


def upstream_head(  # noqa: PLR0917 - request_head's parts
    heads: HeadBuilder,
    core: RelayCore,
    request: LeanRequest,
    body: bytes | None,
    keep: frozenset[bytes] = frozenset(),
    drop: frozenset[bytes] = frozenset(),
    known: dict[bytes, bytes] | None = None,
) -> bytes:
    """:meth:`RelayCore.request_head` from the headers the request noted (no header
    multidict built) in one compiled call, unless the client sent a ``Forwarded`` (all its
    values count); ``known``: the lines built for the header lines its connection sent
    (:meth:`HeadBuilder.build_known`)."""
    noted = request.noted
    if b"forwarded" in noted:
        return core.request_head(request, body, keep=keep, drop=drop)
    method = request.method
    length = -1
    if body is not None or method in METHODS_WITH_BODY:
        length = len(body) if body else 0
    target = request.raw_path
    if target[:1] != "/":
        target = origin_form(request)
    if known is not None and not keep and not drop:
        raw, lnames = request.raw_headers, request.lnames
        return heads.build_known(method, target, raw, noted, request.remote, length, lnames, known)
    return heads.build(
        method,
        target,
        request.raw_headers,
        noted,
        request.remote,
        length,
        keep,
        drop,
        request.lnames,
    )


class InlineWhole:
    """:func:`relay_whole` without a task, for the common long-poll: begun as the head
    arrives, sent once the body is in on an idle pooled upstream connection (from the
    client connection's parser callbacks), the reply written from the upstream
    connection's.  Where it would have to wait (a connect, a stale idle connection sent
    again, RFC 9112 9.3) the rest goes on in the client connection's worker task."""

    __slots__ = ("body", "conn", "core", "head", "info", "request", "started", "upstream")

    def __init__(self, core: RelayCore, conn: ClientConnection, request: LeanRequest) -> None:
        self.core = core
        self.conn = conn
        self.request = request
        self.started = False
        self.upstream: UpstreamConnection | None = None  # while its exchange is in flight
        self.head = b""
        self.body: bytes | None = None
        counters = core.counters
        counters.http_requests += 1
        counters.polling_requests += 1
        self.info = None if core.observer is None else core.lean_arrival(request)

    def start(self) -> None:
        """The body is in (or over the limit): send the request upstream."""
        if self.started:
            return
        self.started = True
        core, conn, request = self.core, self.conn, self.request
        try:
            body: bytes | None = None
            if request.has_body:
                body = request.body()
                if request.too_large:
                    conn.inline_done(request, _too_large(core, conn, request))
                    return
                core.counters.polling_bytes_c2s += len(body)
            head = upstream_head(conn.server.heads, core, request, body, known=conn.known)
            pool = core.pool
            assert pool is not None
            try:
                upstream = pool.lend()
            except PoolExhausted as exc:
                observe_request(core, self.info, body)
                conn.inline_done(request, _own(conn, request, failed_answer(core, exc)))
                return
            if upstream is None:
                observe_request(core, self.info, body)
                conn.inline_async(request, self._rest(head, body, fresh=False))
                return
            self.upstream, self.head, self.body = upstream, head, body
            upstream.send(head, body or b"", core.max, self)
            # Relay first, observe second.  Still before any reply is observed: the
            # upstream's answer, on this connection or another, arrives in a later loop
            # callback.
            if body is not None:
                observe_request(core, self.info, body)
        except Exception:
            self._failed()

    def _received(self, outcome: UpstreamResponse | UpstreamError) -> None:
        upstream = self.upstream
        pool = self.core.pool
        if upstream is None or pool is None:
            return  # cancelled: the client went away
        self.upstream = None
        try:
            if isinstance(outcome, UpstreamResponse):
                pool.settle(upstream, outcome)
                conn, request = self.conn, self.request
                reply = RelayedReply(request, outcome)
                transport = conn.transport
                if transport is not None and not conn.closed:  # conn.write
                    transport.write(reply.data)
                observe_reply(self.core, self.info, outcome, reply)
                conn.inline_done(request, reply.keep_alive)
                return
            pool.settle(upstream, None)
            stale = not upstream.received_anything and not pool.closing
            if stale and not isinstance(outcome, ResponseTooLarge):
                self.conn.inline_async(self.request, self._rest(self.head, self.body, fresh=True))
                return
            keep = _own(self.conn, self.request, failed_answer(self.core, outcome))
            self.conn.inline_done(self.request, keep)
        except Exception:
            self._failed()

    # The exchange reports here (proxy.upstream.Settles): done once answered or cancelled.
    set_result = set_exception = _received

    def done(self) -> bool:
        return self.upstream is None

    async def _rest(self, head: bytes, body: bytes | None, *, fresh: bool) -> bool:
        upstream = await send_whole(self.core, head, body, fresh=fresh)
        return _write_back(self.core, self.conn, self.request, self.info, upstream)

    def _failed(self) -> None:
        request = self.request
        log.exception("relaying %s %s failed", request.method, request.path[:200])
        if self.conn.inline is self:
            self.conn.inline_done(request, False)

    def cancel(self) -> None:
        """The client went away: the upstream exchange in flight, if any, ends too."""
        upstream = self.upstream
        pool = self.core.pool
        if upstream is not None and pool is not None:
            self.upstream = None
            pool.settle(upstream, None)
            self.core.counters.client_disconnects += 1
            log.debug("client went away with a request in progress: its exchange is cancelled")


async def relay_stream(core: RelayCore, conn: ClientConnection, request: LeanRequest) -> bool:
    """Forward ``request`` (its body as it arrives) and stream the upstream's response back."""
    data = request.stream(conn.taken) if request.has_body else None
    upstream = await open_upstream(core, request, data)
    if isinstance(upstream, web.Response):
        return _own(conn, request, upstream)
    try:
        return await _stream_back(conn, request, upstream)
    except asyncio.CancelledError:
        core.counters.client_disconnects += 1
        upstream.close()
        raise
    except (TimeoutError, aiohttp.ClientError):
        # The upstream died after the head went out: nothing sensible left to send.
        core.counters.upstream_errors += 1
        upstream.close()
        return False
    finally:
        upstream.release()


async def _stream_back(
    conn: ClientConnection, request: LeanRequest, upstream: aiohttp.ClientResponse
) -> bool:
    """The upstream's status line reason and header lines as received (minus hop-by-hop
    ones), framed for this client, then its body chunk by chunk."""
    status = upstream.status
    version = request.version
    reason = (upstream.reason or "").encode("utf-8", "surrogateescape")  # as aiohttp decoded it
    parts = [b"HTTP/%d.%d %d %s\r\n" % (*version, status, reason)]
    no_body = status in NO_BODY_STATUS or request.method == hdrs.METH_HEAD
    chunk_ok = not no_body and version != HttpVersion10
    seen = copy_headers(
        list(upstream.raw_headers), status in NO_BODY_STATUS, parts.append, chunk_ok
    )
    # RFC 9112 6.3: a body framed by neither length nor chunking ends with the connection.
    chunked = seen.chunked and chunk_ok
    keep_alive = request.keep_alive and (no_body or chunked or seen.length is not None)
    if chunked and not seen.framed:
        parts.append(CHUNKED)
    parts.append(connection_line(version, keep_alive))
    parts.append(b"\r\n")
    conn.write(b"".join(parts))
    if not no_body:
        async for chunk in upstream.content.iter_chunked(STREAM_CHUNK):
            conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await conn.drain()
        if chunked:
            conn.write(b"0\r\n\r\n")
    return keep_alive


async def relay_upgrade(
    core: RelayCore, legs: WebSocketLegs, conn: ClientConnection, request: LeanRequest
) -> bool:
    """The handshake forwarded as sent; on a 101 the same 101 to the client and the two
    connections joined until the WebSocket ends; anything else answered as received."""
    counters = core.counters
    request.keep_alive = False  # after a WebSocket, or a refused upgrade, the connection ends
    busy = legs.refusal()
    if busy is not None:
        return _own(conn, request, busy)
    head = upstream_head(
        conn.server.heads, core, request, None, DROP_UPGRADE_BYTES, legs.no_deflate()
    )
    handshake = await legs.forward_handshake(request, core.is_socketio(request.path), head)
    if isinstance(handshake, web.Response):
        return _own(conn, request, handshake)
    info, upstream, transport, tail = handshake
    if transport is None:
        conn.write(RelayedReply(request, upstream).data)
        return False
    if conn.closed or conn.transport is None:
        transport.close()
        counters.client_disconnects += 1
        log.debug("client went away during the WebSocket handshake")
        return False
    head, extensions = switching_head(upstream, 1, 1)
    conn.write(head)
    wobs = core.websocket_observer(info)
    tunnel = WebSocketTunnel(
        conn.transport,
        transport,
        max_message=core.max,
        deflate=extensions is not None and b"permessage-deflate" in extensions.lower(),
        observer=wobs,
        counters=counters,
        close_timeout_s=core.settings.close_timeout_s,
    )
    conn.switch_to(tunnel)
    await legs.run_tunnel(tunnel, tail, wobs)
    return False

"""Long-polling and the other whole-body requests on the Socket.IO path.

Owns the polling leg: the client's body read whole (bounded by ``max_message_size``),
shown to the observer before the upstream answers, sent through the lean upstream pool,
and the upstream's reply serialized for the client in one buffer (:class:`RelayedReply`),
which also carries what the observer reads (content type and encoding).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11

from socketio_trace_proxy.proxy.core import RelayCore, log
from socketio_trace_proxy.proxy.headers import (
    DROP_RESPONSE_BYTES,
    ClientRequest,
    response_drop,
    text_response,
)
from socketio_trace_proxy.proxy.lean.head import Seen, as_received
from socketio_trace_proxy.proxy.upstream import (
    PoolExhausted,
    ResponseTooLarge,
    UpstreamError,
    UpstreamResponse,
)
from socketio_trace_proxy.tracking.observer import RequestInfo

# A relayed polling response is the upstream's head as received (issue 14: nothing added but
# the framing and Connection per the client): Content-Length is dropped for statuses that
# have no body, added only when the upstream framed the body by closing the connection; a
# chunked body stays chunked (one chunk) for HTTP/1.1 clients.
NO_BODY_STATUS: Final = frozenset((204, 304, *range(100, 200)))
CHUNKED: Final = b"Transfer-Encoding: chunked\r\n"
_KEEP_ALIVE_10: Final = b"Connection: keep-alive\r\n"
_CLOSE_11: Final = b"Connection: close\r\n"


def connection_line(version: HttpVersion, keep_alive: bool) -> bytes:
    """The ``Connection`` line a response to this client needs (none where its version's
    default already says it)."""
    if keep_alive:
        return _KEEP_ALIVE_10 if version == HttpVersion10 else b""
    return _CLOSE_11 if version == HttpVersion11 else b""


def copy_headers(
    headers: list[tuple[bytes, bytes]],
    no_length: bool,
    append: Callable[[bytes], None],
    chunk_ok: bool = False,
) -> Seen:
    """Append the upstream's header lines as received, in order, minus hop-by-hop ones (and
    those its ``Connection`` lists, and ``Content-Length`` where no body may follow).  With
    ``chunk_ok`` (the client gets a chunked body), a plain ``Transfer-Encoding: chunked``
    line stays where it was (``Seen.framed``)."""
    seen = Seen()
    drop = response_drop(headers)
    for name, value in headers:
        lname = name.lower()
        if lname in drop:
            if lname == b"transfer-encoding":
                coding = value.lower()
                seen.chunked = b"chunked" in coding
                if chunk_ok and not seen.framed and coding.strip() == b"chunked":
                    seen.framed = True
                    append(name + b": " + value + b"\r\n")
            continue
        if no_length and lname == b"content-length":
            continue
        seen.note(lname, value)
        append(name + b": " + value + b"\r\n")
    return seen


class RelayedReply:
    """A relayed whole-body response (long-polling, a refused upgrade) as the client gets it,
    plus what the observer reads."""

    __slots__ = ("_seen", "data", "keep_alive")

    def __init__(self, request: ClientRequest, upstream: UpstreamResponse) -> None:
        """Serialize ``upstream`` for the client in one buffer.

        The status line's reason and the header lines are kept as received, in order, minus
        hop-by-hop ones (and those its ``Connection`` lists); then only the framing and
        ``Connection`` for this client.  Bytes outside ASCII pass through unchanged.
        """
        status = upstream.status
        version = request.version
        raw, body = upstream.raw, upstream.body
        # The common case: the upstream's response byte for byte (see as_received), to an
        # HTTP/1.1 keep-alive client, no 1xx before it.
        plain = request.keep_alive and version == HttpVersion11 and request.method != "CONNECT"
        if raw is not None and plain and not upstream.interim and status not in NO_BODY_STATUS:
            seen: Seen | None = as_received(
                raw, status, upstream.reason, upstream.headers, len(body), DROP_RESPONSE_BYTES
            )
            if seen is not None:
                self.data = raw
                self.keep_alive = True
                self._seen = seen
                return
        # Never a HEAD: :meth:`proxy.relay.Relay.handle` streams those.
        no_length = status in NO_BODY_STATUS or (
            request.method == hdrs.METH_CONNECT and 200 <= status < 300
        )
        reason = upstream.reason
        parts = [b"HTTP/%d.%d %d %s\r\n" % (version.major, version.minor, status, reason)]
        if upstream.interim and version != HttpVersion10:  # RFC 9110 15.2: none to HTTP/1.0
            parts.insert(0, upstream.interim)
        append = parts.append
        chunk_ok = not no_length and version != HttpVersion10
        seen = copy_headers(upstream.headers, no_length, append, chunk_ok)
        chunked = seen.chunked and chunk_ok
        if chunked:
            if not seen.framed:
                append(CHUNKED)
        elif seen.length is None and not no_length:
            append(b"Content-Length: %d\r\n" % len(body))
        keep_alive = request.keep_alive
        connection = connection_line(version, keep_alive)
        if connection:
            append(connection)
        append(b"\r\n")
        if chunked:
            if body:
                append(b"%x\r\n" % len(body))
                append(body)
                append(b"\r\n")
            append(b"0\r\n\r\n")
        elif not no_length:
            append(body)
        self._done(b"".join(parts), keep_alive, seen)

    def _done(self, data: bytes, keep_alive: bool, seen: Seen) -> None:
        self.data = data
        self.keep_alive = keep_alive
        self._seen = seen

    # Decoded only when read: the observer reads them, a relay without tracking does not.

    @property
    def content_type(self) -> str | None:
        value = self._seen.content_type
        return None if value is None else value.decode("latin-1")

    @property
    def content_encoding(self) -> str | None:
        value = self._seen.content_encoding
        return None if value is None else value.decode("latin-1")


class Written(web.StreamResponse):
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


async def write_reply(
    core: RelayCore, request: web.BaseRequest, upstream: UpstreamResponse
) -> tuple[RelayedReply, Written]:
    """Write ``upstream``'s whole response to the client in one go."""
    reply = RelayedReply(request, upstream)
    try:
        await request.writer.write_eof(reply.data)
    except ConnectionError:
        # Gone while the reply was written: counted, not an error (issue 14).
        core.counters.client_disconnects += 1
        log.debug("client went away before its reply was written")
        return reply, Written(upstream.status, False, 0)
    except asyncio.CancelledError:
        core.counters.client_disconnects += 1
        raise
    return reply, Written(upstream.status, reply.keep_alive, len(reply.data))


async def relay_polling(core: RelayCore, request: web.BaseRequest) -> web.StreamResponse:
    """One Socket.IO-path request (not an upgrade, not a HEAD): body read whole (within the
    bytes all bodies may hold at once, else 503), observed, relayed through the pool, the
    reply written whole and observed."""
    counters = core.counters
    counters.polling_requests += 1
    info = core.arrival(request)
    if not request.body_exists:
        return await _relay_body(core, request, info, None)
    # What the body may hold while read and relayed: its length, or the limit if chunked.
    length = request.content_length
    reserved = core.max if length is None else min(length, core.max + 1)
    if core.bodies_held + reserved > core.bodies_budget and core.bodies_held:
        counters.refused_bodies += 1
        return text_response(503, "Service Unavailable: too many request bodies in flight")
    core.bodies_held += reserved
    try:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            counters.rejected_too_large += 1
            return text_response(413, "Payload Too Large")
        counters.polling_bytes_c2s += len(body)
        return await _relay_body(core, request, info, body)
    finally:
        core.bodies_held -= reserved


async def _relay_body(
    core: RelayCore, request: web.BaseRequest, info: RequestInfo | None, body: bytes | None
) -> web.StreamResponse:
    """The request (``body`` read whole, or none) observed, relayed, its reply written."""
    upstream = await forward_whole(core, request, info, body)
    if isinstance(upstream, web.Response):
        return upstream
    reply, written = await write_reply(core, request, upstream)
    observe_reply(core, info, upstream, reply)
    return written


async def forward_whole(
    core: RelayCore, request: ClientRequest, info: RequestInfo | None, body: bytes | None
) -> UpstreamResponse | web.Response:
    """The request (``body`` read whole, or none) observed and sent through the pool: the
    upstream's whole response, or the proxy's own answer when there is none."""
    observe_request(core, info, body)
    return await send_whole(core, core.request_head(request, body), body)


def observe_request(core: RelayCore, info: RequestInfo | None, body: bytes | None) -> None:
    """Show a request's body to the observer, before the upstream answers, not after: the
    reply to this body can come back on another connection (a pending GET or the new
    WebSocket, as the AetherTerm front end does during the upgrade) before this POST's own
    "ok"."""
    observer = core.observer
    if observer is not None and info is not None and body is not None:
        try:
            observer.polling_request(info, body)
        except Exception:
            core.counters.observer_errors += 1


async def send_whole(
    core: RelayCore, head: bytes, body: bytes | None, *, fresh: bool = False
) -> UpstreamResponse | web.Response:
    """An upstream request sent through the pool (``fresh``: on a new connection): the
    upstream's whole response, or the proxy's own answer when there is none."""
    pool = core.pool
    assert pool is not None
    try:
        return await pool.request(head, body or b"", core.max, fresh=fresh)
    except asyncio.CancelledError:
        core.counters.client_disconnects += 1
        raise
    except UpstreamError as exc:
        return failed_answer(core, exc)


def failed_answer(core: RelayCore, exc: UpstreamError) -> web.Response:
    """The proxy's own answer to an upstream exchange that failed."""
    if isinstance(exc, PoolExhausted):
        core.counters.refused_busy += 1
        return text_response(503, "Service Unavailable: too many upstream exchanges in flight")
    if isinstance(exc, ResponseTooLarge):
        core.counters.rejected_too_large += 1
        return text_response(502, "Bad Gateway: upstream response larger than max_message_size")
    return core.upstream_failed(exc)


def observe_reply(
    core: RelayCore, info: RequestInfo | None, upstream: UpstreamResponse, reply: RelayedReply
) -> None:
    """Count the relayed reply's body and show it to the observer."""
    data = upstream.body
    core.counters.polling_bytes_s2c += len(data)
    observer = core.observer
    if observer is not None and info is not None:
        try:
            observer.polling_response(
                info, upstream.status, reply.content_type, reply.content_encoding, data
            )
        except Exception:
            core.counters.observer_errors += 1

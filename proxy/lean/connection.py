"""One client connection of the lean server leg, from its first byte to its close.

Owns the request parser (httptools, i.e. llhttp in its strict mode: ``Content-Length`` with
``Transfer-Encoding``, a repeated ``Content-Length``, obs-fold lines and bare LF line ends
are errors), the size limits on a request head, the requests of one connection answered in
the order they came (pipelined ones parsed ahead are queued, a bounded number), the flow of
request bodies (reading pauses while too much is buffered), the head and idle deadlines of
issue 17.8, and the switch to a WebSocket tunnel after a 101.  What each request gets is
:meth:`proxy.lean.server.LeanServer.handle`'s business.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import unquote

import httptools
from aiohttp.http import HttpVersion10, HttpVersion11

from socketio_trace_proxy.proxy.core import log
from socketio_trace_proxy.proxy.headers import text_response
from socketio_trace_proxy.proxy.lean.head import Refused, RequestHead
from socketio_trace_proxy.proxy.lean.request import Kind, LeanRequest, answer

if TYPE_CHECKING:
    from socketio_trace_proxy.proxy.lean.exchange import InlineWhole
    from socketio_trace_proxy.proxy.lean.server import LeanServer
    from socketio_trace_proxy.proxy.wstunnel import WebSocketTunnel

MAX_HEAD: Final = 64 * 1024  # the bytes of a request head (aiohttp's limits for its parts: head)
MAX_QUEUED: Final = 16  # pipelined requests parsed ahead of the one being answered
HIGH_WATER: Final = 256 * 1024  # streamed body bytes buffered before reading pauses


class _Callbacks:
    """What the request parser calls: the (compiled) :class:`RequestHead` collects the
    target and header lines, the connection takes the rest."""

    __slots__ = ("on_body", "on_header", "on_headers_complete", "on_message_complete", "on_url")

    def __init__(self, head: RequestHead, conn: ClientConnection) -> None:
        self.on_url = head.on_url
        self.on_header = head.on_header
        self.on_headers_complete = conn.on_headers_complete
        self.on_body = conn.on_body
        self.on_message_complete = conn.on_message_complete


class ClientConnection(asyncio.Protocol):
    """A client's keep-alive connection: requests parsed, queued, answered in order."""

    def __init__(self, server: LeanServer) -> None:
        self.server = server
        self._max_body = server.core.max
        self._head = head = RequestHead()
        self._parser = httptools.HttpRequestParser(_Callbacks(head, self))
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self.remote_port: int | None = None
        self.closed = False
        self._head_fed = 0
        self._current: LeanRequest | None = None  # the request whose body is being parsed
        self._queue: deque[LeanRequest | bytes] = deque()  # bytes: a last answer, then close
        self.worker: asyncio.Task[None] | None = None
        self.inline: InlineWhole | None = None  # a request answered without the worker
        self._settled: asyncio.Future[None] | None = None  # see settled()
        self._clock = server.loop.time
        self._head_timeout = server.head_timeout_s
        self._keepalive_timeout = server.keepalive_timeout_s
        self.deadline = 0.0  # when the head or idle deadline expires (0: none); see _arm
        self._partial = True  # a head is on its way (the first one, at the start)
        self._dead = False  # the parser stopped (an error or an upgrade): nothing more read
        self._pending = b""  # bytes that came after an upgrade's head
        self.tunnel: WebSocketTunnel | None = None
        self._buffered = 0  # streamed body bytes received and not yet forwarded
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self.known: dict[bytes, bytes] = {}  # HeadBuilder.build_known's, for this client

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple | list) and peer:
            self.remote = str(peer[0])
            if len(peer) >= 2 and isinstance(peer[1], int):
                self.remote_port = peer[1]
        self.server.connections.add(self)
        self._arm(self.server.head_timeout_s)

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_client(data)
            return
        if self._dead:
            self._pending += data
            return
        if not self._partial and self.worker is None and self.inline is None:
            self._partial = True  # the next head starts: its own deadline (see _arm)
            self.deadline = self._clock() + self._head_timeout
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, Refused):
                self._refuse(cause.status, str(cause))
            else:
                self._refuse(400, str(exc) or type(exc).__name__)
        else:
            if self._head.started:
                self._head_fed += len(data)
                if self._head_fed > MAX_HEAD:
                    self._refuse(431, "Request Header Fields Too Large")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.deadline = 0.0
        if self._current is not None:
            self._current.finish(lost=True)
        for item in self._queue:
            if isinstance(item, LeanRequest):
                item.finish(lost=True)
        inline = self.inline
        if inline is not None:
            self.inline = None
            inline.cancel()  # the client went away: its upstream exchange ends too
            self._answered(inline.request, False)
            self._idle()
        if self.tunnel is not None:
            self.tunnel.finish()
        elif self.worker is not None:
            log.debug("client went away with a request in progress: its exchange is cancelled")
            self.worker.cancel()  # the client went away: its upstream exchange ends too
        self._wake_drain()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_drain()

    def _wake_drain(self) -> None:
        drain = self._drain
        self._drain = None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # --- httptools callbacks (the head's target and lines: :class:`RequestHead`) -----

    def on_headers_complete(self) -> None:
        # No on_message_begin (one call less per request): the head's parts are taken (and
        # reset) once the head is complete.
        self._head_fed = 0
        parser = self._parser
        version = HttpVersion11 if parser.get_http_version() == "1.1" else HttpVersion10
        url, headers, lnames, noted = self._head.take_all()
        raw_path = url.decode("utf-8", "surrogateescape")
        if raw_path[:1] == "/":
            path = raw_path.partition("?")[0]
            if "%" in path:
                path = unquote(path)
        else:
            raw_path, path = _origin_form(url)
        request = LeanRequest(
            parser.get_method().decode("ascii"),
            raw_path,
            path,
            version,
            headers,
            parser.should_keep_alive(),
            self.transport,
            self.remote,
            self.remote_port,
            noted,
            lnames,
        )
        self._current = request
        server = self.server
        if server.classify(request) and self.worker is None and self.inline is None:
            # The common long-poll goes without a task (started once its body is in).
            self._queue.append(request)
            self.deadline = 0.0
            self._partial = False
            self.inline = server.inline_whole(server.core, self, request)
            return
        self._enqueue(request)

    def on_body(self, body: bytes) -> None:
        request = self._current
        if request is not None:
            self._buffered += request.feed(body, self._max_body)
            if self._buffered > HIGH_WATER:
                self._flow()
            if request.too_large and self.inline is not None:
                self.inline.start()

    def on_message_complete(self) -> None:
        request = self._current
        self._current = None
        if request is not None:
            inline = self.inline
            if inline is not None and inline.request is request:
                request.complete = True  # finish(): nothing awaits an inline request's body
                inline.start()
            else:
                request.finish()

    # --- requests in order -------------------------------------------------------------

    def _enqueue(self, item: LeanRequest | bytes) -> None:
        self._queue.append(item)
        if self.worker is None and self.inline is None:
            self.deadline = 0.0
            self._partial = False
            self.worker = self.server.loop.create_task(self._work())
        elif len(self._queue) > MAX_QUEUED:
            self._flow()

    def inline_done(self, request: LeanRequest, keep: bool) -> None:
        """The request :attr:`inline` answered was answered (``keep``: the connection may
        carry another)."""
        self.inline = None
        queue = self._queue
        if (
            keep
            and request.keep_alive
            and len(queue) == 1
            and not self._paused
            and self._settled is None
            and not self.closed
        ):
            # The common case, in one step: nothing queued behind it, the idle deadline
            # runs (see _arm), nobody waits for the connection to settle.
            queue.popleft()
            if request.reserved:
                self.server.release(request)
            self.deadline = self._clock() + self._keepalive_timeout
            return
        if self._answered(request, keep) and queue:
            self.worker = self.server.loop.create_task(self._work())
        else:
            self._idle()

    def inline_async(self, request: LeanRequest, rest: Coroutine[Any, Any, bool]) -> None:
        """The request :attr:`inline` began to answer needs to wait: ``rest`` answers it
        in the worker task."""
        self.inline = None
        self.worker = self.server.loop.create_task(self._finish(request, rest))

    async def _finish(self, request: LeanRequest, rest: Coroutine[Any, Any, bool]) -> None:
        try:
            keep = False
            try:
                keep = await self.server.guard(request, rest)
            finally:
                go = self._answered(request, keep)
            if go:
                await self._answer_queue()
        finally:
            self.worker = None
            self._idle()

    def _answered(self, request: LeanRequest, keep: bool) -> bool:
        """``request`` (the first in the queue) was answered: whether the next may follow."""
        self._queue.popleft()
        self.server.release(request)
        if not keep or not request.keep_alive or self.tunnel is not None:
            self.close()
            return False
        if self._paused:
            self._flow()
        return True

    def _idle(self) -> None:
        """Nothing is being answered: the idle deadline runs, shutdown may go on."""
        if not self.closed and self.tunnel is None:
            self._arm(self.server.keepalive_timeout_s)
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)

    @property
    def busy(self) -> bool:
        """A request is being answered."""
        return self.worker is not None or self.inline is not None

    def settled(self) -> asyncio.Future[None]:
        """Done once no request is being answered."""
        if self._settled is None:
            self._settled = self.server.loop.create_future()
            if not self.busy:
                self._settled.set_result(None)
        return self._settled

    async def _work(self) -> None:
        try:
            await self._answer_queue()
        finally:
            self.worker = None
            self._idle()

    async def _answer_queue(self) -> None:
        """Answer the queued requests one after the other (RFC 9112 9.3.2: in order)."""
        queue = self._queue
        server = self.server
        while queue:
            item = queue[0]
            if isinstance(item, bytes):
                self.write(item)
                self.close()
                return
            keep = False
            try:
                keep = await server.handle(self, item)
            finally:
                go = self._answered(item, keep)
            if not go:
                return

    def _upgraded(self, tail: bytes) -> None:
        """The parser met an upgrade (or CONNECT): nothing after it is HTTP it can read;
        kept for a WebSocket tunnel, else the connection ends after the answer."""
        self._dead = True
        self._pending = tail
        self._flow()
        last = self._queue[-1] if self._queue else None
        if isinstance(last, LeanRequest) and not last.upgrade:
            last.keep_alive = False

    def _refuse(self, status: int, reason: str) -> None:
        """A malformed request: answered (after those before it) and the connection closed;
        nothing of it goes upstream."""
        self._dead = True
        self._flow()
        self.server.malformed(reason)
        if self._current is not None:
            self._current.finish(lost=True)
            self._current = None
        self._enqueue(answer(text_response(status, reason), HttpVersion11, False))

    def _flow(self) -> None:
        """Pause reading while too much is buffered or queued (or the parser has stopped)."""
        transport = self.transport
        if transport is None or self.closed:
            return
        pause = self._dead or self._buffered > HIGH_WATER or len(self._queue) > MAX_QUEUED
        if pause and not self._paused:
            transport.pause_reading()
        elif not pause and self._paused:
            transport.resume_reading()
        self._paused = pause

    def taken(self, size: int) -> None:
        """``size`` streamed body bytes were forwarded."""
        self._buffered -= size
        if self._paused and self._buffered <= HIGH_WATER // 2:
            self._flow()

    # --- writing, deadlines, the tunnel ------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    async def drain(self) -> None:
        """Wait while the client's write buffer is over its high-water mark."""
        drain = self._drain
        if drain is not None:
            await drain
        if self.closed:
            raise ConnectionResetError("client gone")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def switch_to(self, tunnel: WebSocketTunnel) -> None:
        """From now on the client's bytes are the tunnel's (those already here first)."""
        self.tunnel = tunnel
        pending, self._pending = self._pending, b""
        if pending:
            tunnel.from_client(pending)
        if self.transport is not None and self._paused:
            self._paused = False
            self.transport.resume_reading()

    def _arm(self, delay: float) -> None:
        """Set the deadline; the server's sweep (:meth:`LeanServer.sweep`) checks it
        (cheaper than a loop timer armed and cancelled for every request).  The sweep runs
        while the server has a connection (from :meth:`connection_made` on), so the
        deadlines set while answering (``deadline`` written directly) need no ``watch``."""
        self.deadline = self._clock() + delay
        self.server.watch()

    def expired(self) -> None:
        """The deadline passed."""
        self.deadline = 0.0
        if self.busy or self.tunnel is not None or self.closed:
            return
        self.server.timed_out(partial=self._partial)
        self.close()


def _origin_form(target: bytes) -> tuple[str, str]:
    """The target as path and query (raw) and its decoded path; an absolute-form target
    (RFC 9112 3.2.2) gives its path, the upstream being fixed; ``*`` and CONNECT's authority
    form give a path without the leading slash, which no route matches."""
    text = target.decode("utf-8", "surrogateescape")
    if text[:1] != "/" and "://" in text:
        try:
            url = httptools.parse_url(target)
        except httptools.HttpParserInvalidURLError:
            return text, text
        path = (url.path or b"/").decode("utf-8", "surrogateescape")
        text = path + ("?" + url.query.decode("utf-8", "surrogateescape") if url.query else "")
    raw_path, _, _ = text.partition("?")
    return text, unquote(raw_path) if "%" in raw_path else raw_path


__all__ = ["ClientConnection", "Kind"]

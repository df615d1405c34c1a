"""A lean HTTP/1.1 client for the relay's whole-body exchanges with its one upstream.

Long-polling is one HTTP exchange per Engine.IO packet batch, so the relay's cost per
exchange is what decides its long-polling throughput.  aiohttp's client spends most of a
relayed exchange building objects the relay never needs (URL, request/response wrappers,
header multidicts, cookie handling); this client keeps a pool of keep-alive connections to
the one upstream, writes the request head as bytes, and parses the response with
``httptools`` (llhttp, the parser uvicorn uses) into raw header pairs and one body.

It only serves requests whose bodies the relay has read whole (bounded) and whose responses it
reads whole (bounded); streamed paths keep using aiohttp.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from typing import Final, Protocol, cast

import httptools

from socketio_trace_proxy.proxy.lean.head import ResponseHead, TooLarge

# RFC 9112 9.3: a reused idle connection the server closed meanwhile fails before any byte of
# the response arrives; such a request is sent again once on a fresh connection.
_IDLE_EXPIRY_S: Final = 4.0  # below common server keep-alive timeouts (uvicorn: 5 s)
_JOIN_LIMIT: Final = 64 * 1024  # a body up to this size goes in one write with its head
_MAX_REPLACING: Final = 16  # connects in flight at once to refill the idle pool


class UpstreamError(Exception):
    """The upstream could not be reached or broke the exchange."""


class ResponseTooLarge(UpstreamError):
    """The upstream's response body is larger than the relay's limit."""


class PoolExhausted(UpstreamError):
    """As many exchanges as the pool allows are already in flight."""


class UpstreamResponse:
    """Status line, raw header pairs (as received) and the whole body; ``interim``: the
    informational (1xx) responses that came before it, serialized as received; ``raw``: the
    bytes of the whole response when they came in one read and held nothing else (else
    ``None``)."""

    __slots__ = ("body", "headers", "interim", "keep_alive", "raw", "reason", "status")

    def __init__(  # noqa: PLR0917 - one field each
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
        interim: bytes = b"",
        raw: bytes | None = None,
    ) -> None:
        self.raw = raw
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.interim = interim


class Settles(Protocol):
    """What an exchange reports its outcome to: a future's settling side (``done``,
    ``set_result``, ``set_exception``), or an object with the same three methods, to which
    an exchange lent by :meth:`UpstreamPool.lend` reports its response (or its
    :class:`UpstreamError`) from the connection's own protocol callbacks, no task woken."""

    def done(self) -> bool: ...
    def set_result(self, response: UpstreamResponse, /) -> None: ...
    def set_exception(self, exc: UpstreamError, /) -> None: ...


class _Callbacks:
    """What the response parser calls: the (compiled) :class:`ResponseHead` collects the
    head and the body, the connection takes the complete message."""

    __slots__ = ("on_body", "on_header", "on_headers_complete", "on_message_complete", "on_status")

    def __init__(self, head: ResponseHead, conn: _Connection) -> None:
        self.on_status = head.on_status
        self.on_header = head.on_header
        self.on_headers_complete = head.on_headers_complete
        self.on_body = head.on_body
        self.on_message_complete = conn.on_message_complete


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    __slots__ = (
        "_head",
        "_interim",
        "_loop",
        "_parser",
        "_received",
        "_upgrade_allowed",
        "_waiter",
        "_whole",
        "closed",
        "idle_since",
        "transport",
        "upgrade_tail",
        "upgraded",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop  # kept: asyncio.get_running_loop() costs a getpid() call on 3.11
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._head = head = ResponseHead()
        self._parser = httptools.HttpResponseParser(_Callbacks(head, self))
        self._waiter: Settles | None = None
        self._received = False
        self._interim: list[bytes] = []
        self._upgrade_allowed = False
        self._whole: bytes | None = None  # an exchange's first read, while it is the only one
        self.upgraded = False  # the upstream answered 101: no more HTTP on this connection
        self.upgrade_tail = b""  # what it sent after its 101

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._whole = None if self._received else data
        self._received = True
        if self.upgraded:
            self.upgrade_tail += data
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            waiter = self._waiter
            if not self._upgrade_allowed or waiter is None or not waiter.done():
                self._fail(UpstreamError("unexpected protocol upgrade"))
                return
            # The 101 is complete (its waiter resolved); what follows is the new protocol's,
            # kept until the caller takes the connection over.
            self.upgraded = True
            self.upgrade_tail = data[exc.args[0] :]
            if self.transport is not None:
                self.transport.pause_reading()
        except httptools.HttpParserError as exc:
            # A callback's own exception (TooLarge, ResponseTooLarge) comes back as the context.
            cause = exc.__context__
            if isinstance(cause, TooLarge):
                cause = ResponseTooLarge(str(cause))
            self._fail(cause if isinstance(cause, UpstreamError) else UpstreamError(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._head.done and not self._parser.should_keep_alive():
                # A body delimited by the end of the connection (RFC 9112 6.3, item 8).
                self.on_message_complete()
            if not waiter.done():
                waiter.set_exception(UpstreamError("upstream closed the connection"))

    # httptools callbacks (the head and body: :class:`ResponseHead`)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        parser = self._parser
        status = parser.get_status_code()
        if status < 200 and status != 101:
            # An informational response (RFC 9110 15.2: 100, 103, ...); the final one follows
            # on the same connection.  Kept for the relay to forward (within the response
            # size limit, like a body), then parsing goes on.
            parts = self._head
            head = b"".join(
                (
                    b"HTTP/%s %d %s\r\n"
                    % (parser.get_http_version().encode("ascii"), status, parts.reason),
                    *(name + b": " + value + b"\r\n" for name, value in parts.headers),
                    b"\r\n",
                )
            )
            parts.size += len(head)
            if parts.size > parts.limit:
                raise ResponseTooLarge("upstream informational responses over max_message_size")
            self._interim.append(head)
            parts.reset()
            return
        interim = self._interim
        parts = self._head
        body = parts.body
        waiter.set_result(
            UpstreamResponse(
                status,
                parts.reason,
                parts.headers,
                body[0] if len(body) == 1 else b"".join(body),
                parser.should_keep_alive(),
                b"".join(interim) if interim else b"",
                self._whole,
            )
        )

    # exchange

    def exchange(
        self, head: bytes, body: bytes, limit: int, *, upgrade: bool = False
    ) -> asyncio.Future[UpstreamResponse]:
        waiter = self._loop.create_future()
        self._send(waiter, head, body, limit, upgrade)
        return waiter

    def send(
        self,
        head: bytes,
        body: bytes,
        limit: int,
        to: Settles,
    ) -> None:
        """As :meth:`exchange`, the outcome given to ``to`` from the protocol callbacks."""
        transport = self.transport
        assert transport is not None
        self._upgrade_allowed = False
        self._waiter = to
        self._head.start(limit)
        self._received = False
        self._interim = []
        if not body:
            transport.write(head)
        elif len(body) <= _JOIN_LIMIT:
            transport.write(head + body)
        else:
            transport.writelines((head, body))

    def _send(
        self,
        waiter: Settles,
        head: bytes,
        body: bytes,
        limit: int,
        upgrade: bool,
    ) -> None:
        assert self.transport is not None
        self._upgrade_allowed = upgrade
        self._waiter = waiter
        self._head.start(limit)
        self._received = False
        self._interim = []
        # One write (one segment, one send) for a small body; a large one is not copied.
        if not body:
            self.transport.write(head)
        elif len(body) <= _JOIN_LIMIT:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))

    @property
    def received_anything(self) -> bool:
        return self._received

    def _fail(self, exc: UpstreamError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Keep-alive connections to one upstream ``host:port``; at most ``max_idle`` kept idle."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_s: float = 10.0,
        max_idle: int = 256,
        max_active: int = 10_000,
    ) -> None:
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout_s
        self._idle: deque[_Connection] = deque()
        self._max_idle = max_idle
        self._active: set[_Connection] = set()
        self._max_active = max_active
        self._closed = False  # after close(): no new connection, no request sent again
        self._replacing: set[asyncio.Task[None]] = set()  # connects replacing upgraded ones
        self.connections_opened = 0
        self.idle_discarded = 0  # idle connections closed because the idle pool was full

    async def _connect(self) -> _Connection:
        if self._closed:
            raise UpstreamError("the relay is shutting down")
        loop = asyncio.get_running_loop()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for runs the connect in a task of
            # its own, two more event-loop turns before the request can be written.
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    functools.partial(_Connection, loop),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect ({type(exc).__name__})") from exc
        self.connections_opened += 1
        return conn

    def _checkout_idle(self) -> _Connection | None:
        idle = self._idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < _IDLE_EXPIRY_S:
                return conn
            conn.close()
        return None

    @property
    def closing(self) -> bool:
        """:meth:`close` was called: no exchange is sent again."""
        return self._closed

    def lend(self) -> _Connection | None:
        """An idle connection for one exchange (:meth:`_Connection.send`), counted as in
        flight until :meth:`settle`; ``None`` when none is idle."""
        active = self._active
        if len(active) >= self._max_active:
            raise PoolExhausted(f"{self._max_active} upstream exchanges already in flight")
        idle = self._idle
        if idle:
            conn = idle.pop()
            if not conn.closed and time.monotonic() - conn.idle_since < _IDLE_EXPIRY_S:
                active.add(conn)
                return conn
            conn.close()
            other = self._checkout_idle()
            if other is not None:
                active.add(other)
            return other
        return None

    def settle(self, conn: _Connection, response: UpstreamResponse | None) -> None:
        """The exchange on ``conn`` ended: kept idle for the next one, or closed (always
        when it failed, ``response`` ``None``: a half-read response can not be reused)."""
        self._active.discard(conn)
        if response is None:
            conn.close()
        elif response.keep_alive and not conn.closed and len(self._idle) < self._max_idle:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            if response.keep_alive and not conn.closed:
                self.idle_discarded += 1
            conn.close()

    async def request(
        self, head: bytes, body: bytes, limit: int, *, fresh: bool = False
    ) -> UpstreamResponse:
        """Send ``head`` + ``body`` (a complete HTTP/1.1 request) and read the whole response
        (``fresh``: on a new connection).

        Cancelling (the client went away) closes the connection: a half-read response can
        not be reused.
        """
        if len(self._active) >= self._max_active:
            raise PoolExhausted(f"{self._max_active} upstream exchanges already in flight")
        conn = None if fresh else self._checkout_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        self._active.add(conn)
        try:
            try:
                response = await conn.exchange(head, body, limit)
            except UpstreamError as exc:
                # Not after close(): the exchanges in flight then (pending long-polls) are
                # answered, not sent again on fresh connections.
                stale = reused and not conn.received_anything and not self._closed
                if not stale or isinstance(exc, ResponseTooLarge):
                    raise
                conn.close()
                self._active.discard(conn)
                conn = await self._connect()
                self._active.add(conn)
                response = await conn.exchange(head, body, limit)
        except BaseException:
            self.settle(conn, None)
            raise
        self.settle(conn, response)
        return response

    async def upgrade(
        self, head: bytes, limit: int
    ) -> tuple[UpstreamResponse, asyncio.Transport | None, bytes]:
        """Send an upgrade request on an idle keep-alive connection, else a new one.

        Returns the response; when it is a 101, also the connection's transport, paused,
        for the caller to take over with ``set_protocol``, and what the upstream sent after
        the 101.  Otherwise the connection is closed.  A connection taken from the idle pool
        never comes back to it, so a new one is opened beside to take its place: the
        polling requests of the same session, sent while the upgrade is under way, then
        find one ready instead of waiting for a connect (issue 14, the upgrade's delay).
        """
        conn = self._checkout_idle()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        try:
            try:
                response = await conn.exchange(head, b"", limit, upgrade=True)
            except UpstreamError as exc:
                # RFC 9112 9.3: an idle connection the upstream closed meanwhile.
                stale = reused and not conn.received_anything and not self._closed
                if not stale or isinstance(exc, ResponseTooLarge):
                    raise
                conn.close()
                conn = await self._connect()
                response = await conn.exchange(head, b"", limit, upgrade=True)
        except BaseException:
            conn.close()
            raise
        finally:
            if reused:
                # Started now, its connect runs after the caller's next step (the 101 relayed
                # to the client), not in the handshake's critical window.
                self._replace_idle()
        if response.status == 101 and conn.upgraded and not conn.closed:
            assert conn.transport is not None
            return response, conn.transport, conn.upgrade_tail
        conn.close()
        return response, None, b""

    def _replace_idle(self) -> None:
        """Open a connection in the background for the idle pool (at most
        ``_MAX_REPLACING`` at a time; a failure is left to the next exchange)."""
        if self._closed or len(self._replacing) >= _MAX_REPLACING:
            return
        task = asyncio.get_running_loop().create_task(self._add_idle())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _add_idle(self) -> None:
        try:
            conn = await self._connect()
        except UpstreamError:
            return
        if self._closed or len(self._idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def close(self) -> None:
        """Close every connection, idle or busy (busy exchanges fail with UpstreamError);
        from then on the pool opens none."""
        self._closed = True
        for task in self._replacing:
            task.cancel()
        while self._idle:
            self._idle.pop().close()
        for conn in list(self._active):
            conn.close()
        self._active.clear()


UpstreamConnection = _Connection  # what UpstreamPool.lend gives

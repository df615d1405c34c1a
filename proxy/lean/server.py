"""The lean server leg: the relay's own HTTP/1.1 server for its client connections.

Owns :class:`LeanServer`, the protocol factory given to the listening socket (at most
``proxy.max_connections`` connections, each a :class:`proxy.lean.connection.ClientConnection`),
what each parsed request is for (:meth:`LeanServer.classify`: body read whole on the
Socket.IO path within ``max_bodies_in_flight``, streamed elsewhere), the routing of a request
to its leg with the answers the server gives itself (``Expect``, 404 for targets that are no
path), the counters and throttled log lines of refused requests, and the shutdown: idle
connections closed, busy ones given ``shutdown_timeout`` and then closed.

It duck-types the part of aiohttp's ``web.Server`` that ``web.BaseRunner`` and ``TCPSite``
use (``__call__``, ``pre_shutdown``, ``shutdown``), so the relay's runner serves either leg.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Final

from aiohttp import web
from aiohttp.http import HttpVersion11

from socketio_trace_proxy.proxy.core import RelayCore, log
from socketio_trace_proxy.proxy.lean.connection import ClientConnection
from socketio_trace_proxy.proxy.lean.exchange import (
    InlineWhole,
    lean_heads,
    relay_stream,
    relay_upgrade,
    relay_whole,
)
from socketio_trace_proxy.proxy.lean.request import (
    DISCARD,
    STREAM,
    WHOLE,
    BodyLost,
    LeanRequest,
    answer,
)
from socketio_trace_proxy.proxy.serverlog import Throttled
from socketio_trace_proxy.proxy.websocket import WebSocketLegs

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class LeanServer:
    """Serves client connections for the relay (see the module docstring)."""

    def __init__(self, core: RelayCore, legs: WebSocketLegs) -> None:
        settings = core.settings
        self.core = core
        self.legs = legs
        self.counters = core.counters
        self.connections: set[ClientConnection] = set()
        self.max_connections = settings.max_connections
        self.head_timeout_s = settings.request_head_timeout_s
        self.keepalive_timeout_s = settings.keepalive_timeout_s
        self._malformed = Throttled(log, "malformed HTTP requests refused with 400")
        self.loop = asyncio.get_running_loop()
        # Deadlines are checked by one sweep, at a quarter of the shorter one (at most 1 s).
        self._sweep_s = min(1.0, self.head_timeout_s / 4, self.keepalive_timeout_s / 4)
        self._sweeper: asyncio.TimerHandle | None = None
        # The upstream request heads (compiled); the core reports its counter.
        self.heads = core.heads = lean_heads(core)
        self.inline_whole = InlineWhole  # what :meth:`classify` admits, for the connections

    def __call__(self) -> asyncio.Protocol:
        if len(self.connections) >= self.max_connections:
            self.counters.refused_connections += 1
            return _Refused()
        return ClientConnection(self)

    # --- what the connections report -------------------------------------------------

    def malformed(self, reason: str) -> None:
        self.counters.malformed_requests += 1
        self._malformed.hit(reason[:200])

    def timed_out(self, *, partial: bool) -> None:
        if partial:
            self.counters.slow_heads_closed += 1
        else:
            self.counters.idle_closed += 1

    def watch(self) -> None:
        """Make sure the deadline sweep runs (it stops when no connection is left)."""
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._sweep_s, self.sweep)

    def sweep(self) -> None:
        """Close the connections whose head or idle deadline has passed."""
        self._sweeper = None
        now = self.loop.time()
        for conn in [c for c in self.connections if 0.0 < c.deadline <= now]:
            conn.expired()
        if self.connections:
            self.watch()

    def classify(self, request: LeanRequest) -> bool:
        """What ``request``'s body is for, and the room it may take (as its head arrives);
        whether it may be answered from protocol callbacks, no task
        (:class:`proxy.lean.exchange.InlineWhole`: a Socket.IO-path request none of the
        answers :meth:`_route` gives itself applies to)."""
        core = self.core
        if request.upgrade or request.path[:1] != "/":
            request.kind = DISCARD
            return False
        path = request.path
        if request.method == "HEAD" or not (
            path.startswith(core.sio_path) or path == core.sio_path_bare  # core.is_socketio
        ):
            request.kind = STREAM
            return False
        request.kind = WHOLE
        if request.has_body:
            # What the body may hold while read and relayed: its length, or the limit.
            length = request.content_length
            reserved = core.max if length is None else min(length, core.max + 1)
            if core.bodies_held + reserved > core.bodies_budget and core.bodies_held:
                request.refused = True
                return False
            core.bodies_held += reserved
            request.reserved = reserved
        return request.expect is None and "\n" not in path

    def release(self, request: LeanRequest) -> None:
        self.core.bodies_held -= request.reserved
        request.reserved = 0

    # --- routing -----------------------------------------------------------------------

    async def handle(self, conn: ClientConnection, request: LeanRequest) -> bool:
        """Answer one request; whether the connection may carry another."""
        return await self.guard(request, self._route(conn, request))

    async def guard(self, request: LeanRequest, answering: Coroutine[Any, Any, bool]) -> bool:
        """What ``answering`` (one request's answer) returns; its errors counted and logged
        (then the connection ends)."""
        try:
            return await answering
        except BodyLost:
            return False
        except ConnectionError:
            self.counters.client_disconnects += 1
            log.debug("client went away during its response")
            return False
        except Exception:
            log.exception("relaying %s %s failed", request.method, request.path[:200])
            return False

    async def _route(self, conn: ClientConnection, request: LeanRequest) -> bool:
        """As :meth:`proxy.relay._Relay.handle`: the ``Expect`` answer, 404 for targets
        that are no path, then the leg."""
        expect = request.expect
        if expect is not None and request.version == HttpVersion11:
            if expect.lower() != "100-continue":
                refusal = web.Response(status=417, text=f"Unknown Expect: {expect}")
                conn.write(answer(refusal, request.version, False))
                return False
            conn.write(CONTINUE)
        path = request.path
        if path[:1] != "/" or "\n" in path:
            # ``OPTIONS *``, CONNECT's authority form, a %0A in the path: not relayed.
            not_found = web.Response(status=404, text="404: Not Found")
            conn.write(answer(not_found, request.version, request.keep_alive))
            return True
        self.counters.http_requests += 1
        if request.upgrade:
            return await relay_upgrade(self.core, self.legs, conn, request)
        if request.kind is STREAM:
            return await relay_stream(self.core, conn, request)
        return await relay_whole(self.core, conn, request)

    # --- shutdown ------------------------------------------------------------------------

    def pre_shutdown(self) -> None:
        """Close the connections that wait for a request (no new one is accepted now)."""
        for conn in list(self.connections):
            if not conn.busy and conn.tunnel is None:
                conn.close()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - web.Server's
        """Give busy connections up to ``timeout`` to finish, then close the rest."""
        self.pre_shutdown()
        busy = [c.settled() for c in self.connections if c.busy]
        if busy:
            await asyncio.wait(busy, timeout=timeout or 0.0)
        for conn in list(self.connections):
            conn.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        # Let the closed connections report their loss (and cancel what they still ran).
        await asyncio.sleep(0)

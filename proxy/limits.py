"""Limits on client connections (issue 17.8): how many, how slow a request head, how idle.

Owns :class:`GuardedServer`, the relay's aiohttp ``web.Server``: beyond
``proxy.max_connections`` open client connections a new one is closed at once
(``refused_connections``); each connection is a :class:`GuardedHandler` that closes itself
when a request head has not fully arrived ``proxy.request_head_timeout_s`` after its first
byte (or after the connection opened: ``slow_heads_closed``), or when it has sat idle
between requests for ``proxy.keepalive_timeout_s`` (``idle_closed``).  A request in
progress (a long-poll, a tunnelled WebSocket) is never timed out here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from socketio_trace_proxy.proxy.counters import RelayCounters

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class _Refused(asyncio.Protocol):
    """A connection over the cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class GuardedHandler(RequestHandler):
    """aiohttp's per-connection protocol plus the head and idle deadlines."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._timer: asyncio.TimerHandle | None = None
        self._busy = 0  # requests being handled
        self._partial = True  # a head is on its way (the first one, at the start)

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._busy or self.transport is None:
            return
        counters = self._guard.counters
        if self._partial:
            counters.slow_heads_closed += 1
        else:
            counters.idle_closed += 1
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self._guard.head_timeout_s)

    def data_received(self, data: bytes) -> None:
        if not self._busy and not self._partial:
            self._partial = True  # the next head starts: its own deadline
            self._arm(self._guard.head_timeout_s)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._busy += 1
        self._partial = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def request_finished(self) -> None:
        self._busy -= 1
        if not self._busy and self.transport is not None:
            self._arm(self._guard.keepalive_timeout_s)


class GuardedServer(web.Server):
    """``web.Server`` whose connections are :class:`GuardedHandler`, at most ``max_connections``."""

    def __init__(
        self,
        handler: Handler,
        *,
        counters: RelayCounters,
        max_connections: int,
        head_timeout_s: float,
        keepalive_timeout_s: float,
        **kwargs: Any,
    ) -> None:
        # aiohttp's own keep-alive timer stays as a backstop behind ours.
        kwargs.setdefault("keepalive_timeout", keepalive_timeout_s + head_timeout_s)
        self._handler_kwargs = {
            k: v for k, v in kwargs.items() if k not in ("request_factory", "handler_cancellation")
        }
        self._handler_kwargs.pop("loop", None)
        super().__init__(self._guarded(handler), **kwargs)
        self.counters = counters
        self.max_connections = max_connections
        self.head_timeout_s = head_timeout_s
        self.keepalive_timeout_s = keepalive_timeout_s

    @staticmethod
    def _guarded(handler: Handler) -> Handler:
        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            if not isinstance(protocol, GuardedHandler):
                return await handler(request)
            protocol.request_started()
            try:
                return await handler(request)
            finally:
                protocol.request_finished()

        return guarded

    def __call__(self) -> RequestHandler:
        if len(self.connections) >= self.max_connections:
            self.counters.refused_connections += 1
            return _Refused()  # type: ignore[return-value]
        return GuardedHandler(self, loop=self._loop, **self._handler_kwargs)

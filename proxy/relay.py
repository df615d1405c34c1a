"""The relay: an aiohttp server forwarding every request to one fixed upstream.

Any path is forwarded (bodies streamed both ways, hop-by-hop headers dropped,
``X-Forwarded-*`` added); the Socket.IO path is additionally observed: long-polling bodies
are read whole (bounded), forwarded, and handed to the :class:`TrafficObserver`.  WebSockets
are tunnelled frame for frame after a forwarded handshake (:mod:`proxy.wstunnel`), or, with
``websocket_relay: terminate``, relayed message by message with two legs negotiated
separately and close frames mirrored exactly.  Relay first, observe second; with no
observer nothing is decoded.

This module owns the server side: the routing of each parsed request to its leg
(:mod:`proxy.polling`, :mod:`proxy.streaming`, :mod:`proxy.websocket`, sharing
:mod:`proxy.core`), the ``Expect`` answer, and the runner's start-up and shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, cast

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.log import access_logger, server_logger

from socketio_trace_proxy.config.proxy import ProxySettings, ServerLeg
from socketio_trace_proxy.proxy.aiohttp_compat import (
    log_if_no_fast_mask,
    reset_output_size,
    runner_kwargs,
)
from socketio_trace_proxy.proxy.core import RelayCore
from socketio_trace_proxy.proxy.counters import RelayCounters, RelayStats
from socketio_trace_proxy.proxy.lean.server import LeanServer
from socketio_trace_proxy.proxy.limits import GuardedServer
from socketio_trace_proxy.proxy.polling import relay_polling
from socketio_trace_proxy.proxy.serverlog import ServerLog
from socketio_trace_proxy.proxy.streaming import relay_stream
from socketio_trace_proxy.proxy.websocket import WebSocketLegs
from socketio_trace_proxy.tracking.observer import TrafficObserver

__all__ = ["RelayCounters", "RelayServer", "RelayStats"]


async def expect(request: web.BaseRequest) -> None:
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
        reset_output_size(writer)  # the final response's size counts from here
    await writer.drain()


class _Relay:
    """Routes each request the server parses to its leg; starts and stops the legs."""

    def __init__(self, settings: ProxySettings, observer: TrafficObserver | None) -> None:
        self.core = core = RelayCore(settings, observer)
        self.counters = core.counters
        self.max_message_size = core.max
        self.websockets = WebSocketLegs(core)

    def stats(self) -> RelayStats:
        return self.core.stats()

    # --- lifecycle -------------------------------------------------------------------

    async def on_startup(self) -> None:
        log_if_no_fast_mask()
        await self.core.start()

    async def on_shutdown(self) -> None:
        await self.websockets.going_away()
        # Pending long-polls would otherwise hold the shutdown for a whole ping interval:
        # closing the pool answers them with 502 now, and the clients reconnect elsewhere.
        await self.on_cleanup()

    async def on_cleanup(self) -> None:
        """Close the upstream pool and session (again, harmlessly, after a shutdown)."""
        await self.core.close()

    # --- routing ---------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every request the server parses: what the one catch-all route ``/{tail:.*}`` of
        an ``Application`` did first (the ``Expect`` answer, 404 for a target it did not
        match), then the relay."""
        path = request.path
        if request.headers.get(hdrs.EXPECT):
            await expect(request)
        if path[:1] != "/" or "\n" in path:
            # ``OPTIONS *``, CONNECT's authority form, a %0A in the path: not relayed.
            raise web.HTTPNotFound()
        self.counters.http_requests += 1
        sio = self.core.is_socketio(path)
        method = request.method
        if method == hdrs.METH_GET:  # a WebSocket handshake is a GET (RFC 6455 4.1)
            upgrade = request.headers.get(hdrs.UPGRADE)
            if upgrade is not None and upgrade.lower() == "websocket":
                return await self.websockets.relay(request, sio)
        elif method == hdrs.METH_HEAD:
            # A response to HEAD announces a body it does not carry (RFC 9110 9.3.2), which
            # the whole-body client (httptools) would wait for; the streaming one knows better.
            return await relay_stream(self.core, request)
        if sio:
            return await relay_polling(self.core, request)
        return await relay_stream(self.core, request)


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
        """A runner to give a ``web.TCPSite``, as ``web.AppRunner`` ran the relay's app:
        serving the lean leg or aiohttp's (``proxy.server_leg``).

        A vanished client cancels its upstream request at once (aiohttp's leg:
        ``handler_cancellation``).  The lean leg logs no access lines.
        """
        if self._relay.core.settings.leg is ServerLeg.LEAN:
            return _LeanRunner(self._relay, shutdown_timeout=shutdown_timeout)
        return _RelayRunner(self._relay, shutdown_timeout=shutdown_timeout, access_log=access_log)


class _LeanRunner(web.BaseRunner):
    """The runner of the lean leg: the same lifecycle as :class:`_RelayRunner`, its server a
    :class:`proxy.lean.server.LeanServer` (which has the members of ``web.Server`` that
    ``BaseRunner`` and ``TCPSite`` use)."""

    __slots__ = ("_relay",)

    def __init__(self, relay: _Relay, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._relay = relay

    async def _make_server(self) -> web.Server:
        await self._relay.on_startup()
        return cast(web.Server, LeanServer(self._relay.core, self._relay.websockets))

    async def shutdown(self) -> None:
        await self._relay.on_shutdown()

    async def _cleanup_server(self) -> None:
        await self._relay.on_cleanup()


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
        settings = self._relay.core.settings
        return GuardedServer(
            self._relay.handle,
            counters=self._relay.counters,
            max_connections=settings.max_connections,
            head_timeout_s=settings.request_head_timeout_s,
            keepalive_timeout_s=settings.keepalive_timeout_s,
            request_factory=factory,
            handler_cancellation=True,
            # Malformed requests and vanished clients counted, logged once per interval.
            logger=ServerLog(server_logger, self._relay.counters),
            loop=loop,
            debug=loop.get_debug(),
            **runner_kwargs(self),
        )

    async def shutdown(self) -> None:
        await self._relay.on_shutdown()

    async def _cleanup_server(self) -> None:
        await self._relay.on_cleanup()

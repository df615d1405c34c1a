"""Real peers for the relay tests: python-socketio servers (aiohttp and ASGI under uvicorn), a
wire recorder around the ASGI app, the relay itself on a free port, and a recording observer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httptools
import socketio
import uvicorn
from aiohttp import web

from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.examples.demo_backend import exact_polling_reads
from socketio_trace_proxy.proxy.relay import RelayCounters, RelayServer
from socketio_trace_proxy.tracking.observer import (
    RequestInfo,
    TrafficObserver,
    UnstampedRequests,
    WebSocketObserver,
)
from socketio_trace_proxy.tracking.traffic import Direction

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BUFFER = 1_000_000  # the backend's max_http_buffer_size: payloads up to 1 MB


def free_port() -> int:
    """A TCP port nothing listens on (free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def runner_port(runner: web.BaseRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            return int(addr[1])
    raise RuntimeError("runner has no TCP address")


def build_sio(async_mode: str) -> socketio.AsyncServer:
    """A python-socketio server with two namespaces, acks both ways and binary echo."""
    sio = socketio.AsyncServer(
        async_mode=async_mode,
        max_http_buffer_size=MAX_BUFFER,
        cors_allowed_origins="*",
        # A polling client's disconnect() waits for its pending GET, which only times out
        # after ping_interval + ping_timeout: keep both short (pings then cross the relay).
        ping_interval=1,
        ping_timeout=3,
    )
    if async_mode == "aiohttp":
        exact_polling_reads(sio)

    async def echo(sid: str, data: Any) -> Any:
        await sio.emit("echoed", data, to=sid)
        return data

    async def ask_client(sid: str, data: Any) -> Any:
        # Server -> client request with ack: the client's answer comes back through the relay.
        return await sio.call("question", data, to=sid, timeout=5)

    async def admin_echo(sid: str, data: Any) -> Any:
        return {"admin": data}

    sio.on("echo", echo)
    sio.on("ask_client", ask_client)
    sio.on("echo", admin_echo, namespace="/admin")
    return sio


async def serve_aiohttp(sio: socketio.AsyncServer) -> web.AppRunner:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@contextlib.asynccontextmanager
async def aiohttp_serving(app: web.Application) -> AsyncIterator[str]:
    """Serve a plain aiohttp ``app`` on a free port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner_port(runner)}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def uvicorn_serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn, in this event loop, on a free port; yields its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        ws="wsproto",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


class RawUpstream(asyncio.Protocol):
    """A raw HTTP/1.1 upstream on httptools, for response shapes no framework produces: each
    parsed request is answered by :meth:`answer` with its target; after a 101 nothing more
    is parsed."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        with contextlib.suppress(httptools.HttpParserUpgrade):
            self._parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self._url = url

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self.answer(self._url, self._transport)

    def answer(self, url: bytes, transport: asyncio.Transport) -> None:
        raise NotImplementedError


@dataclass
class WireLog:
    """What crossed one end, in order: ``(kind, direction, data)``; ``kind`` is ``poll`` for
    polling bodies and ``ws`` for WebSocket messages (``str`` text, ``bytes`` binary)."""

    items: list[tuple[str, str, str | bytes]] = field(default_factory=list)

    def of(self, kind: str, direction: str) -> list[str | bytes]:
        return [d for k, dr, d in self.items if k == kind and dr == direction]


class RecordingASGI:
    """ASGI middleware recording every polling body and WebSocket message at the server end."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = WireLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_body = bytearray()
        response_body = bytearray()

        async def rec_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.extend(message.get("body", b""))
            return message

        async def rec_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                response_body.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, rec_receive, rec_send)
        if scope["method"] == "POST":
            self.log.items.append(("poll", "c2s", bytes(request_body)))
        self.log.items.append(("poll", "s2c", bytes(response_body)))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def rec_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive":
                data = message.get("text")
                self.log.items.append(("ws", "c2s", data if data is not None else message["bytes"]))
            return message

        async def rec_send(message: Message) -> None:
            if message["type"] == "websocket.send":
                data = message.get("text")
                self.log.items.append(("ws", "s2c", data if data is not None else message["bytes"]))
            await send(message)

        await self.app(scope, rec_receive, rec_send)


class RecordingObserver(UnstampedRequests):
    """A :class:`TrafficObserver` keeping everything it is told, in order."""

    def __init__(self) -> None:
        self.log = WireLog()
        self.infos: list[RequestInfo] = []
        self.closes: list[tuple[Direction | None, int | None]] = []

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        self.infos.append(info)
        self.log.items.append(("poll", "c2s", body))

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        self.log.items.append(("poll", "s2c", body))

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver:
        self.infos.append(info)
        return _RecordingLeg(self)


class _RecordingLeg:
    def __init__(self, parent: RecordingObserver) -> None:
        self.parent = parent

    def message(self, direction: Direction, data: str | bytes) -> None:
        self.parent.log.items.append(("ws", direction.value, data))

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        self.parent.closes.append((initiator, code))


@dataclass
class Relay:
    url: str
    server: RelayServer

    @property
    def counters(self) -> RelayCounters:
        return self.server.counters


@contextlib.asynccontextmanager
async def relay_in_front_of(
    upstream: str, observer: TrafficObserver | None = None, **settings: Any
) -> AsyncIterator[Relay]:
    server = RelayServer(ProxySettings(upstream=upstream, **settings), observer)
    runner = server.runner(shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield Relay(f"http://127.0.0.1:{runner_port(runner)}", server)
    finally:
        await runner.cleanup()


async def eventually(check: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Wait until ``check()`` holds (polling, bounded); fail with AssertionError otherwise."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)

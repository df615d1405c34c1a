"""The python-socketio backend the node client tests talk to (through the relay).

One ``AsyncServer`` definition, served either by aiohttp or as ASGI under uvicorn; the ASGI
flavour can be wrapped in :class:`RecordingASGI`, which records every Engine.IO polling body and
WebSocket message exactly as the server's side of the wire carries it.  Run as a script
(``python js_backend.py PORT``) it serves the aiohttp flavour in its own process, so a test can
kill it with SIGKILL and start it again on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import socketio
from aiohttp import web

# The backend's configured maximum (python-engineio's default, spelled out): the largest
# polling POST body and the largest WebSocket message it accepts.
MAX_HTTP_BUFFER_SIZE = 1_000_000
SECOND_NAMESPACE = "/second"
# Bytes the server sends on its own initiative, so the client sees server-made attachments.
SERVER_BLOB = bytes(range(256))

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def build_sio(async_mode: str, ping_interval: float = 25.0) -> socketio.AsyncServer:
    """The test backend: echoes, acks both ways, binary, two namespaces, big payloads."""
    sio = socketio.AsyncServer(
        async_mode=async_mode,
        max_http_buffer_size=MAX_HTTP_BUFFER_SIZE,
        ping_interval=ping_interval,
        cors_allowed_origins="*",
    )

    async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return args

    async def echo_event(sid: str, *args: Any) -> None:
        await sio.emit("echo_reply", args, to=sid)

    async def ask_client(sid: str, question: Any) -> Any:
        # server -> client emit with ack; the client's answer goes back as our ack
        return await sio.call("question", question, to=sid, timeout=10)

    async def server_binary(sid: str) -> Any:
        return {"blob": SERVER_BLOB, "nested": [b"\x00\xff", {"x": b"abc"}]}

    async def big(sid: str, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        digest = {"len": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        await sio.emit("big_back", (digest, data), to=sid)

    async def second_connect(sid: str, environ: Any, auth: Any = None) -> None:
        await sio.emit(
            "welcome", {"ns": SECOND_NAMESPACE, "auth": auth}, to=sid, namespace=SECOND_NAMESPACE
        )

    async def second_echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return (SECOND_NAMESPACE, *args)

    sio.on("echo", echo)
    sio.on("echo_event", echo_event)
    sio.on("ask_client", ask_client)
    sio.on("server_binary", server_binary)
    sio.on("big", big)
    sio.on("connect", second_connect, namespace=SECOND_NAMESPACE)
    sio.on("echo", second_echo, namespace=SECOND_NAMESPACE)
    return sio


def describe(data: bytes, binary: bool) -> dict[str, Any]:
    """How both ends log one body or message: kind, size, digest, and small contents inline.

    Must match ``describe()`` in ``harness.js``.
    """
    out: dict[str, Any] = {
        "t": "b" if binary else "t",
        "n": len(data),
        "h": hashlib.sha256(data).hexdigest(),
    }
    if len(data) <= 2048:
        out["d"] = base64.b64encode(data).decode() if binary else data.decode("utf-8", "replace")
    return out


@dataclass
class Exchange:
    """One HTTP request on the Engine.IO path, or one WebSocket connection, as the server saw it."""

    kind: str  # "http" or "ws"
    method: str
    query: dict[str, str]
    request: bytearray = field(default_factory=bytearray)
    status: int | None = None
    response: bytearray = field(default_factory=bytearray)
    complete: bool = False
    c2s: list[dict[str, Any]] = field(default_factory=list)
    s2c: list[dict[str, Any]] = field(default_factory=list)


class RecordingASGI:
    """ASGI middleware recording the Engine.IO traffic of requests tagged ``rec=<tag>``.

    Requests without the tag pass through unrecorded.  At most ``limit`` exchanges are kept;
    ``dropped`` counts the rest.
    """

    def __init__(self, app: ASGIApp, limit: int = 10_000) -> None:
        self.app = app
        self.limit = limit
        self.dropped = 0
        self.exchanges: dict[str, list[Exchange]] = {}

    def _new(self, tag: str, exchange: Exchange) -> bool:
        if sum(len(v) for v in self.exchanges.values()) >= self.limit:
            self.dropped += 1
            return False
        self.exchanges.setdefault(tag, []).append(exchange)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        tag = query.get("rec")
        method = scope.get("method", "GET")
        kind = "ws" if scope["type"] == "websocket" else "http"
        exchange = Exchange(kind=kind, method=method, query=query)
        if tag is None or not self._new(tag, exchange):
            await self.app(scope, receive, send)
            return

        async def recv() -> Message:
            msg = await receive()
            if msg["type"] == "http.request":
                exchange.request += msg.get("body", b"")
            elif msg["type"] == "websocket.receive":
                if msg.get("bytes") is not None:
                    exchange.c2s.append(describe(msg["bytes"], True))
                else:
                    exchange.c2s.append(describe(msg["text"].encode(), False))
            return msg

        async def snd(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                exchange.status = msg["status"]
            elif msg["type"] == "http.response.body":
                exchange.response += msg.get("body", b"")
                if not msg.get("more_body", False):
                    exchange.complete = True
            elif msg["type"] == "websocket.send":
                if msg.get("bytes") is not None:
                    exchange.s2c.append(describe(msg["bytes"], True))
                else:
                    exchange.s2c.append(describe(msg["text"].encode(), False))
            await send(msg)

        await self.app(scope, recv, snd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _ExactBody:
    """``wsgi.input`` that returns the whole body.

    python-engineio's aiohttp driver hands the app ``request.content`` and reads the polling POST
    body with ``read(CONTENT_LENGTH)``, but aiohttp's ``StreamReader.read(n)`` returns *up to* n
    bytes: a large body that arrives in several TCP reads is cut short and the packet fails to
    decode (python-socketio#368).  That is a backend bug with or without a proxy in front, so
    this test backend works around it instead of letting it mask what we test.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def read(self, length: int = -1) -> bytes:
        if length < 0:
            data: bytes = await self._stream.read()
            return data
        try:
            exact: bytes = await self._stream.readexactly(length)
            return exact
        except asyncio.IncompleteReadError as exc:
            return exc.partial


def _with_exact_body_reads(sio: socketio.AsyncServer) -> None:
    driver = dict(sio.eio._async)  # the driver's dict is module-global: copy, never mutate
    translate = driver["translate_request"]

    def translate_request(request: web.Request) -> dict[str, Any]:
        environ: dict[str, Any] = translate(request)
        environ["wsgi.input"] = _ExactBody(request.content)
        return environ

    driver["translate_request"] = translate_request
    sio.eio._async = driver


async def serve_aiohttp(port: int, ping_interval: float = 25.0) -> web.AppRunner:
    """Serve the backend with aiohttp on 127.0.0.1:port (0: any free port)."""
    sio = build_sio("aiohttp", ping_interval)
    _with_exact_body_reads(sio)
    app = web.Application()
    sio.attach(app)
    # A short shutdown timeout: pending long-polls must not hold a restart for a minute.
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def runner_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        return int(addr[1])
    raise RuntimeError("runner has no address")


async def _main(port: int) -> None:
    runner = await serve_aiohttp(port, ping_interval=25.0)
    print(f"ready {runner_port(runner)}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))

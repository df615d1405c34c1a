"""Issue 14: the lean server leg over raw sockets, against real upstreams.

Request smuggling shapes are refused with 400 and the connection closed, with nothing sent
upstream (a python-socketio server on aiohttp records every request that reaches it);
pipelined requests are answered in order; response heads reach the client as the upstream
sent them (no ``Server`` or ``Date`` added) on the polling path, the streamed path and the
101; an oversized head is refused.  The setting's rules are checked too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import socketio
from aiohttp import web
from pydantic import ValidationError

from socketio_trace_proxy.config.proxy import ProxySettings, ServerLeg, WebSocketRelay
from tests.proxy.peers import aiohttp_serving, relay_in_front_of

SIO = b"/socket.io/?EIO=4&transport=polling"
SMUGGLING = {
    "content-length-and-chunked": (
        b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "duplicate-content-length": (
        b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"
    ),
    "obs-fold": b"GET %s HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
    "bare-lf": b"GET %s HTTP/1.1\nHost: h\n\n",
    "bare-lf-in-a-header": b"GET %s HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n",
}


class Recorder:
    """A python-socketio server behind an aiohttp app that records every request head."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.sio = socketio.AsyncServer(async_mode="aiohttp")

    def app(self) -> web.Application:
        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            self.seen.append(f"{request.method} {request.raw_path}")
            return await handler(request)

        async def page(request: web.Request) -> web.Response:
            await asyncio.sleep(float(request.query.get("wait", "0")))
            return web.Response(text=f"page {request.path}")

        app = web.Application(middlewares=[record])
        self.sio.attach(app)
        app.router.add_get("/page/{name}", page)
        return app


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    async with aiohttp_serving(rec.app()) as url:
        yield rec, url


async def _exchange(url: str, data: bytes, limit_s: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything read until the proxy closes it."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), limit_s)
    finally:
        writer.close()


@pytest.mark.parametrize("path", [SIO, b"/page/x"], ids=["socketio", "streamed"])
@pytest.mark.parametrize("shape", sorted(SMUGGLING))
async def test_request_smuggling_shapes_get_400_closed_and_nothing_upstream(
    recorder: tuple[Recorder, str], shape: str, path: bytes
) -> None:
    rec, url = recorder
    follow_up = b"GET /page/after HTTP/1.1\r\nHost: h\r\n\r\n"
    async with relay_in_front_of(url) as relay:
        # Read to EOF: the proxy closes the connection after its 400, and the request
        # written behind the bad one is never read.
        answer = await _exchange(relay.url, SMUGGLING[shape] % path + follow_up)
        assert relay.counters.malformed_requests == 1
        assert relay.server.stats().upstream_connections_opened == 0
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"\r\nConnection: close\r\n" in answer
    assert rec.seen == []


async def test_pipelined_requests_are_answered_in_order(recorder: tuple[Recorder, str]) -> None:
    """Three requests in one write: a slow page, a Socket.IO handshake, a fast page; the
    answers come in the order asked although the first takes longest."""
    rec, url = recorder
    pipelined = (
        b"GET /page/slow?wait=0.3 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET " + SIO + b" HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /page/fast HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    async with relay_in_front_of(url) as relay:
        answer = await _exchange(relay.url, pipelined)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    slow, handshake, fast = (answer.index(m) for m in (b"page /page/slow", b'0{"sid":', b"fast"))
    assert slow < handshake < fast
    asked = [s.split("?")[0] for s in rec.seen]
    assert asked == ["GET /page/slow", "GET /socket.io/", "GET /page/fast"]


async def test_an_oversized_head_is_refused_and_closed(recorder: tuple[Recorder, str]) -> None:
    rec, url = recorder
    async with relay_in_front_of(url) as relay:
        big = b"GET /page/x HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        answer = await _exchange(relay.url, big)
        many = b"GET /page/x HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
        answer_many = await _exchange(relay.url, many)
        endless = b"GET /page/x HTTP/1.1\r\nX-Endless: " + b"a" * 100_000
        answer_endless = await _exchange(relay.url, endless)
        assert relay.counters.malformed_requests == 3
    for got in (answer, answer_many, answer_endless):
        assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert rec.seen == []


# --- response heads as the upstream sent them ---------------------------------------------

RAW_HEADS = {
    "no-content-type": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "odd-case-repeated": (
        b"HTTP/1.1 200 Fine\r\nx-ODD-case: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 2\r\n\r\nok"
    ),
    "chunked-error": (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"
    ),
}


class CannedUpstream(asyncio.Protocol):
    """A raw upstream that answers every request with one canned response (no framework
    adds anything), then waits for the client to close."""

    canned = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.Transport)
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.buffer = b""
            self.transport.write(self.canned)


@pytest.fixture
async def canned() -> AsyncIterator[tuple[type[CannedUpstream], str]]:
    class Canned(CannedUpstream):
        pass

    server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", 0)
    try:
        yield Canned, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def _head(url: str, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection; the response head read back."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


@pytest.mark.parametrize("path", [SIO, b"/page/x"], ids=["socketio", "streamed"])
@pytest.mark.parametrize("name", sorted(RAW_HEADS))
async def test_response_heads_pass_as_sent(
    canned: tuple[type[CannedUpstream], str], name: str, path: bytes
) -> None:
    upstream, url = canned
    upstream.canned = RAW_HEADS[name]
    async with relay_in_front_of(url) as relay:
        got = await _head(relay.url, b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % path)
    sent_head, _, _ = RAW_HEADS[name].partition(b"\r\n\r\n")
    head = got.removesuffix(b"\r\n\r\n")
    assert head == sent_head
    for added in (b"\r\nServer:", b"\r\nDate:", b"\r\nContent-Type: application/octet"):
        assert added not in head


async def test_a_101_passes_as_sent(canned: tuple[type[CannedUpstream], str]) -> None:
    upstream, url = canned
    switching = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-Odd-CASE: 1\r\n\r\n"
    )
    upstream.canned = switching
    handshake = (
        b"GET " + SIO.replace(b"polling", b"websocket") + b" HTTP/1.1\r\nHost: h\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    async with relay_in_front_of(url) as relay:
        assert await _head(relay.url, handshake) == switching


def test_lean_is_the_leg_unless_websockets_are_terminated() -> None:
    assert ProxySettings().leg is ServerLeg.LEAN
    terminate = ProxySettings(websocket_relay=WebSocketRelay.TERMINATE)
    assert terminate.leg is ServerLeg.AIOHTTP
    assert ProxySettings(server_leg=ServerLeg.AIOHTTP).leg is ServerLeg.AIOHTTP
    with pytest.raises(ValidationError, match="terminate needs server_leg: aiohttp"):
        ProxySettings(server_leg=ServerLeg.LEAN, websocket_relay=WebSocketRelay.TERMINATE)

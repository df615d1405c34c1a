"""Response heads direct and through the relay, read with raw sockets (issue 14).

The same raw request goes to the upstream and to the relay in front of it; the two response
heads must be the same bytes: status line and reason, header names as cased, order,
repeats, no ``Server``, ``Date`` or ``Content-Type`` of the relay's own (``X-Forwarded-*``
goes upstream only).  ``Date`` values are compared as present or absent (the two requests
may straddle a second).  What the relay documents it may change, hop-by-hop lines and the
framing for its client, is kept out of these shapes (``test_polling_response`` covers it).

Upstreams: a real aiohttp app (python-socketio's polling reply and 101, a streamed page,
odd-cased and repeated names), and a raw asyncio server for shapes aiohttp cannot produce
(no ``Content-Type``, no ``Date``/``Server``, a bare 101).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from multidict import CIMultiDict

from socketio_trace_proxy.config.proxy import ServerLeg
from tests.proxy.peers import RawUpstream, aiohttp_serving, build_sio, relay_in_front_of

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = base64.b64encode(hashlib.sha1(KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
UPGRADE = (
    b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + KEY + b"\r\n\r\n"
)
GET = b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n"

# What the raw upstream answers, by the last path segment or ``case`` query value.
RAW: dict[bytes, bytes] = {
    b"no_type": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"X-After: 1\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    ),
    b"chunked_error": (
        b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n"
        b"4\r\noops\r\n0\r\n\r\n"
    ),
    b"odd_repeated": (
        b"HTTP/1.1 404 Gone Fishing\r\nx-ODD-case: 1\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
        b"CONTENT-length: 4\r\nVary: A\r\nVary: B\r\n\r\nnope"
    ),
    b"switch": (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nCONNECTION: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\n\r\n"
    ),
}


class _RawUpstream(RawUpstream):
    """Answers each request with the canned bytes its target names (``RAW``)."""

    def answer(self, url: bytes, transport: asyncio.Transport) -> None:
        transport.write(RAW[re.split(rb"[/=&?]", url.rstrip(b"/"))[-1]])


def _aiohttp_app() -> web.Application:
    async def page(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"X-Page": "streamed"})
        response.content_type = "text/html"
        await response.prepare(request)
        for part in (b"<p>one</p>", b"<p>two</p>"):
            await response.write(part)
        await response.write_eof()
        return response

    async def odd(request: web.Request) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict()
        headers.add("x-ODD-case", "1")
        headers.add("Set-Cookie", "a=1")
        headers.add("Set-Cookie", "b=2")
        return web.Response(text="odd", headers=headers)

    app = web.Application()
    build_sio("aiohttp").attach(app)
    app.router.add_get("/app/page", page)
    app.router.add_get("/app/odd", odd)
    return app


async def _read_response(url: str, request: bytes) -> tuple[bytes, bytes]:
    """One exchange on a fresh connection: the head as received, and the body (de-chunked;
    none after a 101)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lower = head.lower()
        if head.startswith(b"HTTP/1.1 101"):
            return head, b""
        if b"transfer-encoding: chunked" in lower:
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                body += await reader.readexactly(size + 2)
                body = body[:-2]
            await reader.readuntil(b"\r\n")
            return head, body
        length = re.search(rb"content-length: *(\d+)", lower)
        return head, await reader.readexactly(int(length.group(1))) if length else b""
    finally:
        writer.close()


def _undated(head: bytes) -> bytes:
    return re.sub(rb"(?i)(\r\ndate: )[^\r]*", rb"\1*", head)


async def _assert_same(
    leg: ServerLeg, upstream: str, request: bytes, *, same_body: bool = True
) -> bytes:
    async with relay_in_front_of(upstream, server_leg=leg) as relay:
        direct_head, direct_body = await _read_response(upstream, request)
        head, body = await _read_response(relay.url, request)
    assert _undated(head) == _undated(direct_head)
    assert b"x-forwarded" not in head.lower()
    if same_body:
        assert body == direct_body
    return head


@pytest.fixture(params=list(ServerLeg), ids=lambda leg: leg.value)
def leg(request: pytest.FixtureRequest) -> ServerLeg:
    """Both server legs must pass every case."""
    value: ServerLeg = request.param
    return value


@pytest.fixture
async def raw_upstream() -> AsyncIterator[str]:
    server = await asyncio.get_running_loop().create_server(_RawUpstream, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@pytest.fixture
async def aiohttp_upstream() -> AsyncIterator[str]:
    async with aiohttp_serving(_aiohttp_app()) as url:
        yield url


@pytest.mark.parametrize("case", ["no_type", "chunked", "chunked_error", "odd_repeated"])
@pytest.mark.parametrize("path", [b"/app/%s", b"/socket.io/?EIO=4&case=%s"], ids=["app", "sio"])
async def test_raw_upstream_heads_pass_unchanged(
    leg: ServerLeg, raw_upstream: str, path: bytes, case: str
) -> None:
    head = await _assert_same(leg, raw_upstream, GET % (path % case.encode()))
    assert b"\r\nDate:" not in head
    assert b"\r\nServer:" not in head


@pytest.mark.parametrize("path", [b"/app/switch", b"/socket.io/?EIO=4&case=switch"])
async def test_a_bare_101_passes_unchanged(leg: ServerLeg, raw_upstream: str, path: bytes) -> None:
    head = await _assert_same(leg, raw_upstream, UPGRADE % path)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n")


async def test_socketio_101_passes_unchanged(leg: ServerLeg, aiohttp_upstream: str) -> None:
    head = await _assert_same(
        leg, aiohttp_upstream, UPGRADE % b"/socket.io/?EIO=4&transport=websocket"
    )
    assert b"Sec-WebSocket-Accept: " + ACCEPT in head


async def test_socketio_polling_reply_passes_unchanged(
    leg: ServerLeg, aiohttp_upstream: str
) -> None:
    # The bodies carry different sids; the heads (same length) must match.
    head = await _assert_same(
        leg, aiohttp_upstream, GET % b"/socket.io/?EIO=4&transport=polling", same_body=False
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("path", [b"/app/page", b"/app/odd"])
async def test_aiohttp_pages_pass_unchanged(
    leg: ServerLeg, aiohttp_upstream: str, path: bytes
) -> None:
    await _assert_same(leg, aiohttp_upstream, GET % path)

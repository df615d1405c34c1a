"""Issue 14: a relayed polling reply that is the upstream's response byte for byte is
written from the bytes received (``UpstreamResponse.raw``) without serializing it again,
and that shortcut never changes what the client gets: for every response shape below the
reply equals the one serialized from the parsed head.

Real peers: a raw upstream on httptools sends each canned response; the relay's own
upstream pool reads it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.http import HttpVersion10, HttpVersion11

from socketio_trace_proxy.proxy.lean.request import LeanRequest
from socketio_trace_proxy.proxy.polling import RelayedReply
from socketio_trace_proxy.proxy.upstream import UpstreamPool, UpstreamResponse
from tests.proxy.peers import RawUpstream

RESPONSES = {
    "plain": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
    "odd-case-repeated": (
        b"HTTP/1.1 200 OK\r\nx-ODD: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"content-length: 3\r\n\r\nabc"
    ),
    "no-space": b"HTTP/1.1 200 OK\r\nContent-Type:text/plain\r\nContent-Length: 2\r\n\r\nok",
    "two-spaces": b"HTTP/1.1 200 OK\r\nContent-Type:  text/plain\r\nContent-Length: 2\r\n\r\nok",
    "balanced-spaces": (
        b"HTTP/1.1 200 OK\r\nA:x\r\nB:  y\r\nContent-Length: 2\r\n\r\nok"
    ),  # one line short of a space, one a space over: same length, other bytes
    "keep-alive": (
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
        b"Content-Length: 2\r\n\r\nok"
    ),
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "no-length-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok",
    "http-1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "no-reason": b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
    "204": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    "interim": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    ),
    "trailing-space": b"HTTP/1.1 200 OK\r\nA: x \r\nContent-Length: 2\r\n\r\nok",
}


class _Canned(RawUpstream):
    def answer(self, url: bytes, transport: asyncio.Transport) -> None:
        raw = RESPONSES[url.lstrip(b"/").decode()]
        transport.write(raw)
        if b"close" in raw:
            transport.close()


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    server = await asyncio.get_running_loop().create_server(_Canned, "127.0.0.1", 0)
    pool = UpstreamPool("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        yield pool
    finally:
        pool.close()
        server.close()


def _request(version: tuple[int, int], keep_alive: bool) -> LeanRequest:
    v = HttpVersion11 if version == (1, 1) else HttpVersion10
    return LeanRequest("GET", "/socket.io/", "/socket.io/", v, [], keep_alive, None, None)


@pytest.mark.parametrize("name", list(RESPONSES))
@pytest.mark.parametrize(
    ("version", "keep_alive"), [((1, 1), True), ((1, 1), False), ((1, 0), True)]
)
async def test_the_reply_from_the_bytes_received_is_the_serialized_one(
    pool: UpstreamPool, name: str, version: tuple[int, int], keep_alive: bool
) -> None:
    head = b"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n" % name.encode()
    upstream = await pool.request(head, b"", 10_000)
    parsed = UpstreamResponse(
        upstream.status,
        upstream.reason,
        upstream.headers,
        upstream.body,
        upstream.keep_alive,
        upstream.interim,
    )
    request = _request(version, keep_alive)
    reply, serialized = RelayedReply(request, upstream), RelayedReply(request, parsed)
    assert reply.data == serialized.data
    assert (reply.content_type, reply.content_encoding) == (
        serialized.content_type,
        serialized.content_encoding,
    )
    if name in {"plain", "odd-case-repeated"} and version == (1, 1) and keep_alive:
        assert upstream.raw == RESPONSES[name]
        assert reply.data is upstream.raw  # taken as received, not serialized again

"""Issue 17.15: the client's other address headers (``Forwarded``, ``X-Real-IP``) and the
underscore spellings of all of them (``X_Forwarded_For``) are rewritten or dropped like
``X-Forwarded-*`` (``proxy.client_address_headers``), on the streamed path, the polling
path (raw head) and a tunnelled WebSocket handshake; ``pass`` keeps them as sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from socketio_trace_proxy.config.proxy import AddressHeaders
from tests.proxy.peers import aiohttp_serving, relay_in_front_of

SENT = (
    b"Forwarded: for=192.0.2.60;proto=https\r\n"
    b"X-Real-IP: 203.0.113.9\r\n"
    b"X_Forwarded_For: 203.0.113.9\r\n"
    b"X-Forwarded_Host: evil.example\r\n"
    b"X_Real_IP: 203.0.113.9\r\n"
)
PATHS = (
    b"/page",  # streamed
    b"/socket.io/?EIO=4&transport=polling",  # polling: raw head
)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[list[tuple[bytes, bytes]]]]]:
    """Records the raw header lines of every request (a WebSocket upgrade gets 400)."""
    seen: list[list[tuple[bytes, bytes]]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(list(request.raw_headers))
        await request.read()
        return web.Response(status=400 if "Upgrade" in request.headers else 200, text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with aiohttp_serving(app) as url:
        yield url, seen


async def _send(url: str, path: bytes, upgrade: bool) -> None:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    extra = (
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        if upgrade
        else b"Connection: close\r\n"
    )
    writer.write(b"GET %s HTTP/1.1\r\nHost: front:1\r\n%s%s\r\n" % (path, extra, SENT))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 5)
    writer.close()


def _lower(lines: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for name, value in lines:
        out.setdefault(name.lower(), []).append(value)
    return out


async def _seen_for(
    upstream: tuple[str, list[list[tuple[bytes, bytes]]]], mode: AddressHeaders
) -> list[dict[bytes, list[bytes]]]:
    url, seen = upstream
    async with relay_in_front_of(url, client_address_headers=mode) as relay:
        for path in PATHS:
            await _send(relay.url, path, upgrade=False)
        await _send(relay.url, PATHS[1], upgrade=True)  # the tunnel's forwarded handshake
    assert len(seen) == 3
    return [_lower(lines) for lines in seen]


UNDERSCORED = (b"x_forwarded_for", b"x-forwarded_host", b"x_real_ip")


async def test_rewritten_by_default(
    upstream: tuple[str, list[list[tuple[bytes, bytes]]]],
) -> None:
    for got in await _seen_for(upstream, AddressHeaders.REWRITE):
        assert got[b"forwarded"] == [
            b'for=192.0.2.60;proto=https, for=127.0.0.1;proto=http;host="front:1"'
        ]
        assert got[b"x-real-ip"] == [b"127.0.0.1"]
        assert got[b"x-forwarded-for"] == [b"127.0.0.1"]
        assert got[b"x-forwarded-host"] == [b"front:1"]
        for name in UNDERSCORED:
            assert name not in got, name


async def test_dropped(upstream: tuple[str, list[list[tuple[bytes, bytes]]]]) -> None:
    for got in await _seen_for(upstream, AddressHeaders.DROP):
        for name in (b"forwarded", b"x-real-ip", *UNDERSCORED):
            assert name not in got, name
        assert got[b"x-forwarded-for"] == [b"127.0.0.1"]


async def test_passed_as_sent(upstream: tuple[str, list[list[tuple[bytes, bytes]]]]) -> None:
    for got in await _seen_for(upstream, AddressHeaders.PASS):
        assert got[b"forwarded"] == [b"for=192.0.2.60;proto=https"]
        assert got[b"x-real-ip"] == [b"203.0.113.9"]
        assert got[b"x_forwarded_for"] == [b"203.0.113.9"]

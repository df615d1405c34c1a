"""Issue 17.8: slow and half-open clients.  A request head must arrive within
``request_head_timeout_s``, an idle keep-alive connection is closed after
``keepalive_timeout_s``, at most ``max_connections`` client connections are open; each
refusal is counted (relay counters, served in ``/metrics``), and a well-behaved client keeps
working meanwhile.  A long-poll in progress is never cut by these deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.proxy.peers import aiohttp_serving, relay_in_front_of

POLL = b"GET /socket.io/?EIO=4&transport=polling&wait=%s HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async def poll(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("wait", "0")))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/socket.io/", poll)
    async with aiohttp_serving(app) as url:
        yield url


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _good_request(port: int, wait: bytes = b"0") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(POLL % wait)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 10)
    finally:
        writer.close()


async def _slow_header(port: int, stop: asyncio.Event) -> bytes:
    """Trickles one header byte every 50 ms (never finishing the head); what it read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /socket.io/?EIO=4 HTTP/1.1\r\nHost: h\r\nX-Slow: ")
    read = asyncio.ensure_future(reader.read())
    try:
        while not read.done() and not stop.is_set():
            writer.write(b"a")
            await asyncio.wait((read,), timeout=0.05)
        return await asyncio.wait_for(read, 10)
    finally:
        writer.close()


async def test_slow_headers_are_closed_while_a_good_client_works(upstream: str) -> None:
    async with relay_in_front_of(upstream, request_head_timeout_s=0.5) as relay:
        port = _port(relay.url)
        stop = asyncio.Event()
        slow = [asyncio.ensure_future(_slow_header(port, stop)) for _ in range(30)]
        answers = [await _good_request(port) for _ in range(10)]
        try:
            results = await asyncio.wait_for(asyncio.gather(*slow), 10)
        finally:
            stop.set()
        assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") for a in answers)
        assert results == [b""] * 30  # closed without an answer
        assert relay.counters.slow_heads_closed == 30
        assert relay.server.stats().slow_heads_closed == 30


async def test_idle_keep_alive_is_closed_but_a_long_poll_is_not(upstream: str) -> None:
    async with relay_in_front_of(
        upstream, request_head_timeout_s=0.3, keepalive_timeout_s=0.3
    ) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(relay.url))
        writer.write(POLL % b"1.0")  # a long-poll held longer than both deadlines
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 10)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then idle: closed
        writer.close()
        assert relay.counters.idle_closed == 1
        assert relay.counters.slow_heads_closed == 0


async def test_connections_over_the_cap_are_refused(upstream: str) -> None:
    async with relay_in_front_of(upstream, max_connections=3) as relay:
        port = _port(relay.url)
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert relay.counters.refused_connections == 1
        for _, w in held:
            w.close()
        await asyncio.sleep(0.2)
        assert (await _good_request(port)).startswith(b"HTTP/1.1 200 OK\r\n")

"""Issue 17.10: the bytes of Socket.IO-path request bodies held at once are capped
(``proxy.max_bodies_in_flight``); beyond it a POST is refused with 503 and counted, and the
budget is given back when a body's exchange ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.proxy.peers import aiohttp_serving, eventually, relay_in_front_of

BODY = b"x" * (600 * 1024)
PATH = "/socket.io/?EIO=4&transport=polling&sid=s"


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Holds each POST until released; answers with the body's length."""
    release = asyncio.Event()

    async def post(request: web.Request) -> web.Response:
        body = await request.read()
        await release.wait()
        return web.Response(text=str(len(body)))

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/socket.io/", post)
    async with aiohttp_serving(app) as url:
        yield url, release


async def test_bodies_over_the_budget_are_refused_and_counted(
    upstream: tuple[str, asyncio.Event],
) -> None:
    url, release = upstream
    async with (
        relay_in_front_of(url, max_bodies_in_flight=1024 * 1024) as relay,
        aiohttp.ClientSession() as client,
    ):
        first = asyncio.ensure_future(client.post(relay.url + PATH, data=BODY))
        # the first body is read and held (its upstream exchange waits for the release)
        await eventually(lambda: relay.counters.polling_bytes_c2s >= len(BODY))
        async with client.post(relay.url + PATH, data=BODY) as second:
            assert second.status == 503
        assert relay.counters.refused_bodies == 1
        release.set()
        async with await first as response:
            assert response.status == 200
            assert await response.text() == str(len(BODY))
        async with client.post(relay.url + PATH, data=BODY) as third:  # budget given back
            assert third.status == 200
        assert relay.counters.refused_bodies == 1

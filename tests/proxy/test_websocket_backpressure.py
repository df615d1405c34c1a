"""A reader that does not read holds the sender back through the tunnel: the proxy stops
reading the sending side instead of buffering, in both directions, and nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from tests.proxy.peers import Relay, aiohttp_serving, relay_in_front_of

MESSAGE = b"\xab" * (1 << 20)
MESSAGES = 64  # 64 MiB: far beyond what the kernel's socket buffers on both hops can hold


class Backend:
    def __init__(self) -> None:
        self.sent = 0  # messages the flooding handler has handed to its socket
        self.received = 0
        self.reading = asyncio.Event()  # the sink handler starts reading once this is set
        self.url = ""


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    state = Backend()

    async def flood(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        for _ in range(MESSAGES):
            await ws.send_bytes(MESSAGE)  # waits while the transport's buffer is full
            state.sent += 1
        await ws.close()
        return ws

    async def sink(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await state.reading.wait()
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                state.received += 1
                if state.received == MESSAGES:
                    await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/socket.io/flood", flood)
    app.router.add_get("/socket.io/sink", sink)
    async with aiohttp_serving(app) as url:
        state.url = url
        yield state


@pytest.fixture
async def relay(backend: Backend) -> AsyncIterator[Relay]:
    async with relay_in_front_of(backend.url, None, max_message_size=2 << 20) as r:
        yield r


async def test_a_client_that_does_not_read_holds_the_upstream_back(
    backend: Backend, relay: Relay
) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(relay.url + "/socket.io/flood", max_msg_size=0)
        await asyncio.sleep(1.5)  # not reading
        assert backend.sent < MESSAGES // 2
        got = 0
        async for msg in ws:
            assert msg.data == MESSAGE
            got += 1
        assert got == MESSAGES
    assert relay.counters.ws_messages_s2c == MESSAGES


async def test_an_upstream_that_does_not_read_holds_the_client_back(
    backend: Backend, relay: Relay
) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(relay.url + "/socket.io/sink", max_msg_size=0)
        sent = 0

        async def send_all() -> None:
            nonlocal sent
            for _ in range(MESSAGES):
                await ws.send_bytes(MESSAGE)
                sent += 1

        sender = asyncio.create_task(send_all())
        await asyncio.sleep(1.5)
        assert sent < MESSAGES // 2
        backend.reading.set()
        await asyncio.wait_for(sender, 30)
        msg = await asyncio.wait_for(ws.receive(), 30)
        assert msg.type is WSMsgType.CLOSE
    assert backend.received == MESSAGES

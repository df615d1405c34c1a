"""The upstream pool's WebSocket upgrades (issue 14, the upgrade's delay): an upgrade is sent
on an idle keep-alive connection when there is one, a new connection takes its place in the
idle pool in the background, and an idle connection the upstream closed is not used."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from socketio_trace_proxy.proxy.upstream import UpstreamPool
from tests.proxy.peers import RawUpstream, eventually

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


class _Upstream(RawUpstream):
    """Answers ``/x`` with 200 (and closes after it when ``close_after_ok``), ``/ws`` with a
    101 followed by one byte; records the client port of each request."""

    seen: ClassVar[list[tuple[bytes, int]]]
    close_after_ok: ClassVar[bool] = False

    def answer(self, url: bytes, transport: asyncio.Transport) -> None:
        self.seen.append((url, transport.get_extra_info("peername")[1]))
        if url == b"/ws":
            transport.write(SWITCH + b"\x81")
            return
        transport.write(OK)
        if self.close_after_ok:
            transport.close()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[int, type[_Upstream]]]:
    class Upstream(_Upstream):
        seen: ClassVar[list[tuple[bytes, int]]] = []

    server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], Upstream
    finally:
        server.close()


async def test_an_upgrade_takes_an_idle_connection_and_one_replaces_it(
    upstream: tuple[int, type[_Upstream]],
) -> None:
    port, server = upstream
    pool = UpstreamPool("127.0.0.1", port)
    try:
        assert (await pool.request(GET, b"", 100)).status == 200
        response, transport, tail = await pool.upgrade(UPGRADE, 100)
        assert response.status == 101
        assert transport is not None
        assert tail == b"\x81"
        transport.close()
        # The upgrade went on the polling request's connection...
        assert server.seen[1][1] == server.seen[0][1]
        # ...and one opened beside takes its place, so the next request does not connect.
        await eventually(lambda: pool.connections_opened == 2)
        assert (await pool.request(GET, b"", 100)).status == 200
        assert pool.connections_opened == 2
        assert server.seen[2][1] != server.seen[0][1]
    finally:
        pool.close()


async def test_an_upgrade_after_the_upstream_closed_the_idle_connection_goes_on_a_new_one(
    upstream: tuple[int, type[_Upstream]],
) -> None:
    port, server = upstream
    server.close_after_ok = True  # keep-alive announced, then closed while idle
    pool = UpstreamPool("127.0.0.1", port)
    try:
        assert (await pool.request(GET, b"", 100)).status == 200
        await asyncio.sleep(0.05)
        response, transport, _ = await pool.upgrade(UPGRADE, 100)
        assert response.status == 101
        assert transport is not None
        transport.close()
        assert [url for url, _ in server.seen] == [b"/x", b"/ws"]
    finally:
        pool.close()

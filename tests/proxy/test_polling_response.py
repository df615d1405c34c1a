"""The polling path's response head, byte for byte: the relay serializes it itself from the
upstream's raw header lines as received (issue 14): no Server, Date or Content-Type added,
names not re-cased, a chunked body still chunked; only hop-by-hop lines change."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from tests.proxy.peers import RawUpstream, aiohttp_serving, build_sio, relay_in_front_of

DATE = b"Date: Thu, 01 Jan 2015 00:00:00 GMT\r\n"
SERVER = f"Server: {SERVER_SOFTWARE}\r\n".encode()
GET = b"GET /socket.io/?EIO=4&case=%s HTTP/1.1\r\nHost: h\r\n\r\n"

# case -> (what the upstream sends, what the client must get); "Date: *" is any date.
CASES: dict[str, tuple[bytes, bytes]] = {
    "hop_by_hop": (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nConnection: X-Secret\r\n"
        b"X-Secret: s\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n" + DATE + b"Server: up\r\n"
        b"\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nContent-Length: 2\r\n"
        + DATE
        + b"Server: up\r\n\r\nok",
    ),
    "chunked_bare": (
        b"HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    "odd_names_repeated_no_type": (
        b"HTTP/1.1 404 Not Found\r\nx-ODD-case: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 4\r\n\r\nnope",
        b"HTTP/1.1 404 Not Found\r\nx-ODD-case: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 4\r\n\r\nnope",
    ),
    "no_content": (
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n" + DATE + b"Server: up\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n" + DATE + b"Server: up\r\n\r\n",
    ),
    "obs_text": (
        b"HTTP/1.1 200 Gr\xfc\xdfe\r\nX-Name: caf\xe9\r\nContent-Type: a/b\r\nContent-Length: 2\r\n"
        + DATE
        + b"Server: up\r\n\r\nok",
        b"HTTP/1.1 200 Gr\xfc\xdfe\r\nX-Name: caf\xe9\r\nContent-Type: a/b\r\nContent-Length: 2\r\n"
        + DATE
        + b"Server: up\r\n\r\nok",
    ),
}
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Length: 2\r\n" + DATE + b"Server: up\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n"
UPSTREAM_ONLY = {
    "early_hints": EARLY_HINTS + PLAIN + b"\r\nok",
    "many_hints": EARLY_HINTS * 100 + PLAIN + b"\r\nok",
}


class _Upstream(RawUpstream):
    """Answers each request with the canned response its ``case`` query parameter names."""

    def answer(self, url: bytes, transport: asyncio.Transport) -> None:
        case = url.partition(b"case=")[2].decode()
        if case in CASES:
            transport.write(CASES[case][0])
        else:
            transport.write(UPSTREAM_ONLY.get(case, PLAIN + b"\r\nok"))


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def _exchange(url: str, request: bytes, count: int = 1) -> list[bytes]:
    """Sends ``request`` ``count`` times on one connection; each response as received."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    out: list[bytes] = []
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"Content-Length: (\d+)", head)
            if b"Transfer-Encoding: chunked" in head:
                body = await reader.readuntil(b"0\r\n\r\n")
            else:
                body = await reader.readexactly(int(match.group(1))) if match else b""
            out.append(re.sub(rb"Date: (?!Thu, 01 Jan 2015)[^\r]*", b"Date: *", head + body))
    finally:
        writer.close()
    return out


@pytest.mark.parametrize("case", sorted(CASES))
async def test_response_head_is_the_upstreams_minus_hop_by_hop(upstream: str, case: str) -> None:
    async with relay_in_front_of(upstream) as relay:
        got = await _exchange(relay.url, GET % case.encode(), count=2)
    assert got == [CASES[case][1]] * 2  # and the connection was kept alive


async def test_connection_header_follows_the_client(upstream: str) -> None:
    async with relay_in_front_of(upstream) as relay:
        http10 = b"GET /socket.io/?EIO=4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        close = b"GET /socket.io/?EIO=4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        assert (
            await _exchange(relay.url, http10, count=2)
            == [b"HTTP/1.0" + PLAIN[8:] + b"Connection: keep-alive\r\n\r\nok"] * 2
        )
        assert await _exchange(relay.url, close) == [PLAIN + b"Connection: close\r\n\r\nok"]


async def test_the_upstream_pool_counters_reach_the_relay_stats(upstream: str) -> None:
    async with relay_in_front_of(upstream) as relay:
        assert relay.server.stats().upstream_connections_opened == 0
        await _exchange(relay.url, GET % b"hop_by_hop", count=3)
        stats = relay.server.stats()
    assert stats.polling_requests == 3
    assert stats.upstream_connections_opened == 1  # one keep-alive connection, reused
    assert stats.upstream_idle_discarded == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"Connection": "Upgrade", "Upgrade": "websocket"}],
    ids=["plain", "upgrade"],
)
async def test_head_on_the_socketio_path_gets_the_upstreams_answer_without_a_body(
    headers: dict[str, str],
) -> None:
    """A response to HEAD announces a length it does not send; the relay must not wait for it
    (nor when the HEAD asks for a WebSocket upgrade, which only a GET can)."""
    app = web.Application()
    build_sio("aiohttp").attach(app)
    async with aiohttp_serving(app) as upstream, relay_in_front_of(upstream) as relay:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            url = "/socket.io/?EIO=4&transport=polling"
            async with session.head(upstream + url, headers=headers) as direct:
                expected = (direct.status, direct.headers.get("Content-Length"))
            async with session.head(relay.url + url, headers=headers) as relayed:
                assert (relayed.status, relayed.headers.get("Content-Length")) == expected
                assert await relayed.read() == b""
            async with session.get(relay.url + url) as after:  # the connection still works
                assert after.status == 200
                assert (await after.text()).startswith("0{")


async def test_informational_responses_reach_http11_clients_before_the_final_one(
    upstream: str,
) -> None:
    """RFC 9110 15.2: a proxy forwards 1xx responses, except to HTTP/1.0 clients."""
    async with relay_in_front_of(upstream) as relay:
        host, port = relay.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for _ in range(2):  # and the upstream connection stays usable
                writer.write(GET % b"early_hints")
                assert await reader.readuntil(b"\r\n\r\n") == EARLY_HINTS
                head = await reader.readuntil(b"\r\n\r\n")
                assert head + await reader.readexactly(2) == PLAIN + b"\r\nok"
        finally:
            writer.close()
        http10 = b"GET /socket.io/?EIO=4&case=early_hints HTTP/1.0\r\n\r\n"
        assert await _exchange(relay.url, http10) == [b"HTTP/1.0" + PLAIN[8:] + b"\r\nok"]


async def test_informational_responses_count_against_the_response_size_limit(
    upstream: str,
) -> None:
    """Held until the final response, they are bounded like a body: 502 past the limit."""
    async with relay_in_front_of(upstream, max_message_size=1000) as relay:
        got = await _exchange(relay.url, GET % b"many_hints")
        assert relay.counters.rejected_too_large == 1
    assert got[0].startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert got[0].endswith(b"upstream response larger than max_message_size\n")


async def test_the_lean_heads_connection_values_cleared_reach_the_relay_stats(
    upstream: str,
) -> None:
    """The lean leg's table of the ``Connection`` values it met is bounded; each time it is
    emptied, being full, ``connection_values_cleared`` counts it (in the stats, /metrics)."""
    request = b"GET /socket.io/?EIO=4 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, x-%d\r\n\r\n"
    async with relay_in_front_of(upstream) as relay:
        for n in range(64):
            assert await _exchange(relay.url, request % n) == [PLAIN + b"\r\nok"]
        assert relay.server.stats().connection_values_cleared == 0  # 64 values: full
        await _exchange(relay.url, request % 64)
        stats = relay.server.stats()
    assert stats.polling_requests == 65
    assert stats.connection_values_cleared == 1

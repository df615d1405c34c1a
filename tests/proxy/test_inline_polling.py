"""Issue 14: Socket.IO-path requests answered without a task (proxy/lean/exchange.py
``InlineWhole``) keep every guarantee of the task path.

The inline path runs when an idle pooled upstream connection is there, so each test first
warms the pool with one request.  Real peers: a raw upstream on httptools (answers each
request by its target, records what reached it and which connection it came on) and raw
client sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from socketio_trace_proxy.proxy.upstream import UpstreamConnection
from socketio_trace_proxy.tracking.observer import RequestInfo
from tests.proxy.peers import RawUpstream, RecordingObserver, eventually, relay_in_front_of

SIO = b"/socket.io/?EIO=4&transport=polling"
OK = b"HTTP/1.1 200 OK\r\nX-Target: %s\r\nContent-Length: 2\r\n\r\nok"


class _Upstream(RawUpstream):
    """``...&hang``: never answered; ``...&drop``: the connection closed without a byte the
    first time (an idle connection the server closed meanwhile, RFC 9112 9.3); anything
    else 200 ``ok``.  Records each target with its connection's port, and the connections
    that ended."""

    seen: ClassVar[list[tuple[bytes, int]]]
    lost: ClassVar[list[int]]
    dropped: ClassVar[bool]

    def answer(self, url: bytes, transport: asyncio.Transport) -> None:
        port = transport.get_extra_info("peername")[1]
        self.seen.append((url, port))
        if url.endswith(b"&hang"):
            return
        if url.endswith(b"&drop") and not type(self).dropped:
            type(self).dropped = True
            transport.close()
            return
        transport.write(OK % url)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(1)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, type[_Upstream]]]:
    class Upstream(_Upstream):
        seen: ClassVar[list[tuple[bytes, int]]] = []
        lost: ClassVar[list[int]] = []
        dropped: ClassVar[bool] = False

    server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", Upstream
    finally:
        server.close()


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return await asyncio.open_connection(host, int(port))


def _request(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n"


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: bytes) -> bytes:
    """One request on an open keep-alive connection; the head and body of its answer."""
    writer.write(_request(target))
    return await _read(reader)


async def _read(reader: asyncio.StreamReader) -> bytes:
    """The next answer (with a Content-Length) on a connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def test_keep_alive_polls_reuse_one_upstream_connection(
    upstream: tuple[str, type[_Upstream]],
) -> None:
    url, server = upstream
    async with relay_in_front_of(url) as relay:
        reader, writer = await _open(relay.url)
        try:
            answers = [await _get(reader, writer, SIO + b"&n=%d" % i) for i in range(5)]
        finally:
            writer.close()
        stats = relay.server.stats()
    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") and a.endswith(b"\r\n\r\nok") for a in answers)
    assert len({port for _, port in server.seen}) == 1
    assert stats.upstream_connections_opened == 1
    assert stats.polling_requests == 5


async def test_pipelined_polls_on_a_warm_pool_are_answered_in_order(
    upstream: tuple[str, type[_Upstream]],
) -> None:
    url, server = upstream
    async with relay_in_front_of(url) as relay:
        reader, writer = await _open(relay.url)
        try:
            await _get(reader, writer, SIO + b"&warm")
            # Three requests in one write, the pool's connection idle.
            writer.write(b"".join(_request(SIO + b"&n=%d" % i) for i in range(3)))
            answers = [await _read(reader) for _ in range(3)]
        finally:
            writer.close()
    targets = [a.split(b"X-Target: ")[1].split(b"\r\n")[0] for a in answers]
    assert targets == [SIO + b"&n=%d" % i for i in range(3)]
    assert [u for u, _ in server.seen][1:] == targets


async def test_a_client_vanishing_mid_poll_ends_the_upstream_exchange(
    upstream: tuple[str, type[_Upstream]],
) -> None:
    url, server = upstream
    async with relay_in_front_of(url) as relay:
        reader, writer = await _open(relay.url)
        await _get(reader, writer, SIO + b"&warm")
        writer.write(b"GET " + SIO + b"&hang HTTP/1.1\r\nHost: h\r\n\r\n")
        await eventually(lambda: len(server.seen) == 2)
        writer.close()  # the client goes while its long-poll is pending upstream
        await eventually(lambda: len(server.lost) == 1)  # that upstream connection ends
        counters = relay.server.stats()
        assert counters.client_disconnects == 1
        reader, writer = await _open(relay.url)
        try:
            assert (await _get(reader, writer, SIO + b"&after")).endswith(b"ok")
        finally:
            writer.close()


async def test_an_idle_connection_closed_upstream_is_sent_again_on_a_new_one(
    upstream: tuple[str, type[_Upstream]],
) -> None:
    url, server = upstream
    async with relay_in_front_of(url) as relay:
        reader, writer = await _open(relay.url)
        try:
            await _get(reader, writer, SIO + b"&warm")
            answer = await _get(reader, writer, SIO + b"&drop")
        finally:
            writer.close()
        stats = relay.server.stats()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    (_warm, first), (drop1, again), (drop2, fresh) = server.seen
    assert (drop1, drop2) == (SIO + b"&drop", SIO + b"&drop")
    assert again == first  # sent on the idle connection, which the upstream closed
    assert fresh != first  # and once more on a new one
    assert stats.upstream_connections_opened == 2
    assert stats.upstream_errors == 0


async def test_a_body_over_the_limit_on_a_warm_pool_gets_413_and_nothing_upstream(
    upstream: tuple[str, type[_Upstream]],
) -> None:
    url, server = upstream
    async with relay_in_front_of(url, max_message_size=1000) as relay:
        reader, writer = await _open(relay.url)
        try:
            await _get(reader, writer, SIO + b"&warm")
            writer.write(
                b"POST " + SIO + b"&big HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n"
            )
            writer.write(b"x" * 2000)
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        stats = relay.server.stats()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"\r\nConnection: close\r\n" in answer
    assert [u for u, _ in server.seen] == [SIO + b"&warm"]
    assert stats.rejected_too_large == 1


async def test_a_posted_body_is_sent_upstream_before_the_observer_sees_it(
    upstream: tuple[str, type[_Upstream]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relay first, observe second: the tracker sees a POST's body only once it is on its
    way upstream (on the inline path), yet before the upstream's answer is observed."""
    url, _server = upstream
    order: list[str] = []
    original = UpstreamConnection.send

    def send(self: UpstreamConnection, *args: Any) -> None:
        order.append("sent")
        original(self, *args)

    class Observer(RecordingObserver):
        def polling_request(self, info: RequestInfo, body: bytes) -> None:
            order.append("observed " + body.decode())
            super().polling_request(info, body)

        def polling_response(self, info: RequestInfo, status: int, *rest: Any) -> None:
            order.append("answered")

    monkeypatch.setattr(UpstreamConnection, "send", send)
    async with relay_in_front_of(url, Observer()) as relay:
        reader, writer = await _open(relay.url)
        try:
            await _get(reader, writer, SIO + b"&warm")
            order.clear()
            writer.write(b"POST " + SIO + b" HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n42[]")
            assert (await _read(reader)).endswith(b"ok")
        finally:
            writer.close()
    assert order == ["sent", "observed 42[]", "answered"]

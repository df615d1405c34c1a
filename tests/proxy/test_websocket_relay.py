"""WebSocket relay against a raw aiohttp WebSocket upstream, in both relay modes (tunnel and
terminate): close frames mirrored exactly (empty, 1000 with reason, 4xxx), pings forwarded,
frame types kept, compression, message size limit, refused/unreachable upstream."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from socketio_trace_proxy.config.proxy import WebSocketRelay
from socketio_trace_proxy.tracking.traffic import Direction
from tests.proxy.peers import (
    RecordingObserver,
    Relay,
    aiohttp_serving,
    eventually,
    free_port,
    relay_in_front_of,
)


@dataclass
class Upstream:
    url: str
    received: list[tuple[WSMsgType, Any, Any]] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream(url="")

    async def ws_handler(request: web.Request) -> web.StreamResponse:
        state.handshakes.append(dict(request.headers))
        ws = web.WebSocketResponse(autoclose=False, autoping=False, protocols=("chat", "v2"))
        await ws.prepare(request)
        try:
            while True:  # not `async for`: it stops before yielding CLOSE
                msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                    break
                state.received.append((msg.type, msg.data, msg.extra))
                if msg.type is WSMsgType.TEXT and msg.data.startswith("close:"):
                    # close:<code|empty>:<reason> -> the upstream starts the close handshake
                    _, code, reason = msg.data.split(":", 2)
                    payload = close_frame(None if code == "empty" else int(code), reason.encode())
                    await ws.send_frame(payload, WSMsgType.CLOSE)
                elif msg.type is WSMsgType.TEXT and msg.data == "big-ping":
                    await ws.send_frame(b"p" * 200, WSMsgType.PING)  # RFC 6455 5.5: <= 125
                elif msg.type is WSMsgType.TEXT:
                    await ws.send_str("echo:" + msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await ws.send_bytes(b"echo:" + msg.data)
                elif msg.type is WSMsgType.PING:
                    await ws.pong(b"pong:" + msg.data)
                elif msg.type is WSMsgType.CLOSE:
                    if msg.data == 4999:  # asked to answer a client close with an empty frame
                        await ws.send_frame(b"", WSMsgType.CLOSE)
                    else:
                        await ws.send_frame(
                            close_frame(msg.data or None, (msg.extra or "").encode()),
                            WSMsgType.CLOSE,
                        )
                    break
        finally:
            state.done.set()
        return ws

    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="no")

    app = web.Application()
    app.router.add_get("/socket.io/", ws_handler)
    app.router.add_get("/refuse/", refuse)
    async with aiohttp_serving(app) as url:
        state.url = url
        yield state


@pytest.fixture(params=list(WebSocketRelay), ids=lambda m: m.value)
def mode(request: pytest.FixtureRequest) -> WebSocketRelay:
    relay_mode: WebSocketRelay = request.param
    return relay_mode


@pytest.fixture
async def relay(
    upstream: Upstream, mode: WebSocketRelay
) -> AsyncIterator[tuple[Relay, RecordingObserver]]:
    observer = RecordingObserver()
    async with relay_in_front_of(
        upstream.url, observer, close_timeout_s=2.0, websocket_relay=mode
    ) as r:
        yield r, observer


async def _connect(
    relay: Relay, session: aiohttp.ClientSession, **kwargs: Any
) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await session.ws_connect(
        relay.url + "/socket.io/?EIO=4&transport=websocket",
        autoclose=False,
        autoping=False,
        **kwargs,
    )
    return ws


@pytest.mark.parametrize(("code", "reason"), [(None, ""), (1000, "bye"), (4001, "custom reason é")])
async def test_upstream_close_is_mirrored_exactly(
    upstream: Upstream, relay: tuple[Relay, RecordingObserver], code: int | None, reason: str
) -> None:
    r, observer = relay
    async with aiohttp.ClientSession() as session:
        ws = await _connect(r, session)
        await ws.send_str(f"close:{'empty' if code is None else code}:{reason}")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is WSMsgType.CLOSE
        # aiohttp reports an empty close frame as code 0 and an empty reason.
        assert (msg.data, msg.extra) == (code or 0, reason)
        # Our reply (an empty frame) must reach the upstream as an empty frame too.
        await ws.send_frame(b"", WSMsgType.CLOSE)
        await asyncio.wait_for(upstream.done.wait(), 5)
        await ws.close()
    assert upstream.received[-1][:2] == (WSMsgType.CLOSE, 0)
    await eventually(lambda: observer.closes == [(Direction.SERVER_TO_CLIENT, code)])
    assert r.counters.ws_active == 0


@pytest.mark.parametrize(("code", "reason"), [(1000, "done"), (4321, "app close"), (1001, "")])
async def test_client_close_is_mirrored_and_reply_comes_back(
    upstream: Upstream, relay: tuple[Relay, RecordingObserver], code: int, reason: str
) -> None:
    r, observer = relay
    async with aiohttp.ClientSession() as session:
        ws = await _connect(r, session)
        await ws.send_frame(close_frame(code, reason.encode()), WSMsgType.CLOSE)
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (code, reason)  # the upstream echoes the close
        await ws.close()
    await asyncio.wait_for(upstream.done.wait(), 5)
    assert upstream.received[-1] == (WSMsgType.CLOSE, code, reason)
    await eventually(lambda: observer.closes == [(Direction.CLIENT_TO_SERVER, code)])


async def test_empty_close_reply_from_upstream_is_forwarded_empty(
    upstream: Upstream, relay: tuple[Relay, RecordingObserver]
) -> None:
    r, _ = relay
    async with aiohttp.ClientSession() as session:
        ws = await _connect(r, session)
        await ws.send_frame(close_frame(4999), WSMsgType.CLOSE)
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 0, "")
        await ws.close()


@pytest.mark.parametrize("client_compress", [0, 15])
async def test_frames_types_order_and_pings_pass_through(
    upstream: Upstream, relay: tuple[Relay, RecordingObserver], client_compress: int
) -> None:
    r, observer = relay
    texts = ["héllo", "4" + "x" * 70_000, ""]
    blobs = [b"\x00\xff\x10", bytes(range(256)) * 300]
    async with aiohttp.ClientSession() as session:
        ws = await _connect(r, session, compress=client_compress, protocols=("x", "v2", "chat"))
        # aiohttp's upstream picks the client's first offer it supports; the relay passes it on.
        assert ws.protocol == "v2"
        for t in texts:
            await ws.send_str(t)
        for b in blobs:
            await ws.send_bytes(b)
        await ws.ping(b"p1")
        got = [await asyncio.wait_for(ws.receive(), 5) for _ in range(len(texts) + len(blobs) + 1)]
        await ws.close()
    assert [(m.type, m.data) for m in got] == [
        *((WSMsgType.TEXT, "echo:" + t) for t in texts),
        *((WSMsgType.BINARY, b"echo:" + b) for b in blobs),
        (WSMsgType.PONG, b"pong:p1"),
    ]
    sent_up = [(t, d) for t, d, _ in upstream.received if t is not WSMsgType.CLOSE]
    assert sent_up == [
        *((WSMsgType.TEXT, t) for t in texts),
        *((WSMsgType.BINARY, b) for b in blobs),
        (WSMsgType.PING, b"p1"),
    ]
    hs = upstream.handshakes[0]
    assert hs["Sec-WebSocket-Protocol"] == "x,v2,chat"
    # The upstream leg is offered permessage-deflate only when the client offered it.
    offered_up = "permessage-deflate" in hs.get("Sec-WebSocket-Extensions", "")
    assert offered_up == bool(client_compress)
    assert hs["Host"] == r.url.removeprefix("http://")
    assert hs["X-Forwarded-For"] == "127.0.0.1"
    assert observer.log.of("ws", "c2s") == [*texts, *blobs]
    assert r.counters.ws_messages_c2s == len(texts) + len(blobs)
    assert r.counters.ws_messages_s2c == len(texts) + len(blobs)


async def test_message_over_the_limit_closes_both_legs_with_1009(
    upstream: Upstream, mode: WebSocketRelay
) -> None:
    async with relay_in_front_of(
        upstream.url, None, max_message_size=1000, websocket_relay=mode
    ) as r:
        async with aiohttp.ClientSession() as session:
            ws = await _connect(r, session)
            await ws.send_str("small")
            assert (await asyncio.wait_for(ws.receive(), 5)).data == "echo:small"
            await ws.send_str("y" * 2000)
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1009)
            await ws.close()
        await asyncio.wait_for(upstream.done.wait(), 5)
        assert (WSMsgType.CLOSE, 1009) in [(t, d) for t, d, _ in upstream.received]
        await eventually(lambda: r.counters.ws_active == 0)


async def _raw_websocket(relay: Relay) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that writes frames byte by byte (aiohttp's own client cannot write a bad
    one): the upgrade request, and the reader positioned after the 101's head."""
    host, port = relay.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        + f"Host: {host}:{port}\r\n".encode()
        + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_a_huge_control_frame_from_the_client_closes_both_with_1002(
    upstream: Upstream, mode: WebSocketRelay
) -> None:
    """RFC 6455 5.5: a control frame over 125 bytes is a protocol error.  A CLOSE frame
    declaring 2^40 bytes (the first 1,000 of them sent) is neither forwarded nor buffered:
    the proxy answers 1002 to both sides and ends the connection.  (More bytes unread when it
    does would make the client's TCP stack see a reset instead of the close frame.)"""
    async with relay_in_front_of(upstream.url, websocket_relay=mode) as r:
        reader, writer = await _raw_websocket(r)
        writer.write(bytes((0x88, 0x80 | 127)) + (2**40).to_bytes(8) + b"mask" + b"\x00" * 1000)
        answer = await asyncio.wait_for(reader.read(), 5)  # up to the end of the connection
        writer.close()
        assert answer[:4] == bytes((0x88, 2)) + (1002).to_bytes(2)
        await asyncio.wait_for(upstream.done.wait(), 5)
        assert [(t, d) for t, d, _ in upstream.received] == [(WSMsgType.CLOSE, 1002)]
        await eventually(lambda: r.counters.ws_active == 0)
        if mode is WebSocketRelay.TUNNEL:
            assert r.counters.ws_protocol_errors == 1


async def test_a_huge_ping_from_the_upstream_closes_both_with_1002(
    upstream: Upstream, mode: WebSocketRelay
) -> None:
    async with (
        relay_in_front_of(upstream.url, websocket_relay=mode) as r,
        aiohttp.ClientSession() as session,
    ):
        ws = await _connect(r, session)
        await ws.send_str("big-ping")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1002)
        await ws.close()
        await asyncio.wait_for(upstream.done.wait(), 5)
        assert (WSMsgType.CLOSE, 1002) in [(t, d) for t, d, _ in upstream.received]
        await eventually(lambda: r.counters.ws_active == 0)


async def test_refused_and_unreachable_upstream(upstream: Upstream, mode: WebSocketRelay) -> None:
    async with (
        relay_in_front_of(upstream.url, websocket_relay=mode) as r,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(r.url + "/refuse/")
        assert refused.value.status == 403
        assert r.counters.ws_refused == 1
    # Nothing listens on this upstream port.
    sock_port = free_port()
    async with (
        relay_in_front_of(
            f"http://127.0.0.1:{sock_port}", connect_timeout_s=2, websocket_relay=mode
        ) as r,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as down:
            await session.ws_connect(r.url + "/socket.io/?EIO=4&transport=websocket")
        assert down.value.status == 502
        async with session.get(r.url + "/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 502
            assert resp.content_type == "text/plain"
            assert "upstream unreachable" in await resp.text()
        assert r.counters.upstream_errors == 2


async def test_client_vanishing_closes_the_upstream_leg(
    upstream: Upstream, relay: tuple[Relay, RecordingObserver]
) -> None:
    r, observer = relay
    session = aiohttp.ClientSession()
    ws = await _connect(r, session)
    await ws.send_str("hi")
    assert (await asyncio.wait_for(ws.receive(), 5)).data == "echo:hi"
    await session.close()  # drops the TCP connection without a close frame
    await asyncio.wait_for(upstream.done.wait(), 5)
    await eventually(lambda: r.counters.ws_active == 0)
    await eventually(lambda: observer.closes == [(None, None)])


async def test_shutdown_closes_open_websockets_with_going_away(
    upstream: Upstream, mode: WebSocketRelay
) -> None:
    async with aiohttp.ClientSession() as session:
        async with relay_in_front_of(upstream.url, websocket_relay=mode) as r:
            ws = await _connect(r, session)
            await ws.send_str("hi")
            assert (await asyncio.wait_for(ws.receive(), 5)).data == "echo:hi"
        # Leaving the block shut the relay down.
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1001)
        await ws.close()
    await asyncio.wait_for(upstream.done.wait(), 5)
    assert (WSMsgType.CLOSE, 1001) in [(t, d) for t, d, _ in upstream.received]


@pytest.mark.parametrize("client_compress", [0, 15])
async def test_upstream_deflate_can_be_switched_off(
    upstream: Upstream, client_compress: int
) -> None:
    async with (
        relay_in_front_of(
            upstream.url,
            RecordingObserver(),
            upstream_websocket_compression=False,
            websocket_relay=WebSocketRelay.TERMINATE,
        ) as r,
        aiohttp.ClientSession() as session,
    ):
        ws = await _connect(r, session, compress=client_compress)
        await ws.send_str("4hello")
        msg = await asyncio.wait_for(ws.receive(), 5)
        await ws.close()
    assert (msg.type, msg.data) == (WSMsgType.TEXT, "echo:4hello")
    assert "permessage-deflate" not in upstream.handshakes[0].get("Sec-WebSocket-Extensions", "")


async def test_relayed_websockets_are_bounded(upstream: Upstream, mode: WebSocketRelay) -> None:
    async with (
        relay_in_front_of(upstream.url, max_websockets=2, websocket_relay=mode) as r,
        aiohttp.ClientSession() as session,
    ):
        first = await _connect(r, session)
        second = await _connect(r, session)
        with pytest.raises(aiohttp.WSServerHandshakeError) as busy:
            await _connect(r, session)
        assert busy.value.status == 503
        assert r.counters.refused_busy == 1
        await first.close()
        await eventually(lambda: r.counters.ws_active == 1)
        third = await _connect(r, session)  # a slot is free again
        await third.send_str("4again")
        msg = await asyncio.wait_for(third.receive(), 5)
        assert (msg.type, msg.data) == (WSMsgType.TEXT, "echo:4again")
        await second.close()
        await third.close()

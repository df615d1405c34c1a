"""Byte-exactness at both ends: a raw Engine.IO client (aiohttp, recording everything it sends
and receives) talks through the relay to python-socketio under uvicorn wrapped in a recorder;
polling bodies and WebSocket messages must be identical at both ends, in order, including the
polling -> WebSocket upgrade, binary attachments and a large message."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import socketio
from aiohttp import WSMsgType

from tests.proxy.peers import (
    RecordingASGI,
    WireLog,
    build_sio,
    eventually,
    relay_in_front_of,
    uvicorn_serving,
)


class RawClient:
    """Speaks Engine.IO v4 by hand and logs every body and message at the client end."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base + "/socket.io/?EIO=4"
        self.log = WireLog()
        self.sid = ""

    async def get(self) -> bytes:
        async with self.session.get(f"{self.base}&transport=polling&sid={self.sid}") as r:
            assert r.status == 200
            body = await r.read()
        self.log.items.append(("poll", "s2c", body))
        return body

    async def post(self, body: bytes) -> None:
        self.log.items.append(("poll", "c2s", body))
        url = f"{self.base}&transport=polling&sid={self.sid}"
        async with self.session.post(url, data=body) as r:
            assert r.status == 200
            self.log.items.append(("poll", "s2c", await r.read()))


async def _ws_recv(ws: aiohttp.ClientWebSocketResponse, log: WireLog) -> str | bytes:
    """The next message that is not an Engine.IO ping (pings are answered and logged)."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (WSMsgType.TEXT, WSMsgType.BINARY), msg
        log.items.append(("ws", "s2c", msg.data))
        if msg.data == "2":
            log.items.append(("ws", "c2s", "3"))
            await ws.send_str("3")
            continue
        data: str | bytes = msg.data
        return data


async def test_both_ends_see_identical_bodies_and_messages() -> None:
    recorder = RecordingASGI(socketio.ASGIApp(build_sio("asgi")))
    async with (
        uvicorn_serving(recorder) as backend,
        relay_in_front_of(backend) as relay,
        aiohttp.ClientSession(auto_decompress=False) as session,
    ):
        c = RawClient(session, relay.url)
        c.sid = ""
        opened = await c.get()
        assert opened.startswith(b"0{")
        c.sid = json.loads(opened[1:])["sid"]
        # Two packets in one body: namespace connect and an event before its reply.
        await c.post(b'40\x1e42["echo","first"]')
        replies = b""
        while b'42["echoed","first"]' not in replies:
            replies += await c.get()

        ws = await session.ws_connect(f"{c.base}&transport=websocket&sid={c.sid}")
        c.log.items.append(("ws", "c2s", "2probe"))
        await ws.send_str("2probe")
        assert await _ws_recv(ws, c.log) == "3probe"
        c.log.items.append(("ws", "c2s", "5"))
        await ws.send_str("5")

        big = "x" * 500_000
        outgoing: list[str | bytes] = [
            '421["echo",{"n":"é"}]',
            '451-2["echo",{"_placeholder":true,"num":0}]',
            b"\x00\x01\x02\xff",
            f'423["echo","{big}"]',
        ]
        for message in outgoing:
            c.log.items.append(("ws", "c2s", message))
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
        seen: list[str | bytes] = []
        while not any(isinstance(m, str) and m.startswith("433") for m in seen):
            seen.append(await _ws_recv(ws, c.log))
        assert '431[{"n":"\\u00e9"}]' in seen  # python-socketio escapes non-ASCII
        assert b"\x00\x01\x02\xff" in seen  # the binary ack's attachment, still binary
        c.log.items.append(("ws", "c2s", "41"))
        await ws.send_str("41")
        c.log.items.append(("ws", "c2s", "1"))
        await ws.send_str("1")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        await ws.close()

        server = recorder.log
        await eventually(lambda: server.of("ws", "c2s")[-1:] == ["1"])
        for kind in ("poll", "ws"):
            for direction in ("c2s", "s2c"):
                client_side = [
                    m.encode() if isinstance(m, str) and kind == "poll" else m
                    for m in c.log.of(kind, direction)
                ]
                assert client_side == server.of(kind, direction), (kind, direction)

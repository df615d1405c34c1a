"""A raw Engine.IO client on aiohttp: sends packets exactly as given, on long-polling,
WebSocket, or polling upgraded to WebSocket (engine.io-protocol v4, "Upgrade"; v3 too).

It knows Engine.IO only: the handshake, heartbeats (it answers the server's PINGs on v4 and
pings on v3), the upgrade probe, payload encoding; Socket.IO packets pass through untouched,
which is what a replay needs (python-socketio's client would re-encode them).  Received
packets go to ``on_packet`` as the record format holds them (text packet, or binary data).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import aiohttp
from yarl import URL

from socketio_trace_proxy.tracking.recording.splitter import packet_data
from socketio_trace_proxy.tracking.traffic import Transport
from socketio_trace_proxy.tracking.wire.engineio import decode_ws_frame
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket
from socketio_trace_proxy.tracking.wire.payload import decode_payload

PacketHandler = Callable[[str | bytes, Transport], None]


class EngineIOError(Exception):
    """The server refused or broke the Engine.IO session."""


def encode_payload(packets: Sequence[str | bytes], eio: int) -> bytes:
    """A polling request body: v4 ``\\x1e``-separated, binary as ``b<base64>``; v3
    length-prefixed (``b64=1``: binary as ``b4<base64>``)."""
    parts: list[str] = []
    for p in packets:
        if isinstance(p, bytes):
            text = ("b" if eio != 3 else "b4") + base64.b64encode(p).decode("ascii")
        else:
            text = p
        if eio == 3:
            units = len(text.encode("utf-16-le")) // 2
            parts.append(f"{units}:{text}")
        else:
            parts.append(text)
    return ("" if eio == 3 else "\x1e").join(parts).encode("utf-8")


class EngineClient:
    """One Engine.IO session against ``url`` (the target's base URL plus the Socket.IO path)."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        eio: int,
        on_packet: PacketHandler,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._http = http
        self._url = URL(url)
        self._eio = eio
        self._on_packet = on_packet
        self._headers = dict(headers or {})
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s)
        self._timeout_s = timeout_s
        self.transport = Transport.POLLING
        self.sid: str | None = None
        self.closed = False
        self.close_reason: str | None = None
        self._ping_interval = 25.0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()
        self._polling = False
        self._poll_idle = asyncio.Event()
        self._poll_idle.set()
        self._wake: Callable[[], None] = lambda: None

    def on_close(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def _query(self, transport: Transport) -> dict[str, str]:
        q = {"EIO": str(self._eio), "transport": transport.value, "t": f"{time.time_ns():x}"}
        if self._eio == 3:
            q["b64"] = "1"
        if self.sid is not None:
            q["sid"] = self.sid
        return q

    # --- session ------------------------------------------------------------------------

    async def open(self, transport: Transport) -> str:
        """The handshake on ``transport``; returns the sid."""
        if transport is Transport.WEBSOCKET:
            ws = await self._connect_ws()
            msg = await ws.receive(self._timeout_s)
            first = self._ws_packet(msg)
            if first is None or not isinstance(first, str) or first[:1] != "0":
                raise EngineIOError(f"no OPEN packet on the WebSocket: {msg.data!r:.80}")
            self._handshake(first)
            self._ws = ws
            self.transport = Transport.WEBSOCKET
            self._spawn(self._ws_reader(ws))
        else:
            packets = await self._get()
            if not packets or not isinstance(packets[0], str) or packets[0][:1] != "0":
                raise EngineIOError(f"no OPEN packet in the handshake: {packets[:1]!r:.80}")
            self._handshake(packets[0])
            for p in packets[1:]:
                self._deliver(p, Transport.POLLING)
            self._polling = True
            self._spawn(self._poll_loop())
        if self._eio == 3:
            self._spawn(self._v3_pinger())
        assert self.sid is not None
        return self.sid

    def _handshake(self, packet: str) -> None:
        info = json.loads(packet[1:])
        self.sid = str(info["sid"])
        self._ping_interval = float(info.get("pingInterval", 25000)) / 1000.0
        self._on_packet(packet, self.transport)

    async def upgrade(self) -> None:
        """Polling -> WebSocket: probe, let the pending poll finish, then ``5``."""
        if self.transport is Transport.WEBSOCKET or self.closed:
            return
        ws = await self._connect_ws()
        await ws.send_str("2probe")
        msg = await ws.receive(self._timeout_s)
        if self._ws_packet(msg) != "3probe":
            await ws.close()
            raise EngineIOError(f"upgrade probe not answered: {msg.data!r:.80}")
        self._polling = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._poll_idle.wait(), self._timeout_s)
        async with self._send_lock:
            await ws.send_str("5")
            self._ws = ws
            self.transport = Transport.WEBSOCKET
        self._spawn(self._ws_reader(ws))

    async def send(self, packets: Sequence[str | bytes]) -> Transport:
        """Send ``packets`` on the current transport (one polling body); returns it."""
        async with self._send_lock:
            if self.closed:
                raise EngineIOError(f"the session is closed ({self.close_reason})")
            if self._ws is not None:
                for p in packets:
                    if isinstance(p, bytes):
                        await self._ws.send_bytes(p if self._eio != 3 else b"\x04" + p)
                    else:
                        await self._ws.send_str(p)
                return Transport.WEBSOCKET
            body = encode_payload(packets, self._eio)
            async with self._http.post(
                self._url,
                params=self._query(Transport.POLLING),
                data=body,
                headers={**self._headers, "Content-Type": "text/plain;charset=UTF-8"},
                timeout=self._timeout,
            ) as resp:
                await resp.read()
                if resp.status != 200:
                    self._closed(f"POST answered {resp.status}")
                    raise EngineIOError(f"POST answered {resp.status}")
            return Transport.POLLING

    async def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(EngineIOError, aiohttp.ClientError, OSError):
                await asyncio.wait_for(self.send(["1"]), self._timeout_s)
            self._closed("client closed")
        if self._ws is not None:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await self._ws.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- internals ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _closed(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self._polling = False
            self._wake()

    async def _connect_ws(self) -> aiohttp.ClientWebSocketResponse:
        url = self._url.with_scheme("wss" if self._url.scheme in ("https", "wss") else "ws")
        try:
            return await self._http.ws_connect(
                url,
                params=self._query(Transport.WEBSOCKET),
                headers=self._headers,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self._timeout_s),
                autoping=True,
                max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise EngineIOError(f"WebSocket refused: {exc.status}") from None

    async def _get(self) -> list[str | bytes]:
        async with self._http.get(
            self._url,
            params=self._query(Transport.POLLING),
            headers=self._headers,
            timeout=self._timeout,
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise EngineIOError(f"GET answered {resp.status}: {body[:80]!r}")
        out: list[str | bytes] = []
        for p in decode_payload(body, eio=self._eio):
            if isinstance(p, DecodeFailure):
                raise EngineIOError(f"undecodable polling payload: {p.reason}")
            out.append(packet_data(p))
        return out

    async def _poll_loop(self) -> None:
        try:
            while self._polling and not self.closed:
                self._poll_idle.clear()
                try:
                    packets = await self._get()
                finally:
                    self._poll_idle.set()
                for p in packets:
                    self._deliver(p, Transport.POLLING)
        except (EngineIOError, aiohttp.ClientError, OSError) as exc:
            if self._polling:
                self._closed(f"polling failed: {exc}")

    async def _ws_reader(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not self.closed:
            msg = await ws.receive()
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self._closed(f"WebSocket closed by the server ({ws.close_code})")
                return
            data = self._ws_packet(msg)
            if data is not None:
                self._deliver(data, Transport.WEBSOCKET)

    def _ws_packet(self, msg: aiohttp.WSMessage) -> str | bytes | None:
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return None
        p = decode_ws_frame(msg.data, eio=self._eio)
        return packet_data(p) if isinstance(p, EnginePacket) else None

    def _deliver(self, data: str | bytes, transport: Transport) -> None:
        if isinstance(data, str):
            kind = data[:1]
            if kind == "6":
                return  # NOOP
            if kind == "2" and self._eio != 3:
                self._spawn(self._pong(data[1:]))
            elif kind == "1":
                self._on_packet(data, transport)
                self._closed("CLOSE packet from the server")
                return
        self._on_packet(data, transport)

    async def _pong(self, data: str) -> None:
        with contextlib.suppress(EngineIOError, aiohttp.ClientError, OSError):
            await self.send(["3" + data])

    async def _v3_pinger(self) -> None:
        while not self.closed:
            await asyncio.sleep(self._ping_interval)
            with contextlib.suppress(EngineIOError, aiohttp.ClientError, OSError):
                await self.send(["2"])

"""python-socketio AsyncClient -> relay -> python-socketio AsyncServer (aiohttp and ASGI under
uvicorn), over polling only, websocket only and the default upgrade."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from socketio_trace_proxy.config.proxy import WebSocketRelay
from tests.proxy.peers import (
    RecordingASGI,
    RecordingObserver,
    Relay,
    build_sio,
    eventually,
    relay_in_front_of,
    runner_port,
    serve_aiohttp,
    uvicorn_serving,
)

TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": None}
BIG_TEXT = "é" * 10 + "x" * 900_000  # near the backend's 1 MB max_http_buffer_size
BIG_BINARY = bytes(range(256)) * 2700  # ~690 KB: base64 on polling stays under 1 MB


class Front:
    def __init__(self, relay: Relay, observer: RecordingObserver, recorder: RecordingASGI | None):
        self.relay = relay
        self.observer = observer
        self.recorder = recorder


@pytest.fixture(params=["aiohttp", "asgi"])
async def front(request: pytest.FixtureRequest) -> AsyncIterator[Front]:
    observer = RecordingObserver()
    if request.param == "aiohttp":
        runner = await serve_aiohttp(build_sio("aiohttp"))
        try:
            backend = f"http://127.0.0.1:{runner_port(runner)}"
            async with relay_in_front_of(backend, observer) as relay:
                yield Front(relay, observer, None)
        finally:
            await runner.cleanup()
    else:
        recorder = RecordingASGI(socketio.ASGIApp(build_sio("asgi")))
        async with (
            uvicorn_serving(recorder) as backend,
            relay_in_front_of(backend, observer) as relay,
        ):
            yield Front(relay, observer, recorder)


async def _connected(url: str, transport: str) -> tuple[socketio.AsyncClient, asyncio.Queue[Any]]:
    client = socketio.AsyncClient(reconnection=False)
    echoed: asyncio.Queue[Any] = asyncio.Queue()
    client.on("echoed", echoed.put_nowait)

    async def question(data: Any) -> Any:
        return {"answer": data}

    client.on("question", question)
    await client.connect(
        url, transports=TRANSPORTS[transport], namespaces=["/", "/admin"], wait_timeout=5
    )
    return client, echoed


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_events_acks_binary_namespaces_and_big_payloads(front: Front, transport: str) -> None:
    client, echoed = await _connected(front.relay.url, transport)
    try:
        if transport == "upgrade":
            await eventually(lambda: client.transport() == "websocket")
        else:
            assert client.transport() == transport

        # Event with ack, and the server's push.
        assert await client.call("echo", {"n": 1}, timeout=5) == {"n": 1}
        assert await asyncio.wait_for(echoed.get(), 5) == {"n": 1}
        # Server -> client request, answered by the client's ack.
        assert await client.call("ask_client", [1, "two"], timeout=5) == {"answer": [1, "two"]}
        # Binary attachments, nested, both ways.
        blob = {"bin": b"\x00\x01\xff" * 100, "nested": [b"a", {"b": b"\xfe"}]}
        assert await client.call("echo", blob, timeout=5) == blob
        # Second namespace.
        assert await client.call("echo", "x", namespace="/admin", timeout=5) == {"admin": "x"}
        # Payloads near the backend's maximum, text and binary.
        assert await client.call("echo", BIG_TEXT, timeout=10) == BIG_TEXT
        assert await asyncio.wait_for(echoed.get(), 5) == blob  # the blob's push
        assert await asyncio.wait_for(echoed.get(), 10) == BIG_TEXT
        assert await client.call("echo", BIG_BINARY, timeout=10) == BIG_BINARY
    finally:
        await client.disconnect()

    counters = front.relay.counters
    assert counters.observer_errors == 0
    assert counters.upstream_errors == 0
    if transport == "polling":
        assert counters.ws_opened == 0
        assert counters.polling_bytes_c2s > len(BIG_TEXT)
    else:
        assert counters.ws_opened == 1
        assert counters.ws_bytes_c2s > len(BIG_TEXT)
        assert counters.ws_bytes_s2c > len(BIG_TEXT)

    if front.recorder is not None:
        # What the server saw is exactly what the relay took from the client, and what the
        # relay handed the client is exactly what the server sent (per kind, in order).
        server, relayed = front.recorder.log, front.observer.log
        await eventually(lambda: len(server.of("ws", "s2c")) == len(relayed.of("ws", "s2c")))
        for kind in ("poll", "ws"):
            for direction in ("c2s", "s2c"):
                assert relayed.of(kind, direction) == server.of(kind, direction), (
                    kind,
                    direction,
                )
        carried = server.of("ws" if transport != "polling" else "poll", "c2s")
        marker = b"x" * 900_000
        assert any(marker in (m if isinstance(m, bytes) else m.encode()) for m in carried)


async def test_plain_relay_without_observer_still_carries_everything() -> None:
    runner = await serve_aiohttp(build_sio("aiohttp"))
    backend = f"http://127.0.0.1:{runner_port(runner)}"
    try:
        async with relay_in_front_of(backend, None) as relay:
            for transport in TRANSPORTS:
                client, _ = await _connected(relay.url, transport)
                try:
                    assert await client.call("echo", [b"\x01", "t"], timeout=5) == [b"\x01", "t"]
                finally:
                    await client.disconnect()
            assert relay.counters.observer_errors == 0
            assert relay.counters.ws_opened == 2
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["websocket", "upgrade"])
async def test_terminating_relay_mode_with_real_peers(transport: str) -> None:
    """``websocket_relay: terminate`` (one WebSocket per leg) carries the same traffic."""
    observer = RecordingObserver()
    runner = await serve_aiohttp(build_sio("aiohttp"))
    backend = f"http://127.0.0.1:{runner_port(runner)}"
    try:
        async with relay_in_front_of(
            backend, observer, websocket_relay=WebSocketRelay.TERMINATE
        ) as relay:
            client, echoed = await _connected(relay.url, transport)
            try:
                blob = {"bin": b"\x00\xff" * 50, "text": "é"}
                assert await client.call("echo", blob, timeout=5) == blob
                assert await asyncio.wait_for(echoed.get(), 5) == blob
                assert await client.call("ask_client", 7, timeout=5) == {"answer": 7}
            finally:
                await client.disconnect()
            assert relay.counters.ws_opened == 1
            assert relay.counters.observer_errors == 0
            assert any("echo" in str(m) for m in observer.log.of("ws", "c2s"))
    finally:
        await runner.cleanup()

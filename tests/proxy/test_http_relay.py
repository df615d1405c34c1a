"""Generic HTTP forwarding (any path) and bad input: headers, cookies, raw query, bodies
streamed both ways, compressed bodies untouched, upstream down, client vanishing mid-request."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import socketio
from aiohttp import web
from yarl import URL

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.runtime import Tracker
from tests.proxy.peers import (
    build_sio,
    eventually,
    free_port,
    relay_in_front_of,
    runner_port,
    serve_aiohttp,
)

GZIPPED = gzip.compress(b'{"compressed": true}' * 200)
BIG = bytes(range(256)) * 20_000  # 5 MB


@dataclass
class Backend:
    url: str
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    state = Backend(url="")

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = web.json_response(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body_len": len(body),
                "body_sha": hashlib.sha256(body).hexdigest(),
            }
        )
        resp.headers.add("Set-Cookie", "a=1; Path=/")
        resp.headers.add("Set-Cookie", "b=2; HttpOnly")
        resp.headers["X-Upstream"] = "yes"
        return resp

    async def compressed(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=GZIPPED, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(BIG), 100_000):
            await resp.write(BIG[i : i + 100_000])
        await resp.write_eof()
        return resp

    async def upload(request: web.Request) -> web.StreamResponse:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"size": size, "sha": digest.hexdigest()})

    async def hang(request: web.Request) -> web.StreamResponse:
        state.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state.cancelled.set()
            raise
        return web.Response(text="late")

    app = web.Application(client_max_size=len(BIG) * 2)
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/socket.io/echo", echo)
    app.router.add_get("/gzip", compressed)
    app.router.add_get("/stream", stream)
    app.router.add_post("/upload", upload)
    app.router.add_get("/hang", hang)
    app.router.add_get("/socket.io/", hang)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner_port(runner)}"
    try:
        yield state
    finally:
        await runner.cleanup()


def _client() -> aiohttp.ClientSession:
    # Send only what each test sets, and see bodies exactly as the relay sent them.
    return aiohttp.ClientSession(
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


# "/socket.io/echo" goes through the Socket.IO path's own upstream client (proxy/upstream.py).
@pytest.mark.parametrize("path", ["/echo", "/socket.io/echo"])
async def test_headers_cookies_query_and_body(backend: Backend, path: str) -> None:
    async with relay_in_front_of(backend.url) as relay, _client() as client:
        raw = path + "?a=%2F&b=c%20d&a=2&e=%E2%9C%93"
        headers = [
            ("Authorization", "Bearer t0k3n"),
            ("Cookie", "sid=abc; other=1"),
            ("Origin", "http://front.example"),
            ("X-Multi", "1"),
            ("X-Multi", "2"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "secret-hop"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("X-Forwarded-For", "10.0.0.1"),
        ]
        url = URL(relay.url + raw, encoded=True)
        async with client.post(url, data=b"payload", headers=headers) as resp:
            assert resp.status == 200
            seen = await resp.json()
            assert resp.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
            assert resp.headers["X-Upstream"] == "yes"
    got: dict[str, list[str]] = {}
    for k, v in seen["headers"]:
        got.setdefault(k.lower(), []).append(v)
    assert seen["raw_path"] == raw
    assert seen["method"] == "POST"
    assert seen["body_len"] == len(b"payload")
    assert got["authorization"] == ["Bearer t0k3n"]
    assert got["cookie"] == ["sid=abc; other=1"]
    assert got["origin"] == ["http://front.example"]
    assert got["x-multi"] == ["1", "2"]
    assert got["host"] == [relay.url.removeprefix("http://")]  # kept as the client sent it
    assert got["x-forwarded-for"] == ["10.0.0.1, 127.0.0.1"]
    assert got["x-forwarded-proto"] == ["http"]
    assert got["x-forwarded-host"] == [relay.url.removeprefix("http://")]
    for hop in ("x-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert hop not in got, hop
    for added in ("accept-encoding", "user-agent", "accept"):
        assert added not in got, added  # nothing the client did not send


async def test_forwarded_headers_can_be_switched_off(backend: Backend) -> None:
    async with (
        relay_in_front_of(backend.url, forwarded_headers=False) as relay,
        _client() as client,
        client.get(relay.url + "/echo") as resp,
    ):
        names = {k.lower() for k, _ in (await resp.json())["headers"]}
    assert not {n for n in names if n.startswith("x-forwarded")}


async def test_bodies_stream_both_ways_and_compressed_bytes_pass_untouched(
    backend: Backend,
) -> None:
    async with relay_in_front_of(backend.url) as relay, _client() as client:
        async with client.get(relay.url + "/gzip", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert await resp.read() == GZIPPED
        async with client.get(relay.url + "/stream") as resp:
            assert await resp.read() == BIG

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(BIG), 65_536):
                yield BIG[i : i + 65_536]

        async with client.post(relay.url + "/upload", data=chunks()) as resp:
            assert await resp.json() == {"size": len(BIG), "sha": hashlib.sha256(BIG).hexdigest()}
    # On the Socket.IO path bodies are read whole, bounded by max_message_size.
    async with (
        relay_in_front_of(backend.url, max_message_size=len(BIG) - 1) as relay,
        _client() as client,
    ):
        async with client.post(relay.url + "/socket.io/?EIO=4", data=BIG) as resp:
            assert resp.status == 413
        async with client.post(relay.url + "/upload", data=BIG) as resp:
            assert (await resp.json())["size"] == len(BIG)  # other paths are not bounded
        assert relay.counters.rejected_too_large == 1


async def test_upstream_down_gives_502_and_the_relay_stays_up(backend: Backend) -> None:
    async with (
        relay_in_front_of(f"http://127.0.0.1:{free_port()}", connect_timeout_s=2) as relay,
        _client() as client,
    ):
        for path in ("/echo", "/socket.io/?EIO=4&transport=polling", "/echo"):
            async with client.get(relay.url + path) as resp:
                assert resp.status == 502
                assert "upstream unreachable" in await resp.text()
        assert relay.counters.upstream_errors == 3


async def test_in_flight_long_polls_are_bounded(backend: Backend) -> None:
    poll = "/socket.io/?EIO=4&transport=polling&sid=x"
    async with (
        relay_in_front_of(backend.url, max_upstream_connections=1) as relay,
        _client() as client,
    ):
        held = asyncio.ensure_future(client.get(relay.url + poll))
        await asyncio.wait_for(backend.started.wait(), 5)
        async with client.get(relay.url + poll) as resp:
            assert resp.status == 503
            assert "too many upstream exchanges" in await resp.text()
        assert relay.counters.refused_busy == 1
        held.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await held
        await asyncio.wait_for(backend.cancelled.wait(), 5)
        await eventually(lambda: relay.counters.client_disconnects == 1)
        # The slot is free again: the next long-poll is admitted and held, not refused.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get(relay.url + poll), 0.5)
        assert relay.counters.refused_busy == 1


@pytest.mark.parametrize("path", ["/hang", "/socket.io/?EIO=4&transport=polling&sid=x"])
async def test_client_vanishing_mid_request_cancels_the_upstream_request(
    backend: Backend, path: str
) -> None:
    async with relay_in_front_of(backend.url) as relay:
        host_port = relay.url.removeprefix("http://")
        _reader, writer = await asyncio.open_connection(*host_port.split(":"))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode())
        await writer.drain()
        await asyncio.wait_for(backend.started.wait(), 5)
        writer.close()  # the client vanishes while the upstream is still working
        await asyncio.wait_for(backend.cancelled.wait(), 5)
        await eventually(lambda: relay.counters.client_disconnects == 1)
        async with _client() as client, client.get(relay.url + "/echo") as resp:
            assert resp.status == 200  # traffic keeps flowing


async def test_invalid_sid_and_malformed_frames_pass_through_and_are_counted() -> None:
    runner = await serve_aiohttp(build_sio("aiohttp"))
    backend = f"http://127.0.0.1:{runner_port(runner)}"
    tracker = Tracker(TrackingSettings(), [])
    await tracker.start()
    try:
        async with relay_in_front_of(backend, tracker) as relay, _client() as client:
            bogus = "/socket.io/?EIO=4&transport=polling&sid=bogus"
            async with client.get(backend + bogus) as direct:
                direct_status, direct_body = direct.status, await direct.read()
            async with client.get(relay.url + bogus) as resp:
                assert (resp.status, await resp.read()) == (direct_status, direct_body)
            assert direct_status == 400

            ws = await client.ws_connect(relay.url + "/socket.io/?EIO=4&transport=websocket")
            opened = await asyncio.wait_for(ws.receive(), 5)
            assert opened.data.startswith("0{")
            await ws.send_str("4zz{not socket.io")  # a MESSAGE that is not a Socket.IO packet
            await ws.send_bytes(b"\xff\x00garbage")  # an attachment nobody announced
            await ws.send_str("")
            await ws.close()

            # Traffic keeps flowing for a well-behaved client.
            sio = socketio.AsyncClient(reconnection=False)
            await sio.connect(relay.url, transports=["websocket"], wait_timeout=5)
            assert await sio.call("echo", "still fine", timeout=5) == "still fine"
            await sio.disconnect()
        assert relay.counters.observer_errors == 0
        metrics = tracker.get_metrics()
        assert metrics.decode_errors >= 2
        assert not [k for k in metrics.extra if k.startswith("fault:")]
        assert metrics.extra["sessions.internal_errors"] == 0
    finally:
        await tracker.stop(1.0)
        await runner.cleanup()

"""One test per touch of aiohttp's private or undocumented surface (:mod:`proxy.aiohttp_compat`):
each fails loudly on an aiohttp that changed what the relay relies on."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http_writer import StreamWriter
from aiohttp.web_protocol import RequestHandler

from socketio_trace_proxy.proxy import aiohttp_compat
from socketio_trace_proxy.proxy.aiohttp_compat import (
    client_ws_response,
    fast_websocket_mask,
    reset_output_size,
    runner_kwargs,
    take_over_client,
)
from tests.proxy.peers import aiohttp_serving


class _Reader:
    def __init__(self) -> None:
        self.data = b""
        self.eof = asyncio.Event()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data += data
        return False, b""

    def feed_eof(self) -> None:
        self.eof.set()


async def test_take_over_client_gets_the_bytes_after_the_response() -> None:
    """``RequestHandler.set_parser`` + ``keep_alive``: what follows the head reaches the
    reader, not the HTTP parser."""
    reader = _Reader()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse(status=101, headers={"Upgrade": "x", "Connection": "Upgrade"})
        await response.prepare(request)
        take_over_client(request, reader)
        await asyncio.wait_for(reader.eof.wait(), 5)
        return response

    server = web.Server(handler)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
        await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        w.write(b"GET /not-http HTTP/1.1\r\n\r\n")
        await asyncio.sleep(0.1)
        w.close()
        await asyncio.wait_for(reader.eof.wait(), 5)
    finally:
        await runner.cleanup()
    assert reader.data == b"GET /not-http HTTP/1.1\r\n\r\n"
    assert "parser" in inspect.signature(RequestHandler.set_parser).parameters


async def test_reset_output_size_resets_the_writers_count() -> None:
    class _Protocol:
        transport = None

    writer = StreamWriter(_Protocol(), asyncio.get_running_loop())  # type: ignore[arg-type]
    writer.output_size = 42
    reset_output_size(writer)
    assert writer.output_size == 0


async def test_runner_kwargs_are_what_the_runner_was_built_with() -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    runner = web.ServerRunner(web.Server(handler), keepalive_timeout=3.0)
    assert runner_kwargs(runner) == {"keepalive_timeout": 3.0}
    # the hooks the relay's runner overrides are still BaseRunner's abstract ones
    assert {"_make_server", "_cleanup_server", "shutdown"} <= web.BaseRunner.__abstractmethods__
    assert "logger" in inspect.signature(RequestHandler).parameters


def test_fast_websocket_mask_is_there_and_masks() -> None:
    mask = fast_websocket_mask()
    assert mask is not None, "aiohttp._websocket.helpers.websocket_mask moved"
    data = bytearray(b"hello, world")
    mask(b"\x01\x02\x03\x04", data)
    key = b"\x01\x02\x03\x04"
    assert bytes(data) == bytes(b ^ key[i % 4] for i, b in enumerate(b"hello, world"))


def test_no_fast_mask_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(aiohttp_compat, "fast_websocket_mask", lambda: None)
    monkeypatch.setattr(aiohttp_compat, "_told_about_mask", False)
    with caplog.at_level(logging.WARNING):
        assert not aiohttp_compat.log_if_no_fast_mask()
        assert not aiohttp_compat.log_if_no_fast_mask()
    assert len([r for r in caplog.records if "WebSocket mask" in r.getMessage()]) == 1


async def test_client_ws_response_is_the_http_response_under_it() -> None:
    async def ws_handler(request: web.Request) -> web.WebSocketResponse[Any]:
        ws: web.WebSocketResponse[Any] = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    async with aiohttp_serving(app) as url, aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url + "/ws")
        response = client_ws_response(ws)
        assert isinstance(response, aiohttp.ClientResponse)
        assert response.status == 101
        response.close()
        await ws.close()

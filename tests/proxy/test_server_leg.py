"""What the relay's server leg answers itself, byte for byte as when it ran as an aiohttp
``Application`` with one catch-all route ``/{tail:.*}``: ``Expect`` (the router's default
expect handler), request targets that route did not match (404), and its lifecycle (a
pending long-poll is answered when shutdown starts, not held for ``shutdown_timeout``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE

from tests.proxy.peers import aiohttp_serving, relay_in_front_of

SIO = b"/socket.io/?EIO=4&transport=polling&sid=s"
TAIL = f"Date: *\r\nServer: {SERVER_SOFTWARE}\r\n".encode()  # the upstream's (aiohttp)
OWN = b"Date: *\r\n"  # the proxy's own answers carry a Date, and no Server
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 14\r\n" + OWN + b"Connection: close\r\n\r\n404: Not Found"
)


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    """Echoes what reached it: method, target, body length and any ``Expect``."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        expect = request.headers.get("Expect")
        return web.Response(text=f"{request.method} {request.raw_path} {len(body)} {expect}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with aiohttp_serving(app) as url:
        yield url


def _port(url: str) -> int:
    return int(url.rpartition(":")[2])


async def _read(reader: asyncio.StreamReader, limit_s: float) -> bytes:
    """What arrives within ``limit_s`` (or until EOF), with any Date value as ``*``."""
    out = b""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while (left := end - loop.time()) > 0:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            break
        if not chunk:
            break
        out += chunk
    return re.sub(rb"Date: [^\r]*", b"Date: *", out)


async def _send(url: str, head: bytes, body: bytes = b"") -> tuple[bytes, bytes]:
    """Sends ``head``, reads what comes before the body is sent, sends ``body``, reads the
    rest (the request asks for ``Connection: close``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    try:
        writer.write(head)
        before = await _read(reader, 0.3)
        writer.write(body)
        return before, await _read(reader, 5.0)
    finally:
        writer.close()


def _ok(text: bytes, version: bytes = b"1.1") -> bytes:
    close = b"Connection: close\r\n" if version == b"1.1" else b""
    return (
        b"HTTP/" + version + b" 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n" % len(text) + TAIL + close + b"\r\n" + text
    )


@pytest.mark.parametrize("path", [b"/upload", SIO], ids=["streamed", "socketio"])
@pytest.mark.parametrize("expect", [b"100-continue", b"100-Continue"])
async def test_expect_100_continue_gets_the_interim_response_before_the_body(
    upstream: str, path: bytes, expect: bytes
) -> None:
    async with relay_in_front_of(upstream) as relay:
        head = b"POST %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: %s\r\n" % (
            path,
            expect,
        )
        before, after = await _send(relay.url, head + b"Content-Length: 5\r\n\r\n", b"hello")
        assert relay.counters.http_requests == 1
    assert before == CONTINUE
    # The expectation is the relay's to meet: the upstream gets the body, not the header.
    assert after == _ok(b"POST %s 5 None" % path)


async def test_expect_on_http_1_0_is_ignored(upstream: str) -> None:
    async with relay_in_front_of(upstream) as relay:
        head = b"POST /upload HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\n"
        before, after = await _send(relay.url, head + b"Content-Length: 5\r\n\r\n", b"hello")
    assert before == b""
    assert after == _ok(b"POST /upload 5 None", b"1.0")


@pytest.mark.parametrize("path", [b"/upload", SIO], ids=["streamed", "socketio"])
async def test_an_unknown_expectation_is_refused_with_417_before_relaying(
    upstream: str, path: bytes
) -> None:
    async with relay_in_front_of(upstream) as relay:
        head = b"POST %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: tea\r\n" % path
        before, after = await _send(relay.url, head + b"Content-Length: 5\r\n\r\n", b"hello")
        assert relay.counters.http_requests == 0
    assert before == (
        b"HTTP/1.1 417 Expectation Failed\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 19\r\n" + OWN + b"Connection: close\r\n\r\nUnknown Expect: tea"
    )
    assert after == b""


async def test_100_continue_then_413_for_a_socketio_body_over_max_message_size(
    upstream: str,
) -> None:
    async with relay_in_front_of(upstream, max_message_size=1000) as relay:
        head = b"POST %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\n"
        before, after = await _send(
            relay.url, head % SIO + b"Content-Length: 2000\r\n\r\n", b"x" * 2000
        )
        assert relay.counters.rejected_too_large == 1
    assert before == CONTINUE
    assert after == (
        b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 18\r\n" + OWN + b"Connection: close\r\n\r\nPayload Too Large\n"
    )


@pytest.mark.parametrize(
    "head",
    [
        b"OPTIONS * HTTP/1.1\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\n",
        b"GET /a%0Ab HTTP/1.1\r\n",  # the route's ".*" stops at a newline
        b"GET /socket.io/%0A HTTP/1.1\r\n",
    ],
    ids=["asterisk", "authority", "newline", "socketio-newline"],
)
async def test_targets_the_catch_all_route_did_not_match_get_404(
    upstream: str, head: bytes
) -> None:
    async with relay_in_front_of(upstream) as relay:
        before, _ = await _send(relay.url, head + b"Host: h\r\nConnection: close\r\n\r\n")
        assert relay.counters.http_requests == 0
    assert before == NOT_FOUND


async def test_a_404_still_answers_expect_first(upstream: str) -> None:
    async with relay_in_front_of(upstream) as relay:
        head = b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n"
        before, _ = await _send(relay.url, head)
    assert before == CONTINUE + NOT_FOUND


async def test_other_targets_are_relayed(upstream: str) -> None:
    async with relay_in_front_of(upstream) as relay:
        for target in (b"/a%0Db", b"/a%2Fb", b"//x"):
            got, _ = await _send(
                relay.url, b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % target
            )
            assert got == _ok(b"GET %s 0 None" % target)


@pytest.mark.parametrize("path", [b"/x?a=1", SIO], ids=["streamed", "socketio"])
async def test_an_absolute_form_target_reaches_the_upstream_as_its_path(
    upstream: str, path: bytes
) -> None:
    """RFC 9112 3.2.2: servers accept ``GET http://host/path``; the upstream is fixed by
    configuration, so it gets the path and query only (never the client's authority)."""
    async with relay_in_front_of(upstream) as relay:
        head = b"GET http://elsewhere.example%s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        got, _ = await _send(relay.url, head % path)
    assert got == _ok(b"GET %s 0 None" % path)


async def test_shutdown_answers_a_pending_long_poll_at_once() -> None:
    """Cleanup runs the relay's shutdown (closing the upstream pool answers pending polls
    with 502) before it waits up to ``shutdown_timeout`` (2 s here) for the handlers."""
    arrived = asyncio.Event()

    class Silent(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            arrived.set()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Silent, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with relay_in_front_of(url) as relay:
            reader, writer = await asyncio.open_connection("127.0.0.1", _port(relay.url))
            writer.write(b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % SIO)
            await asyncio.wait_for(arrived.wait(), 5)
            started = loop.time()
        took = loop.time() - started
        response = await _read(reader, 1.0)
        writer.close()
    finally:
        server.close()
    assert response.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert took < 1.0

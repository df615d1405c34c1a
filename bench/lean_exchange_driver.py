"""Drive N long-polling exchanges through the relay's lean leg in one process, for callgrind.

The relay (tracking off, ``config`` defaults, lean server leg) runs in this process on
uvloop beside a raw upstream on httptools that answers every request as python-socketio on
aiohttp does (``Content-Type``, ``Content-Length``, ``Date``, ``Server``) and one raw
keep-alive client that sends node ``socket.io-client``-like polling requests, a GET and a
POST in turn, one at a time.  Everything is deterministic but the kernel's scheduling, so
instruction counts repeat; the relay's cost per exchange is the difference of two runs::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/lean_exchange_driver.py 500
    valgrind --tool=callgrind ... bench/lean_exchange_driver.py 2500
    # (Ir(2500) - Ir(500)) / 2000 = instructions per exchange (client and upstream included;
    # --direct: theirs alone)

``--upgrade`` instead runs N polling -> WebSocket-style upgrades (101 and a tunnelled frame).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import cast

import httptools
import uvloop
from aiohttp import web

from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.proxy.relay import RelayServer

SID = b"Xq2eK1aA9bC3dE4fAAAB"
GET = (
    b"GET /socket.io/?EIO=4&transport=polling&t=P%d&sid=" + SID + b" HTTP/1.1\r\n"
    b"Accept: */*\r\n"
    b"Host: 127.0.0.1:8000\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
BODY = b'42["echo","' + b"x" * 80 + b'"]'
POST = (
    b"POST /socket.io/?EIO=4&transport=polling&t=P%d&sid=" + SID + b" HTTP/1.1\r\n"
    b"Accept: */*\r\n"
    b"Content-type: text/plain;charset=UTF-8\r\n"
    b"Host: 127.0.0.1:8000\r\n"
    b"Connection: keep-alive\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
) + BODY
REPLY_BODY = b'43["echo","' + b"x" * 80 + b'"]'
REPLY = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"Content-Length: %d\r\n"
    b"Date: Thu, 03 Dec 2026 18:00:00 GMT\r\n"
    b"Server: Python/3.11 aiohttp/3.10.11\r\n\r\n" % len(REPLY_BODY)
) + REPLY_BODY


class Upstream(asyncio.Protocol):
    """Answers each request with :data:`REPLY`."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._transport.write(REPLY)


class Client(asyncio.Protocol):
    """Sends ``count`` requests one after the other, each once the last reply is in."""

    def __init__(self, count: int, done: asyncio.Future[None]) -> None:
        self._left = count
        self._done = done
        self._want = 0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._next()

    def _next(self) -> None:
        assert self._transport is not None
        if self._left == 0:
            self._done.set_result(None)
            return
        self._left -= 1
        self._want = len(REPLY)
        self._transport.write((GET if self._left % 2 else POST) % self._left)

    def data_received(self, data: bytes) -> None:
        self._want -= len(data)
        if self._want == 0:
            self._next()
        elif self._want < 0:
            raise AssertionError(data)


async def main(count: int, direct: bool = False) -> None:
    loop = asyncio.get_running_loop()
    upstream = await loop.create_server(Upstream, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    relay = RelayServer(ProxySettings(upstream=f"http://127.0.0.1:{port}"), None)
    runner = relay.runner(shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    relay_port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if direct:  # the driver's own cost: the client straight to the upstream
        relay_port = port
    # Warm up: the pool's connection, the code paths.
    done: asyncio.Future[None] = loop.create_future()
    await loop.create_connection(lambda: Client(20, done), "127.0.0.1", relay_port)
    await done
    done = loop.create_future()
    start = time.perf_counter()
    await loop.create_connection(lambda: Client(count, done), "127.0.0.1", relay_port)
    await done
    elapsed = time.perf_counter() - start
    print(f"{count} exchanges, {elapsed / max(count, 1) * 1e6:.1f} us each (wall)")
    await runner.cleanup()
    upstream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--direct", action="store_true", help="no relay: the driver's own cost")
    args = parser.parse_args()
    uvloop.run(main(args.count, args.direct))

"""The obvious aiohttp reverse proxy: the reference issue 2's benchmark compares our relay with.

Per request ``ClientSession.request`` + ``await resp.read()`` (bodies buffered, not streamed),
WebSocket upgrades relayed by two pump tasks. No decoding, no tracking. Run as
``python bench/naive_relay.py --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Mapping

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
WS_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)
MAX_MESSAGE = 16 * 1024 * 1024


def _end_to_end(headers: Mapping[str, str], drop: frozenset[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in drop:
            out.add(key, value)
    return out


class NaiveRelay:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            auto_decompress=False,
            # Send only the client's headers: aiohttp would add Accept-Encoding and the backend
            # would then compress polling replies for a client that never asked for it.
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    async def stop(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        url = self.upstream + request.rel_url.raw_path_qs
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.websocket(request, url)
        headers = _end_to_end(request.headers, HOP_BY_HOP)
        headers["Host"] = request.host
        body = await request.read()
        try:
            async with self.session.request(
                request.method, url, headers=headers, data=body or None, allow_redirects=False
            ) as resp:
                payload = await resp.read()
                out = _end_to_end(resp.headers, HOP_BY_HOP)
                return web.Response(status=resp.status, headers=out, body=payload)
        except aiohttp.ClientError as exc:
            return web.Response(status=502, text=f"upstream error: {type(exc).__name__}")

    async def websocket(self, request: web.Request, url: str) -> web.StreamResponse:
        assert self.session is not None
        headers = _end_to_end(request.headers, HOP_BY_HOP | WS_HANDSHAKE)
        protocols = tuple(
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        )
        try:
            upstream = await self.session.ws_connect(
                url, headers=headers, protocols=protocols, max_msg_size=MAX_MESSAGE
            )
        except (aiohttp.ClientError, aiohttp.WSServerHandshakeError) as exc:
            return web.Response(status=502, text=f"upstream error: {type(exc).__name__}")
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            max_msg_size=MAX_MESSAGE,
        )
        await client.prepare(request)

        async def pump(
            src: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
            dst: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        ) -> None:
            async for msg in src:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                else:
                    break
            await dst.close()

        tasks = [
            asyncio.create_task(pump(client, upstream)),
            asyncio.create_task(pump(upstream, client)),
        ]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await upstream.close()
        return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    if not args.no_uvloop:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    host, _, port = args.listen.rpartition(":")
    relay = NaiveRelay(args.upstream)
    app = web.Application(client_max_size=MAX_MESSAGE)
    app.on_startup.append(relay.start)
    app.on_cleanup.append(relay.stop)
    app.router.add_route("*", "/{tail:.*}", relay.handle)
    web.run_app(app, host=host, port=int(port), print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()

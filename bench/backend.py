"""Benchmark backend: python-socketio AsyncServer on aiohttp; its ``echo`` event acks its argument.

Run as ``python bench/backend.py --port PORT`` (its own process, started by relay_bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import socketio
import uvloop
from aiohttp import web


def make_app(max_buffer: int) -> web.Application:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        max_http_buffer_size=max_buffer,
        cors_allowed_origins="*",
    )

    @sio.on("echo")  # type: ignore[untyped-decorator,unused-ignore]
    async def echo(sid: str, data: Any) -> Any:
        return data

    app = web.Application(client_max_size=max_buffer)
    sio.attach(app)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-buffer", type=int, default=16 * 1024 * 1024)
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        make_app(args.max_buffer),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        backlog=4096,
    )


if __name__ == "__main__":
    main()

"""A small AetherTerm-like Socket.IO backend (python-socketio on aiohttp) for the demo and tests.

Events, modelled on ../shared/recordings:
  ``create_terminal``  -> ``terminal_ready`` {session, ...} (empty/missing session: a new id)
  ``terminal_input``   -> ``terminal_output`` {session, data} (echo)
  ``get_block_status`` -> answered via ack, and also ``block_status_response``
  ``ping_backend``     -> answered via ack
  ``ai_get_info``      -> never answered (a request that times out at the proxy)

Run: ``python -m examples.demo_backend --port 5000``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from typing import Any

import socketio
from aiohttp import web

log = logging.getLogger(__name__)


class _ExactReader:
    """``read(n)`` that returns exactly ``n`` bytes (or up to EOF)."""

    __slots__ = ("_content",)

    def __init__(self, content: Any) -> None:
        self._content = content

    async def read(self, n: int = -1) -> bytes:
        if n < 0:
            data: bytes = await self._content.read()
            return data
        chunks: list[bytes] = []
        while n > 0:
            chunk: bytes = await self._content.read(n)
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)


def exact_polling_reads(sio: socketio.AsyncServer) -> None:
    """Work around python-engineio's aiohttp driver reading polling POST bodies with one
    ``StreamReader.read(length)``, which returns only what has arrived so far: large bodies
    get truncated (python-socketio issue #368).  Affects aiohttp-served servers only."""
    driver = dict(sio.eio._async)
    translate = driver["translate_request"]

    def translate_request(request: Any) -> dict[str, Any]:
        environ: dict[str, Any] = translate(request)
        environ["wsgi.input"] = _ExactReader(request.content)
        return environ

    driver["translate_request"] = translate_request
    sio.eio._async = driver


def create_server(**server_kwargs: Any) -> socketio.AsyncServer:
    """The demo AsyncServer with all handlers registered (not yet attached to an app)."""
    options: dict[str, Any] = {
        "async_mode": "aiohttp",
        "cors_allowed_origins": "*",
        "max_http_buffer_size": 1_000_000,
    }
    options.update(server_kwargs)
    sio = socketio.AsyncServer(**options)
    if sio.async_mode == "aiohttp":
        exact_polling_reads(sio)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        log.info("connect sid=%s", sid)

    async def disconnect(sid: str, *args: Any) -> None:
        log.info("disconnect sid=%s", sid)

    async def create_terminal(sid: str, data: Any = None) -> None:
        params = data if isinstance(data, dict) else {}
        session = params.get("session") or f"term-{uuid.uuid4().hex[:12]}"
        await sio.emit(
            "terminal_ready",
            {"session": session, "status": "ready", "cols": params.get("cols", 80)},
            to=sid,
        )

    async def terminal_input(sid: str, data: Any = None) -> None:
        params = data if isinstance(data, dict) else {}
        await sio.emit(
            "terminal_output",
            {"session": params.get("session"), "data": params.get("data", "")},
            to=sid,
        )

    async def get_block_status(sid: str, data: Any = None) -> dict[str, Any]:
        params = data if isinstance(data, dict) else {}
        status = {"block_id": params.get("block_id"), "status": "completed", "exit_code": 0}
        await sio.emit("block_status_response", status, to=sid)
        return status

    async def ping_backend(sid: str, data: Any = None) -> dict[str, Any]:
        return {"pong": True, "echo": data}

    async def ai_get_info(sid: str, data: Any = None) -> None:
        return None  # deliberately never answered (no ack, no reply event)

    for handler in (
        connect,
        disconnect,
        create_terminal,
        terminal_input,
        get_block_status,
        ping_backend,
        ai_get_info,
    ):
        sio.on(handler.__name__, handler)
    return sio


def create_app(**server_kwargs: Any) -> web.Application:
    sio = create_server(**server_kwargs)
    app = web.Application()
    sio.attach(app)
    return app


async def serve(host: str, port: int, ready: asyncio.Event | None = None) -> web.AppRunner:
    """Start the demo backend on ``host:port``; returns the runner (call ``cleanup()``)."""
    runner = web.AppRunner(create_app(), handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    if ready is not None:
        ready.set()
    return runner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    web.run_app(create_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()

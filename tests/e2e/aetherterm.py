"""An AetherTerm-like Socket.IO backend for the end-to-end tests (python-socketio on aiohttp).

It answers the way AetherTerm's server does in ../shared/recordings, plus the knobs the tests
need to make every outcome happen on purpose:

``create_terminal`` {session, fail?, reply_after_upgrade?}
    -> ``terminal_ready`` {session (a new id when empty), status}; with ``fail`` ->
    ``terminal_error`` {error} (no ``session``, as in the recordings).  With
    ``reply_after_upgrade`` the reply waits until the client's transport is WebSocket, so a
    request sent by polling is answered over the WebSocket.
``workspace:tab:{tab}:pane:{pane}:terminal:create`` {terminalId}
    -> ``workspace:tab:{tab}:pane:{pane}:terminal:created`` {terminalId, status}
``ai_chat_message`` {message_id, chunks} -> ``chunks`` x ``ai_chat_chunk`` -> ``ai_chat_complete``
``ai_get_info`` -> never answered
``wrapper_session_sync`` {timestamp, delay} -> after ``delay`` s ``wrapper_session_sync_response``
``echo`` -> ack with the data; ``ask_client`` -> the server calls the client's ``question``
(server-initiated ack) and acks the client with its answer.

A ``slow_upgrade=<seconds>`` query parameter delays the WebSocket upgrade request before the
engine sees it, so that a client's first emits are certain to travel by polling.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web

from socketio_trace_proxy.examples.demo_backend import exact_polling_reads

UPGRADE_WAIT_S = 10.0  # reply_after_upgrade gives up waiting after this long
PING_INTERVAL_S = 1.0


def _params(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}


def create_server() -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins="*",
        max_http_buffer_size=1_000_000,
        # python-engineio's server does not end a pending long-poll GET when the client
        # closes, and its polling client's disconnect() waits for that GET: it returns after
        # ping_interval + ping_timeout, 25 + 20 s by default.
        ping_interval=PING_INTERVAL_S,
        ping_timeout=PING_INTERVAL_S,
    )
    exact_polling_reads(sio)

    async def create_terminal(sid: str, data: Any = None) -> None:
        params = _params(data)
        if params.get("reply_after_upgrade"):
            for _ in range(int(UPGRADE_WAIT_S / 0.02)):
                if sio.transport(sid) == "websocket":
                    break
                await asyncio.sleep(0.02)
        if params.get("fail"):
            await sio.emit("terminal_error", {"error": "cannot spawn a shell"}, to=sid)
            return
        session = params.get("session") or f"term-{uuid.uuid4().hex[:12]}"
        await sio.emit("terminal_ready", {"session": session, "status": "ready"}, to=sid)

    async def ai_chat_message(sid: str, data: Any = None) -> None:
        params = _params(data)
        message_id = params.get("message_id")
        for i in range(int(params.get("chunks", 2))):
            await sio.emit("ai_chat_chunk", {"message_id": message_id, "chunk": f"c{i}"}, to=sid)
        await sio.emit("ai_chat_complete", {"message_id": message_id, "status": "done"}, to=sid)

    async def ai_get_info(sid: str, data: Any = None) -> None:
        return None  # AetherTerm often never answers: the proxy must time it out

    async def wrapper_session_sync(sid: str, data: Any = None) -> None:
        params = _params(data)
        await asyncio.sleep(float(params.get("delay", 0)))
        reply: dict[str, Any] = {"timestamp": params.get("timestamp"), "sessions": []}
        await sio.emit("wrapper_session_sync_response", reply, to=sid)

    async def echo(sid: str, data: Any = None) -> Any:
        return data

    async def ask_client(sid: str, data: Any = None) -> Any:
        answer = await sio.call("question", data, to=sid, timeout=10)
        return {"client_said": answer}

    async def any_event(event: str, sid: str, data: Any = None) -> None:
        parts = event.split(":")
        # workspace:tab:{tab}:pane:{pane}:terminal:create
        if len(parts) == 7 and (parts[0], parts[1], parts[3], parts[5], parts[6]) == (
            "workspace",
            "tab",
            "pane",
            "terminal",
            "create",
        ):
            reply = {"terminalId": _params(data).get("terminalId"), "status": "created"}
            await sio.emit(":".join([*parts[:6], "created"]), reply, to=sid)

    handlers: tuple[Callable[..., Awaitable[Any]], ...] = (
        create_terminal,
        ai_chat_message,
        ai_get_info,
        wrapper_session_sync,
        echo,
        ask_client,
    )
    for handler in handlers:
        sio.on(handler.__name__, handler)
    sio.on("*", any_event)
    return sio


@web.middleware
async def _slow_upgrade(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    delay = request.query.get("slow_upgrade")
    if delay and request.query.get("transport") == "websocket":
        await asyncio.sleep(float(delay))
    return await handler(request)


def create_app() -> web.Application:
    app = web.Application(middlewares=[_slow_upgrade])
    create_server().attach(app)
    return app


async def serve_backend() -> tuple[web.AppRunner, str]:
    """Start the backend on a free loopback port; returns its runner and base URL."""
    runner = web.AppRunner(
        create_app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = next(a for a in runner.addresses if isinstance(a, tuple))[:2]
    return runner, f"http://{host}:{port}"

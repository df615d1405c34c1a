"""A real stack for admin tests: python-socketio backend <- relay + Tracker <- client, and
the admin app reading the tracker and the relay's counters."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.proxy.admin import TrackerMonitorSource, build_admin_app
from socketio_trace_proxy.proxy.relay import RelayServer
from socketio_trace_proxy.tracking.runtime import Tracker

TRACKING = TrackingSettings.model_validate(
    {
        "rules": [
            {
                "request": "create_terminal",
                "responses": ["terminal_ready"],
                "rejections": ["terminal_closed"],
                "match": "session",
                "timeout": "20s",
            },
            {
                "name": "terminal echo",
                "kind": "echo",
                "request": "terminal_input",
                "responses": ["terminal_output"],
                "match": "session",
                "slow": "200ms",
            },
            {"request": "never", "responses": ["never_reply"], "timeout": "400ms"},
            {"request": "open_file", "responses": ["file_ok"], "errors": ["file_error"]},
        ],
        "aggregate": ["terminal_input", "terminal_output"],
    }
)


def backend(ping_interval: float = 25.0) -> tuple[socketio.AsyncServer, web.Application]:
    sio = socketio.AsyncServer(
        async_mode="aiohttp", cors_allowed_origins="*", ping_interval=ping_interval
    )
    app = web.Application()
    sio.attach(app)

    async def echo(sid: str, data: Any) -> Any:
        return data  # answered with an ACK

    async def create_terminal(sid: str, data: dict[str, Any]) -> None:
        await sio.sleep(float(data.get("delay", 0)))
        answer = "terminal_closed" if data.get("closed") else "terminal_ready"
        await sio.emit(answer, {"session": data["session"]}, to=sid)

    async def terminal_input(sid: str, data: dict[str, Any]) -> None:
        await sio.sleep(float(data.get("delay", 0)))
        output = {"session": data["session"], "data": data["data"]}
        await sio.emit("terminal_output", output, to=sid)
        await sio.emit("terminal_output", output, to=sid)  # only the first is the echo

    async def never(sid: str, data: Any) -> None:
        return None

    async def open_file(sid: str, data: Any) -> None:
        await sio.emit("file_error", {"error": "no such file"}, to=sid)

    for handler in (echo, create_terminal, terminal_input, never, open_file):
        sio.on(handler.__name__, handler)
    return sio, app


async def serve(app: web.Application | RelayServer) -> tuple[web.BaseRunner, str]:
    runner = (
        app.runner(access_log=None, shutdown_timeout=1.0)
        if isinstance(app, RelayServer)
        else web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = next(a for a in runner.addresses if isinstance(a, tuple))[:2]
    return runner, f"http://{host}:{port}"


@dataclass
class Stack:
    proxy_url: str
    admin_url: str
    tracker: Tracker
    backend: socketio.AsyncServer

    async def client(self, transports: list[str] | None = None) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(self.proxy_url, transports=transports, wait_timeout=10)
        return client


@contextlib.asynccontextmanager
async def live_stack(
    admin: AdminSettings | None = None, ping_interval: float = 25.0
) -> AsyncIterator[Stack]:
    sio, backend_app = backend(ping_interval)
    runners: list[web.BaseRunner] = []
    tracker = Tracker(TRACKING, [])
    await tracker.start()
    try:
        backend_runner, backend_url = await serve(backend_app)
        runners.append(backend_runner)
        relay = RelayServer(
            ProxySettings(listen="127.0.0.1:0", upstream=backend_url), observer=tracker
        )
        relay_runner, proxy_url = await serve(relay)
        runners.append(relay_runner)

        async def ready() -> bool:
            return True

        source = TrackerMonitorSource(tracker, relay.stats)
        settings = admin or AdminSettings(listen="127.0.0.1:0", stream_interval_s=0.1)
        admin_runner, admin_url = await serve(build_admin_app(source, settings, ready))
        runners.append(admin_runner)
        yield Stack(proxy_url, admin_url, tracker, sio)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await tracker.stop(1.0)

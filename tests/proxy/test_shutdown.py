"""Issue 17.7: SIGTERM's shutdown with live clients ends in a bounded, documented time.

Real peers: a python-socketio backend (its default 25 s ping interval, so a long-poll stays
pending), python-socketio clients on polling and on WebSocket through a proxy started as
``serve`` starts it (tracking on, local NDJSON export).  Stopping answers the pending
long-polls (502) instead of sending them upstream again on fresh connections, closes the
WebSockets with 1001 and flushes the tracker: within 5 s (README, "Stopping").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import socketio

from socketio_trace_proxy.proxy.cli import apply_overrides, load_configuration, start_proxy
from tests.proxy.peers import eventually, runner_port

SHUTDOWN_BOUND_S = 5.0  # the documented bound with a healthy export


async def test_stop_with_pending_long_polls_and_websockets_is_bounded(tmp_path: Path) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")  # default ping interval: 25 s
    from aiohttp import web  # noqa: PLC0415

    app = web.Application()
    sio.attach(app)
    backend = web.AppRunner(app, shutdown_timeout=1.0)  # its own long-polls end with the test
    await backend.setup()
    await web.TCPSite(backend, "127.0.0.1", 0).start()
    upstream = f"http://127.0.0.1:{runner_port(backend)}"
    settings = apply_overrides(
        load_configuration(None, {}), listen="127.0.0.1:0", upstream=upstream, admin="off"
    )
    local = settings.exporters.local.model_copy(
        update={"ndjson_path": str(tmp_path / "t.ndjson"), "console": False}
    )
    exporters = settings.exporters.model_copy(update={"local": local})
    settings = settings.model_copy(update={"exporters": exporters})
    running = await start_proxy(settings, {})
    clients = [socketio.AsyncClient(reconnection=False) for _ in range(6)]
    try:
        for i, client in enumerate(clients):
            transports = ["polling"] if i % 2 == 0 else ["websocket"]
            await client.connect(running.url, transports=transports, wait_timeout=5)
        # every polling client has its long-poll GET pending upstream
        await eventually(lambda: running.relay.stats().polling_requests >= 3 * 3)
        await asyncio.sleep(0.2)
        opened = running.relay.stats().upstream_connections_opened
        loop = asyncio.get_running_loop()
        started = loop.time()
        await running.stop()
        took = loop.time() - started
        after = running.relay.stats()
    finally:
        await asyncio.gather(
            *(asyncio.wait_for(client.disconnect(), 2) for client in clients),
            return_exceptions=True,
        )
        await backend.cleanup()
    print(f"stop took {took:.2f} s")
    assert took <= SHUTDOWN_BOUND_S, f"stop took {took:.1f} s"
    # the pending long-polls were answered, not sent upstream again
    assert after.upstream_connections_opened == opened

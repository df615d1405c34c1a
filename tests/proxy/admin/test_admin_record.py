"""The recorder's admin routes on a real proxy: guarded by the token, start, stop, status,
and a download that replays (the file is read back as a recording)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web

from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.examples import demo_backend
from socketio_trace_proxy.examples.demo_client import drive
from socketio_trace_proxy.proxy.admin.record import RECORDING_UNAVAILABLE
from socketio_trace_proxy.proxy.cli import _build_recorder, start_proxy
from socketio_trace_proxy.tracking.recording.format import read_lines
from socketio_trace_proxy.tracking.replay.script import load_sessions
from tests.proxy.admin.conftest import MakeClient
from tests.proxy.admin.fakes import FakeSource

TOKEN = "t0ken-for-tests"


async def test_start_stop_download(tmp_path: Path) -> None:
    # Short pings: python-engineio's polling client waits on disconnect for its pending GET,
    # which the server ends only after ping_interval + ping_timeout (45 s by default).
    app = demo_backend.create_app(ping_interval=1, ping_timeout=3)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = next(a for a in runner.addresses if isinstance(a, tuple))[1]
    base = load_settings(None, {"SOCKET_TRACE_ADMIN_TOKEN": TOKEN})
    path = tmp_path / "admin.jsonl"
    settings = base.model_copy(
        update={
            "proxy": base.proxy.model_copy(
                update={"listen": "127.0.0.1:0", "upstream": f"http://127.0.0.1:{port}"}
            ),
            "admin": base.admin.model_copy(update={"listen": "127.0.0.1:0"}),
            "record": base.record.model_copy(update={"max_bytes": 1 << 20}),
            "exporters": base.exporters.model_copy(
                update={"local": base.exporters.local.model_copy(update={"mode": "off"})}
            ),
        }
    )
    running = await start_proxy(settings, {})
    assert running.recorder is not None and running.admin_address is not None
    running.recorder.settings = running.recorder.settings.model_copy(update={"path": str(path)})
    admin = f"http://127.0.0.1:{running.admin_address[1]}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{admin}/api/record/start") as r:
                assert r.status == 401  # guarded like every /api route
            async with http.get(f"{admin}/api/record/file", headers=auth) as r:
                assert r.status == 404
            await drive(running.url, transports=["websocket"], linger_s=0.05)  # not recorded
            async with http.post(f"{admin}/api/record/start", headers=auth) as r:
                assert r.status == 200 and (await r.json())["active"] is True
            await drive(running.url, transports=["polling"], linger_s=0.05)
            await asyncio.sleep(0.2)
            async with http.get(f"{admin}/api/record/file", headers=auth) as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("application/x-ndjson")
                live = await r.text()
            async with http.post(f"{admin}/api/record/stop", headers=auth) as r:
                status = await r.json()
            assert status["active"] is False and status["sessions"] == 1
            assert status["dropped"] == 0 and status["files"][0]["name"] == "admin.jsonl"
            async with http.get(f"{admin}/api/record", headers=auth) as r:
                assert (await r.json())["packets"] == status["packets"]
            async with http.get(f"{admin}/api/record/file", headers=auth) as r:
                final = await r.text()
    finally:
        await running.stop()
        await runner.cleanup()
    _, sessions = load_sessions(read_lines(live.splitlines(), "download"))
    assert len(sessions) == 1 and sessions[0].transport.value == "polling"
    _, sessions = load_sessions(read_lines(final.splitlines(), "download"))
    assert len(sessions) == 1 and sessions[0].close is not None
    assert final == path.read_text()


async def test_without_a_recorder_the_routes_say_why(make_client: MakeClient) -> None:
    """Tracking off and no record.path: no recorder, and the API says so instead of 404."""
    client = await make_client(FakeSource())
    for method, path in (
        ("GET", "/api/record"),
        ("POST", "/api/record/start"),
        ("POST", "/api/record/stop"),
        ("GET", "/api/record/file"),
    ):
        resp = await client.request(method, path)
        assert resp.status == 503, path
        assert (await resp.json())["error"] == RECORDING_UNAVAILABLE


def test_the_composition_makes_a_recorder_as_its_docstring_says() -> None:
    base = load_settings(None, {})
    off = base.model_copy(update={"tracking": base.tracking.model_copy(update={"enabled": False})})
    assert _build_recorder(base) is not None  # admin on, tracking on: on demand
    assert _build_recorder(off) is None  # a plain relay stays plain
    recording = off.model_copy(update={"record": off.record.model_copy(update={"path": "x.jsonl"})})
    assert _build_recorder(recording) is not None

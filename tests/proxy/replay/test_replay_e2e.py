"""Record through the real proxy and replay against real backends (python-socketio's demo
backend; clients python-socketio and node's socket.io-client); the AetherTerm recordings,
converted to the record format, replayed against the demo backend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.examples import demo_backend
from socketio_trace_proxy.examples.demo_client import drive
from socketio_trace_proxy.proxy.cli import main, start_proxy
from socketio_trace_proxy.proxy.replay.runner import Replayer, ReplayOptions, TransportMode
from socketio_trace_proxy.tracking.recording.format import read_lines
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.replay.report import Summary
from socketio_trace_proxy.tracking.replay.script import build_script, load_sessions
from socketio_trace_proxy.tracking.replay.session import Status
from tests.fixtures.record_fixtures import fixture_text
from tests.fixtures.recordings import PYTHON_CLIENT, VUE_FRONTEND
from tests.proxy.js.js_harness import missing_requirement, run_node

SETTINGS = load_settings(None, {})


async def serve_backend(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = next(a for a in runner.addresses if isinstance(a, tuple))[1]
    return runner, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[str]:
    # Short pings: python-engineio's polling client waits on disconnect for its pending GET,
    # which the server ends only after ping_interval + ping_timeout (45 s by default).
    runner, url = await serve_backend(demo_backend.create_app(ping_interval=1, ping_timeout=3))
    yield url
    await runner.cleanup()


def changed_app() -> web.Application:
    """The demo backend with one reply changed: get_block_status answers "failed"."""
    sio = demo_backend.create_server()

    async def get_block_status(sid: str, data: Any = None) -> dict[str, Any]:
        status = {"block_id": (data or {}).get("block_id"), "status": "failed", "exit_code": 1}
        await sio.emit("block_status_response", status, to=sid)
        return status

    sio.on("get_block_status", get_block_status)
    app = web.Application()
    sio.attach(app)
    return app


async def replay(
    text: str,
    target: str,
    *,
    transport: TransportMode = TransportMode.RECORDED,
    ignore: tuple[str, ...] = (),
    **options: Any,
) -> Summary:
    header, sessions = load_sessions(read_lines(text.splitlines(), "rec"))
    assert header is not None
    scripts = [build_script(s, SETTINGS.tracking) for s in sessions]
    replay_settings = SETTINGS.replay.model_copy(
        update={"ignore": (*SETTINGS.replay.ignore, *ignore)}
    )
    replayer = Replayer(
        scripts,
        ReplayOptions(
            target=target, transport=transport, speed=options.pop("speed", None), **options
        ),
        SETTINGS.tracking,
        replay_settings,
        PacketRedactor.from_header(header.redact_keys, header.redact_paths),
    )
    return await replayer.run()


def statuses(summary: Summary) -> dict[str, dict[str, int]]:
    return {
        rule: {s.value: n for s, n in stats.counts.items() if n}
        for rule, stats in summary.rules.items()
    }


async def record(tmp_path: Path, backend: str, clients: Any) -> str:
    """Run ``clients(proxy_url)`` through a proxy that records; the record file's text."""
    path = tmp_path / "rec.jsonl"
    settings = SETTINGS.model_copy(
        update={
            "proxy": SETTINGS.proxy.model_copy(
                update={"listen": "127.0.0.1:0", "upstream": backend}
            ),
            "admin": SETTINGS.admin.model_copy(update={"listen": None}),
            "record": SETTINGS.record.model_copy(update={"path": str(path)}),
            "exporters": SETTINGS.exporters.model_copy(
                update={"local": SETTINGS.exporters.local.model_copy(update={"mode": "off"})}
            ),
        }
    )
    running = await start_proxy(settings, {})
    try:
        await clients(running.url)
        await asyncio.sleep(0.3)  # the last close reaches the proxy
    finally:
        await running.stop()
    return path.read_text()


@pytest.mark.parametrize(
    "transports", [["polling"], ["websocket"], None], ids=["polling", "websocket", "upgrade"]
)
async def test_python_client_recording_replays_without_differences(
    tmp_path: Path, backend: str, transports: list[str] | None
) -> None:
    async def clients(url: str) -> None:
        await drive(url, transports=transports, linger_s=0.1)

    text = await record(tmp_path, backend, clients)
    for mode in TransportMode:
        summary = await replay(text, backend, transport=mode, ignore=("session",))
        assert summary.ok, summary.problems()
        assert statuses(summary) == {
            "namespace_connect": {"match": 1},
            "create_terminal": {"match": 1},
            "get_block_status": {"match": 1},
            "get_block_status -> ack": {"match": 1},
            "ping_backend -> ack": {"match": 1},
            "ai_get_info": {"match": 1},  # unanswered then and now
        }, mode


@pytest.mark.skipif(missing_requirement() is not None, reason=str(missing_requirement()))
@pytest.mark.parametrize(
    "transports", [["polling"], ["websocket"], None], ids=["polling", "websocket", "upgrade"]
)
async def test_node_client_recording_replays_without_differences(
    tmp_path: Path, backend: str, transports: list[str] | None
) -> None:
    async def clients(url: str) -> None:
        args: dict[str, Any] = {"url": url}
        if transports:
            args["transports"] = transports
        result = await run_node("demo_session.js", args)
        assert result["status"]["block_id"] == "n-1"

    text = await record(tmp_path, backend, clients)
    summary = await replay(text, backend, ignore=("session",))
    assert summary.ok, summary.problems()
    assert statuses(summary)["get_block_status -> ack"] == {"match": 1}
    assert summary.sessions == 1 and summary.replies >= 5


async def test_changed_reply_is_reported_with_its_diff(tmp_path: Path, backend: str) -> None:
    async def clients(url: str) -> None:
        await drive(url, transports=["websocket"], linger_s=0.1)

    text = await record(tmp_path, backend, clients)
    runner, changed = await serve_backend(changed_app())
    try:
        summary = await replay(text, changed, ignore=("session",))
    finally:
        await runner.cleanup()
    assert not summary.ok
    (result,) = summary.kept
    diffs = {r.rule: [d.describe() for d in r.differences] for r in result.replies}
    expected = ['[0].status: "completed" -> "failed"', "[0].exit_code: 0 -> 1"]
    assert diffs["get_block_status"] == expected
    assert diffs["get_block_status -> ack"] == expected
    assert statuses(summary)["create_terminal"] == {"match": 1}


async def test_cli_exit_status_and_json_report(tmp_path: Path) -> None:
    runner, changed = await serve_backend(changed_app())
    rec = tmp_path / "rec.jsonl"
    rec.write_text(fixture_text(PYTHON_CLIENT, SETTINGS.tracking))
    report = tmp_path / "report.json"
    args = ["replay", str(rec), "--target", changed, "--speed", "max", "--ignore", "cols"]
    try:
        status = await asyncio.to_thread(main, [*args, "--json", str(report)], {})
        bad = await asyncio.to_thread(
            main, ["replay", str(tmp_path / "none"), "--target", changed], {}
        )
    finally:
        await runner.cleanup()
    assert status == 1 and bad == 2
    rules = json.loads(report.read_text())["rules"]
    assert rules["get_block_status"]["differ"] == 1
    assert rules["create_terminal"]["match"] == 1


async def test_aetherterm_recordings_against_the_demo_backend(backend: str) -> None:
    """The real AetherTerm sessions, replayed against the demo backend: what the demo does
    like AetherTerm matches (ignoring the demo's extra ``cols``); where it answers otherwise
    the diff says exactly how."""
    summary = await replay(
        fixture_text(PYTHON_CLIENT, SETTINGS.tracking), backend, ignore=("cols",)
    )
    assert statuses(summary) == {
        "namespace_connect": {"match": 1},
        "create_terminal": {"match": 1},
        "terminal_input -> ack": {"match": 1},
        "get_block_status": {"differ": 1},
    }
    (result,) = summary.kept
    (block,) = [r for r in result.replies if r.status is Status.DIFFER]
    assert [d.describe() for d in block.differences] == [
        '[0].status: "success" -> "completed"',
        '[0].session_id: removed (was "rawsess1")',
        "[0].is_blocked: removed (was false)",
        "[0].block_id: added null",
        "[0].exit_code: added 0",
    ]
    vue = await replay(fixture_text(VUE_FRONTEND, SETTINGS.tracking), backend, ignore=("cols",))
    assert vue.ok, vue.problems()
    assert statuses(vue) == {"create_terminal": {"match": 1}, "ai_get_info": {"match": 1}}
    assert vue.extra == 1  # the CONNECT reply: the Vue log holds no polling responses

"""Reconnect after the backend restarts: the node client, connected through the relay, loses
the backend (SIGKILL), keeps retrying through the relay while the upstream is down, and works
again once the backend is back on the same port."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.proxy.js.js_backend import free_port
from tests.proxy.js.js_harness import NodeProcess, relay_in_front_of

BACKEND = Path(__file__).resolve().parent / "js_backend.py"


class Backend:
    """js_backend.py in its own process, so it can die like a real server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BACKEND),
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert line.decode().strip() == f"ready {self.port}", line

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend(free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


@pytest.mark.parametrize(
    "transports", [["polling"], ["websocket"], None], ids=["polling", "websocket", "upgrade"]
)
async def test_reconnects_after_backend_restart(
    backend: Backend, transports: list[str] | None
) -> None:
    async with relay_in_front_of(f"http://127.0.0.1:{backend.port}") as url:
        node = await NodeProcess.start(
            "reconnect.js",
            {
                "url": url,
                "rec": "reconnect",
                "transports": transports,
                "deadline_ms": 45000,
            },
        )
        try:
            first = await node.line()
            assert first["phase"] == "connected", first
            assert first["echo"] == ["before"]
            await backend.kill()
            gone = await node.line()
            # the relay closed the client's leg when the upstream died: no waiting for a
            # missed heartbeat ("ping timeout")
            assert gone == {"phase": "disconnected", "reason": gone["reason"]}
            assert gone["reason"] in ("transport close", "transport error")
            # while the backend is down the relay answers (502), the client keeps trying
            failed = await node.line()
            assert failed["phase"] == "reconnect_error", failed
            await backend.start()
            final = await node.line(limit_s=30)
        finally:
            await node.close()
    assert final["ok"], final
    assert final["echo"] == [["before"], ["after"], ["/second", "after"]]
    assert final["after"]["engine"] != final["before"]["engine"], "expected a new session"
    assert final["failures"] >= 1
    if transports:
        assert final["after"]["transport"] == transports[0]

"""Plumbing for the node client tests: run node scripts with a hard timeout, start the relay
(and uvicorn) on free ports, and compare the client's wire log with the server's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from aiohttp import web

from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.proxy.relay import RelayServer
from socketio_trace_proxy.tracking.observer import RequestInfo, UnstampedRequests, WebSocketObserver
from socketio_trace_proxy.tracking.traffic import Direction
from tests.proxy.js.js_backend import ASGIApp, Exchange, RecordingASGI, describe

JS_DIR = Path(__file__).resolve().parent
NODE_MODULES = Path(
    os.environ.get("SIO_JS_NODE_MODULES", str(JS_DIR.parent.parent / "js" / "node_modules"))
)
NODE = shutil.which("node")
# Debug knob: SIO_JS_TESTS_DIRECT=1 points the client straight at the backend, to tell a relay
# bug from a test bug.  Never set in CI.
DIRECT = os.environ.get("SIO_JS_TESTS_DIRECT") == "1"


def missing_requirement() -> str | None:
    """Why the node tests cannot run here, or None."""
    if NODE is None:
        return "node is not installed (CI installs it)"
    if not (NODE_MODULES / "socket.io-client").is_dir():
        return f"{NODE_MODULES} has no socket.io-client: run `npm ci --prefix tests/js`"
    return None


def _tail(text: bytes, limit: int = 3000) -> str:
    return text.decode("utf-8", "replace")[-limit:]


def _result_line(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    return None


async def run_node(script: str, args: dict[str, Any], limit_s: float = 60.0) -> dict[str, Any]:
    """Run ``tests/proxy/js/<script>`` with ``args`` as JSON; return its successful result line.

    Raises AssertionError (with the script's stderr) on failure or after ``limit_s`` seconds.
    """
    assert NODE is not None
    args = {"deadline_ms": int((limit_s - 2) * 1000), **args}
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(JS_DIR / script),
        json.dumps(args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SIO_JS_NODE_MODULES": str(NODE_MODULES)},
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} hung for {limit_s}s and was killed") from None
    result = _result_line(stdout)
    rc = proc.returncode
    assert result is not None, f"{script} printed no result (rc={rc}):\n{_tail(stderr)}"
    assert result.get("ok"), f"{script} failed: {result.get('error')}\n{_tail(stderr)}"
    return result


class NodeProcess:
    """A node script we talk to line by line (JSON lines on stdout)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, script: str, args: dict[str, Any]) -> NodeProcess:
        assert NODE is not None
        proc = await asyncio.create_subprocess_exec(
            NODE,
            str(JS_DIR / script),
            json.dumps(args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SIO_JS_NODE_MODULES": str(NODE_MODULES)},
        )
        return cls(proc)

    async def line(self, limit_s: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), limit_s)
        except TimeoutError:
            raise AssertionError(f"node said nothing for {limit_s}s") from None
        if not raw:
            err = await self.proc.stderr.read() if self.proc.stderr else b""
            raise AssertionError(f"node exited (rc={await self.proc.wait()}):\n{_tail(err)}")
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


class _WsTap:
    def __init__(self, messages: list[tuple[Direction, dict[str, Any]]]) -> None:
        self.messages = messages

    def message(self, direction: Direction, data: str | bytes) -> None:
        if isinstance(data, str):
            self.messages.append((direction, describe(data.encode(), False)))
        else:
            self.messages.append((direction, describe(data, True)))

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        pass


class TapObserver(UnstampedRequests):
    """A ``TrafficObserver`` keeping what the relay reports for requests tagged ``rec=<tag>``:
    polling bodies as (method, direction, body) and each WebSocket's messages in order."""

    def __init__(self) -> None:
        self.polling: dict[str, list[tuple[str, Direction, dict[str, Any]]]] = {}
        self.websockets: dict[str, list[list[tuple[Direction, dict[str, Any]]]]] = {}

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        if tag := info.query.get("rec"):
            entry = (info.method, Direction.CLIENT_TO_SERVER, describe(body, False))
            self.polling.setdefault(tag, []).append(entry)

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        if tag := info.query.get("rec"):
            entry = (info.method, Direction.SERVER_TO_CLIENT, describe(body, False))
            self.polling.setdefault(tag, []).append(entry)

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver:
        messages: list[tuple[Direction, dict[str, Any]]] = []
        if tag := info.query.get("rec"):
            self.websockets.setdefault(tag, []).append(messages)
        return _WsTap(messages)


@dataclass(frozen=True)
class Front:
    """Where the client connects (the relay), and what sits behind it."""

    url: str
    backend_url: str
    recorder: RecordingASGI | None = None
    observer: TapObserver | None = None


@contextlib.asynccontextmanager
async def relay_in_front_of(
    upstream: str, observer: TapObserver | None = None
) -> AsyncIterator[str]:
    """The relay, on a free port, forwarding to ``upstream``; yields the URL clients use."""
    if DIRECT:
        yield upstream
        return
    relay = RelayServer(ProxySettings(listen="127.0.0.1:0", upstream=upstream), observer)
    runner = relay.runner(shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def uvicorn_serving(app: ASGIApp) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn (wsproto WebSockets) on a free port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        ws="wsproto",
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@dataclass(frozen=True)
class Side:
    """One exchange reduced to what must be identical at both ends."""

    kind: str
    method: str
    query: dict[str, str]
    request: dict[str, Any] | None
    status: int | None
    response: dict[str, Any] | None
    c2s: list[dict[str, Any]] | None
    s2c: list[dict[str, Any]] | None


def server_sides(exchanges: list[Exchange]) -> list[Side]:
    out = []
    for e in exchanges:
        if e.kind == "ws":
            out.append(Side("ws", e.method, e.query, None, None, None, e.c2s, e.s2c))
        else:
            out.append(
                Side(
                    "http",
                    e.method,
                    e.query,
                    describe(bytes(e.request), False),
                    e.status if e.complete else None,
                    describe(bytes(e.response), False) if e.complete else None,
                    None,
                    None,
                )
            )
    return out


def client_sides(log: list[dict[str, Any]]) -> list[Side]:
    out = []
    for e in log:
        if e["kind"] == "ws":
            out.append(Side("ws", e["method"], e["query"], None, None, None, e["c2s"], e["s2c"]))
        else:
            complete = e["complete"]
            out.append(
                Side(
                    "http",
                    e["method"],
                    e["query"],
                    e["request"],
                    e["status"] if complete else None,
                    e["response"] if complete else None,
                    None,
                    None,
                )
            )
    return out


def wire_differences(client: list[Side], server: list[Side]) -> list[str]:
    """Where the two logs disagree, per stream (polling GETs, polling POSTs, WebSockets), in
    order.  The only tolerated difference: the client's last long-poll GET, still pending when
    the client exited, may not have reached the server yet."""
    problems = []
    for kind, method in (("http", "GET"), ("http", "POST"), ("ws", "GET")):
        c = [s for s in client if s.kind == kind and s.method == method]
        s = [x for x in server if x.kind == kind and x.method == method]
        if len(s) == len(c) - 1 and c and c[-1].status is None and kind == "http":
            c = c[:-1]
        if len(c) != len(s):
            problems.append(f"{kind} {method}: client has {len(c)} exchanges, server {len(s)}")
        for i, (a, b) in enumerate(zip(c, s, strict=False)):
            if a != b:
                problems.append(f"{kind} {method} #{i}:\n  client {a}\n  server {b}")
    return problems

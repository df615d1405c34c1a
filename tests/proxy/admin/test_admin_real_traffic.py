"""The admin API against a real proxy carrying real Socket.IO traffic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.proxy.admin.stack import Stack, live_stack

T = TypeVar("T")


async def until(probe: Callable[[], Awaitable[T | None]], what: str, tries: int = 300) -> T:
    """Poll until ``probe`` returns something truthy (bounded tries, no timing asserted)."""
    for _ in range(tries):
        result = await probe()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def pairs(http: aiohttp.ClientSession, stack: Stack, query: str = "") -> list[dict[str, Any]]:
    body = await get_json(http, f"{stack.admin_url}/api/events?limit=1000{query}")
    return [i["record"] for i in body["items"] if i["record"]["type"] == "pair"]


async def test_api_follows_real_traffic() -> None:
    async with live_stack() as stack, aiohttp.ClientSession() as http:
        client = await stack.client()
        try:
            answer = await client.call("echo", {"n": 1}, timeout=10)
            assert answer == {"n": 1}
            ready = asyncio.get_running_loop().create_future()
            client.on("terminal_ready", ready.set_result)
            await client.emit("create_terminal", {"session": "t1", "delay": 0.5})

            pending = await until(
                lambda: _pending_for(http, stack, "create_terminal"), "create_terminal pending"
            )
            assert pending["rule"] == "create_terminal" and pending["timeout_s"] == 20.0
            await asyncio.wait_for(ready, 10)

            done = await until(
                lambda: _first(pairs(http, stack, "&event=create_terminal")), "pair recorded"
            )
            assert done["outcome"] == "ok"
            assert done["response_event"] == "terminal_ready"
            sid = done["session"]["session_id"]

            await client.emit("open_file", {"path": "/nope"})
            err = await until(lambda: _first(pairs(http, stack, "&outcome=error")), "error pair")
            assert err["rule"] == "open_file"

            await client.emit("never", {})
            timed_out = await until(
                lambda: _first(pairs(http, stack, "&outcome=timeout")), "timeout pair"
            )
            assert timed_out["request_event"] == "never"

            sessions = await get_json(http, f"{stack.admin_url}/api/sessions")
            assert sid in [s["session_id"] for s in sessions["items"]]
            detail = await get_json(http, f"{stack.admin_url}/api/sessions/{sid}")
            ops = {
                i.get("operation") for i in detail["timeline"]["items"] if i.get("type") == "pair"
            }
            assert "create_terminal -> terminal_ready" in ops

            async with http.get(f"{stack.admin_url}/metrics") as resp:
                text = await resp.text()
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
            }
            key = (
                "socketio_proxy_request_duration_seconds_count",
                (("outcome", "ok"), ("rule", "create_terminal")),
            )
            assert samples[key] == 1
            relay_requests = samples[("socketio_proxy_relay_http_requests", ())]
            assert relay_requests >= 1

            async with http.get(f"{stack.admin_url}/api/export?format=ndjson") as resp:
                lines = [json.loads(line) for line in (await resp.text()).splitlines()]
            assert any(line["type"] == "lifecycle" for line in lines)
            assert {"create_terminal", "never", "open_file"} <= {
                line.get("request_event") for line in lines
            }
        finally:
            await client.disconnect()


async def test_live_stream_over_real_traffic() -> None:
    async with live_stack() as stack, aiohttp.ClientSession() as http:
        client = await stack.client(transports=["websocket"])
        try:
            async with http.get(f"{stack.admin_url}/api/stream?outcome=timeout") as resp:
                await client.emit("echo", {"x": 1})
                await client.emit("never", {})
                seen: list[dict[str, Any]] = []
                async for raw in resp.content:
                    line = raw.decode().strip()
                    if not line.startswith("data: "):
                        continue
                    msg = json.loads(line[len("data: ") :])
                    if msg["type"] != "update":
                        continue
                    seen = [i["record"] for i in msg["activity"]["items"]]
                    if seen:
                        break
                assert [r["request_event"] for r in seen] == ["never"]
                assert msg["shared"]["timeouts"][-1]["request_event"] == "never"
        finally:
            await client.disconnect()


async def _pending_for(
    http: aiohttp.ClientSession, stack: Stack, event: str
) -> dict[str, Any] | None:
    body = await get_json(http, f"{stack.admin_url}/api/pending")
    return next((p for p in body["items"] if p["request_event"] == event), None)


async def _first(items: Awaitable[list[dict[str, Any]]]) -> dict[str, Any] | None:
    found = await items
    return found[0] if found else None


async def test_lifecycle_of_a_real_session_open_and_closed() -> None:
    """Handshake, upgrade and namespace connect reach the session's timeline (the handshake
    and the upgrade come before its first packet); after the client leaves, the session
    stays browsable with its close reason."""
    async with live_stack() as stack, aiohttp.ClientSession() as http:
        client = await stack.client()  # polling, then the upgrade to WebSocket
        await client.call("echo", {"n": 1}, timeout=10)
        sid = await until(lambda: _only_session(http, stack), "the session is listed")
        detail = await get_json(http, f"{stack.admin_url}/api/sessions/{sid}")
        kinds = [i["kind"] for i in detail["timeline"]["items"] if i.get("type") == "lifecycle"]
        assert kinds[:3] == ["handshake", "upgrade", "namespace_connect"], kinds
        await client.disconnect()

        async def closed() -> dict[str, Any] | None:
            body = await get_json(http, f"{stack.admin_url}/api/sessions?state=closed")
            return next((s for s in body["items"] if s["session_id"] == sid), None)

        entry = await until(closed, "the closed session is listed")
        assert entry["close_reason"] in ("close_packet", "websocket_closed")
        assert entry["opened_wall"] is not None and entry["upgraded"] is True
        assert entry["namespaces"] == ["/"]
        detail = await get_json(http, f"{stack.admin_url}/api/sessions/{sid}")
        assert detail["session"]["state"] == "closed"
        kinds = [i["kind"] for i in detail["timeline"]["items"] if i.get("type") == "lifecycle"]
        assert kinds[0] == "handshake" and kinds[-1] == "close"


async def _only_session(http: aiohttp.ClientSession, stack: Stack) -> str | None:
    body = await get_json(http, f"{stack.admin_url}/api/sessions")
    return str(body["items"][0]["session_id"]) if body["items"] else None


async def test_echo_rejection_and_heartbeat_records_from_real_peers() -> None:
    """python-socketio AsyncClient -> proxy -> AsyncServer: keystrokes and their echoes
    become an echo histogram (one slow echo a record), terminal_closed a rejection, and the
    session's PING/PONG round trips a heartbeat record at its close."""
    async with live_stack(ping_interval=0.2) as stack, aiohttp.ClientSession() as http:
        client = await stack.client()
        try:
            outputs: asyncio.Queue[Any] = asyncio.Queue()
            client.on("terminal_output", outputs.put_nowait)
            for i, delay in enumerate((0, 0, 0, 0.3)):
                data = {"session": "t1", "data": f"k{i}", "delay": delay}
                await client.emit("terminal_input", data)
                for _ in range(2):
                    await asyncio.wait_for(outputs.get(), 10)
            closed = asyncio.get_running_loop().create_future()
            client.on("terminal_closed", closed.set_result)
            await client.emit("create_terminal", {"session": "gone", "closed": True})
            await asyncio.wait_for(closed, 10)

            async def echo_stats() -> Any:
                body = await get_json(http, f"{stack.admin_url}/api/metrics")
                (echo,) = body["metrics"]["echo"]
                return echo if echo["latency"]["count"] == 4 else None

            echo = await until(echo_stats, "four echoes measured")
            assert echo["rule"] == "terminal echo" and echo["slow"] == 1
            assert echo["latency"]["exact"] and echo["latency"]["max_s"] >= 0.3
            slow = await until(
                lambda: _first(pairs(http, stack, "&event=terminal_input")), "slow echo"
            )
            assert slow["kind"] == "echo" and slow["slow"] and slow["match_key"] == "t1"
            rejected = await until(
                lambda: _first(pairs(http, stack, "&outcome=rejected")), "rejection"
            )
            assert rejected["response_event"] == "terminal_closed"
            assert rejected["error_type"] == "terminal_closed"
            async with http.get(f"{stack.admin_url}/metrics") as resp:
                families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
            count = [
                s.value
                for s in families["socketio_proxy_echo_seconds"].samples
                if s.name.endswith("_count")
            ]
            assert count == [4.0]
            await asyncio.sleep(0.5)  # a few heartbeats (ping_interval 0.2 s)
        finally:
            await client.disconnect()

        async def heartbeat() -> Any:
            body = await get_json(http, f"{stack.admin_url}/api/events?limit=1000")
            found = [
                i["record"]
                for i in body["items"]
                if i["record"]["type"] == "lifecycle" and i["record"]["kind"] == "heartbeat"
            ]
            return found[0] if found else None

        hb = await until(heartbeat, "heartbeat record at the close")
        assert hb["rtt_count"] >= 1 and hb["rtt_min_s"] <= hb["rtt_avg_s"] <= hb["rtt_max_s"]

"""With tracking off the admin listener still starts: health checks, readiness and the relay's
counters in /metrics; the tracker's endpoints say that tracking is off (issue 14)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import socketio
from prometheus_client.parser import text_string_to_metric_families

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.config.settings import Settings
from socketio_trace_proxy.proxy.admin import RelayOnlySource
from socketio_trace_proxy.proxy.cli import start_proxy
from tests.proxy.admin.conftest import MakeClient
from tests.proxy.admin.stack import backend, serve


async def test_a_plain_relay_still_serves_health_readiness_and_relay_counters() -> None:
    _, backend_app = backend()
    backend_runner, backend_url = await serve(backend_app)
    settings = Settings.model_validate(
        {
            "proxy": {"listen": "127.0.0.1:0", "upstream": backend_url},
            "tracking": {"enabled": False},
            "admin": {"listen": "127.0.0.1:0"},
        }
    )
    running = await start_proxy(settings, environ={})
    try:
        assert running.admin_address is not None, "the admin listener did not start"
        admin = "http://{}:{}".format(*running.admin_address)
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(running.url, wait_timeout=10)
        assert await client.call("echo", {"n": 1}, timeout=10) == {"n": 1}
        await client.disconnect()
        async with aiohttp.ClientSession() as http:
            assert (await _get(http, admin + "/healthz"))[0] == 200
            status, ready = await _get(http, admin + "/readyz")
            assert status == 200 and ready == {
                "ready": True, "upstream": True, "tracking": False, "exporters": [],
            }  # fmt: skip
            async with http.get(admin + "/metrics") as resp:
                assert resp.status == 200
                families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
            assert families["socketio_proxy_relay_http_requests"].samples[0].value >= 1
            # The lean leg's head builder's counter, beside the relay's own.
            cleared = families["socketio_proxy_relay_connection_values_cleared"]
            assert cleared.samples[0].value == 0
            assert "socketio_proxy_requests" not in families  # no tracker, no tracker series
            status, body = await _get(http, admin + "/api/metrics")
            assert status == 200 and body["tracking"] is False and body["metrics"] is None
            assert body["relay"]["polling_requests"] >= 1
            for path in ("/api/sessions", "/api/pending", "/api/events", "/api/export"):
                status, body = await _get(http, admin + path)
                assert status == 503, path
                assert body["tracking"] is False
                assert body["error"].startswith("tracking is off"), body
            status, info = await _get(http, admin + "/api/info")
            assert status == 200 and info["tracking"] is False
    finally:
        await running.stop()
        await backend_runner.cleanup()


async def test_the_live_stream_carries_the_relay_with_tracking_off(
    make_client: MakeClient,
) -> None:
    relay = {"http_requests": 5.0, "ws_active": 1.0}
    source: Any = RelayOnlySource(lambda: relay)
    client = await make_client(source, AdminSettings(stream_interval_s=0.05))
    resp = await client.get("/api/stream")
    assert resp.status == 200
    hello = update = None
    async for raw in resp.content:
        line = raw.decode().strip()
        if line.startswith("data: "):
            msg = json.loads(line[len("data: ") :])
            if msg["type"] == "hello":
                hello = msg
            else:
                update = msg
                break
    assert hello is not None and hello["tracking"] is False
    assert update is not None and update["shared"]["tracking"] is False
    assert update["shared"]["relay"] == relay
    assert update["shared"]["metrics"] is None
    resp.close()


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        return resp.status, await resp.json()

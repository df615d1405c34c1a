"""An https upstream: polling, WebSocket and the upgrade relayed over TLS to python-socketio
served by aiohttp with a certificate from a test CA (trustme), verified by the relay."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import socketio
import trustme
from aiohttp import web

from socketio_trace_proxy.tracking.traffic import Direction
from tests.proxy.peers import RecordingObserver, build_sio, relay_in_front_of, runner_port

TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": None}


@pytest.fixture
async def tls_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    # The relay verifies the upstream against the default trust store, which OpenSSL lets
    # this variable replace.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    app = web.Application()
    build_sio("aiohttp").attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context).start()
    try:
        yield f"https://127.0.0.1:{runner_port(runner)}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_every_transport_over_a_tls_upstream(tls_backend: str, transport: str) -> None:
    observer = RecordingObserver()
    async with relay_in_front_of(tls_backend, observer) as relay:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(relay.url, transports=TRANSPORTS[transport], wait_timeout=5)
        try:
            assert await client.call("echo", {"tls": [1, b"\x02"]}, timeout=5) == {
                "tls": [1, b"\x02"]
            }
        finally:
            await client.disconnect()
        assert relay.counters.upstream_errors == 0
        assert relay.counters.ws_opened == (0 if transport == "polling" else 1)
        kind = "poll" if transport == "polling" else "ws"
        assert any(
            "echo" in str(m) for m in observer.log.of(kind, Direction.CLIENT_TO_SERVER.value)
        )


async def test_an_untrusted_upstream_certificate_is_a_502(
    tls_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent")
    async with relay_in_front_of(tls_backend, None) as relay:
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(relay.url, transports=["websocket"], wait_timeout=3)
        assert relay.counters.ws_refused == 1

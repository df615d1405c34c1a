"""``SOCKET_TRACKING_ENABLED=false``: the proxy is a plain relay.  The whole scenario still
works through it (polling, the upgrade, WebSocket), but no tracker or exporter is built, so
nothing is decoded, recorded or exported, even with OpenObserve configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import pytest

from socketio_trace_proxy.proxy import cli as proxy_cli
from tests.e2e.stack import Proxy, ServedDouble, e2e_settings, python_scenario

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _must_not_run(*args: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError("tracking is disabled: nothing may be built to decode or export")


async def test_disabled_tracking_relays_without_decoding_or_exporting(
    backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The composition root must not even build a tracker or exporters.
    monkeypatch.setattr(proxy_cli, "Tracker", _must_not_run)
    monkeypatch.setattr(proxy_cli, "build_sinks", _must_not_run)
    served = await ServedDouble.start("u@example.com", "p")
    environ = {
        "SOCKET_TRACKING_ENABLED": "false",
        "OPENOBSERVE_ENDPOINT": served.double.url,
        "OPENOBSERVE_USER": "u@example.com",
        "OPENOBSERVE_PASS": "p",
    }
    try:
        settings = e2e_settings(tmp_path, backend_url, environ)
        assert settings.tracking.enabled is False
        running = await Proxy.start(settings, environ)
        try:
            assert running.running.tracker is None
            assert not running.running.sinks
            for transports in (None, ["polling"]):  # the upgrade, then polling only
                await python_scenario(running.url, transports)
            stats = running.running.relay.stats()
            assert stats.ws_opened == 1
            assert stats.polling_requests > 0
            assert stats.ws_messages_c2s > 0
            assert stats.observer_errors == 0
            assert stats.upstream_errors == 0
        finally:
            await running.stop()
        assert served.double.started == 0
        assert not served.double.requests
        assert not (tmp_path / "records.ndjson").exists()
    finally:
        await served.close()

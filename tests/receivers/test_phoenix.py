"""A real OTLP/HTTP receiver stores what the OTLP exporter sends: Arize Phoenix 20.26.1
(``phoenix serve``: OTLP/HTTP protobuf at ``/v1/traces``, spans kept in SQLite, listed at
``GET /v1/projects/default/spans``).  Phoenix runs from its own virtualenv
(``bash tests/receivers/install_phoenix.sh``, or ``PHOENIX_BIN=/path/to/phoenix``); without
it the test is skipped.  Spans go through the whole exporter (``build_sinks`` from the
standard OTEL_* variables, batching, gzip), and what Phoenix stores is compared with the
records: names, ids, parents, times, status, attributes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from socketio_trace_proxy.config.exporters import ExportersSettings
from socketio_trace_proxy.exporters import build_sinks
from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome
from tests.exporters.kit import lifecycle, pair, session

REPO = Path(__file__).resolve().parents[2]
PHOENIX = Path(os.environ.get("PHOENIX_BIN", REPO / ".venv-phoenix" / "bin" / "phoenix"))
STARTUP_GUARD_S = 120.0  # Phoenix migrates its database on first start

pytestmark = pytest.mark.skipif(
    not PHOENIX.exists(),
    reason="Phoenix not installed (bash tests/receivers/install_phoenix.sh, or PHOENIX_BIN)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(tmp_path_factory.mktemp("phoenix")),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    proc = subprocess.Popen(
        [str(PHOENIX), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + STARTUP_GUARD_S
        while True:
            try:
                _get(f"{url}/v1/projects")
                break
            except OSError:
                assert proc.poll() is None, "phoenix serve exited"
                assert time.monotonic() < end, "Phoenix did not start"
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _micros(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp)
    return round(moment.timestamp() * 1_000_000)


async def test_phoenix_stores_the_spans_as_sent(phoenix: str) -> None:
    ref = session("sid-phoenix")
    handshake = lifecycle(
        LifecycleKind.HANDSHAKE, ref, parent_span_id="00f067aa0ba902b7", duration_s=0.004
    )
    ok = pair(ref, ack_id=9, operation="terminal_input -> ack")
    timed_out = pair(
        ref, outcome=Outcome.TIMEOUT, response_event=None, operation="ai_get_info -> x"
    )
    odd = pair(ref, request_event="odd\ud800", operation="odd\ud800 -> y")
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": phoenix, "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
    (sink,) = build_sinks(ExportersSettings(), environ, upstream="http://backend:5000")
    await sink.start()
    for record in (handshake, ok, timed_out, odd):
        sink.submit(record)
    await sink.shutdown(10.0)
    health = sink.health()
    assert (health.sent, health.failed, health.text_replaced) == (4, 0, 1), health

    spans: dict[str, Any] = {}
    end = time.monotonic() + 30.0
    while len(spans) < 4 and time.monotonic() < end:
        await asyncio.sleep(0.5)  # Phoenix inserts in the background
        data = _get(f"{phoenix}/v1/projects/default/spans?limit=100")["data"]
        spans = {s["context"]["span_id"]: s for s in data}
    assert set(spans) == {r.span_id for r in (handshake, ok, timed_out, odd)}

    got = spans[handshake.span_id]
    assert (got["name"], got["parent_id"]) == ("engine.io handshake", "00f067aa0ba902b7")
    assert got["context"]["trace_id"] == ref.trace_id
    assert _micros(got["end_time"]) - _micros(got["start_time"]) == 4000

    got = spans[ok.span_id]
    assert got["name"] == "terminal_input -> ack"
    assert got["status_code"] == "UNSET"
    assert _micros(got["start_time"]) == round(ok.start_wall * 1_000_000)
    attrs = got["attributes"]
    assert attrs["messaging.message.id"] == "9"
    assert attrs["messaging.socket.io.sid"] == "sid-phoenix"
    assert (attrs["server.address"], attrs["server.port"]) == ("backend", 5000)
    assert attrs["socket.success"] is True

    got = spans[timed_out.span_id]
    assert (got["status_code"], got["status_message"]) == ("ERROR", "timeout")
    assert got["attributes"]["error.type"] == "timeout"
    assert spans[odd.span_id]["name"] == "odd\ufffd -> y"

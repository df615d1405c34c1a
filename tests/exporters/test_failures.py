"""Export failures seen at once and told honestly, never leaking a credential, never stalling
(issue 13: visibility, retry budget; issue 17: items 3, 6, 11, 12)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from socketio_trace_proxy.config.about import user_agent
from socketio_trace_proxy.config.exporters import (
    BatchSettings,
    ExportersSettings,
    LocalSettings,
    OpenObserveSettings,
)
from socketio_trace_proxy.exporters import build_sinks
from socketio_trace_proxy.exporters.batching import BatchingSink, ExportState
from socketio_trace_proxy.exporters.http import HttpPoster
from socketio_trace_proxy.exporters.local import NdjsonFilePlugin
from socketio_trace_proxy.exporters.openobserve_json import OpenObserveJsonPlugin
from socketio_trace_proxy.exporters.otlp import OtlpTracesPlugin
from socketio_trace_proxy.exporters.spans import SCHEMA_URL
from socketio_trace_proxy.tracking.sink import RecordSink
from tests.doubles.openobserve import OpenObserveDouble, start_openobserve
from tests.exporters.kit import pair

USER, PASSWORD = "leak@example.com", "Leaky-Pa55-9f3e"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
HANG_GUARD_S = 30.0  # only catches a hang; nothing below is timed


@pytest.fixture
async def double() -> AsyncIterator[OpenObserveDouble]:
    server = await start_openobserve(USER, PASSWORD)
    yield server
    await server.close()


def fast(**batch: Any) -> ExportersSettings:
    options: dict[str, Any] = dict(
        max_batch_size=10,
        flush_interval_s=0.05,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        request_timeout_s=5.0,
    )
    options.update(batch)
    return ExportersSettings(openobserve=OpenObserveSettings(batch=BatchSettings(**options)))


def env(url: str, **extra: str) -> dict[str, str]:
    return {
        "OPENOBSERVE_ENDPOINT": url,
        "OPENOBSERVE_USER": USER,
        "OPENOBSERVE_PASS": PASSWORD,
        **extra,
    }


def one(sinks: list[RecordSink], name: str) -> BatchingSink:
    (sink,) = [s for s in sinks if s.name == name]
    assert isinstance(sink, BatchingSink)
    return sink


async def until(check: Any, within_s: float = HANG_GUARD_S) -> None:
    end = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


# -- issue 17, item 3: credentials echoed back -----------------------------------------


async def test_a_reply_echoing_the_credentials_is_scrubbed(
    double: OpenObserveDouble, caplog: pytest.LogCaptureFixture
) -> None:
    echo = json.dumps(
        {
            "code": 401,
            "message": f"bad Authorization: Basic {TOKEN} for {USER}:{PASSWORD}",
            "password": PASSWORD,
            "other": "Bearer abcdef0123456789",
        }
    )
    double.fail_next(401, times=2, body=echo + " padding" * 200)
    sinks = build_sinks(fast(), env(double.url))
    with caplog.at_level(logging.DEBUG):
        for sink in sinks:
            await sink.start()
            sink.submit(pair())
            await sink.shutdown(5.0)
    for sink in sinks:
        error = sink.health().last_error or ""
        assert "HTTP 401" in error
        assert PASSWORD not in error and TOKEN not in error
        assert "abcdef0123456789" not in error
        assert len(error) < 1200  # capped, whatever the body's size
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP 401" in logged
    assert PASSWORD not in logged and TOKEN not in logged


async def test_userinfo_in_the_endpoint_is_sent_as_basic_not_in_the_url(
    double: OpenObserveDouble, caplog: pytest.LogCaptureFixture
) -> None:
    host = double.url.removeprefix("http://")
    endpoint = f"http://{USER.replace('@', '%40')}:{PASSWORD}@{host}"
    with caplog.at_level(logging.INFO):
        sinks = build_sinks(fast(), {"OPENOBSERVE_ENDPOINT": endpoint})
        for sink in sinks:
            await sink.start()
            sink.submit(pair())
            await sink.shutdown(5.0)
    assert all(sink.health().sent == 1 for sink in sinks)
    assert {r.authorized for r in double.requests} == {True}
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)


# -- issue 17, item 6: a hung receiver is unhealthy -------------------------------------


async def test_a_hung_receiver_is_unhealthy_and_says_why(double: OpenObserveDouble) -> None:
    double.delay_s = 3600.0  # accepts the connection, never answers
    sinks = build_sinks(fast(request_timeout_s=0.2, max_queue_size=5), env(double.url))
    sink = one(sinks, "openobserve-traces")
    await sink.start()
    for _ in range(20):
        sink.submit(pair())
    try:
        await until(lambda: sink.health().state == ExportState.RETRYING)
        health = sink.health()
        assert not health.healthy
        assert health.dropped > 0
        assert "deadline" in (health.last_error or "")
    finally:
        await sink.shutdown(0.2)


def test_dropping_records_is_unhealthy_until_a_send_completes() -> None:
    class Idle:
        def encode(self, records: Any) -> Any:
            raise AssertionError("not called")

        def send(self, batch: Any, timeout_s: float) -> Any:
            raise AssertionError("not called")

        def close(self) -> None:
            pass

    from socketio_trace_proxy.exporters.batching import BatchPolicy  # noqa: PLC0415

    sink = BatchingSink("idle", Idle(), BatchPolicy(max_queue=2))
    assert sink.health().healthy
    for _ in range(3):
        sink.submit(pair())
    health = sink.health()
    assert (health.healthy, health.state, health.dropped) == (False, "dropping", 1)


# -- issue 17, item 11: a total deadline per request ------------------------------------


async def test_a_trickling_receiver_cannot_hold_a_request() -> None:
    """The receiver sends a header byte every 50 ms, forever: each read succeeds, so only a
    total deadline ends the request (urllib3's timeout, per read, never did)."""
    stop = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set():
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = HttpPoster(f"http://127.0.0.1:{port}/v1/traces", {"Content-Type": "x"})
    try:
        result = await asyncio.wait_for(asyncio.to_thread(poster.post, b"body", 0.5), HANG_GUARD_S)
    finally:
        stop.set()
        poster.close()
        server.close()
        await server.wait_closed()
    assert not hasattr(result, "body"), "a reply cannot have come"
    assert result.key == "deadline"  # type: ignore[union-attr]
    assert "deadline" in (result.error or "")  # type: ignore[union-attr]


# -- issue 17, item 12: a lone surrogate costs its record only, nothing else ------------


def test_a_lone_surrogate_loses_no_batch(tmp_path: Path) -> None:
    records = [pair() for _ in range(5)]
    records[2] = pair(request_event="bad\ud800", operation="bad\ud800 -> x")
    plugins: list[Any] = [
        NdjsonFilePlugin(str(tmp_path / "r.ndjson"), 10**6),
        OpenObserveJsonPlugin("http://o:5080/api/o/s/_json", "s", "svc", {}, gzip=False),
        OtlpTracesPlugin("http://o:4318/v1/traces", {}, {"service.name": "s"}, gzip=False),
    ]
    for plugin in plugins:
        encoded = plugin.encode(records)
        assert (encoded.count, encoded.skipped, encoded.replaced) == (5, 0, 1), plugin
        assert "bad\ufffd".encode() in encoded.payload
        if not isinstance(plugin, OtlpTracesPlugin):
            encoded.payload.decode("utf-8")  # valid UTF-8 throughout
    request = ExportTraceServiceRequest.FromString(plugins[2].encode(records).payload)
    names = [span.name for span in request.resource_spans[0].scope_spans[0].spans]
    assert len(names) == 5 and "bad\ufffd -> x" in names
    rows = json.loads(plugins[1].encode(records).payload)
    assert len(rows) == 5


async def test_replaced_text_is_counted_in_health(double: OpenObserveDouble) -> None:
    sinks = build_sinks(fast(), env(double.url))
    for sink in sinks:
        await sink.start()
        sink.submit(pair(request_event="\ud800"))
        sink.submit(pair())
        await sink.shutdown(5.0)
    for sink in sinks:
        health = sink.health()
        assert (health.sent, health.failed, health.text_replaced) == (2, 0, 1), health


# -- issue 13: failures visible at once, a retry budget for a slow first start ---------


async def test_first_failure_warns_once_and_health_says_retrying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = await start_openobserve(USER, PASSWORD)
    url = probe.url
    await probe.close()  # nothing listens: connection refused
    sinks = build_sinks(fast(backoff_initial_s=0.05), env(url.replace("://", "://u:p@")))
    sink = one(sinks, "openobserve-traces")
    with caplog.at_level(logging.WARNING, logger="socketio_trace_proxy.exporters"):
        await sink.start()
        sink.submit(pair())
        await until(lambda: sink.health().state == ExportState.RETRYING)
        await until(lambda: len(caplog.records) >= 1)
        await asyncio.sleep(0.3)  # several retries happen meanwhile
    warnings = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert f"POST {url}/api/default/v1/traces" in warning  # redacted: no u:p@
    assert "u:p@" not in warning
    assert "up to 300 s" in warning and "queue" in warning
    health = sink.health()
    assert (health.healthy, health.state) == (False, "retrying")
    assert "retrying in" in (health.last_error or "")
    await sink.shutdown(0.1)


async def test_records_sent_before_openobserve_answers_arrive_once_it_does() -> None:
    """compose starts OpenObserve beside the proxy; its first start takes a while.  Records
    submitted meanwhile are retried, not given up, and arrive when it answers."""
    probe = await start_openobserve(USER, PASSWORD)
    port = int(probe.url.rsplit(":", 1)[1])
    await probe.close()
    sinks = build_sinks(fast(backoff_max_s=0.2), env(f"http://127.0.0.1:{port}"))
    for sink in sinks:
        await sink.start()
    records = [pair() for _ in range(25)]
    for record in records:
        for sink in sinks:
            sink.submit(record)
    await until(lambda: all(s.health().state == ExportState.RETRYING for s in sinks))
    late = await start_openobserve(USER, PASSWORD, port=port)  # OpenObserve is up at last
    try:
        await until(lambda: all(s.health().sent == 25 for s in sinks))
        for sink in sinks:
            await sink.shutdown(5.0)
            health = sink.health()
            assert (health.failed, health.dropped, health.state) == (0, 0, "ok")
        assert {s.span_id for s in late.spans} == {r.span_id for r in records}
        assert len(late.json_records("socket-io-traces")) == 25
    finally:
        await late.close()


async def test_a_full_memtable_on_json_is_retried(double: OpenObserveDouble) -> None:
    double.memtable_full = True  # v0.14.4's _json: 400 MemoryTableOverflowError
    sinks = [s for s in build_sinks(fast(), env(double.url)) if s.name == "openobserve-json"]
    sink = one(sinks, "openobserve-json")
    await sink.start()
    sink.submit(pair())
    await until(lambda: len(double.requests) >= 2)
    double.memtable_full = False
    await until(lambda: sink.health().sent == 1)
    await sink.shutdown(5.0)
    assert double.requests[0].status == 400
    assert sink.health().failed == 0


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (400, "Content-Type other than exactly application/x-protobuf"),
        (401, "ingestion passcode"),
        (403, "quota"),
        (404, "never 404"),
    ],
)
async def test_refusals_explain_what_they_mean_on_openobserve(
    double: OpenObserveDouble, status: int, words: str
) -> None:
    double.fail_next(status, times=2)
    sinks = build_sinks(fast(), env(double.url))
    for sink in sinks:
        await sink.start()
        sink.submit(pair())
        await sink.shutdown(5.0)
        error = sink.health().last_error or ""
        assert f"HTTP {status}" in error and words in error and "not retried" in error
        assert sink.health().state == "failing"


async def test_what_openobserve_receives_and_stores(double: OpenObserveDouble) -> None:
    sinks = build_sinks(fast(), env(double.url), upstream="http://backend:5000")
    record = pair(ack_id=4)
    for sink in sinks:
        await sink.start()
        sink.submit(record)
        await sink.shutdown(5.0)
    (span,) = double.spans
    assert {r.user_agent for r in double.requests} == {user_agent()}
    assert (span.resource_schema_url, span.scope_schema_url) == (SCHEMA_URL, SCHEMA_URL)
    assert span.scope == "socketio-trace-proxy"
    resource = span.resource
    assert resource["telemetry.sdk.name"] == "socketio-trace-proxy"
    assert resource["telemetry.sdk.language"] == "python"
    assert resource["telemetry.sdk.version"] == resource["service.version"]
    assert resource["service.instance.id"]
    assert (span.attributes["server.address"], span.attributes["server.port"]) == ("backend", 5000)
    # what a user queries in OpenObserve (see README, "What you find in OpenObserve")
    row = span.stored
    assert row["operation_name"] == record.operation
    assert row["messaging_socket_io_sid"] == record.session.session_id
    assert row["socket_request_event"] == "create_terminal"
    assert row["messaging_message_id"] == "4"
    assert row["service_service_instance_id"] == resource["service.instance.id"]
    assert row["span_status"] == "UNSET"
    (stored,) = double.stored_records("socket-io-traces")
    assert list(double.records) == ["socket_io_traces"]
    assert stored["socket_request_event"] == "create_terminal"
    assert stored["socket_sid"] == record.session.session_id
    assert stored["operation_name"] == record.operation


async def test_the_local_exporter_is_untouched_by_the_receiver_rules(tmp_path: Path) -> None:
    settings = ExportersSettings(local=LocalSettings(ndjson_path=str(tmp_path / "t.ndjson")))
    (ndjson, console) = build_sinks(settings, {})
    assert ndjson.name == "ndjson" and console.name == "console"
    assert ndjson.health().state == "ok"

"""OpenObserve exporters against the OpenObserve test double: what arrives, and failures."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from socketio_trace_proxy.config.exporters import (
    BatchSettings,
    ExportersSettings,
    OpenObserveSettings,
)
from socketio_trace_proxy.exporters import build_sinks
from socketio_trace_proxy.exporters.batching import BatchingSink
from socketio_trace_proxy.exporters.openobserve import openobserve_target
from socketio_trace_proxy.exporters.spans import to_ns
from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome, Record
from socketio_trace_proxy.tracking.sink import RecordSink
from tests.doubles.openobserve import OpenObserveDouble, start_openobserve
from tests.exporters.kit import lifecycle, pair, session

USER, PASSWORD = "root@example.com", "Complexpass#123"


@pytest.fixture
async def double() -> AsyncIterator[OpenObserveDouble]:
    server = await start_openobserve(USER, PASSWORD)
    yield server
    await server.close()


def settings(**batch: Any) -> ExportersSettings:
    options: dict[str, Any] = dict(
        max_batch_size=50,
        flush_interval_s=0.05,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
        max_retries=3,
        request_timeout_s=5.0,
    )
    options.update(batch)
    return ExportersSettings(
        openobserve=OpenObserveSettings(batch=BatchSettings(**options)),
    )


def env(double: OpenObserveDouble, **extra: str) -> dict[str, str]:
    return {
        "OPENOBSERVE_ENDPOINT": double.url,
        "OPENOBSERVE_USER": USER,
        "OPENOBSERVE_PASS": PASSWORD,
        **extra,
    }


def by_name(sinks: Sequence[RecordSink]) -> dict[str, BatchingSink]:
    named = {sink.name: sink for sink in sinks}
    assert all(isinstance(sink, BatchingSink) for sink in named.values())
    return named  # type: ignore[return-value]


async def run(
    sinks: Sequence[RecordSink], records: Sequence[Record], deadline_s: float = 5.0
) -> None:
    for sink in sinks:
        await sink.start()
    for record in records:
        for sink in sinks:
            sink.submit(record)
    for sink in sinks:
        await sink.shutdown(deadline_s)


async def test_spans_arrive_grouped_by_sid_and_linked(double: OpenObserveDouble) -> None:
    a, b = session("sid-A"), session("sid-B")
    handshake_a = lifecycle(LifecycleKind.HANDSHAKE, a, parent_span_id="00f067aa0ba902b7")
    ok = pair(a, match_key="t1")
    timeout = pair(
        a,
        outcome=Outcome.TIMEOUT,
        response_event=None,
        operation="create_terminal -> timeout",
        duration_s=5.0,
    )
    other = pair(b, rule="resize", operation="resize -> ack", request_event="resize", ack_id=3)
    refused = lifecycle(LifecycleKind.NAMESPACE_CONNECT, b, ok=False, error="not authorized")
    sinks = build_sinks(settings(), env(double))
    assert sorted(s.name for s in sinks) == ["openobserve-json", "openobserve-traces"]
    await run(sinks, [handshake_a, ok, timeout, other, refused])

    spans = {span.span_id: span for span in double.spans}
    assert len(spans) == 5
    got_ok = spans[ok.span_id]
    assert got_ok.name == "create_terminal -> terminal_ready"
    assert (got_ok.org, got_ok.stream, got_ok.encoding) == ("default", "default", "protobuf")
    assert got_ok.trace_id == ok.trace_id
    assert got_ok.start_ns == to_ns(ok.start_wall)
    assert got_ok.end_ns - got_ok.start_ns == 11_000_000
    assert got_ok.status_code == 0  # Unset on success (OK is for application owners)
    assert got_ok.attributes["socket.request.event"] == "create_terminal"
    assert got_ok.attributes["socket.response.event"] == "terminal_ready"
    assert got_ok.attributes["socket.success"] is True
    assert got_ok.attributes["messaging.system"] == "socket.io"
    assert got_ok.service_name == "socketio-trace-proxy"
    assert "host.name" in got_ok.resource and "service.version" in got_ok.resource

    got_timeout = spans[timeout.span_id]
    assert got_timeout.name == "create_terminal -> timeout"
    assert (got_timeout.status_code, got_timeout.attributes["error.type"]) == (2, "timeout")
    assert got_timeout.end_ns - got_timeout.start_ns == 5_000_000_000

    # one query on the sid finds a session's spans; pairs link to its handshake span
    sid_of = "messaging.socket.io.sid"
    session_a = {s.span_id for s in double.spans if s.attributes.get(sid_of) == "sid-A"}
    assert session_a == {handshake_a.span_id, ok.span_id, timeout.span_id}
    assert got_ok.links == ((a.trace_id, a.span_id),)
    assert spans[handshake_a.span_id].parent_span_id == "00f067aa0ba902b7"
    assert spans[handshake_a.span_id].name == "engine.io handshake"
    got_refused = spans[refused.span_id]
    assert (got_refused.name, got_refused.status_code) == ("socket.io connect", 2)
    assert got_refused.attributes["error.type"] == "connect_error"
    assert spans[other.span_id].attributes["messaging.message.id"] == "3"

    traces_requests = [r for r in double.requests if r.path.endswith("/v1/traces")]
    assert traces_requests
    assert all(r.content_encoding == "gzip" for r in traces_requests)
    assert all(r.stream_name == "default" and r.authorized for r in traces_requests)
    health = by_name(sinks)["openobserve-traces"].health()
    assert (health.sent, health.failed, health.dropped, health.queued) == (5, 0, 0, 0)


async def test_json_records_have_the_in_app_tracker_fields(double: OpenObserveDouble) -> None:
    record = pair(session("sid-J"), duration_s=0.15)
    failed = pair(outcome=Outcome.TIMEOUT, response_event=None, operation="x -> timeout")
    sinks = [s for s in build_sinks(settings(), env(double)) if s.name == "openobserve-json"]
    await run(sinks, [record, failed])
    rows = {row["span_id"]: row for row in double.json_records("socket-io-traces")}
    row = rows[record.span_id]
    assert row["timestamp"] == round(record.start_wall * 1_000_000)
    assert row["message"] == "Socket.IO Event: create_terminal -> terminal_ready"
    assert (row["level"], row["service"], row["status"]) == ("INFO", "socketio-trace-proxy", "ok")
    assert (row["trace_id"], row["operation_name"]) == (record.trace_id, record.operation)
    assert row["duration_ms"] == 150.0
    assert row["socket.request.event"] == "create_terminal"
    assert row["socket.response.event"] == "terminal_ready"
    assert row["socket.success"] is True
    assert row["socket.sid"] == "sid-J"
    timed_out = rows[failed.span_id]
    assert (timed_out["status"], timed_out["level"], timed_out["socket.success"]) == (
        "timeout",
        "ERROR",
        False,
    )


async def test_endpoint_ending_in_api_org_and_stream_names(double: OpenObserveDouble) -> None:
    config = ExportersSettings(
        openobserve=OpenObserveSettings(
            traces_stream="socketio",
            json_stream="my-stream",
            batch=BatchSettings(flush_interval_s=0.05),
        )
    )
    sinks = build_sinks(config, env(double, OPENOBSERVE_ENDPOINT=f"{double.url}/api/acme/"))
    record = pair()
    await run(sinks, [record])
    (span,) = double.spans
    assert (span.org, span.stream) == ("acme", "socketio")
    assert [r["span_id"] for r in double.json_records("my-stream")] == [record.span_id]
    assert {r.path for r in double.requests} == {
        "/api/acme/v1/traces",
        "/api/acme/my-stream/_json",
    }


def test_target_url_building() -> None:
    base = openobserve_target("http://o:5080/", "my org")
    assert base.traces_url == "http://o:5080/api/my%20org/v1/traces"
    assert base.json_url("socket-io-traces") == "http://o:5080/api/my%20org/socket-io-traces/_json"
    cloud = openobserve_target("https://api.openobserve.ai/api/ORG_1", "ignored")
    assert cloud.traces_url == "https://api.openobserve.ai/api/ORG_1/v1/traces"


async def test_bad_credentials_not_retried_logged_once(
    double: OpenObserveDouble, caplog: pytest.LogCaptureFixture
) -> None:
    sinks = build_sinks(
        settings(max_batch_size=2), env(double, OPENOBSERVE_PASS="wrong-password-123")
    )
    with caplog.at_level(logging.ERROR):
        await run(sinks, [pair() for _ in range(4)])
    for sink in by_name(sinks).values():
        health = sink.health()
        assert (health.sent, health.failed) == (0, 4)
        assert not health.healthy
        assert health.last_error is not None and "401" in health.last_error
    assert len(double.requests) == 4  # two batches per sink, each tried once
    messages = [r.getMessage() for r in caplog.records if "401" in r.getMessage()]
    assert len(messages) == 2  # once per sink
    assert all("OPENOBSERVE_USER" in m for m in messages)
    assert not any("wrong-password-123" in r.getMessage() for r in caplog.records)


async def test_missing_credentials_get_401_json(double: OpenObserveDouble) -> None:
    environ = {"OPENOBSERVE_ENDPOINT": double.url}
    sinks = [s for s in build_sinks(settings(), environ) if s.name == "openobserve-traces"]
    await run(sinks, [pair()])
    assert by_name(sinks)["openobserve-traces"].health().failed == 1
    assert [(r.status, r.authorized) for r in double.requests] == [(401, False)]


async def test_transient_failures_are_retried(double: OpenObserveDouble) -> None:
    double.fail_next(503)
    double.fail_next(429, retry_after="0")
    double.fail_next(502)
    sinks = [s for s in build_sinks(settings(), env(double)) if s.name == "openobserve-traces"]
    record = pair()
    await run(sinks, [record])
    assert [r.status for r in double.requests] == [503, 429, 502, 200]
    assert [s.span_id for s in double.spans] == [record.span_id]
    health = by_name(sinks)["openobserve-traces"].health()
    assert (health.sent, health.failed, health.healthy) == (1, 0, True)


async def test_500_is_retried_as_openobserve_means_it(double: OpenObserveDouble) -> None:
    # OpenObserve answers 500 for a failed write ("error while writing trace data"), which
    # succeeds once the write path works again; a generic OTLP receiver's 500 is permanent.
    double.fail_next(500)
    sinks = [s for s in build_sinks(settings(), env(double)) if s.name == "openobserve-json"]
    record = pair()
    await run(sinks, [record])
    assert [r.status for r in double.requests] == [500, 200]
    assert [r["span_id"] for r in double.json_records("socket-io-traces")] == [record.span_id]
    assert by_name(sinks)["openobserve-json"].health().failed == 0


async def test_too_old_records_count_as_failed(double: OpenObserveDouble) -> None:
    old = time.time() - 6 * 3600
    sinks = build_sinks(settings(), env(double))
    await run(sinks, [pair(start_wall=old), pair()])
    for sink in by_name(sinks).values():
        health = sink.health()
        assert (health.sent, health.failed, health.healthy) == (1, 1, True), sink.name
        assert health.last_error is not None
    traces = by_name(sinks)["openobserve-traces"].health().last_error or ""
    assert "exceeding the allowed retention period" in traces  # OpenObserve's words
    assert "Too old data" in (by_name(sinks)["openobserve-json"].health().last_error or "")
    assert len(double.spans) == 1


async def test_backend_down_counts_failures_and_drops() -> None:
    server = await start_openobserve(USER, PASSWORD)
    url = server.url
    await server.close()  # connection refused from now on
    config = settings(max_batch_size=5, max_queue_size=10, max_retries=1, flush_interval_s=60)
    environ = {"OPENOBSERVE_ENDPOINT": url, "OPENOBSERVE_USER": USER, "OPENOBSERVE_PASS": "x"}
    sinks = [s for s in build_sinks(config, environ) if s.name == "openobserve-traces"]
    await run(sinks, [pair() for _ in range(40)], deadline_s=2.0)
    health = sinks[0].health()
    assert health.sent == 0
    assert health.dropped > 0  # the queue overflowed while the worker retried
    assert health.failed + health.dropped == 40  # nothing hidden
    assert health.last_error is not None and "Connection" in health.last_error


@pytest.mark.parametrize("in_flight", [True, False])
async def test_shutdown_deadline_with_a_slow_backend(
    double: OpenObserveDouble, in_flight: bool
) -> None:
    double.delay_s = 3.0
    config = settings(max_batch_size=2 if in_flight else 50, flush_interval_s=60)
    (sink,) = [s for s in build_sinks(config, env(double)) if s.name == "openobserve-traces"]
    await sink.start()
    for _ in range(6):
        sink.submit(pair())
    if in_flight:  # a full batch is already being sent when shutdown begins
        await double.wait_for(lambda: double.started >= 1)
    await sink.shutdown(0.3)
    health = sink.health()
    assert health.sent == 0
    assert health.failed + health.dropped == 6
    assert health.queued == 0


def test_exporter_health_says_where_openobserve_shows_the_data() -> None:
    """The dashboard's exporter badges name the streams as OpenObserve stores them, for the
    configured names (not only the defaults)."""
    config = ExportersSettings(
        openobserve=OpenObserveSettings(traces_stream="socketio", json_stream="My-Stream.v2")
    )
    sinks = by_name(build_sinks(config, {"OPENOBSERVE_ENDPOINT": "http://o:5080"}))
    traces = sinks["openobserve-traces"].health().where
    json_ = sinks["openobserve-json"].health().where
    assert traces is not None and traces.startswith('OpenObserve: Traces, stream "socketio";')
    assert "messaging_socket_io_sid" in traces
    assert json_ is not None and json_.startswith(
        'OpenObserve: Logs, stream "my_stream_v2" (configured as My-Stream.v2);'
    )
    assert "socket_request_event" in json_

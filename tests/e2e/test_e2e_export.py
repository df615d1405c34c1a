"""Exporters end to end: client -> proxy -> backend, with only ``OPENOBSERVE_ENDPOINT``,
``OPENOBSERVE_USER`` and ``OPENOBSERVE_PASS`` set (environment, no exporter config), pointing
at the OpenObserve test double; after the proxy stops (and flushes), the spans and the JSON
records that arrived there are checked against what the tracker recorded and what passed the
relay.  Credentials must appear nowhere in what was exported or logged."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from socketio_trace_proxy.config.loader import describe_settings
from socketio_trace_proxy.exporters.spans import to_ns
from socketio_trace_proxy.proxy.logging import OneLineFormatter
from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome, PairRecord, Record
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.doubles.openobserve import ReceivedSpan
from tests.e2e.stack import (
    TRACE_ID,
    FrameTap,
    Proxy,
    ServedDouble,
    check_scenario,
    closed,
    e2e_settings,
    eventually,
    lifecycle,
    pairs,
    python_scenario,
    session_records,
    traceparent,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER = "e2e-ingest@example.com"
PASSWORD = "e2e-Pa55-w0rd-8d1f2c"
PARENT_SPAN = "c0ffee00deadbeef"
JSON_STREAM = "socket-io-traces"
STATUS_UNSET, STATUS_ERROR = 0, 2  # OTLP Status.StatusCode: success is left Unset


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged, at DEBUG, as the structured (one JSON object per line) log stream
    and as plain messages with their arguments, while the block runs."""
    stream = io.StringIO()
    structured = logging.StreamHandler(stream)
    structured.setFormatter(OneLineFormatter())
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)r"))
    root = logging.getLogger()
    old_level = root.level
    for handler in (structured, plain):
        handler.setLevel(logging.DEBUG)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(structured)
        root.removeHandler(plain)
        root.setLevel(old_level)


@dataclass(frozen=True)
class Exported:
    """One run: the tracker's records of the session, and what reached the double."""

    records: list[Record]
    pairs: dict[str, PairRecord]
    spans: list[ReceivedSpan]
    rows: list[dict[str, Any]]
    tap: FrameTap
    sid: str
    double: ServedDouble
    logs: str
    settings_text: str

    def span(self, span_id: str) -> ReceivedSpan:
        found = [s for s in self.spans if s.span_id == span_id]
        assert len(found) == 1, f"span {span_id}: {len(found)} arrived"
        return found[0]

    def row(self, span_id: str) -> dict[str, Any]:
        found = [r for r in self.rows if r.get("span_id") == span_id]
        assert len(found) == 1, f"JSON record {span_id}: {len(found)} arrived"
        return found[0]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exported(
    backend_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exported]:
    """One scenario through a proxy exporting to the double, stopped (flushed) afterwards."""
    tmp_path = tmp_path_factory.mktemp("export")
    with captured_logs() as logs:
        async for value in _exported(backend_url, tmp_path, logs):
            yield value


async def _exported(backend_url: str, tmp_path: Path, logs: io.StringIO) -> AsyncIterator[Exported]:
    served = await ServedDouble.start(USER, PASSWORD)
    environ = {
        "OPENOBSERVE_ENDPOINT": served.double.url,
        "OPENOBSERVE_USER": USER,
        "OPENOBSERVE_PASS": PASSWORD,
    }
    try:
        settings = e2e_settings(tmp_path, backend_url, environ)
        tap = FrameTap()
        proxy = await Proxy.start(settings, environ, extra_observers=[tap])
        try:
            run = await python_scenario(proxy.url, None, traceparent(PARENT_SPAN))
            await eventually(closed(proxy.tracker, run.sid), "the session's close record")
            records = session_records(proxy.tracker, run.sid)
            found = check_scenario(
                records,
                run,
                terminal_transports=(ready_transport(records), ready_transport(records, True)),
                single_transport=None,
                parent_span=PARENT_SPAN,
            )
        finally:
            await proxy.stop()  # flushes the exporters
        assert not (tmp_path / "records.ndjson").exists()  # remote exporters replace local
        double = served.double
        yield Exported(
            records,
            found,
            list(double.spans),
            double.json_records(JSON_STREAM),
            tap,
            run.sid,
            served,
            logs.getvalue(),
            describe_settings(settings) + repr(settings),
        )
    finally:
        await served.close()


def ready_transport(records: list[Record], response: bool = False) -> Transport:
    """The transports create_terminal -> terminal_ready actually took (the default client
    upgrades at its own pace)."""
    for r in records:
        if isinstance(r, PairRecord) and r.operation == "create_terminal -> terminal_ready":
            transport = r.response_transport if response else r.request_transport
            assert transport is not None
            return transport
    raise AssertionError("no create_terminal -> terminal_ready record")


async def test_pair_spans_names_times_attributes_status(exported: Exported) -> None:
    sid = exported.sid
    session_pairs = pairs(exported.records)
    assert len(session_pairs) == 10
    for record in session_pairs:
        span = exported.span(record.span_id)
        assert span.name == record.operation
        assert span.trace_id == record.trace_id
        assert span.start_ns == to_ns(record.start_wall)
        assert abs((span.end_ns - span.start_ns) - record.duration_s * 1e9) < 2_000
        assert span.resource["service.name"] == "socketio-trace-proxy"
        attrs = span.attributes
        assert attrs["messaging.system"] == "socket.io"
        assert attrs["messaging.socket.io.sid"] == sid
        assert attrs["messaging.client.id"] == sid
        assert attrs["messaging.destination.name"] == "/"
        assert attrs["socket.request.event"] == record.request_event
        assert attrs.get("socket.response.event") == record.response_event
        assert attrs["messaging.socket.io.rule"] == record.rule
        assert attrs["messaging.socket.io.transport"] == record.request_transport.value
        ok = record.outcome is Outcome.OK
        assert attrs["socket.success"] is ok
        assert span.status_code == (STATUS_UNSET if ok else STATUS_ERROR)
        assert ("error.type" in attrs) is not ok

    ready = exported.span(exported.pairs["terminal"].span_id)
    assert ready.name == "create_terminal -> terminal_ready"
    assert ready.attributes["socket.response.event"] == "terminal_ready"
    # Start and end are the request and reply frames as they passed the proxy: the tracker
    # reads its clock just before the tap (an extra observer after it) sees the same frame.
    sent, _ = exported.tap.first('"create_terminal"', Direction.CLIENT_TO_SERVER)
    answered, _ = exported.tap.first('"terminal_ready"', Direction.SERVER_TO_CLIENT)
    assert sent - 0.5 <= ready.start_ns / 1e9 <= sent + 1e-3
    assert answered - 0.5 <= ready.end_ns / 1e9 <= answered + 1e-3
    assert ready.start_ns < ready.end_ns

    error = exported.span(exported.pairs["error"].span_id)
    assert error.attributes["error.type"] == "terminal_error"
    assert error.attributes["socket.success"] is False
    timeout = exported.span(exported.pairs["timeout"].span_id)
    # the span is named by the record's operation, which keeps the rule's name on timeout
    assert timeout.name == exported.pairs["timeout"].operation == "ai_get_info -> ai_info_response"
    assert timeout.attributes["error.type"] == "timeout"
    assert timeout.status_code == STATUS_ERROR
    stream = exported.span(exported.pairs["stream"].span_id)
    assert stream.attributes["messaging.socket.io.chunk_count"] == 3
    assert stream.attributes["messaging.message.conversation_id"] == "msg-e2e-1"
    echo = exported.span(exported.pairs["echo"].span_id)
    assert echo.attributes["messaging.message.id"] == str(exported.pairs["echo"].ack_id)
    templated = exported.span(exported.pairs["templated"].span_id)
    assert templated.name == (
        "workspace:tab:{tab}:pane:{pane}:terminal:create -> "
        "workspace:tab:{tab}:pane:{pane}:terminal:created"
    )
    assert templated.attributes["socket.request.event"] == (
        "workspace:tab:tab-1:pane:pane-2:terminal:create"
    )
    late = exported.span(exported.pairs["late"].span_id)
    assert late.attributes["messaging.socket.io.late"] is True


async def test_one_query_by_sid_finds_the_session_and_every_span_links_to_its_handshake(
    exported: Exported,
) -> None:
    sid = exported.sid
    handshakes = [s for s in exported.spans if s.name == "engine.io handshake"]
    assert len(handshakes) == 1
    handshake = handshakes[0]
    # The client's traceparent header on the handshake: continued, not replaced.
    assert (handshake.trace_id, handshake.parent_span_id) == (TRACE_ID, PARENT_SPAN)
    assert handshake.attributes["messaging.socket.io.sid"] == sid
    session = exported.records[0].session
    assert (handshake.trace_id, handshake.span_id) == (session.trace_id, session.span_id)

    by_sid = [s for s in exported.spans if s.attributes.get("messaging.socket.io.sid") == sid]
    assert len(by_sid) == len(exported.spans)  # one session ran: every span is found
    record_ids = {getattr(r, "span_id", None) for r in exported.records} - {None}
    assert {s.span_id for s in by_sid} == record_ids
    for span in by_sid:
        if span is not handshake:
            assert (handshake.trace_id, handshake.span_id) in span.links, span.name
    names = {s.name for s in by_sid}
    assert {"socket.io connect", "engine.io close"} <= names
    assert ("engine.io upgrade" in names) == bool(
        lifecycle(exported.records, LifecycleKind.UPGRADE)
    )


async def test_late_reply_span_links_to_the_timed_out_span(exported: Exported) -> None:
    late = exported.span(exported.pairs["late"].span_id)
    timed_out = exported.span(exported.pairs["late_timeout"].span_id)
    assert timed_out.name == exported.pairs["late_timeout"].operation
    assert timed_out.name == "wrapper_session_sync -> wrapper_session_sync_response"
    assert late.name == timed_out.name
    assert (timed_out.trace_id, timed_out.span_id) in late.links


async def test_json_records_match_the_spans(exported: Exported) -> None:
    assert exported.rows, "no JSON record arrived"
    for record in pairs(exported.records):
        span = exported.span(record.span_id)
        row = exported.row(record.span_id)
        assert row["trace_id"] == span.trace_id
        assert row["operation_name"] == span.name
        assert row["service"] == "socketio-trace-proxy"
        assert row["socket.request.event"] == record.request_event
        assert row["socket.response.event"] == record.response_event
        assert row["socket.sid"] == exported.sid
        assert row["socket.success"] is (record.outcome is Outcome.OK)
        assert abs(row["duration_ms"] - (span.end_ns - span.start_ns) / 1e6) < 0.01
        assert row["timestamp"] * 1000 == span.start_ns
        expected_status = {Outcome.OK: "ok", Outcome.TIMEOUT: "timeout"}.get(
            record.outcome, "error"
        )
        assert row["status"] == expected_status, row
        assert row["level"] == ("INFO" if record.outcome is Outcome.OK else "ERROR")
        if record.outcome is not Outcome.OK:
            assert row["error_type"] == span.attributes["error.type"]
    handshake = [r for r in exported.rows if r["operation_name"] == "socket:handshake"]
    assert len(handshake) == 1
    assert handshake[0]["trace_id"] == TRACE_ID


async def test_requests_reached_openobserve_authenticated_and_compressed(
    exported: Exported,
) -> None:
    requests = list(exported.double.double.requests)
    traces = [r for r in requests if r.path == "/api/default/v1/traces"]
    rows = [r for r in requests if r.path == f"/api/default/{JSON_STREAM}/_json"]
    assert traces
    assert rows
    assert len(traces) + len(rows) == len(requests)
    for r in requests:
        assert (r.status, r.authorized, r.content_encoding) == (200, True, "gzip"), r
    assert {r.content_type for r in traces} == {"application/x-protobuf"}
    assert {r.stream_name for r in traces} == {"default"}
    # where a user finds them: the stream OpenObserve stores, its columns
    assert list(exported.double.double.records) == ["socket_io_traces"]
    stored = exported.double.double.stored_spans()
    assert {row["messaging_socket_io_sid"] for row in stored} == {exported.sid}


async def test_credentials_appear_nowhere(exported: Exported) -> None:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    exported_text = json.dumps(
        [[s.attributes, s.resource, s.name, s.status_message] for s in exported.spans]
        + [exported.rows],
        default=str,
    )
    assert exported.logs, "nothing was logged: the capture is broken"
    assert "exporting traces to" in exported.logs  # the exporter did log its target
    for secret in (PASSWORD, token, USER):
        assert secret not in exported_text
        assert secret not in exported.logs
        assert secret not in exported.settings_text

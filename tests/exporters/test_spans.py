"""Span model: names, status, error.type, attributes, links and parents of exported spans."""

from __future__ import annotations

from dataclasses import replace

from socketio_trace_proxy.exporters.spans import (
    CLOSE_SPAN,
    CONNECT_SPAN,
    HANDSHAKE_SPAN,
    SpanKind,
    StatusCode,
    export_filter,
    exportable,
    lifecycle_span,
    message_span,
    pair_span,
)
from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome, PairKind
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.exporters.kit import lifecycle, message, pair, session


def test_ok_pair_span() -> None:
    ref = session("sid-1")
    record = pair(ref, start_wall=1700000000.25, duration_s=0.011, ack_id=None, match_key="t1")
    span = pair_span(record)
    assert span.name == "create_terminal -> terminal_ready"
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        record.trace_id,
        record.span_id,
        None,
    )
    assert span.start_ns == 1700000000250000000
    assert span.end_ns - span.start_ns == 11_000_000
    assert span.kind is SpanKind.INTERNAL  # a passive observer (see exporters.spans)
    assert span.status is StatusCode.UNSET  # success: Unset, as instrumentation must leave it
    assert span.status_message is None
    attrs = dict(span.all_attributes)
    assert attrs["messaging.operation.name"] == "event_pair"
    assert attrs["messaging.operation.type"] == "process"
    assert (attrs["network.protocol.name"], attrs["network.transport"]) == ("socket.io", "tcp")
    assert attrs["socket.request.event"] == "create_terminal"
    assert attrs["socket.response.event"] == "terminal_ready"
    assert attrs["socket.success"] is True
    assert attrs["socket.duration_ms"] == 11.0
    assert attrs["messaging.system"] == "socket.io"
    assert attrs["messaging.destination.name"] == "/"
    assert attrs["messaging.client.id"] == "sid-1"
    assert attrs["messaging.socket.io.sid"] == "sid-1"
    assert attrs["messaging.message.conversation_id"] == "t1"
    assert attrs["messaging.socket.io.direction"] == "c2s"
    assert attrs["messaging.socket.io.transport"] == "websocket"
    assert attrs["messaging.socket.io.rule"] == "create_terminal"
    assert attrs["messaging.socket.io.slow"] is False
    assert attrs["messaging.socket.io.late"] is False
    assert attrs["messaging.message.body.size"] == 120
    assert attrs["messaging.socket.io.response.body.size"] == 340
    assert "error.type" not in attrs
    assert "messaging.message.id" not in attrs
    # linked to the session's handshake span
    assert span.links == ((ref.trace_id, ref.span_id),)


def test_ack_pair_carries_message_id() -> None:
    record = pair(
        kind=PairKind.ACK, ack_id=7, response_event=None, operation="terminal_input -> ack"
    )
    attrs = dict(pair_span(record).all_attributes)
    assert attrs["messaging.message.id"] == "7"
    assert attrs["messaging.message.conversation_id"] == "7"
    assert "socket.response.event" not in attrs


def test_error_outcomes_set_status_and_error_type() -> None:
    cases = [
        (dict(outcome=Outcome.TIMEOUT, response_event=None), "timeout"),
        (dict(outcome=Outcome.ABANDONED, response_event=None), "abandoned"),
        (dict(outcome=Outcome.ERROR, response_event="terminal_error"), "terminal_error"),
        (dict(outcome=Outcome.ERROR, error_type="connect_error"), "connect_error"),
    ]
    for overrides, expected in cases:
        span = pair_span(pair(**overrides))  # type: ignore[arg-type]
        attrs = dict(span.all_attributes)
        assert span.status is StatusCode.ERROR, overrides
        assert attrs["error.type"] == expected
        assert span.status_message == expected
        assert attrs["socket.success"] is False


def test_late_reply_links_its_timeout_span_and_is_flagged() -> None:
    timed_out = pair(outcome=Outcome.TIMEOUT)
    late = pair(outcome=Outcome.LATE, trace_id=timed_out.trace_id, linked_span_id=timed_out.span_id)
    span = pair_span(late)
    assert dict(span.all_attributes)["messaging.socket.io.late"] is True
    assert (timed_out.trace_id, timed_out.span_id) in span.links
    assert span.status is StatusCode.UNSET


def test_slow_stream_and_payloads() -> None:
    record = pair(
        kind=PairKind.STREAM,
        slow=True,
        chunk_count=3,
        first_chunk_s=0.004,
        request_payload='["x"]',
        response_payload='["y"]',
        initiator=Direction.SERVER_TO_CLIENT,
        request_transport=Transport.POLLING,
    )
    span = pair_span(record)
    attrs = dict(span.all_attributes)
    assert span.kind is SpanKind.INTERNAL  # whoever initiated: the proxy only observes
    assert attrs["messaging.operation.name"] == "stream"
    assert attrs["messaging.socket.io.slow"] is True
    assert attrs["messaging.socket.io.chunk_count"] == 3
    assert attrs["messaging.socket.io.first_chunk_ms"] == 4.0
    assert attrs["messaging.socket.io.request.payload"] == '["x"]'
    assert attrs["messaging.socket.io.response.payload"] == '["y"]'
    assert attrs["messaging.socket.io.transport"] == "polling"
    assert attrs["messaging.socket.io.direction"] == "s2c"


def test_no_payload_attributes_without_capture() -> None:
    keys = {key for key, _ in pair_span(pair()).all_attributes}
    assert not any("payload" in key for key in keys)


def test_handshake_continues_traceparent_and_has_no_link() -> None:
    ref = session("sid-H")
    record = lifecycle(LifecycleKind.HANDSHAKE, ref, parent_span_id="00f067aa0ba902b7")
    span = lifecycle_span(record)
    assert span.name == HANDSHAKE_SPAN
    assert (span.trace_id, span.span_id) == (ref.trace_id, ref.span_id)
    assert span.parent_span_id == "00f067aa0ba902b7"
    assert span.links == ()
    assert dict(span.all_attributes)["messaging.socket.io.sid"] == "sid-H"


def test_failed_namespace_connect_is_an_error_span() -> None:
    ref = session()
    record = lifecycle(
        LifecycleKind.NAMESPACE_CONNECT, ref, namespace="/admin", ok=False, error="not authorized"
    )
    span = lifecycle_span(record)
    attrs = dict(span.all_attributes)
    assert span.name == CONNECT_SPAN
    assert span.status is StatusCode.ERROR
    assert span.status_message == "not authorized"
    assert attrs["error.type"] == "connect_error"
    assert attrs["messaging.destination.name"] == "/admin"
    assert span.links == ((ref.trace_id, ref.span_id),)


def test_close_is_a_point() -> None:
    span = lifecycle_span(lifecycle(LifecycleKind.CLOSE, duration_s=0.0, detail="close_packet"))
    assert span.name == CLOSE_SPAN
    assert span.end_ns == span.start_ns
    attrs = dict(span.all_attributes)
    assert attrs["messaging.socket.io.detail"] == "close_packet"
    assert "messaging.socket.io.close.code" not in attrs
    assert "messaging.socket.io.close.initiator" not in attrs


def test_close_carries_the_close_code_and_who_closed() -> None:
    record = lifecycle(
        LifecycleKind.CLOSE,
        detail="websocket_closed",
        close_code=4001,
        close_initiator=Direction.SERVER_TO_CLIENT,
    )
    attrs = dict(lifecycle_span(record).all_attributes)
    assert attrs["messaging.socket.io.close.code"] == 4001
    assert attrs["messaging.socket.io.close.initiator"] == "s2c"


def test_messages_are_zero_length_and_named_without_the_event() -> None:
    record = message(event="shell:output")
    span = message_span(record)
    assert span.name == "socket.io message"
    assert dict(span.all_attributes)["messaging.socket.io.event"] == "shell:output"
    assert span.start_ns == span.end_ns
    assert len(span.span_id) == 16


def test_exportable() -> None:
    assert exportable(pair(), messages=False)
    assert not exportable(pair(sampled=False), messages=True)
    assert not exportable(message(), messages=False)
    assert exportable(message(), messages=True)
    assert exportable(lifecycle(), messages=False)


def test_export_filter_is_exportable() -> None:
    records = [pair(), pair(sampled=False), message(), lifecycle()]
    for messages in (False, True):
        accepts = export_filter(messages=messages)
        assert [accepts(r) for r in records] == [exportable(r, messages=messages) for r in records]


def test_one_operation_one_name_whatever_the_outcome() -> None:
    # the tracker names the operation; every outcome keeps it and says what went wrong
    name = "ai_get_info -> ai_info_response"
    for outcome, error_type in (
        (Outcome.OK, None),
        (Outcome.TIMEOUT, "timeout"),
        (Outcome.ABANDONED, "abandoned"),
        (Outcome.EVICTED, "evicted"),
        (Outcome.LATE, None),
    ):
        span = pair_span(pair(operation=name, outcome=outcome, response_event=None))
        assert span.name == name
        assert dict(span.all_attributes).get("error.type") == error_type
        expected = StatusCode.UNSET if error_type is None else StatusCode.ERROR
        assert span.status is expected


def test_handshake_is_a_server_span_with_its_real_duration() -> None:
    span = lifecycle_span(lifecycle(LifecycleKind.HANDSHAKE, duration_s=0.0042))
    assert span.kind is SpanKind.SERVER
    assert span.end_ns - span.start_ns == 4_200_000
    assert span.status is StatusCode.UNSET
    others = [LifecycleKind.NAMESPACE_CONNECT, LifecycleKind.UPGRADE, LifecycleKind.CLOSE]
    assert {lifecycle_span(lifecycle(kind)).kind for kind in others} == {SpanKind.INTERNAL}


def test_one_way_messages_send_or_receive_by_direction() -> None:
    c2s = dict(message_span(message(direction=Direction.CLIENT_TO_SERVER)).all_attributes)
    s2c = dict(message_span(message(direction=Direction.SERVER_TO_CLIENT)).all_attributes)
    assert (c2s["messaging.operation.type"], s2c["messaging.operation.type"]) == (
        "send",
        "receive",
    )
    assert c2s["messaging.operation.name"] == "emit"
    assert message_span(message()).kind is SpanKind.INTERNAL


def test_client_address_and_port_when_the_records_carry_them() -> None:
    ref = session("sid-C")
    client = replace(ref, client_address="10.0.0.7", client_port=51234)
    for span in (
        pair_span(pair(session=client)),
        lifecycle_span(lifecycle(LifecycleKind.CLOSE, client)),
        message_span(message(client)),
    ):
        attrs = dict(span.all_attributes)
        assert (attrs["client.address"], attrs["client.port"]) == ("10.0.0.7", 51234)
    no_port = dict(pair_span(pair(session=replace(ref, client_address="::1"))).all_attributes)
    assert no_port["client.address"] == "::1" and "client.port" not in no_port
    assert "client.address" not in dict(pair_span(pair()).all_attributes)

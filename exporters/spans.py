"""The span model: how a record becomes a span (issue 6, "Span model"; issue 13).

One span per paired request, from the request frame to the response frame (or the timeout
deadline), named by ``record.operation`` (the rule's template, ``create_terminal ->
terminal_ready``: one operation keeps one name whatever its outcome); a short span per
Engine.IO handshake, namespace connect and upgrade, and a zero-length one at close.  Every
span carries the Engine.IO sid (``messaging.socket.io.sid``) so one query finds a session, and
links to the session's handshake span.  The handshake span continues the client's
``traceparent`` (its ``parent_span_id``).  No span lives for the whole connection.

Attributes follow AetherTerm's in-app tracker (``socket.*``) and the OpenTelemetry semantic
conventions 1.27.0 (:data:`SCHEMA_URL`): messaging (``messaging.system``,
``messaging.operation.name`` / ``.type``, ``messaging.destination.name`` = the namespace,
``messaging.message.id`` = the ack id, ``messaging.message.body.size``, ``messaging.client.id``
= the sid), network (``network.protocol.name``, ``network.transport``, ``server.address`` /
``server.port`` of the upstream, set by the exporter; ``client.address`` / ``client.port`` when
the record's session carries them) and ``error.type``; ``messaging.socket.io.*`` for the rest
(the close span: ``messaging.socket.io.close.code`` and ``.close.initiator``, ``c2s``/``s2c``,
when the record has them).

``messaging.operation.type`` is named from the browser's side of the conversation (the proxy
stands where its Socket.IO client connects): a one-way client event is ``send``, a one-way
server event ``receive``, a request and its answer ``process`` (the peer processed the request;
the span lasts until its answer passed).

Status (trace API, "Set Status"): left Unset on success, ``ERROR`` with ``error.type`` (and a
description) on failure; ``OK`` is for application owners, not for instrumentation.

Span kinds (trace API, "SpanKind"), for a passive observer: a pair, namespace connect, upgrade,
close or one-way message span is ``INTERNAL``.  ``CLIENT`` and ``SERVER`` claim the caller's or
the handler's side of a remote call, and ``PRODUCER`` / ``CONSUMER`` the sender's or the
receiver's; the proxy is none of these (it neither emits nor handles the events, and injects
no trace context, so no remote span is its child), and the messaging conventions' kinds
(``send``: PRODUCER/CLIENT, ``process``: CONSUMER) are for the messaging clients themselves.
The handshake span is ``SERVER``: the proxy is the HTTP server the client's handshake request
reached, and the span continues the client's ``traceparent`` as the child of its remote
``CLIENT`` span, which is exactly the SERVER case.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import IntEnum
from typing import NamedTuple

from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairKind,
    PairRecord,
    Record,
    SessionRef,
)
from socketio_trace_proxy.tracking.traffic import Direction

AttrValue = str | bool | int | float

SCHEMA_URL = "https://opentelemetry.io/schemas/1.27.0"


class SpanKind(IntEnum):
    """``opentelemetry.proto.trace.v1.Span.SpanKind`` values."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(IntEnum):
    """``opentelemetry.proto.trace.v1.Status.StatusCode`` values."""

    UNSET = 0
    OK = 1
    ERROR = 2


class SpanSpec(NamedTuple):
    """One span, exporter-neutral; ids are lowercase hex (W3C sizes).

    Immutable like the project's frozen dataclasses, but a NamedTuple: one is built per
    exported span and a frozen dataclass costs ~3 us to construct against ~0.6 us here.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    attributes: tuple[tuple[str, AttrValue], ...]
    status: StatusCode
    status_message: str | None
    links: tuple[tuple[str, str], ...]  # (trace_id, span_id)
    # attributes many spans share (same rule, outcome, transport...): one interned tuple,
    # encoded once by the wire encoder; they come before ``attributes``
    shared: tuple[tuple[str, AttrValue], ...] = ()

    @property
    def all_attributes(self) -> tuple[tuple[str, AttrValue], ...]:
        return self.shared + self.attributes


HANDSHAKE_SPAN = "engine.io handshake"
CONNECT_SPAN = "socket.io connect"
UPGRADE_SPAN = "engine.io upgrade"
HEARTBEAT_SPAN = "engine.io heartbeat"
CLOSE_SPAN = "engine.io close"
MESSAGE_SPAN = "socket.io message"

_LIFECYCLE_NAMES = {
    LifecycleKind.HANDSHAKE: HANDSHAKE_SPAN,
    LifecycleKind.NAMESPACE_CONNECT: CONNECT_SPAN,
    LifecycleKind.UPGRADE: UPGRADE_SPAN,
    LifecycleKind.HEARTBEAT: HEARTBEAT_SPAN,
    LifecycleKind.CLOSE: CLOSE_SPAN,
}
_LIFECYCLE_ERRORS = {
    LifecycleKind.HANDSHAKE: "handshake_error",
    LifecycleKind.NAMESPACE_CONNECT: "connect_error",
    LifecycleKind.UPGRADE: "upgrade_error",
    LifecycleKind.HEARTBEAT: "heartbeat_error",
    LifecycleKind.CLOSE: "close_error",
}
_OUTCOME_ERRORS = {
    Outcome.ERROR: "error",
    Outcome.REJECTED: "rejected",
    Outcome.TIMEOUT: "timeout",
    Outcome.ABANDONED: "abandoned",
    Outcome.EVICTED: "evicted",
}


def to_ns(wall_s: float) -> int:
    """Unix seconds -> nanoseconds, exact to the microsecond (floats carry no more)."""
    return round(wall_s * 1_000_000) * 1000


# Enum members bound once: in Python 3.11 ``Outcome.OK`` is a ~0.2 us metaclass lookup and
# ``.value`` a property; ``_value_`` (a documented sunder attribute) is a plain slot read.
_OK = Outcome.OK
_ERROR = Outcome.ERROR
_LATE = Outcome.LATE
_STREAM = PairKind.STREAM
_INTERNAL = SpanKind.INTERNAL
_STATUS_UNSET = StatusCode.UNSET
_STATUS_ERROR = StatusCode.ERROR
_OUTCOME_ERROR_TYPES = {o._value_: e for o, e in _OUTCOME_ERRORS.items()}


def pair_error_type(record: PairRecord) -> str | None:
    """``error.type`` of a pair, or None when it succeeded (a LATE reply is not an error by
    itself: its TIMEOUT span already reported one)."""
    if record.error_type is not None:
        return record.error_type
    outcome = record.outcome
    if outcome is _OK or outcome is _LATE:
        return None
    if outcome is _ERROR and record.response_event:
        return record.response_event
    return _OUTCOME_ERROR_TYPES.get(outcome._value_)


_SHARED: dict[tuple[object, ...], tuple[tuple[str, AttrValue], ...]] = {}
_SHARED_LIMIT = 4096  # distinct (rule, outcome, transport, ...) shapes kept; then start over


def pair_shared(record: PairRecord, error_type: str | None) -> tuple[tuple[str, AttrValue], ...]:
    """The attributes a pair shares with every pair of its shape (rule, events, outcome,
    transports...): one interned tuple per shape, so encoders may key caches on its identity."""
    response_transport = record.response_transport
    key = (
        record.request_event,
        record.response_event,
        record.namespace,
        record.initiator._value_,
        record.request_transport._value_,
        None if response_transport is None else response_transport._value_,
        record.rule,
        record.kind._value_,
        record.outcome._value_,
        record.slow,
        error_type,
    )
    shared = _SHARED.get(key)
    if shared is not None:
        return shared
    attrs: list[tuple[str, AttrValue]] = [
        ("socket.request.event", record.request_event),
        ("socket.success", error_type is None),
        ("messaging.system", "socket.io"),
        ("messaging.operation.name", record.kind._value_),
        ("messaging.operation.type", "process"),
        ("messaging.destination.name", record.namespace),
        ("network.protocol.name", "socket.io"),
        ("network.transport", "tcp"),
        ("messaging.socket.io.event", record.request_event),
        ("messaging.socket.io.direction", record.initiator._value_),
        ("messaging.socket.io.transport", record.request_transport._value_),
        ("messaging.socket.io.rule", record.rule),
        ("messaging.socket.io.pair_kind", record.kind._value_),
        ("messaging.socket.io.outcome", record.outcome._value_),
        ("messaging.socket.io.slow", record.slow),
        ("messaging.socket.io.late", record.outcome is _LATE),
    ]
    if record.response_event is not None:
        attrs.append(("socket.response.event", record.response_event))
    if response_transport is not None:
        attrs.append(("messaging.socket.io.response_transport", response_transport._value_))
    if error_type is not None:
        attrs.append(("error.type", error_type))
    shared = tuple(attrs)
    if len(_SHARED) >= _SHARED_LIMIT:
        _SHARED.clear()
    _SHARED[key] = shared
    return shared


def pair_span(record: PairRecord) -> SpanSpec:
    session = record.session
    sid = session.session_id
    error_type = pair_error_type(record)
    ok = error_type is None
    attrs: list[tuple[str, AttrValue]] = [
        ("socket.duration_ms", record.duration_s * 1000.0),
        ("messaging.client.id", sid),
        ("messaging.socket.io.sid", sid),
        ("messaging.message.body.size", record.request_size),
        ("messaging.socket.io.response.body.size", record.response_size),
    ]
    ack_id = record.ack_id
    if ack_id is not None:
        attrs.append(("messaging.message.id", str(ack_id)))
    conversation = record.match_key if record.match_key is not None else ack_id
    if conversation is not None:
        attrs.append(("messaging.message.conversation_id", str(conversation)))
    if record.kind is _STREAM:
        attrs.append(("messaging.socket.io.chunk_count", record.chunk_count))
        if record.first_chunk_s is not None:
            attrs.append(("messaging.socket.io.first_chunk_ms", record.first_chunk_s * 1000.0))
    if record.request_payload is not None:
        attrs.append(("messaging.socket.io.request.payload", record.request_payload))
    if record.response_payload is not None:
        attrs.append(("messaging.socket.io.response.payload", record.response_payload))
    _client_attributes(session, attrs)
    if record.linked_span_id is None:
        links: tuple[tuple[str, str], ...] = ((session.trace_id, session.span_id),)
    else:
        links = ((session.trace_id, session.span_id), (record.trace_id, record.linked_span_id))
    start = round(record.start_wall * 1_000_000) * 1000
    return SpanSpec(
        record.trace_id,
        record.span_id,
        # the span of a traceparent sent on the request (or WebSocket) that carried this one
        record.parent_span_id,
        record.operation,
        _INTERNAL,
        start,
        start + round(record.duration_s * 1e9),
        tuple(attrs),
        _STATUS_UNSET if ok else _STATUS_ERROR,
        error_type,
        links,
        pair_shared(record, error_type),
    )


def _client_attributes(session: SessionRef, attrs: list[tuple[str, AttrValue]]) -> None:
    """``client.address`` / ``client.port`` when the session reference carries them."""
    if session.client_address:
        attrs.append(("client.address", session.client_address))
        if session.client_port is not None:
            attrs.append(("client.port", session.client_port))


def lifecycle_span(record: LifecycleRecord) -> SpanSpec:
    sid = record.session.session_id
    attrs: list[tuple[str, AttrValue]] = [
        ("messaging.system", "socket.io"),
        ("messaging.operation.name", record.kind.value),
        ("messaging.client.id", sid),
        ("network.protocol.name", "socket.io"),
        ("network.transport", "tcp"),
        ("messaging.socket.io.sid", sid),
        ("messaging.socket.io.transport", record.transport.value),
        ("messaging.socket.io.lifecycle", record.kind.value),
        ("socket.success", record.ok),
        ("socket.duration_ms", record.duration_s * 1000.0),
    ]
    if record.namespace is not None:
        attrs.append(("messaging.destination.name", record.namespace))
    if record.detail is not None:
        attrs.append(("messaging.socket.io.detail", record.detail))
    if record.close_code is not None:
        attrs.append(("messaging.socket.io.close.code", record.close_code))
    if record.close_initiator is not None:
        attrs.append(("messaging.socket.io.close.initiator", record.close_initiator.value))
    if record.rtt_count is not None:
        attrs.append(("messaging.socket.io.heartbeat.count", record.rtt_count))
        for name, value in (
            ("min", record.rtt_min_s),
            ("avg", record.rtt_avg_s),
            ("max", record.rtt_max_s),
        ):
            if value is not None:
                attrs.append((f"messaging.socket.io.heartbeat.rtt_{name}_ms", value * 1000.0))
    error_type = None if record.ok else _LIFECYCLE_ERRORS[record.kind]
    if error_type is not None:
        attrs.append(("error.type", error_type))
    session = record.session
    _client_attributes(session, attrs)
    is_handshake = record.kind is LifecycleKind.HANDSHAKE
    links = () if is_handshake else ((session.trace_id, session.span_id),)
    start = to_ns(record.start_wall)
    return SpanSpec(
        trace_id=record.trace_id,
        span_id=record.span_id,
        parent_span_id=record.parent_span_id,
        name=_LIFECYCLE_NAMES[record.kind],
        kind=SpanKind.SERVER if is_handshake else SpanKind.INTERNAL,
        start_ns=start,
        end_ns=start + round(record.duration_s * 1e9),
        attributes=tuple(attrs),
        status=StatusCode.UNSET if record.ok else StatusCode.ERROR,
        status_message=None if record.ok else (record.error or error_type),
        links=links,
    )


def message_span(record: MessageRecord) -> SpanSpec:
    """A zero-length span for a one-way event (only when ``export_messages`` is on)."""
    session = record.session
    sid = session.session_id
    c2s = record.direction is Direction.CLIENT_TO_SERVER
    attrs: list[tuple[str, AttrValue]] = [
        ("messaging.system", "socket.io"),
        ("messaging.operation.name", "emit"),
        ("messaging.operation.type", "send" if c2s else "receive"),
        ("messaging.destination.name", record.namespace),
        ("messaging.client.id", sid),
        ("network.protocol.name", "socket.io"),
        ("network.transport", "tcp"),
        ("messaging.message.body.size", record.size),
        ("messaging.socket.io.sid", sid),
        ("messaging.socket.io.event", record.event),
        ("messaging.socket.io.direction", record.direction.value),
        ("messaging.socket.io.transport", record.transport.value),
    ]
    if record.payload is not None:
        attrs.append(("messaging.socket.io.payload", record.payload))
    _client_attributes(session, attrs)
    start = to_ns(record.wall)
    return SpanSpec(
        trace_id=session.trace_id,
        span_id=os.urandom(8).hex(),
        parent_span_id=None,
        name=MESSAGE_SPAN,
        kind=SpanKind.INTERNAL,
        start_ns=start,
        end_ns=start,
        attributes=tuple(attrs),
        status=StatusCode.UNSET,
        status_message=None,
        links=((session.trace_id, session.span_id),),
    )


def record_span(record: Record) -> SpanSpec:
    if isinstance(record, PairRecord):
        return pair_span(record)
    if isinstance(record, LifecycleRecord):
        return lifecycle_span(record)
    return message_span(record)


def exportable(record: Record, *, messages: bool) -> bool:
    """Whether remote exporters send this record (unsampled pairs and, unless asked for,
    one-way messages are not sent)."""
    return export_filter(messages=messages)(record)


def export_filter(*, messages: bool) -> Callable[[Record], bool]:
    """:func:`exportable` with ``messages`` fixed, as one cheap call (a sink's ``accepts``,
    called per record on the event loop)."""
    if messages:

        def with_messages(record: Record) -> bool:
            return record.sampled if isinstance(record, PairRecord) else True

        return with_messages

    def without_messages(record: Record) -> bool:
        if isinstance(record, PairRecord):
            return record.sampled
        return not isinstance(record, MessageRecord)

    return without_messages

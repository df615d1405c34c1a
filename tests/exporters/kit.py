"""Record builders for exporter tests (records are built directly, no engine needed)."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Any

from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairKind,
    PairRecord,
    SessionRef,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport

_ids = itertools.count(1)


def trace_id() -> str:
    return f"{next(_ids):032x}"


def span_id() -> str:
    return f"{next(_ids):016x}"


def session(sid: str = "sid-A") -> SessionRef:
    return SessionRef(session_id=sid, trace_id=trace_id(), span_id=span_id())


def pair(session_ref: SessionRef | None = None, **overrides: Any) -> PairRecord:
    base = PairRecord(
        trace_id=trace_id(),
        span_id=span_id(),
        session=session_ref or session(),
        namespace="/",
        kind=PairKind.EVENT_PAIR,
        rule="create_terminal",
        operation="create_terminal -> terminal_ready",
        initiator=Direction.CLIENT_TO_SERVER,
        request_event="create_terminal",
        response_event="terminal_ready",
        ack_id=None,
        match_key=None,
        outcome=Outcome.OK,
        error_type=None,
        slow=False,
        start_wall=time.time() - 1.0,
        duration_s=0.011,
        first_chunk_s=None,
        chunk_count=0,
        request_transport=Transport.WEBSOCKET,
        response_transport=Transport.WEBSOCKET,
        request_size=120,
        response_size=340,
    )
    return replace(base, **overrides)


def lifecycle(
    kind: LifecycleKind = LifecycleKind.HANDSHAKE,
    session_ref: SessionRef | None = None,
    **overrides: Any,
) -> LifecycleRecord:
    ref = session_ref or session()
    handshake = kind is LifecycleKind.HANDSHAKE
    base = LifecycleRecord(
        trace_id=ref.trace_id,
        span_id=ref.span_id if handshake else span_id(),
        parent_span_id=None,
        session=ref,
        kind=kind,
        namespace=None if handshake else "/",
        transport=Transport.POLLING,
        ok=True,
        error=None,
        start_wall=time.time() - 2.0,
        duration_s=0.002,
    )
    return replace(base, **overrides)


def message(session_ref: SessionRef | None = None, **overrides: Any) -> MessageRecord:
    base = MessageRecord(
        session=session_ref or session(),
        namespace="/",
        direction=Direction.SERVER_TO_CLIENT,
        transport=Transport.WEBSOCKET,
        event="shell:output",
        size=42,
        wall=time.time() - 0.5,
    )
    return replace(base, **overrides)

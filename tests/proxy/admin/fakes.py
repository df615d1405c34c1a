"""A MonitorSource made of real views and records, for tests of the admin listener."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from socketio_trace_proxy.proxy.admin.source import RelayCounters
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
from socketio_trace_proxy.tracking.runtime import SessionTimeline
from socketio_trace_proxy.tracking.sink import SinkHealth
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.views import (
    ActivityItem,
    EventStats,
    LatencySummary,
    MetricsSnapshot,
    PendingView,
    RuleStats,
    SessionView,
)

EMPTY_LATENCY = LatencySummary(count=0, p50_s=None, p95_s=None, p99_s=None, max_s=None)


def session_ref(sid: str) -> SessionRef:
    return SessionRef(session_id=sid, trace_id=f"{sid:0>32}"[-32:], span_id=f"{sid:0>16}"[-16:])


def pair(
    sid: str,
    request: str,
    *,
    outcome: Outcome = Outcome.OK,
    duration_s: float = 0.01,
    start_wall: float = 1_700_000_000.0,
    response: str | None = "ack",
    rule: str | None = None,
    ack_id: int | None = 1,
    span: str = "00000000000000a1",
) -> PairRecord:
    return PairRecord(
        trace_id="0" * 31 + "1",
        span_id=span,
        session=session_ref(sid),
        namespace="/",
        kind=PairKind.ACK,
        rule=rule or request,
        operation=f"{request} -> {response or 'timeout'}",
        initiator=Direction.CLIENT_TO_SERVER,
        request_event=request,
        response_event=response,
        ack_id=ack_id,
        match_key=None,
        outcome=outcome,
        error_type="ValueError" if outcome is Outcome.ERROR else None,
        slow=False,
        start_wall=start_wall,
        duration_s=duration_s,
        first_chunk_s=None,
        chunk_count=0,
        request_transport=Transport.WEBSOCKET,
        response_transport=Transport.WEBSOCKET if response else None,
        request_size=40,
        response_size=12 if response else 0,
    )


def message(
    sid: str, event: str, direction: Direction, wall: float = 1_700_000_000.0
) -> MessageRecord:
    return MessageRecord(
        session=session_ref(sid),
        namespace="/",
        direction=direction,
        transport=Transport.POLLING,
        event=event,
        size=30,
        wall=wall,
    )


def handshake(sid: str, wall: float = 1_700_000_000.0) -> LifecycleRecord:
    return LifecycleRecord(
        trace_id="0" * 31 + "1",
        span_id=session_ref(sid).span_id,
        parent_span_id=None,
        session=session_ref(sid),
        kind=LifecycleKind.HANDSHAKE,
        namespace=None,
        transport=Transport.POLLING,
        ok=True,
        error=None,
        start_wall=wall,
        duration_s=0.002,
    )


def lifecycle(
    sid: str,
    kind: LifecycleKind,
    wall: float = 1_700_000_000.0,
    *,
    duration_s: float = 0.0,
    namespace: str | None = None,
    ok: bool = True,
    error: str | None = None,
    detail: str | None = None,
    transport: Transport = Transport.POLLING,
    span: str = "00000000000000b1",
) -> LifecycleRecord:
    return LifecycleRecord(
        trace_id=session_ref(sid).trace_id,
        span_id=span,
        parent_span_id=session_ref(sid).span_id,
        session=session_ref(sid),
        kind=kind,
        namespace=namespace,
        transport=transport,
        ok=ok,
        error=error,
        start_wall=wall,
        duration_s=duration_s,
        detail=detail,
    )


def session_view(
    sid: str, transport: str = "websocket", opened: float = 1_700_000_000.0
) -> SessionView:
    return SessionView(
        session_id=sid,
        transport=transport,
        remote="127.0.0.1",
        opened_wall=opened,
        upgraded=transport == "websocket",
        namespaces=("/",),
        pending=0,
        messages_in=3,
        messages_out=4,
        bytes_in=100,
        bytes_out=200,
        heartbeat_rtt_s=0.004,
    )


def pending_view(
    sid: str, span: str, started: float, event: str = "create_terminal"
) -> PendingView:
    return PendingView(
        span_id=span,
        session_id=sid,
        namespace="/",
        rule=event,
        operation=f"{event} -> terminal_ready",
        request_event=event,
        initiator="c2s",
        ack_id=None,
        match_key=None,
        started_wall=started,
        age_s=1.0,
        timeout_s=5.0,
    )


def metrics_snapshot(**changes: object) -> MetricsSnapshot:
    base = MetricsSnapshot(
        rules=(
            RuleStats(
                rule="create_terminal",
                outcomes={"ok": 3, "timeout": 1},
                slow=1,
                latency=LatencySummary(count=3, p50_s=0.01, p95_s=0.05, p99_s=0.06, max_s=0.07),
            ),
        ),
        events=(EventStats(event="terminal_output", direction="s2c", messages=9, bytes=900),),
        pending=2,
        sessions_by_transport={"websocket": 2, "polling": 1},
        messages_by_direction={"c2s": 10, "s2c": 20},
        bytes_by_direction={"c2s": 1000, "s2c": 2000},
        heartbeat_rtt=LatencySummary(count=5, p50_s=0.003, p95_s=0.009, p99_s=0.01, max_s=0.02),
        upgrade_duration=EMPTY_LATENCY,
        decode_errors=4,
        evictions={"sessions": 1},
        drops={"activity": 2},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class FakeSource:
    """Answers from plain lists; ``emit`` appends to the activity ring and calls subscribers."""

    metrics: MetricsSnapshot = field(default_factory=metrics_snapshot)
    pending: list[PendingView] = field(default_factory=list)
    sessions: list[SessionView] = field(default_factory=list)
    timelines: dict[str, list[ActivityItem]] = field(default_factory=dict)
    activity: deque[ActivityItem] = field(default_factory=deque)
    sinks: list[SinkHealth] = field(default_factory=list)
    relay: dict[str, float | dict[str, float]] = field(default_factory=dict)
    ring_size: int = 10_000
    tracking_enabled: bool = True
    subscribers: list[Callable[[Record], None]] = field(default_factory=list)
    next_seq: int = 1

    def emit(self, record: Record) -> ActivityItem:
        item = ActivityItem(seq=self.next_seq, record=record)
        self.next_seq += 1
        self.activity.append(item)
        while len(self.activity) > self.ring_size:
            self.activity.popleft()
        timeline = self.timelines.setdefault(record.session.session_id, [])
        timeline.append(item)
        del timeline[:-200]
        for callback in list(self.subscribers):
            callback(record)
        return item

    def get_metrics(self) -> MetricsSnapshot:
        return self.metrics

    def get_pending_requests(self) -> Sequence[PendingView]:
        return list(self.pending)

    def get_sessions(self) -> Sequence[SessionView]:
        return list(self.sessions)

    def get_session_timeline(self, session_id: str) -> SessionTimeline | None:
        items = self.timelines.get(session_id)
        view = next((s for s in self.sessions if s.session_id == session_id), None)
        if items is None and view is None:
            return None
        return SessionTimeline(session_id, view, tuple(i.record for i in items or ()))

    def recent_activity(self, since_seq: int, limit: int) -> Sequence[ActivityItem]:
        if not self.activity:
            return []
        start = max(0, since_seq - self.activity[0].seq + 1)  # seq is contiguous in the ring
        return list(itertools.islice(self.activity, start, start + limit))

    def subscribe(self, callback: Callable[[Record], None]) -> Callable[[], None]:
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def subscribe_batches(self, callback: Callable[[Sequence[Record]], None]) -> Callable[[], None]:
        def one(record: Record) -> None:
            callback((record,))

        return self.subscribe(one)

    def sink_health(self) -> Sequence[SinkHealth]:
        return list(self.sinks)

    def relay_counters(self) -> RelayCounters:
        return self.relay

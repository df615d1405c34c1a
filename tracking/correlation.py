"""The correlation engine: session events and clock ticks in, records out (sans-IO).

It pairs, per Engine.IO session and namespace, EVENTs carrying an ack id with their ACK
(both directions) and configured request events with their response events (match key or
first in, first out; templated names; streams), and decides every request's outcome: ok,
error, timeout, late (linked to its timed-out record), abandoned, evicted.  It never sleeps:
``next_deadline()`` says when ``tick()`` is next due.  All tables are bounded and count what
they evict.

Ids: the handshake span of a session continues the client's ``traceparent`` when there is
one; namespace-connect, upgrade and close records share the session's trace.  Each pair gets
a trace of its own (a day-long session must not grow one giant trace) and carries the
session's ``SessionRef`` so exporters can link it to the handshake span.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import re
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.capture import (
    Capturer,
    describe_predicate,
    first_error,
    key_value,
)
from socketio_trace_proxy.tracking.events import (
    CloseReason,
    DecodeFailed,
    HeartbeatObserved,
    PacketObserved,
    SessionClosed,
    SessionEvent,
    SessionOpened,
    SessionUpgraded,
)
from socketio_trace_proxy.tracking.metrics import Metrics
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    Outcome,
    PairKind,
    Record,
    SessionRef,
    new_lifecycle_record,
    new_message_record,
    new_pair_record,
)
from socketio_trace_proxy.tracking.rules import Binding, EventRoles, Role, Rule, RuleBook
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.views import MetricsSnapshot, PendingView, SessionView
from socketio_trace_proxy.tracking.wire.packets import SocketPacket, SocketPacketType
from socketio_trace_proxy.tracking.wire.socketio import first_arg

NAMESPACE_CONNECT_RULE = "namespace_connect"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_MAX_CONNECTING = 64  # namespace CONNECTs awaiting their reply, per session
_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT
_EVENT = SocketPacketType.EVENT
_BINARY_EVENT = SocketPacketType.BINARY_EVENT
_ACK = SocketPacketType.ACK
_BINARY_ACK = SocketPacketType.BINARY_ACK
_OK = Outcome.OK
_ERROR = Outcome.ERROR
_KIND_ACK = PairKind.ACK
_NO_CAPTURES: Mapping[str, str] = MappingProxyType({})
_PACKET_LABELS = {
    SocketPacketType.CONNECT: "(connect)",
    SocketPacketType.DISCONNECT: "(disconnect)",
    SocketPacketType.ACK: "(ack)",
    SocketPacketType.BINARY_ACK: "(ack)",
    SocketPacketType.CONNECT_ERROR: "(connect_error)",
}


class IdSource(Protocol):
    """Where trace and span ids come from (W3C sizes, lowercase hex, never all zero)."""

    def trace_id(self) -> str: ...

    def span_id(self) -> str: ...


class RandomIds:
    """Random ids from a PRNG seeded from the OS (ids need to be unique, not secret)."""

    def __init__(self, seed: int | None = None) -> None:
        self._bits = random.Random(seed if seed is not None else os.urandom(16)).getrandbits

    def trace_id(self) -> str:
        return f"{self._bits(128) or 1:032x}"

    def span_id(self) -> str:
        return f"{self._bits(64) or 1:016x}"


class SequentialIds:
    """Deterministic ids for tests: 1, 2, 3, ... rendered at W3C sizes."""

    def __init__(self) -> None:
        self._n = 0

    def trace_id(self) -> str:
        self._n += 1
        return f"{self._n:032x}"

    def span_id(self) -> str:
        self._n += 1
        return f"{self._n:016x}"


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` from a valid W3C ``traceparent``, else None."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace_id, span_id = m.group(2), m.group(3)
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id


@dataclass(slots=True, eq=False)
class _Pending:
    id: int
    span_id: str
    session: _Session
    namespace: str
    kind: PairKind
    rule: Rule | None  # None for acks
    label: str  # metrics/rule name: the rule's name, or "<event> -> ack"
    base: str  # left side of the operation: the rule's name or the (folded) event
    request_event: str
    initiator: Direction
    ack_id: int | None
    key: str | None
    captures: Mapping[str, str]
    at: float
    wall: float
    deadline: float
    timeout_s: float
    slow_s: float
    transport: Transport
    size: int
    payload: str | None
    first_chunk_at: float | None = None
    chunks: int = 0

    def fits(self, captures: tuple[tuple[str, str], ...]) -> bool:
        return not captures or all(self.captures.get(n) == v for n, v in captures)


@dataclass(slots=True, eq=False)
class _Group:
    """Pending requests of one rule in one (session, namespace): FIFO order plus key index."""

    order: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)
    by_key: dict[str, deque[_Pending]] = field(default_factory=dict)

    def add(self, p: _Pending) -> None:
        self.order[p.id] = p
        if p.key is not None:
            self.by_key.setdefault(p.key, deque()).append(p)

    def remove(self, p: _Pending) -> None:
        self.order.pop(p.id, None)
        if p.key is not None:
            dq = self.by_key.get(p.key)
            if dq is not None:
                dq.remove(p)
                if not dq:
                    del self.by_key[p.key]

    def find(self, key: str | None, captures: tuple[tuple[str, str], ...]) -> _Pending | None:
        if key is not None:
            for p in self.by_key.get(key, ()):
                if p.fits(captures):
                    return p
            # A keyed reply answers a request that carried no key, first in first out.
            for p in self.order.values():
                if p.key is None and p.fits(captures):
                    return p
            return None
        for p in self.order.values():
            if p.fits(captures):
                return p
        return None


@dataclass(slots=True, eq=False)
class _TimedOut:
    """A timed-out request remembered so that its late reply can be linked to it."""

    trace_id: str
    span_id: str
    namespace: str
    kind: PairKind
    rule: Rule | None
    label: str
    base: str
    request_event: str
    initiator: Direction
    ack_id: int | None
    key: str | None
    captures: Mapping[str, str]
    at: float
    wall: float
    transport: Transport
    size: int
    slow_s: float


@dataclass(slots=True, eq=False)
class _Session:
    ref: SessionRef
    transport: Transport
    remote: str | None
    opened_wall: float
    upgraded: bool = False
    namespaces: dict[str, None] = field(default_factory=dict)
    connecting: OrderedDict[str, float] = field(default_factory=OrderedDict)
    pending: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)
    # (namespace, ack id, initiated by the client?) -> request
    acks: dict[tuple[str, int, bool], _Pending] = field(default_factory=dict)
    groups: dict[tuple[str, int], _Group] = field(default_factory=dict)
    timed_out: OrderedDict[int, _TimedOut] = field(default_factory=OrderedDict)
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    heartbeat_rtt_s: float | None = None


class CorrelationEngine:
    """Pairs requests with replies; see the module docstring."""

    def __init__(
        self,
        settings: TrackingSettings,
        emit: Callable[[Record], None],
        ids: IdSource | None = None,
        wants_unsampled: Callable[[], bool] | None = None,
        on_deadline: Callable[[float], None] | None = None,
    ) -> None:
        """``wants_unsampled``: asked when a pair is left out by sampling; if it says no
        (nobody but the sinks would see the record), the record is not built at all.
        ``on_deadline``: called with a new deadline that has become the earliest
        (:meth:`next_deadline` only ever moves earlier that way)."""
        self._settings = settings
        self._emit = emit
        self._ids: IdSource = ids if ids is not None else RandomIds()
        self._trace_id = self._ids.trace_id
        self._span_id = self._ids.span_id
        self._wants_unsampled = wants_unsampled
        self._on_deadline = on_deadline
        self.rules = RuleBook(settings)
        self.metrics = Metrics(settings.limits.max_event_names)
        self._capture = Capturer(settings.capture)
        self._capturing = self._capture.enabled
        self._limits = settings.limits
        self._max_pending = settings.limits.max_pending
        self._max_pending_per_session = settings.limits.max_pending_per_session
        self._ack_timeout_s = settings.defaults.timeout
        self._ack_slow_s = settings.defaults.slow
        self._ack_labels: dict[str, str] = {}  # event (folded) -> "<event> -> ack"
        self._cached_roles = self.rules.cached
        self._ignored = frozenset(settings.defaults.ignore_key_values)
        self._late_window = settings.defaults.late_window
        self._sample_rate = settings.sample_rate
        self._acks = settings.acks
        self._sessions: dict[str, _Session] = {}
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._heap: list[tuple[float, int, _Pending]] = []
        self._next_id = 0

    # ------------------------------------------------------------------ input

    def handle(self, event: SessionEvent) -> None:
        heap = self._heap
        if heap and heap[0][0] <= event.at:
            # Deadlines that passed before this event happened fire first, whether or not the
            # timer has run yet: a reply after its deadline is late, not ok.
            self.tick(event.at, event.wall)
        if type(event) is PacketObserved:
            self._packet(event)
        elif isinstance(event, SessionOpened):
            self._opened(event)
        elif isinstance(event, HeartbeatObserved):
            s = self._sessions.get(event.session_id)
            if s is not None:
                s.heartbeat_rtt_s = event.rtt_s
            self.metrics.heartbeat.observe(event.rtt_s)
        elif isinstance(event, SessionUpgraded):
            self._upgraded(event)
        elif isinstance(event, DecodeFailed):
            self.metrics.decode_errors += 1
        elif isinstance(event, SessionClosed):
            self._closed(event.session_id, event.reason, event.at, event.wall)

    def tick(self, at: float, wall: float) -> None:
        """Time out every pending request whose deadline is ``at`` or earlier."""
        heap = self._heap
        while heap and heap[0][0] <= at:
            deadline, _, p = heapq.heappop(heap)
            if p.id not in self._pending or p.deadline != deadline:
                continue  # answered already, or a stream chunk pushed its deadline on
            self._time_out(p)
        self._compact_heap()

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def shutdown(self, at: float, wall: float) -> None:
        """Close every session as SHUTDOWN: what is still pending ends as abandoned."""
        for sid in list(self._sessions):
            self._closed(sid, CloseReason.SHUTDOWN, at, wall)

    # ---------------------------------------------------------------- queries

    def pending_views(self, at: float) -> list[PendingView]:
        return [
            PendingView(
                span_id=p.span_id,
                session_id=p.session.ref.session_id,
                namespace=p.namespace,
                rule=p.label,
                operation=f"{p.base} -> ..." if p.rule else p.label,
                request_event=p.request_event,
                initiator=p.initiator.value,
                ack_id=p.ack_id,
                match_key=p.key,
                started_wall=p.wall,
                age_s=max(0.0, at - p.at),
                timeout_s=p.timeout_s,
            )
            for p in self._pending.values()
        ]

    def session_views(self) -> list[SessionView]:
        return [self._session_view(s) for s in self._sessions.values()]

    def session_view(self, session_id: str) -> SessionView | None:
        s = self._sessions.get(session_id)
        return None if s is None else self._session_view(s)

    def snapshot(self, drops: dict[str, int] | None = None) -> MetricsSnapshot:
        by_transport: dict[str, int] = {t.value: 0 for t in Transport}
        for s in self._sessions.values():
            by_transport[s.transport.value] += 1
        return self.metrics.snapshot(len(self._pending), by_transport, drops)

    def sizes(self) -> dict[str, int]:
        """Sizes of every internal table (for tests and self-monitoring)."""
        return {
            "sessions": len(self._sessions),
            "pending": len(self._pending),
            "heap": len(self._heap),
            "session_pending": sum(len(s.pending) for s in self._sessions.values()),
            "acks": sum(len(s.acks) for s in self._sessions.values()),
            "group_entries": sum(
                len(g.order) + len(g.by_key)
                for s in self._sessions.values()
                for g in s.groups.values()
            ),
            "timed_out": sum(len(s.timed_out) for s in self._sessions.values()),
            "event_names": self.metrics.event_slots,
            "rule_cache": self.rules.cache_size,
        }

    # --------------------------------------------------------------- sessions

    def _opened(self, ev: SessionOpened) -> None:
        if ev.session_id in self._sessions:
            self.metrics.extra["duplicate_session_open"] += 1
            return
        parent = parse_traceparent(ev.traceparent)
        s = self._new_session(ev.session_id, ev.transport, ev.remote, ev.wall, parent)
        self._emit(
            new_lifecycle_record(
                trace_id=s.ref.trace_id,
                span_id=s.ref.span_id,
                parent_span_id=parent[1] if parent else None,
                session=s.ref,
                kind=LifecycleKind.HANDSHAKE,
                namespace=None,
                transport=ev.transport,
                ok=True,
                error=None,
                start_wall=ev.wall,
                duration_s=0.0,
                detail=f"EIO={ev.eio_version}",
            )
        )

    def _new_session(
        self,
        sid: str,
        transport: Transport,
        remote: str | None,
        wall: float,
        parent: tuple[str, str] | None,
    ) -> _Session:
        while len(self._sessions) >= self._limits.max_sessions:
            oldest = next(iter(self._sessions))
            self.metrics.evictions["sessions"] += 1
            self._closed(oldest, CloseReason.EVICTED, None, wall)
        trace_id = parent[0] if parent else self._ids.trace_id()
        ref = SessionRef(session_id=sid, trace_id=trace_id, span_id=self._ids.span_id())
        s = _Session(ref=ref, transport=transport, remote=remote, opened_wall=wall)
        self._sessions[sid] = s
        return s

    def _session(self, sid: str, transport: Transport, wall: float) -> _Session:
        s = self._sessions.get(sid)
        if s is None:  # traffic of a session whose handshake we never saw
            self.metrics.extra["sessions_without_handshake"] += 1
            s = self._new_session(sid, transport, None, wall, None)
        return s

    def _upgraded(self, ev: SessionUpgraded) -> None:
        self.metrics.upgrade.observe(ev.duration_s)
        s = self._sessions.get(ev.session_id)
        if s is None:
            return
        s.transport = Transport.WEBSOCKET
        s.upgraded = True
        self._lifecycle(
            s,
            LifecycleKind.UPGRADE,
            start_wall=ev.wall - ev.duration_s,
            duration_s=ev.duration_s,
            detail="polling -> websocket",
        )

    def _closed(self, sid: str, reason: CloseReason, at: float | None, wall: float) -> None:
        s = self._sessions.pop(sid, None)
        if s is None:
            return
        outcome = Outcome.EVICTED if reason is CloseReason.EVICTED else Outcome.ABANDONED
        for p in list(s.pending.values()):
            self._end_unanswered(p, outcome, at, wall)
        ok = reason not in (CloseReason.HEARTBEAT_TIMEOUT, CloseReason.EVICTED)
        self._lifecycle(
            s,
            LifecycleKind.CLOSE,
            ok=ok,
            error=None if ok else reason.value,
            start_wall=wall,
            detail=reason.value,
        )

    def _lifecycle(
        self,
        s: _Session,
        kind: LifecycleKind,
        *,
        start_wall: float,
        namespace: str | None = None,
        ok: bool = True,
        error: str | None = None,
        duration_s: float = 0.0,
        detail: str | None = None,
    ) -> None:
        self._emit(
            new_lifecycle_record(
                trace_id=s.ref.trace_id,
                span_id=self._ids.span_id(),
                parent_span_id=s.ref.span_id,
                session=s.ref,
                kind=kind,
                namespace=namespace,
                transport=s.transport,
                ok=ok,
                error=error,
                start_wall=start_wall,
                duration_s=duration_s,
                detail=detail,
            )
        )

    # ---------------------------------------------------------------- packets

    def _packet(self, ev: PacketObserved) -> None:
        s = self._sessions.get(ev.session_id)
        if s is None:
            s = self._session(ev.session_id, ev.transport, ev.wall)
        p = ev.packet
        size = p.size
        if ev.direction is _C2S:
            s.messages_in += 1
            s.bytes_in += size
        else:
            s.messages_out += 1
            s.bytes_out += size
        t = p.type
        if t is _EVENT or t is _BINARY_EVENT:
            self._event(s, ev, p)
            return
        self.metrics.message(_PACKET_LABELS[t], ev.direction, size)
        if t is _ACK or t is _BINARY_ACK:
            self._ack(s, ev, p)
        elif t is SocketPacketType.CONNECT:
            self._connect(s, ev, p)
        elif t is SocketPacketType.CONNECT_ERROR:
            self._connect_error(s, ev, p)
        elif t is SocketPacketType.DISCONNECT:
            s.namespaces.pop(p.namespace, None)
            for q in [q for q in s.pending.values() if q.namespace == p.namespace]:
                self._end_unanswered(q, Outcome.ABANDONED, ev.at, ev.wall)

    def _event(self, s: _Session, ev: PacketObserved, p: SocketPacket) -> None:
        name = p.event
        if name is None:
            self.metrics.message("(unnamed)", ev.direction, p.size)
            self.metrics.extra["events_without_name"] += 1
            return
        roles = self._cached_roles(name) or self.rules.roles(name)
        self.metrics.message(roles.label, ev.direction, p.size)
        if not roles.configured and p.ack_id is None:
            if not roles.aggregate:  # the common one-way case: no parsing at all
                self._one_way(s, ev, p, name, roles.label)
            return
        # The first argument, parsed once, and only if a binding of this name reads it.
        arg = first_arg(p) if roles.needs_arg else None
        handled = False
        if self._acks and p.ack_id is not None:
            self._open_ack(s, ev, p, roles.label)
            handled = True
        if roles.replies and self._reply(s, ev, p, roles, arg):
            return
        if roles.chunks and self._chunk(s, ev, p, roles, arg):
            return
        for b in roles.requests:
            if b.rule.request_direction is ev.direction:
                self._open_rule(s, ev, p, b, arg)
                handled = True
        if not handled and not roles.aggregate:
            self._one_way(s, ev, p, name, roles.label)

    def _one_way(
        self, s: _Session, ev: PacketObserved, p: SocketPacket, name: str, label: str
    ) -> None:
        self._emit(
            new_message_record(
                s.ref,
                p.namespace,
                ev.direction,
                ev.transport,
                name,
                p.size,
                ev.wall,
                self._capture.capture(p, name, label) if self._capturing else None,
            )
        )

    # ------------------------------------------------------------- namespaces

    def _connect(self, s: _Session, ev: PacketObserved, p: SocketPacket) -> None:
        if ev.direction is Direction.CLIENT_TO_SERVER:
            s.connecting[p.namespace] = ev.at
            s.connecting.move_to_end(p.namespace)
            while len(s.connecting) > _MAX_CONNECTING:
                s.connecting.popitem(last=False)
                self.metrics.drops["namespace_connects"] += 1
            return
        started = s.connecting.pop(p.namespace, ev.at)
        s.namespaces[p.namespace] = None
        duration = ev.at - started
        self.metrics.pair(NAMESPACE_CONNECT_RULE, Outcome.OK, duration, False)
        self._lifecycle(
            s,
            LifecycleKind.NAMESPACE_CONNECT,
            namespace=p.namespace,
            start_wall=ev.wall - duration,
            duration_s=duration,
        )

    def _connect_error(self, s: _Session, ev: PacketObserved, p: SocketPacket) -> None:
        started = s.connecting.pop(p.namespace, ev.at)
        duration = ev.at - started
        message = "connect_error"
        try:
            body = json.loads(p.payload) if p.payload else None
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                message = body["message"]
            elif isinstance(body, str):  # Socket.IO v4 protocol (v2 clients): bare string
                message = body
        except ValueError:
            pass
        self.metrics.pair(NAMESPACE_CONNECT_RULE, Outcome.ERROR, duration, False)
        self._lifecycle(
            s,
            LifecycleKind.NAMESPACE_CONNECT,
            namespace=p.namespace,
            ok=False,
            error=message,
            start_wall=ev.wall - duration,
            duration_s=duration,
            detail="connect_error",
        )

    # ------------------------------------------------------------------- acks

    def _open_ack(self, s: _Session, ev: PacketObserved, p: SocketPacket, label: str) -> None:
        ack_id = p.ack_id
        assert ack_id is not None
        akey = (p.namespace, ack_id, ev.direction is _C2S)
        acks = s.acks
        old = acks.get(akey)
        if old is not None:  # the same id reused while the first is unanswered
            self.metrics.extra["duplicate_ack_ids"] += 1
            self._end_unanswered(old, Outcome.EVICTED, ev.at, ev.wall)
        base = self.metrics.event_name(label)
        ack_label = self._ack_labels.get(base)
        if ack_label is None:  # bounded: one per admitted event name, plus "(other)"
            ack_label = self._ack_labels[base] = f"{base} -> ack"
        acks[akey] = self._new_pending(
            s,
            ev,
            p,
            _KIND_ACK,
            None,
            ack_label,
            base,
            None,
            _NO_CAPTURES,
            self._ack_timeout_s,
            self._ack_slow_s,
        )

    def _ack(self, s: _Session, ev: PacketObserved, p: SocketPacket) -> None:
        ack_id = p.ack_id
        if ack_id is None:
            self.metrics.extra["acks_without_id"] += 1
            return
        # The request went the other way: initiated by the client iff this ACK is not.
        q = s.acks.get((p.namespace, ack_id, ev.direction is not _C2S))
        if q is not None:
            self._answer(q, ev, p, "ack", None)
            return
        t = self._find_timed_out(
            s,
            ev.at,
            lambda o: (
                o.kind is PairKind.ACK
                and o.namespace == p.namespace
                and o.initiator is ev.direction.opposite
                and o.ack_id == p.ack_id
            ),
        )
        if t is not None:
            self._late(s, t, ev, p, template="ack")
        else:
            self.metrics.extra["unmatched_acks"] += 1

    # ------------------------------------------------------------------ rules

    def _open_rule(
        self, s: _Session, ev: PacketObserved, p: SocketPacket, b: Binding, arg: Any
    ) -> None:
        rule = b.rule
        key = (
            key_value(arg, rule.request_path, self._ignored)
            if rule.request_path is not None
            else None
        )
        q = self._new_pending(
            s,
            ev,
            p,
            rule.kind,
            rule,
            rule.name,
            rule.name,
            key,
            dict(b.captures) if b.captures else _NO_CAPTURES,
            rule.timeout_s,
            rule.slow_s,
        )
        gkey = (p.namespace, rule.index)
        group = s.groups.get(gkey)
        if group is None:
            group = s.groups[gkey] = _Group()
        group.add(q)

    def _reply_key(self, rule: Rule, arg: Any) -> str | None:
        if rule.response_path is None:
            return None
        return key_value(arg, rule.response_path, self._ignored)

    def _reply(
        self, s: _Session, ev: PacketObserved, p: SocketPacket, roles: EventRoles, arg: Any
    ) -> bool:
        requested_by = _S2C if ev.direction is _C2S else _C2S
        for b in roles.replies:
            rule = b.rule
            if rule.request_direction is not requested_by:
                continue
            key = self._reply_key(rule, arg)
            error_type = self._error_type(b, arg)
            group = s.groups.get((p.namespace, rule.index))
            q = group.find(key, b.captures) if group is not None else None
            if q is not None:
                self._answer(q, ev, p, b.template, error_type)
                return True
            t = self._find_timed_out(s, ev.at, _late_reply_test(rule, p.namespace, key, b))
            if t is not None:
                self._late(s, t, ev, p, template=b.template)
                return True
        return False

    def _error_type(self, b: Binding, arg: Any) -> str | None:
        if b.role is Role.ERROR:
            return b.template
        rule = b.rule
        if rule.error_when:
            hit = first_error(arg, rule.error_when, rule.error_paths)
            if hit is not None:
                return f"{b.template} ({describe_predicate(hit)})"
        return None

    def _chunk(
        self, s: _Session, ev: PacketObserved, p: SocketPacket, roles: EventRoles, arg: Any
    ) -> bool:
        requested_by = _S2C if ev.direction is _C2S else _C2S
        for b in roles.chunks:
            rule = b.rule
            if rule.request_direction is not requested_by:
                continue
            group = s.groups.get((p.namespace, rule.index))
            if group is None:
                continue
            q = group.find(self._reply_key(rule, arg), b.captures)
            if q is None:
                continue
            if q.first_chunk_at is None:
                q.first_chunk_at = ev.at
            q.chunks += 1
            # A stream's timeout runs from its latest sign of life.
            q.deadline = ev.at + q.timeout_s
            self._push(q)
            return True
        return False

    # --------------------------------------------------------------- pending

    def _new_pending(  # noqa: PLR0917 - positional: called per request
        self,
        s: _Session,
        ev: PacketObserved,
        p: SocketPacket,
        kind: PairKind,
        rule: Rule | None,
        label: str,
        base: str,
        key: str | None,
        captures: Mapping[str, str],
        timeout_s: float,
        slow_s: float,
    ) -> _Pending:
        at = ev.at
        while len(s.pending) >= self._max_pending_per_session:
            self.metrics.evictions["pending_per_session"] += 1
            self._end_unanswered(next(iter(s.pending.values())), Outcome.EVICTED, at, ev.wall)
        while len(self._pending) >= self._max_pending:
            self.metrics.evictions["pending_global"] += 1
            self._end_unanswered(next(iter(self._pending.values())), Outcome.EVICTED, at, ev.wall)
        self._next_id = qid = self._next_id + 1
        deadline = at + timeout_s
        q = _Pending(
            qid,
            self._span_id(),
            s,
            p.namespace,
            kind,
            rule,
            label,
            base,
            p.event or "",
            ev.direction,
            p.ack_id if kind is _KIND_ACK else None,
            key,
            captures,
            at,
            ev.wall,
            deadline,
            timeout_s,
            slow_s,
            ev.transport,
            p.size,
            self._capture.capture(p, p.event, label if rule else None) if self._capturing else None,
        )
        s.pending[qid] = q
        self._pending[qid] = q
        self._push(q)
        return q

    def _push(self, q: _Pending) -> None:
        heap = self._heap
        heapq.heappush(heap, (q.deadline, q.id, q))
        if heap[0][2] is q and self._on_deadline is not None:
            self._on_deadline(q.deadline)

    def _forget(self, q: _Pending) -> None:
        s = q.session
        s.pending.pop(q.id, None)
        self._pending.pop(q.id, None)
        if q.kind is _KIND_ACK:
            assert q.ack_id is not None
            akey = (q.namespace, q.ack_id, q.initiator is _C2S)
            if s.acks.get(akey) is q:
                del s.acks[akey]
        elif q.rule is not None:
            group = s.groups.get((q.namespace, q.rule.index))
            if group is not None:
                group.remove(q)

    def _compact_heap(self) -> None:
        # Answered requests leave stale heap entries until their deadline; rebuild when
        # they dominate so memory follows the pending count, not the pair rate.
        if len(self._heap) > 2 * len(self._pending) + 64:
            self._heap = [(q.deadline, q.id, q) for q in self._pending.values()]
            heapq.heapify(self._heap)
            self.metrics.extra["heap_compactions"] += 1

    def _answer(
        self,
        q: _Pending,
        ev: PacketObserved,
        p: SocketPacket,
        template: str,
        error_type: str | None,
    ) -> None:
        self._forget(q)
        duration = ev.at - q.at
        duration = max(duration, 0.0)
        first_chunk_at = q.first_chunk_at
        self._pair(
            q,
            _OK if error_type is None else _ERROR,
            f"{q.base} -> {template}",
            p.event if p.event is not None else template,
            error_type,
            duration >= q.slow_s,
            duration,
            None if first_chunk_at is None else first_chunk_at - q.at,
            ev.transport,
            p.size,
            self._capture.capture(p, p.event, template) if self._capturing else None,
        )
        if len(self._heap) > 2 * len(self._pending) + 64:
            self._compact_heap()

    def _end_unanswered(self, q: _Pending, outcome: Outcome, at: float | None, wall: float) -> None:
        self._forget(q)
        duration = max(0.0, at - q.at) if at is not None else max(0.0, wall - q.wall)
        self._pair(
            q,
            outcome,
            f"{q.base} -> {outcome.value}",
            None,
            outcome.value,
            False,
            duration,
            None if q.first_chunk_at is None else q.first_chunk_at - q.at,
            None,
            0,
            None,
        )

    def _time_out(self, q: _Pending) -> None:
        self._forget(q)
        s = q.session
        limit = self._limits.max_timed_out_per_session
        trace_id = self._trace_id()
        if limit:
            while len(s.timed_out) >= limit:
                s.timed_out.popitem(last=False)
                self.metrics.drops["timed_out_memory"] += 1
            s.timed_out[q.id] = _TimedOut(
                trace_id=trace_id,
                span_id=q.span_id,
                namespace=q.namespace,
                kind=q.kind,
                rule=q.rule,
                label=q.label,
                base=q.base,
                request_event=q.request_event,
                initiator=q.initiator,
                ack_id=q.ack_id,
                key=q.key,
                captures=q.captures,
                at=q.at,
                wall=q.wall,
                transport=q.transport,
                size=q.size,
                slow_s=q.slow_s,
            )
        self._pair(
            q,
            Outcome.TIMEOUT,
            f"{q.base} -> timeout",
            None,
            Outcome.TIMEOUT.value,
            False,
            q.deadline - q.at,
            None if q.first_chunk_at is None else q.first_chunk_at - q.at,
            None,
            0,
            None,
            trace_id=trace_id,
        )

    def _find_timed_out(
        self, s: _Session, at: float, pred: Callable[[_TimedOut], bool]
    ) -> _TimedOut | None:
        if not s.timed_out:
            return None
        horizon = at - self._late_window
        for tid in [tid for tid, o in s.timed_out.items() if o.at < horizon]:
            del s.timed_out[tid]
        for tid, o in s.timed_out.items():
            if pred(o):
                del s.timed_out[tid]
                return o
        return None

    def _late(
        self,
        s: _Session,
        o: _TimedOut,
        ev: PacketObserved,
        p: SocketPacket,
        *,
        template: str,
    ) -> None:
        duration = max(0.0, ev.at - o.at)
        record = new_pair_record(
            # The late span joins the timed-out span's trace, so its link resolves.
            trace_id=o.trace_id,
            span_id=self._ids.span_id(),
            session=s.ref,
            namespace=o.namespace,
            kind=o.kind,
            rule=o.label,
            operation=f"{o.base} -> {template}",
            initiator=o.initiator,
            request_event=o.request_event,
            response_event=p.event if p.event is not None else template,
            ack_id=o.ack_id,
            match_key=o.key,
            outcome=Outcome.LATE,
            error_type=Outcome.LATE.value,
            slow=duration >= o.slow_s,
            start_wall=o.wall,
            duration_s=duration,
            first_chunk_s=None,
            chunk_count=0,
            request_transport=o.transport,
            response_transport=ev.transport,
            request_size=o.size,
            response_size=p.size,
            request_payload=None,
            response_payload=self._capture.capture(p, p.event, template),
            linked_span_id=o.span_id,
            sampled=True,
        )
        self.metrics.pair(o.label, Outcome.LATE, duration, record.slow)
        self._emit(record)

    def _pair(  # noqa: PLR0917 - positional: called per pair
        self,
        q: _Pending,
        outcome: Outcome,
        operation: str,
        response_event: str | None,
        error_type: str | None,
        slow: bool,
        duration: float,
        first_chunk_s: float | None,
        response_transport: Transport | None,
        response_size: int,
        response_payload: str | None,
        *,
        trace_id: str | None = None,
    ) -> None:
        span_id = q.span_id
        sampled = True
        if self._sample_rate < 1.0 and outcome is _OK and not slow:
            # Hash rather than random: deterministic per span id, whatever the IdSource.
            sampled = zlib.crc32(span_id.encode()) < self._sample_rate * 0x1_0000_0000
        self.metrics.pair(q.label, outcome, duration, slow)
        if not sampled:
            self.metrics.extra["pairs_unsampled"] += 1
            wants = self._wants_unsampled
            if wants is not None and not wants():
                return
        self._emit(
            new_pair_record(
                self._trace_id() if trace_id is None else trace_id,
                span_id,
                q.session.ref,
                q.namespace,
                q.kind,
                q.label,
                operation,
                q.initiator,
                q.request_event,
                response_event,
                q.ack_id,
                q.key,
                outcome,
                error_type,
                slow,
                q.wall,
                duration,
                first_chunk_s,
                q.chunks,
                q.transport,
                response_transport,
                q.size,
                response_size,
                q.payload,
                response_payload,
                None,
                sampled,
            )
        )

    def _session_view(self, s: _Session) -> SessionView:
        return SessionView(
            session_id=s.ref.session_id,
            transport=s.transport.value,
            remote=s.remote,
            opened_wall=s.opened_wall,
            upgraded=s.upgraded,
            namespaces=tuple(s.namespaces),
            pending=len(s.pending),
            messages_in=s.messages_in,
            messages_out=s.messages_out,
            bytes_in=s.bytes_in,
            bytes_out=s.bytes_out,
            heartbeat_rtt_s=s.heartbeat_rtt_s,
        )

    def iter_sessions(self) -> Iterator[str]:
        return iter(list(self._sessions))


def _late_reply_test(
    rule: Rule, namespace: str, key: str | None, b: Binding
) -> Callable[[_TimedOut], bool]:
    def test(o: _TimedOut) -> bool:
        return (
            o.rule is rule
            and o.namespace == namespace
            and (key is None or o.key is None or o.key == key)
            and all(o.captures.get(n) == v for n, v in b.captures)
        )

    return test

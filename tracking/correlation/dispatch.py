"""Per packet: what a decoded Socket.IO packet means for the requests in flight.

Owns the hot path of the engine: count the packet, look up the roles of an event name,
and then open a request (an EVENT with an ack id, a configured request event), answer one
(an ACK, a configured response or error event; a late one links to its timeout), extend a
stream (a chunk pushes the deadline on), or record a one-way message.  Payloads are parsed
only when a rule reads them, once per packet.  Opening a request keeps the pending limits
(per session and overall; the oldest is evicted and counted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.capture import (
    MAX_PARSE,
    Capturer,
    describe_predicate,
    first_error,
    key_value,
)
from socketio_trace_proxy.tracking.correlation.echo import EchoTracker
from socketio_trace_proxy.tracking.correlation.lifecycle import SessionBook
from socketio_trace_proxy.tracking.correlation.outcomes import Outcomes
from socketio_trace_proxy.tracking.correlation.pending import PendingTable
from socketio_trace_proxy.tracking.correlation.state import Group, Pending, SessionState, TimedOut
from socketio_trace_proxy.tracking.events import PacketObserved
from socketio_trace_proxy.tracking.ids import IdSource, cached_traceparent
from socketio_trace_proxy.tracking.metrics import Metrics
from socketio_trace_proxy.tracking.records import (
    Outcome,
    PairKind,
    Record,
    new_message_record,
)
from socketio_trace_proxy.tracking.rules import Binding, EventRoles, Role, Rule, RuleBook
from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.wire.packets import SocketPacket, SocketPacketType
from socketio_trace_proxy.tracking.wire.socketio import first_arg

_C2S: Final = Direction.CLIENT_TO_SERVER
_S2C: Final = Direction.SERVER_TO_CLIENT
_EVENT: Final = SocketPacketType.EVENT
_BINARY_EVENT: Final = SocketPacketType.BINARY_EVENT
_ACK: Final = SocketPacketType.ACK
_BINARY_ACK: Final = SocketPacketType.BINARY_ACK
_KIND_ACK: Final = PairKind.ACK
_REJECTION: Final = Role.REJECTION
_REJECTED: Final = Outcome.REJECTED
_NO_CAPTURES: Final[Mapping[str, str]] = MappingProxyType({})
_PACKET_LABELS: Final = {
    SocketPacketType.CONNECT: "(connect)",
    SocketPacketType.DISCONNECT: "(disconnect)",
    SocketPacketType.ACK: "(ack)",
    SocketPacketType.BINARY_ACK: "(ack)",
    SocketPacketType.CONNECT_ERROR: "(connect_error)",
}


class PacketDispatch:
    """See the module docstring."""

    def __init__(  # noqa: PLR0917
        self,
        settings: TrackingSettings,
        emit: Callable[[Record], None],
        ids: IdSource,
        rules: RuleBook,
        metrics: Metrics,
        capture: Capturer,
        book: SessionBook,
        table: PendingTable,
        outcomes: Outcomes,
    ) -> None:
        self._emit = emit
        self._span_id = ids.span_id
        self._rules = rules
        self._role_cache = rules.role_cache  # read natively per EVENT (not a bound .get)
        self._metrics = metrics
        self._capture = capture
        self._capturing = capture.enabled
        self._sessions = book.sessions
        self._book = book
        self._table = table
        self._outcomes = outcomes
        self._echo = EchoTracker(
            emit, ids, metrics, frozenset(settings.defaults.ignore_key_values)
        ).handle
        self._acks = settings.acks
        self._ignored = frozenset(settings.defaults.ignore_key_values)
        self._ack_timeout_s = settings.defaults.timeout
        self._ack_slow_s = settings.defaults.slow
        self._ack_labels: dict[str, str] = {}  # event (folded) -> "<event> -> ack"
        self._max_pending = settings.limits.max_pending
        self._max_pending_per_session = settings.limits.max_pending_per_session

    def packet(self, ev: PacketObserved) -> None:
        s = self._sessions.get(ev.session_id)
        if s is None:
            s = self._book.unseen(ev)
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
        self._metrics.message(_PACKET_LABELS[t], ev.direction, size)
        if t is _ACK or t is _BINARY_ACK:
            self._ack(s, ev, p)
        elif t is SocketPacketType.CONNECT:
            self._book.connect(s, ev, p)
        elif t is SocketPacketType.CONNECT_ERROR:
            self._book.connect_error(s, ev, p)
        elif t is SocketPacketType.DISCONNECT:
            s.namespaces.pop(p.namespace, None)
            for q in [q for q in s.pending.values() if q.namespace == p.namespace]:
                self._outcomes.unanswered(q, Outcome.ABANDONED, ev.at)

    def _event(self, s: SessionState, ev: PacketObserved, p: SocketPacket) -> None:
        name = p.event
        if name is None:
            self._metrics.message("(unnamed)", ev.direction, p.size)
            self._metrics.extra["events_without_name"] += 1
            return
        roles = self._role_cache.get(name)
        if roles is None:
            roles = self._rules.roles(name)
        # EventRoles is an interpreted class: each field read is a generic attribute
        # lookup, so the common cases read as few as they can.
        label = roles.label
        self._metrics.message(label, ev.direction, p.size)
        echo = roles.echo
        if echo is not None:
            self._echo(s, ev, p, echo)
        if not roles.configured:  # no rule binds the name: an ack, or a one-way message
            if p.ack_id is not None and self._acks:
                self._open_ack(s, ev, p, label)
            elif not roles.aggregate:  # no parsing at all
                self._one_way(s, ev, p, name, label)
            return
        # The first argument, parsed once, and only if a binding of this name reads it
        # (and the payload is not too large to read: then no key, first in, first out).
        arg = None
        if roles.needs_arg:
            if len(p.payload) <= MAX_PARSE:
                arg = first_arg(p)
            else:
                self._metrics.extra["payloads_too_large_to_read"] += 1
        handled = False
        if self._acks and p.ack_id is not None:
            self._open_ack(s, ev, p, label)
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
            self._one_way(s, ev, p, name, label)

    def _one_way(
        self, s: SessionState, ev: PacketObserved, p: SocketPacket, name: str, label: str
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

    # --- acks -------------------------------------------------------------------------------

    def _open_ack(self, s: SessionState, ev: PacketObserved, p: SocketPacket, label: str) -> None:
        ack_id = p.ack_id
        assert ack_id is not None
        akey = (p.namespace, ack_id, ev.direction is _C2S)
        acks = s.acks
        old = acks.get(akey)
        if old is not None:  # the same id reused while the first is unanswered
            self._metrics.extra["duplicate_ack_ids"] += 1
            self._outcomes.unanswered(old, Outcome.EVICTED, ev.at)
        base = self._metrics.event_name(label)
        ack_label = self._ack_labels.get(base)
        if ack_label is None:  # bounded: one per admitted event name, plus "(other)"
            ack_label = self._ack_labels[base] = f"{base} -> ack"
        timeout, slow = self._ack_timeout_s, self._ack_slow_s
        q = self._new_pending(
            s, ev, p, _KIND_ACK, None, ack_label, ack_label, None, _NO_CAPTURES, timeout, slow
        )
        q.ack_key = akey
        acks[akey] = q

    def _ack(self, s: SessionState, ev: PacketObserved, p: SocketPacket) -> None:
        ack_id = p.ack_id
        if ack_id is None:
            self._metrics.extra["acks_without_id"] += 1
            return
        # The request went the other way: initiated by the client iff this ACK is not.
        q = s.acks.get((p.namespace, ack_id, ev.direction is not _C2S))
        if q is not None:
            self._outcomes.answered(q, ev, p, "ack", None)
            return
        initiator = ev.direction.opposite
        namespace = p.namespace

        def answers(o: TimedOut) -> bool:
            q = o.request
            return (
                q.kind is _KIND_ACK
                and q.namespace == namespace
                and q.initiator is initiator
                and q.ack_id == ack_id
            )

        t = self._table.take_timed_out(s, ev.at, answers)
        if t is not None:
            self._outcomes.late(s, t, ev, p, "ack")
        else:
            self._metrics.extra["unmatched_acks"] += 1

    # --- configured rules -------------------------------------------------------------------

    def _open_rule(
        self, s: SessionState, ev: PacketObserved, p: SocketPacket, b: Binding, arg: Any
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
            rule.operation,
            key,
            dict(b.captures) if b.captures else _NO_CAPTURES,
            rule.timeout_s,
            rule.slow_s,
        )
        gkey = (p.namespace, rule.index)
        group = s.groups.get(gkey)
        if group is None:
            group = s.groups[gkey] = Group()
        group.add(q)

    def _reply_key(self, rule: Rule, arg: Any) -> str | None:
        if rule.response_path is None:
            return None
        return key_value(arg, rule.response_path, self._ignored)

    def _reply(
        self, s: SessionState, ev: PacketObserved, p: SocketPacket, roles: EventRoles, arg: Any
    ) -> bool:
        requested_by = _S2C if ev.direction is _C2S else _C2S
        for b in roles.replies:
            rule = b.rule
            if rule.request_direction is not requested_by:
                continue
            key = self._reply_key(rule, arg)
            group = s.groups.get((p.namespace, rule.index))
            q = group.find(key, b.captures) if group is not None else None
            if q is not None:
                if b.role is _REJECTION:
                    self._outcomes.answered(q, ev, p, b.template, b.template, _REJECTED)
                else:
                    self._outcomes.answered(q, ev, p, b.template, self._error_type(b, arg))
                return True
            t = self._table.take_timed_out(s, ev.at, _late_reply_test(rule, p.namespace, key, b))
            if t is not None:
                self._outcomes.late(s, t, ev, p, b.template)
                return True
        return False

    @staticmethod
    def _error_type(b: Binding, arg: Any) -> str | None:
        if b.role is Role.ERROR:
            return b.template
        rule = b.rule
        if rule.error_when:
            hit = first_error(arg, rule.error_when, rule.error_paths)
            if hit is not None:
                return f"{b.template} ({describe_predicate(hit)})"
        return None

    def _chunk(
        self, s: SessionState, ev: PacketObserved, p: SocketPacket, roles: EventRoles, arg: Any
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
            self._table.push(q)
            return True
        return False

    # --- opening a request ------------------------------------------------------------------

    def _new_pending(  # noqa: PLR0917 - positional: called per request
        self,
        s: SessionState,
        ev: PacketObserved,
        p: SocketPacket,
        kind: PairKind,
        rule: Rule | None,
        label: str,
        operation: str,
        key: str | None,
        captures: Mapping[str, str],
        timeout_s: float,
        slow_s: float,
    ) -> Pending:
        at = ev.at
        table = self._table
        unanswered = self._outcomes.unanswered
        while len(s.pending) >= self._max_pending_per_session:
            self._metrics.evictions["pending_per_session"] += 1
            unanswered(next(iter(s.pending.values())), Outcome.EVICTED, at)
        while len(table.pending) >= self._max_pending:
            self._metrics.evictions["pending_global"] += 1
            unanswered(next(iter(table.pending.values())), Outcome.EVICTED, at)
        traceparent = ev.traceparent
        q = Pending(
            table.new_id(),
            self._span_id(),
            s,
            p.namespace,
            kind,
            rule,
            label,
            operation,
            p.event or "",
            ev.direction,
            p.ack_id if kind is _KIND_ACK else None,
            key,
            captures,
            at,
            ev.wall,
            at + timeout_s,
            timeout_s,
            slow_s,
            ev.transport,
            p.size,
            self._capture.capture(p, p.event, label if rule else None) if self._capturing else None,
            cached_traceparent(traceparent) if traceparent else None,
        )
        s.pending[q.id] = q
        table.pending[q.id] = q
        table.push(q)
        return q


def _late_reply_test(
    rule: Rule, namespace: str, key: str | None, b: Binding
) -> Callable[[TimedOut], bool]:
    def test(o: TimedOut) -> bool:
        q = o.request
        return (
            q.rule is rule
            and q.namespace == namespace
            and (key is None or q.key is None or q.key == key)
            and q.fits(b.captures)
        )

    return test

"""One replayed session as a state machine: live packets and times in, actions and results out.

The I/O driver (``proxy.replay``) calls :meth:`ReplaySession.opened` after the handshake,
:meth:`~ReplaySession.received` for every packet the server sends, and asks
:meth:`~ReplaySession.next_action` what to do: send packets (:class:`Send`), upgrade the
transport (:class:`Upgrade`), wait (:class:`Wait`) or close (:class:`Close`).  A client
packet goes out no earlier than its recorded time divided by ``speed``, and not before the
replies that had arrived before it then have arrived now (or timed out): a client that
waits for ``terminal_ready`` before typing is replayed that way.  Server-issued ids are
remapped in what the client sends (:class:`tracking.replay.diff.Remap`), and an ACK to a
server request carries the server's live ack id.  Replies are paired by the tracker's
engine (:class:`tracking.replay.pairing.Pairer`) and compared with the recorded ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.replay.diff import Comparer, Difference, Remap
from socketio_trace_proxy.tracking.replay.pairing import Pair, Pairer, SocketStream
from socketio_trace_proxy.tracking.replay.script import (
    Expectation,
    SessionScript,
    Step,
    decode_packet,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, SocketPacket, SocketPacketType
from socketio_trace_proxy.tracking.wire.socketio import parse_args, parse_header

_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT
_EVENTS = (SocketPacketType.EVENT, SocketPacketType.BINARY_EVENT)


class Status(Enum):
    MATCH = "match"  # the reply (or its absence) is as recorded
    DIFFER = "differ"  # a reply came, different from the recorded one
    MISSING = "missing"  # the recorded reply did not come
    UNEXPECTED = "unexpected"  # a reply came where none had come then


FAILING = (Status.DIFFER, Status.MISSING, Status.UNEXPECTED)


@dataclass(frozen=True, slots=True)
class ReplyResult:
    rule: str
    request_event: str
    status: Status
    then_s: float | None  # latency then (None: no reply then)
    now_s: float | None
    differences: tuple[Difference, ...] = ()
    note: str | None = None


@dataclass(slots=True)
class SessionResult:
    session: str  # the recorded sid
    copy: int
    live_sid: str | None = None
    replies: list[ReplyResult] = field(default_factory=list)
    extra: int = 0  # live pairs the recording has no request for
    sent: int = 0
    received: int = 0
    skipped: int = 0  # client ACKs to server requests that never came
    error: str | None = None
    duration_s: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error is not None or any(r.status in FAILING for r in self.replies)


@dataclass(frozen=True, slots=True)
class Send:
    steps: tuple[Step, ...]
    packets: tuple[str | bytes, ...]  # as to send (ids remapped); one polling body


@dataclass(frozen=True, slots=True)
class Upgrade:
    pass


@dataclass(frozen=True, slots=True)
class Wait:
    until: float | None  # None: until a packet arrives


@dataclass(frozen=True, slots=True)
class Close:
    pass


Action = Send | Upgrade | Wait | Close


class ReplaySession:
    """See the module docstring.  Times are seconds since the live session began."""

    def __init__(
        self,
        script: SessionScript,
        tracking: TrackingSettings,
        comparer: Comparer,
        redactor: PacketRedactor,
        *,
        speed: float | None = 1.0,
        upgrade_at: float | None = None,
        copy: int = 0,
    ) -> None:
        self.script = script
        self._scale = 0.0 if not speed else 1.0 / speed
        self._comparer = comparer
        self._redactor = redactor
        self._timeout = tracking.defaults.timeout
        self._pairer = Pairer(tracking, script.session)
        self._live_stream = SocketStream()
        self._remap = Remap()
        self._upgrade_at = upgrade_at
        self._upgraded = upgrade_at is None
        self._next = 0  # next step
        self._live_index = 0
        self._step_of: dict[int, Step] = {}  # live index of a sent packet -> its step
        self._sent_steps: set[int] = set()
        self._results: dict[int, ReplyResult] = {}  # by expectation id
        self._server_requests: dict[tuple[str, str], list[int]] = {}  # live ack ids, in order
        self._recorded = _recorded_packets(script)
        self.result = SessionResult(script.session, copy)
        self.closed = False

    # --- inputs -------------------------------------------------------------------------

    def opened(self, live_sid: str) -> None:
        self.result.live_sid = live_sid
        self._remap.learn(self.script.session, live_sid)

    def upgraded(self) -> None:
        self._upgraded = True

    def received(self, data: str | bytes, transport: Transport, now: float) -> None:
        """A packet the server sent."""
        self.result.received += 1
        index = self._live_index
        self._live_index += 1
        p = decode_packet(data, self.script.eio)
        if p is None:
            return
        for start, sp in self._live_stream.feed(index, _S2C, p):
            if sp.type in _EVENTS and sp.ack_id is not None and sp.event is not None:
                self._server_requests.setdefault((sp.namespace, sp.event), []).append(sp.ack_id)
            for pair in self._pairer.packet(start, now, _S2C, transport, sp):
                self._pair(pair, sp if pair.reply is not None else None)

    def server_closed(self, reason: str) -> None:
        """The server ended the session; an error if the client had more to send."""
        left = len(self.script.steps) - self._next
        if left and self.result.error is None:
            self.result.error = f"the server closed the session ({reason}); {left} packet(s) unsent"
        self.closed = True

    def failed(self, error: str) -> None:
        self.result.error = error
        self.closed = True

    # --- decisions ----------------------------------------------------------------------

    def next_action(self, now: float) -> Action:
        for pair in self._pairer.tick(now):
            self._pair(pair, None)
        if self.closed:
            return Close()
        if not self._upgraded and self._upgrade_at is not None:
            at = self._upgrade_at * self._scale
            if now >= at:
                self._upgraded = True
                return Upgrade()
        steps = self.script.steps
        if self._next < len(steps):
            return self._step_action(steps, now)
        end = self.script.end_t * self._scale
        pending = self._pending_expectations()
        if now >= end and not pending:
            self.closed = True
            return Close()
        return Wait(self._earliest(end if now < end else None))

    def _step_action(self, steps: tuple[Step, ...], now: float) -> Action:
        step = steps[self._next]
        due = step.t * self._scale
        if now < due:
            return Wait(self._earliest(due))
        if any(e not in self._results and self._was_sent(e) for e in step.after):
            return Wait(self._earliest(None))
        ack_id: int | None = None
        if step.answers is not None:
            ns, event, n = step.answers
            live = self._server_requests.get((ns, event), [])
            if len(live) <= n:
                if now < due + self._timeout:
                    return Wait(self._earliest(due + self._timeout))
                self._next += 1
                self.result.skipped += 1
                return self.next_action(now)
            ack_id = live[n]
        batch = [step]
        self._next += 1
        while (
            step.body is not None
            and self._next < len(steps)
            and steps[self._next].body == step.body
            and steps[self._next].answers is None
        ):
            batch.append(steps[self._next])
            self._next += 1
        packets = [self._outgoing(s, ack_id if s is step else None) for s in batch]
        return Send(tuple(batch), tuple(packets))

    def sent(self, action: Send, transport: Transport, now: float) -> None:
        """The driver sent ``action``'s packets."""
        for step, data in zip(action.steps, action.packets, strict=True):
            index = self._live_index
            self._live_index += 1
            self._step_of[index] = step
            self._sent_steps.add(step.index)
            self.result.sent += 1
            p = decode_packet(data, self.script.eio)
            if p is None:
                continue
            for start, sp in self._live_stream.feed(index, _C2S, p):
                for pair in self._pairer.packet(start, now, _C2S, transport, sp):
                    self._pair(pair, None)

    def finish(self, now: float) -> SessionResult:
        """The session ended: what is unsettled has no reply."""
        for pair in self._pairer.finish(now):
            self._pair(pair, None)
        for e in self.script.expectations:
            if e.id not in self._results:
                note = None if self._was_sent(e.id) else "request not sent"
                self._settle(e, None, None, None, note)
        self.result.replies = [self._results[i] for i in sorted(self._results)]
        self.result.duration_s = now
        return self.result

    # --- internals ----------------------------------------------------------------------

    def _earliest(self, at: float | None) -> float | None:
        deadline = self._pairer.next_deadline()
        if deadline is None:
            return at
        return deadline if at is None else min(at, deadline)

    def _was_sent(self, expectation: int) -> bool:
        return self.script.expectations[expectation].request in self._sent_steps

    def _pending_expectations(self) -> bool:
        """Replies still awaited: those that came then (one that never came is not waited
        for past the recorded end; the engine's timeout would only make the run slower)."""
        return any(
            e.id not in self._results and e.reply is not None and e.request in self._sent_steps
            for e in self.script.expectations
        )

    def _outgoing(self, step: Step, ack_id: int | None) -> str | bytes:
        data = step.data
        if not isinstance(data, str) or data[:1] != "4":
            return data
        parsed = parse_header(data[1:])
        if isinstance(parsed, DecodeFailure):
            return data
        sp, _ = parsed
        head = data[1 : len(data) - len(sp.payload)]
        if ack_id is not None and sp.ack_id is not None:
            digits = str(sp.ack_id)
            head = head[: len(head) - len(digits)] + str(ack_id)
        payload = sp.payload
        if payload and self._remap.values:
            try:
                value, changed = self._remap.apply(json.loads(payload))
            except (ValueError, RecursionError):
                changed = False
            if changed:
                payload = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return "4" + head + payload

    def _pair(self, pair: Pair, reply: SocketPacket | None) -> None:
        if pair.initiator is not _C2S:
            return
        step = self._step_of.get(pair.request)
        e = self.script.expectation(step.index, pair.rule) if step is not None else None
        if e is None:
            if pair.reply is not None:
                self.result.extra += 1
            return
        if e.id in self._results and pair.outcome != "late":
            return
        self._settle(e, pair, reply, pair.latency_s)

    def _settle(
        self,
        e: Expectation,
        pair: Pair | None,
        reply: SocketPacket | None,
        now_s: float | None,
        note: str | None = None,
    ) -> None:
        then = self._recorded.get(e.reply) if e.reply is not None else None
        if reply is None:
            status = Status.MATCH if e.reply is None else Status.MISSING
            result = ReplyResult(e.rule, e.request_event, status, e.latency_s, None, (), note)
        elif then is None:
            result = ReplyResult(
                e.rule, e.request_event, Status.UNEXPECTED, None, now_s, (), "no reply then"
            )
        else:
            diffs = self._compare(then, self._redacted(reply))
            status = Status.DIFFER if diffs else Status.MATCH
            note = "late" if pair is not None and pair.outcome == "late" else None
            result = ReplyResult(
                e.rule, e.request_event, status, e.latency_s, now_s, tuple(diffs), note
            )
        self._results[e.id] = result

    def _redacted(self, packet: SocketPacket) -> SocketPacket:
        if not packet.payload:
            return packet
        label = packet.event
        new = self._redactor.payload(packet.type, packet.payload, packet.event, label)
        return packet if new is None else packet._replace(payload=new)

    def _compare(self, then: SocketPacket, now: SocketPacket) -> list[Difference]:
        diffs: list[Difference] = []
        if then.type != now.type and not {then.type, now.type} <= _ACK_TYPES | _EVENT_SET:
            diffs.append(Difference("(type)", "changed", then.type.name, now.type.name))
        if then.event != now.event:
            diffs.append(Difference("(event)", "changed", then.event, now.event))
        labels: Iterable[str | None] = (then.event, now.event)
        diffs += self._comparer.compare(labels, parse_args(then), parse_args(now), self._remap)
        return diffs


_ACK_TYPES = frozenset((SocketPacketType.ACK, SocketPacketType.BINARY_ACK))
_EVENT_SET = frozenset(_EVENTS)


def _recorded_packets(script: SessionScript) -> dict[int, SocketPacket]:
    """The recorded replies, complete (attachments joined), by their first packet's index."""
    wanted = {e.reply for e in script.expectations if e.reply is not None}
    out: dict[int, SocketPacket] = {}
    stream = SocketStream()
    for i, line in enumerate(script.packets):
        p = decode_packet(line.data, script.eio)
        if p is None:
            continue
        for start, sp in stream.feed(i, line.direction, p):
            if start in wanted:
                out[start] = sp
    return out

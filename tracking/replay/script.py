"""Recorded sessions rebuilt for replay: the client's packets, and the replies it got.

:func:`load_sessions` groups a recording's lines by session (parts of a rotated file are
joined; a session whose beginning is missing, or that has a gap, is marked incomplete).
:func:`build_script` turns one session into a :class:`SessionScript`: the client packets
to send (:class:`Step`; Engine.IO heartbeats and the upgrade probe are left to the live
client), the replies expected (:class:`Expectation`, paired by the tracker's engine), and
what each step waited for then (the replies that had arrived before it was sent).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.recording.format import (
    CloseLine,
    GapLine,
    Header,
    Line,
    PacketLine,
    SessionLine,
)
from socketio_trace_proxy.tracking.replay.pairing import Pair, Pairer, SocketStream
from socketio_trace_proxy.tracking.rules import RuleBook
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.engineio import decode_text_packet
from socketio_trace_proxy.tracking.wire.packets import (
    DecodeFailure,
    EnginePacket,
    EnginePacketType,
    SocketPacket,
    SocketPacketType,
)
from socketio_trace_proxy.tracking.wire.socketio import parse_header

_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT
_LIVE_ONLY = (
    EnginePacketType.OPEN,
    EnginePacketType.PING,
    EnginePacketType.PONG,
    EnginePacketType.UPGRADE,
    EnginePacketType.NOOP,
)


@dataclass(slots=True)
class RecordedSession:
    session: str
    eio: int
    transport: Transport
    wall: float
    packets: list[PacketLine] = field(default_factory=list)
    close: CloseLine | None = None
    incomplete: str | None = None  # why the recording of it is not whole


def load_sessions(lines: Iterable[Line]) -> tuple[Header | None, list[RecordedSession]]:
    """The sessions of a recording, in the order they began (first header returned)."""
    header: Header | None = None
    sessions: dict[str, RecordedSession] = {}
    for line in lines:
        if isinstance(line, PacketLine):
            s = sessions.get(line.session)
            if s is not None and s.close is None:
                s.packets.append(line)
        elif isinstance(line, SessionLine):
            if line.session not in sessions:
                s = RecordedSession(line.session, line.eio, line.transport, line.wall)
                if line.continued:
                    s.incomplete = "its beginning is in a part of the file that is gone"
                sessions[line.session] = s
        elif isinstance(line, CloseLine):
            s = sessions.get(line.session)
            if s is not None and s.close is None:
                s.close = line
        elif isinstance(line, GapLine):
            for sid in line.sessions:
                gap = sessions.get(sid)
                if gap is not None and gap.close is None:
                    gap.incomplete = f"the recorder dropped {line.dropped} observation(s)"
        elif header is None:
            header = line
    return header, list(sessions.values())


@dataclass(frozen=True, slots=True)
class Step:
    """One client packet to send."""

    index: int  # its place among the session's recorded packets
    t: float
    transport: Transport
    data: str | bytes
    body: int | None
    after: tuple[int, ...] = ()  # expectations answered before it was sent then
    answers: tuple[str, str, int] | None = None  # (namespace, event, n): an ACK to the n-th
    # such server request, whose ack id is the live one


@dataclass(frozen=True, slots=True)
class Expectation:
    """A request of the client and the reply it got then (``reply`` None: none came)."""

    id: int
    rule: str
    request: int
    request_event: str
    namespace: str
    reply: int | None
    reply_t: float | None
    outcome: str
    latency_s: float | None
    timeout_s: float


@dataclass(frozen=True, slots=True)
class SessionScript:
    session: str
    eio: int
    transport: Transport
    packets: tuple[PacketLine, ...]
    steps: tuple[Step, ...]
    expectations: tuple[Expectation, ...]
    upgrade_at: float | None  # when the client began the upgrade probe then
    end_t: float
    client_closed: bool  # the client ended the session (CLOSE packet or closed its socket)
    server_requests: tuple[tuple[int, str, str], ...]  # (index, namespace, event) with ack id

    def expectation(self, step: int, rule: str) -> Expectation | None:
        for e in self.expectations:
            if e.request == step and e.rule == rule:
                return e
        return None


def decode_packet(data: str | bytes, eio: int) -> EnginePacket | None:
    if isinstance(data, bytes):
        return EnginePacket(EnginePacketType.MESSAGE, data, len(data))
    p = decode_text_packet(data, eio=eio)
    return p if isinstance(p, EnginePacket) else None


def _pairs(s: RecordedSession, tracking: TrackingSettings) -> list[Pair]:
    pairer = Pairer(tracking, s.session)
    stream = SocketStream()
    pairs: list[Pair] = []
    for i, line in enumerate(s.packets):
        p = decode_packet(line.data, s.eio)
        if p is None:
            continue
        for start, sp in stream.feed(i, line.direction, p):
            pairs += pairer.packet(start, line.t, line.direction, line.transport, sp)
    end = s.close.t if s.close is not None else (s.packets[-1].t if s.packets else 0.0)
    return pairs + pairer.finish(end)


def _timeouts(tracking: TrackingSettings) -> dict[str, float]:
    return {r.name: r.timeout_s for r in RuleBook(tracking).rules}


def build_script(s: RecordedSession, tracking: TrackingSettings) -> SessionScript:
    """The replay script of one recorded session."""
    timeouts = _timeouts(tracking)
    default_timeout = tracking.defaults.timeout
    expectations: list[Expectation] = []
    for pair in _pairs(s, tracking):
        if pair.initiator is not _C2S:
            continue  # the server's requests are answered by the replayed client itself
        reply_t = s.packets[pair.reply].t if pair.reply is not None else None
        expectations.append(
            Expectation(
                id=len(expectations),
                rule=pair.rule,
                request=pair.request,
                request_event=pair.request_event,
                namespace=pair.namespace,
                reply=pair.reply,
                reply_t=reply_t,
                outcome=pair.outcome,
                latency_s=pair.latency_s,
                timeout_s=timeouts.get(pair.rule, default_timeout),
            )
        )
    steps, upgrade_at, server_requests = _steps(s, expectations)
    end_t = s.close.t if s.close is not None else (s.packets[-1].t if s.packets else 0.0)
    client_closed = s.close is not None and s.close.by is _C2S
    return SessionScript(
        session=s.session,
        eio=s.eio,
        transport=s.transport,
        packets=tuple(s.packets),
        steps=tuple(steps),
        expectations=tuple(expectations),
        upgrade_at=upgrade_at,
        end_t=max(end_t, *(st.t for st in steps)) if steps else end_t,
        client_closed=client_closed,
        server_requests=tuple(server_requests),
    )


def _steps(
    s: RecordedSession, expectations: list[Expectation]
) -> tuple[list[Step], float | None, list[tuple[int, str, str]]]:
    steps: list[Step] = []
    upgrade_at: float | None = None
    server_requests: list[tuple[int, str, str]] = []
    seen_requests: dict[tuple[str, str], int] = {}
    asked: dict[tuple[str, int], tuple[str, str, int]] = {}  # (ns, ack id) -> server request
    answered = sorted((e.reply, e.id) for e in expectations if e.reply is not None)
    next_reply = 0
    stream = SocketStream()
    for i, line in enumerate(s.packets):
        p = decode_packet(line.data, s.eio)
        if p is None:
            continue
        socket_packets = stream.feed(i, line.direction, p)
        if line.direction is _S2C:
            for start, sp in socket_packets:
                if sp.ack_id is not None and sp.type in _EVENTS and sp.event is not None:
                    key = (sp.namespace, sp.event)
                    n = seen_requests.get(key, 0)
                    seen_requests[key] = n + 1
                    asked[(sp.namespace, sp.ack_id)] = (sp.namespace, sp.event, n)
                    server_requests.append((start, sp.namespace, sp.event))
            continue
        if p.type in _LIVE_ONLY:
            probe = p.type is EnginePacketType.PING and p.data == "probe"
            if upgrade_at is None and (probe or p.type is EnginePacketType.UPGRADE):
                upgrade_at = line.t
            continue
        answers = None
        head = _header(line.data)
        if head is not None and head.type in _ACKS and head.ack_id is not None:
            answers = asked.get((head.namespace, head.ack_id))
        # The replies that arrived since the previous step (earlier ones: that step waited).
        after: list[int] = []
        while next_reply < len(answered) and answered[next_reply][0] < i:
            after.append(answered[next_reply][1])
            next_reply += 1
        steps.append(Step(i, line.t, line.transport, line.data, line.body, tuple(after), answers))
    return steps, upgrade_at, server_requests


_EVENTS = (SocketPacketType.EVENT, SocketPacketType.BINARY_EVENT)
_ACKS = (SocketPacketType.ACK, SocketPacketType.BINARY_ACK)


def _header(data: str | bytes) -> SocketPacket | None:
    if not isinstance(data, str) or data[:1] != "4":
        return None
    parsed = parse_header(data[1:])
    return None if isinstance(parsed, DecodeFailure) else parsed[0]

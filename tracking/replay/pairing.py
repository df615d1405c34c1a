"""Pairs requests with replies in one packet sequence, with the tracker's own engine.

:class:`Pairer` feeds Socket.IO packets to a :class:`tracking.correlation.CorrelationEngine`
configured like the proxy (rules, acks, timeouts), so a replay pairs exactly as the tracker
does.  Each packet is stamped with its index in the sequence as its wall time, so a pair
record's ``start_wall`` names the request packet; the reply is the packet being handled
when the record comes out (the engine emits synchronously).  Namespace connects are paired
the engine's way too (its lifecycle record; the request is the namespace's last CONNECT).
"""

from __future__ import annotations

from dataclasses import dataclass

from socketio_trace_proxy.config.tracking import CaptureSettings, TrackingSettings
from socketio_trace_proxy.tracking.correlation import NAMESPACE_CONNECT_RULE, CorrelationEngine
from socketio_trace_proxy.tracking.events import PacketObserved, SessionOpened
from socketio_trace_proxy.tracking.ids import SequentialIds
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    Outcome,
    PairRecord,
    Record,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import (
    DecodeFailure,
    EnginePacket,
    EnginePacketType,
    SocketPacket,
    SocketPacketType,
)
from socketio_trace_proxy.tracking.wire.socketio import SocketIOStreamDecoder

_ANSWERED = (Outcome.OK, Outcome.ERROR, Outcome.LATE)


@dataclass(frozen=True, slots=True)
class Pair:
    """A request and what became of it, by packet index."""

    rule: str  # the record's rule: a rule's name, "<event> -> ack", "namespace_connect"
    request: int
    reply: int | None  # None: no reply (timeout, abandoned, evicted)
    outcome: str
    latency_s: float | None
    initiator: Direction
    request_event: str
    namespace: str


def pairing_settings(tracking: TrackingSettings) -> TrackingSettings:
    """The tracking settings a replay pairs with: every pair kept, nothing captured."""
    return tracking.model_copy(
        update={"sample_rate": 1.0, "capture": CaptureSettings(enabled=False)}
    )


class SocketStream:
    """Engine.IO packets of one session in, complete Socket.IO packets out, each with the
    index of the Engine.IO packet that began it (binary attachments follow their header)."""

    def __init__(self) -> None:
        self._decoders = {d: SocketIOStreamDecoder() for d in Direction}
        self._start: dict[Direction, int] = {}

    def feed(
        self, index: int, direction: Direction, packet: EnginePacket
    ) -> list[tuple[int, SocketPacket]]:
        if packet.type is not EnginePacketType.MESSAGE:
            return []
        dec = self._decoders[direction]
        if not dec.busy:
            self._start[direction] = index
        out = dec.feed(packet)
        start = self._start.get(direction, index)
        return [(start, p) for p in out if not isinstance(p, DecodeFailure)]


class Pairer:
    """Feeds one session's Socket.IO packets to a correlation engine; collects pairs."""

    def __init__(self, tracking: TrackingSettings, session_id: str = "replay") -> None:
        self._sid = session_id
        self._engine = CorrelationEngine(
            pairing_settings(tracking), self._record, ids=SequentialIds()
        )
        self._engine.handle(SessionOpened(session_id, Transport.POLLING, 4, 25.0, 20.0, 0.0, -1.0))
        self._current: int | None = None
        self._connects: dict[str, int] = {}
        self._out: list[Pair] = []

    def packet(
        self, index: int, t: float, direction: Direction, transport: Transport, p: SocketPacket
    ) -> list[Pair]:
        """Feed one packet (``index``: its place in the sequence, ``t``: seconds); returns
        the pairs it completed or that timed out before it."""
        if p.type is SocketPacketType.CONNECT and direction is Direction.CLIENT_TO_SERVER:
            self._connects[p.namespace] = index
        self._current = index
        self._engine.handle(PacketObserved(self._sid, direction, transport, p, t, float(index)))
        self._current = None
        return self._take()

    def tick(self, t: float) -> list[Pair]:
        """Time out what is due at ``t``."""
        self._engine.tick(t, -1.0)
        return self._take()

    def next_deadline(self) -> float | None:
        return self._engine.next_deadline()

    def finish(self, t: float) -> list[Pair]:
        """The end of the sequence: whatever is still pending has no reply."""
        self._engine.tick(t, -1.0)
        self._engine.shutdown(t, -1.0)
        return self._take()

    def _take(self) -> list[Pair]:
        out, self._out = self._out, []
        return out

    def _record(self, record: Record) -> None:
        if isinstance(record, PairRecord):
            answered = record.outcome in _ANSWERED
            self._out.append(
                Pair(
                    rule=record.rule,
                    request=int(record.start_wall),
                    reply=self._current if answered else None,
                    outcome=record.outcome.value,
                    latency_s=record.duration_s if answered else None,
                    initiator=record.initiator,
                    request_event=record.request_event,
                    namespace=record.namespace,
                )
            )
        elif isinstance(record, LifecycleRecord) and record.kind is LifecycleKind.NAMESPACE_CONNECT:
            ns = record.namespace or "/"
            request = self._connects.pop(ns, None)
            if request is None or self._current is None:
                return
            self._out.append(
                Pair(
                    rule=NAMESPACE_CONNECT_RULE,
                    request=request,
                    reply=self._current,
                    outcome="ok" if record.ok else "error",
                    latency_s=record.duration_s,
                    initiator=Direction.CLIENT_TO_SERVER,
                    request_event="(connect)",
                    namespace=ns,
                )
            )

"""Test kit for correlation playbooks: a fake clock, packet builders, an engine harness."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.correlation import CorrelationEngine
from socketio_trace_proxy.tracking.events import (
    CloseReason,
    PacketObserved,
    SessionClosed,
    SessionEvent,
    SessionOpened,
)
from socketio_trace_proxy.tracking.ids import SequentialIds
from socketio_trace_proxy.tracking.records import LifecycleRecord, MessageRecord, PairRecord, Record
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacket, SocketPacketType

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
WALL0 = 1_700_000_000.0


def event(name: str, *args: Any, ack: int | None = None, ns: str = "/") -> SocketPacket:
    payload = json.dumps([name, *args])
    return SocketPacket(
        type=SocketPacketType.EVENT,
        namespace=ns,
        ack_id=ack,
        event=name,
        payload=payload,
        attachments=(),
        size=len(payload) + 2,
    )


def ack(ack_id: int, *args: Any, ns: str = "/") -> SocketPacket:
    payload = json.dumps(list(args))
    return SocketPacket(SocketPacketType.ACK, ns, ack_id, None, payload, (), len(payload) + 3)


def control(kind: SocketPacketType, payload: Any = None, ns: str = "/") -> SocketPacket:
    text = "" if payload is None else json.dumps(payload)
    return SocketPacket(kind, ns, None, None, text, (), len(text) + 2)


def settings(**tracking: Any) -> TrackingSettings:
    return TrackingSettings.model_validate(tracking)


@dataclass
class Harness:
    """Drives one engine on a fake clock; ``records`` collects everything emitted."""

    settings: TrackingSettings = field(default_factory=TrackingSettings)
    now: float = 100.0
    records: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = CorrelationEngine(self.settings, self.records.append, SequentialIds())

    @property
    def wall(self) -> float:
        return WALL0 + self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on, firing due timers the way the runtime would."""
        target = self.now + seconds
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.engine.tick(self.now, self.wall)
        self.now = target
        self.engine.tick(self.now, self.wall)

    def feed(self, ev: SessionEvent) -> None:
        self.engine.handle(ev)

    def open(
        self,
        sid: str = "sid1",
        transport: Transport = Transport.WEBSOCKET,
        traceparent: str | None = None,
    ) -> None:
        self.feed(
            SessionOpened(
                sid, transport, 4, 25.0, 20.0, self.now, self.wall, "127.0.0.1", traceparent
            )
        )

    def send(
        self,
        packet: SocketPacket,
        direction: Direction = C2S,
        sid: str = "sid1",
        transport: Transport = Transport.WEBSOCKET,
    ) -> None:
        self.feed(PacketObserved(sid, direction, transport, packet, self.now, self.wall))

    def reply(
        self, packet: SocketPacket, sid: str = "sid1", transport: Transport = Transport.WEBSOCKET
    ) -> None:
        self.send(packet, S2C, sid, transport)

    def close(self, sid: str = "sid1", reason: CloseReason = CloseReason.CLOSE_PACKET) -> None:
        self.feed(SessionClosed(sid, reason, self.now, self.wall))

    def pairs(self) -> list[PairRecord]:
        return [r for r in self.records if isinstance(r, PairRecord)]

    def messages(self) -> list[MessageRecord]:
        return [r for r in self.records if isinstance(r, MessageRecord)]

    def lifecycle(self) -> list[LifecycleRecord]:
        return [r for r in self.records if isinstance(r, LifecycleRecord)]

    def summary(self) -> list[tuple[str, str, str | None]]:
        """(operation, outcome, match_key) per pair, in emission order."""
        return [(p.operation, p.outcome.value, p.match_key) for p in self.pairs()]

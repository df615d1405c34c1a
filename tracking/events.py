"""What the session layer tells the correlation engine: typed, immutable, timestamped.

Every event carries ``at`` (monotonic seconds, for durations) and ``wall`` (Unix epoch
seconds, for record timestamps); tests drive both from a fake clock.

The events made per frame or per heartbeat (:class:`PacketObserved`, :class:`DecodeFailed`,
:class:`HeartbeatObserved`) are ``typing.NamedTuple`` (immutable, typed, built at C speed);
the once-per-session ones are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacket


class CloseReason(Enum):
    """Why an Engine.IO session ended, as seen at the proxy."""

    CLOSE_PACKET = "close_packet"
    WEBSOCKET_CLOSED = "websocket_closed"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    EVICTED = "evicted"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class SessionOpened:
    session_id: str
    transport: Transport
    eio_version: int
    ping_interval_s: float
    ping_timeout_s: float
    at: float
    wall: float
    remote: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class SessionUpgraded:
    """The session moved from long-polling to WebSocket (``5`` UPGRADE seen)."""

    session_id: str
    duration_s: float
    at: float
    wall: float


class HeartbeatObserved(NamedTuple):
    """A PING and its PONG crossed the proxy; ``rtt_s`` is the round trip as seen here."""

    session_id: str
    rtt_s: float
    at: float
    wall: float


class PacketObserved(NamedTuple):
    """One decoded Socket.IO packet of an Engine.IO session."""

    session_id: str
    direction: Direction
    transport: Transport
    packet: SocketPacket
    at: float
    wall: float


class DecodeFailed(NamedTuple):
    """A frame or payload that could not be decoded (it was forwarded unchanged)."""

    session_id: str | None
    direction: Direction
    transport: Transport
    reason: str
    size: int
    at: float
    wall: float


@dataclass(frozen=True, slots=True)
class SessionClosed:
    session_id: str
    reason: CloseReason
    at: float
    wall: float


SessionEvent = (
    SessionOpened
    | SessionUpgraded
    | HeartbeatObserved
    | PacketObserved
    | DecodeFailed
    | SessionClosed
)

"""What the session layer tells the correlation engine: typed, immutable, timestamped.

Every event carries ``at`` (monotonic seconds, for durations) and ``wall`` (Unix epoch
seconds, for record timestamps): the stamp of the observation it came from, taken once by
the tracker's driver; tests drive both from a fake clock.

The events made per frame or per heartbeat (:class:`PacketObserved`, :class:`DecodeFailed`,
:class:`HeartbeatObserved`) are ``typing.NamedTuple`` (immutable, typed, built at C speed);
the once-per-session ones are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from socketio_trace_proxy.tracking.records import Record
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
    """A session began: its OPEN packet was seen, or (``lazily``) traffic of a sid the
    backend accepted (a 200 polling reply, a 101) although its handshake was not seen.

    ``requested_at`` is when the handshake request (polling GET or WebSocket upgrade
    without sid) arrived at the proxy, on the same clock as ``at``; ``None`` when unknown.
    """

    session_id: str
    transport: Transport
    eio_version: int
    ping_interval_s: float
    ping_timeout_s: float
    at: float
    wall: float
    remote: str | None = None
    traceparent: str | None = None
    requested_at: float | None = None
    lazily: bool = False
    remote_port: int | None = None


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
    """One decoded Socket.IO packet of an Engine.IO session.

    ``traceparent`` is the W3C trace context header of the HTTP request that carried the
    packet (the polling request, or the WebSocket's upgrade request), if it had one.
    """

    session_id: str
    direction: Direction
    transport: Transport
    packet: SocketPacket
    at: float
    wall: float
    traceparent: str | None = None


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
    """A session ended.  For ``WEBSOCKET_CLOSED``: ``initiator`` is the side whose close
    frame came first (``None``: neither, the proxy gave up on a vanished leg) and ``code``
    its close code; for ``CLOSE_PACKET``: ``initiator`` is the side that sent the Engine.IO
    CLOSE packet.  Both are ``None`` for the reasons the proxy decides on its own."""

    session_id: str
    reason: CloseReason
    at: float
    wall: float
    code: int | None = None
    initiator: Direction | None = None


class PacketSink:
    """A receiver of every :class:`PacketObserved`, called by the session layer as a typed
    method (natively in the compiled build: not a bound method behind the Python call
    protocol) when the session layer's emit is the receiver's own ``event`` method."""

    def packet_observed(self, event: PacketObserved) -> None:
        raise NotImplementedError


class RecordTarget:
    """A receiver of the correlation engine's records, called by the engine as a typed
    method (natively in the compiled build) when the engine's emit is the receiver's own
    ``record`` method."""

    def record(self, record: Record) -> None:
        raise NotImplementedError


def packet_sink(emit: object) -> PacketSink | None:
    """The :class:`PacketSink` whose ``event`` method ``emit`` is, if it is one."""
    owner = getattr(emit, "__self__", None)
    if isinstance(owner, PacketSink) and emit == getattr(owner, "event", None):
        return owner
    return None


def record_target(emit: object) -> RecordTarget | None:
    """The :class:`RecordTarget` whose ``record`` method ``emit`` is, if it is one."""
    owner = getattr(emit, "__self__", None)
    if isinstance(owner, RecordTarget) and emit == getattr(owner, "record", None):
        return owner
    return None


SessionEvent = (
    SessionOpened
    | SessionUpgraded
    | HeartbeatObserved
    | PacketObserved
    | DecodeFailed
    | SessionClosed
)

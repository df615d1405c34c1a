"""The session table's state: one Engine.IO session, one relayed WebSocket, the counters.

Plain mutable slots objects, owned and changed only by the modules of
:mod:`tracking.sessions`; the outside sees :class:`WebSocketLeg` as an opaque handle and
:class:`SessionTableStats` as a snapshot.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum

from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.socketio import SocketIOStreamDecoder


class LegState(IntEnum):
    """Where a relayed WebSocket stands in its Engine.IO life."""

    HANDSHAKE = 0  # opened without sid: the server's OPEN packet will name the session
    PROBING = 1  # opened with sid: an upgrade candidate until the client sends ``5``
    ACTIVE = 2  # the session's transport
    CLOSED = 3
    UNSAMPLED = 4  # its session was left out by session sampling: counted, never decoded


class WebSocketLeg:
    """One relayed WebSocket, as the session table tracks it (returned by
    :meth:`SessionTable.websocket_opened`, passed back with each message)."""

    __slots__ = (
        "eio",
        "probe_at",
        "remote",
        "remote_port",
        "requested_at",
        "session",
        "sid",
        "state",
        "traceparent",
    )

    def __init__(  # noqa: PLR0917
        self,
        sid: str | None,
        eio: int,
        remote: str | None,
        traceparent: str | None,
        requested_at: float | None,
        remote_port: int | None = None,
    ) -> None:
        self.sid = sid
        self.eio = eio
        self.remote = remote
        self.remote_port = remote_port
        self.traceparent = traceparent
        self.requested_at = requested_at  # when the upgrade request arrived
        self.state = LegState.PROBING if sid else LegState.HANDSHAKE
        self.session: EngineSession | None = None
        self.probe_at: float | None = None

    @property
    def session_id(self) -> str | None:
        return self.sid


class EngineSession:
    """One live Engine.IO session."""

    __slots__ = (
        "bucket",
        "closed",
        "dec_c2s",
        "dec_s2c",
        "eio",
        "last",
        "ping_at",
        "ping_dir",
        "sid",
        "stamp",
        "transport",
        "window",
        "ws",
    )

    def __init__(self, sid: str, eio: int, transport: Transport, window: float, at: float):
        self.sid = sid
        self.eio = eio
        self.transport = transport
        self.window = window  # heartbeat window: pingInterval + pingTimeout + grace
        self.last = at  # last traffic seen
        self.stamp = at  # ``last`` when the session was last put at the end of its bucket
        self.bucket: OrderedDict[str, EngineSession] | None = None
        self.closed = False
        self.ws: WebSocketLeg | None = None
        self.ping_at: float | None = None
        self.ping_dir: Direction | None = None
        self.dec_c2s: SocketIOStreamDecoder | None = None
        self.dec_s2c: SocketIOStreamDecoder | None = None


@dataclass(frozen=True, slots=True)
class SessionTableStats:
    """Counters of a session table (monotonic since creation, except ``sessions`` and
    ``unconfirmed``, which are gauges)."""

    sessions: int
    opened: int
    lazily_opened: int
    closed: int
    upgrades: int
    evicted: int
    heartbeat_expired: int
    packets: int
    decode_failures: int
    attachment_overflows: int
    decompress_failures: int
    error_replies: int
    unattributed: int
    internal_errors: int
    refused: int  # requests for sids the table did not know that the backend refused
    unconfirmed: int  # request bodies held until the backend accepts or refuses their sid
    unconfirmed_dropped: int  # held bodies dropped (limits, or no reply in time)


class SessionCounters:
    """The live counters behind :class:`SessionTableStats` (shared by the table's parts)."""

    __slots__ = (
        "attachment_overflows",
        "closed",
        "decode_failures",
        "decompress_failures",
        "error_replies",
        "evicted",
        "heartbeat_expired",
        "internal_errors",
        "lazily_opened",
        "opened",
        "refused",
        "unattributed",
        "unconfirmed_dropped",
        "upgrades",
    )

    def __init__(self) -> None:
        self.opened = 0
        self.lazily_opened = 0
        self.closed = 0
        self.upgrades = 0
        self.evicted = 0
        self.heartbeat_expired = 0
        self.decode_failures = 0
        self.attachment_overflows = 0
        self.decompress_failures = 0
        self.error_replies = 0
        self.unattributed = 0
        self.internal_errors = 0
        self.refused = 0
        self.unconfirmed_dropped = 0

    def stats(self, sessions: int, unconfirmed: int, packets: int) -> SessionTableStats:
        return SessionTableStats(
            sessions=sessions,
            opened=self.opened,
            lazily_opened=self.lazily_opened,
            closed=self.closed,
            upgrades=self.upgrades,
            evicted=self.evicted,
            heartbeat_expired=self.heartbeat_expired,
            packets=packets,
            decode_failures=self.decode_failures,
            attachment_overflows=self.attachment_overflows,
            decompress_failures=self.decompress_failures,
            error_replies=self.error_replies,
            unattributed=self.unattributed,
            internal_errors=self.internal_errors,
            refused=self.refused,
            unconfirmed=unconfirmed,
            unconfirmed_dropped=self.unconfirmed_dropped,
        )

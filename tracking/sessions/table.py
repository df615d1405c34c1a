"""The session table: the sans-IO step from relayed traffic to session events.

:class:`SessionTable` is what the tracker's driver feeds, one call per relayed fact with
the stamp the driver read once for it (``at`` monotonic, ``wall`` epoch; the table keeps
no time of its own and passes the stamp down to every event the fact causes), and what
emits :mod:`tracking.events`.  It wires the parts: the live sessions and their bounds
(:mod:`.registry`), per-packet reading (:mod:`.packets`), long-polling (:mod:`.polling`)
with bodies of not-yet-accepted sids held aside (:mod:`.unconfirmed`), and WebSockets
(:mod:`.websocket`).  No clock, no asyncio: the driver stamps every observation and calls
:meth:`SessionTable.tick` at :meth:`SessionTable.next_deadline`.  No public method raises.
"""

from __future__ import annotations

from collections.abc import Callable

from socketio_trace_proxy.tracking.events import CloseReason, SessionEvent
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.sampling import SessionSampler
from socketio_trace_proxy.tracking.sessions.packets import PacketReader
from socketio_trace_proxy.tracking.sessions.polling import PollingReader
from socketio_trace_proxy.tracking.sessions.registry import SessionRegistry
from socketio_trace_proxy.tracking.sessions.state import (
    SessionCounters,
    SessionTableStats,
    WebSocketLeg,
)
from socketio_trace_proxy.tracking.sessions.unconfirmed import UnconfirmedBodies
from socketio_trace_proxy.tracking.sessions.websocket import WebSocketReader
from socketio_trace_proxy.tracking.traffic import Direction, Transport


class SessionTable:
    """All live Engine.IO sessions of one proxy; feeds :class:`SessionEvent` to ``emit``.

    Limits: ``max_sessions`` (the least recently active session is evicted, with
    ``SessionClosed(EVICTED)``), per-direction attachment buffers (``max_attachments``,
    ``max_attachment_bytes``), decompressed polling bodies (``max_body_bytes``), a bounded
    memory of recently closed sids (``max_tombstones``) so that stragglers after a close do
    not resurrect the session, and the bodies held for sids not yet accepted by the backend
    (``max_unconfirmed``, ``max_unconfirmed_bytes``, ``unconfirmed_max_age_s``).
    ``sampler``: session sampling, decided at each handshake (an unsampled session is never
    created; the driver skips the later traffic of its sid).
    """

    # The entry points are the parts' own bound methods (no extra call per observation).
    # Each takes the observation's stamp, ``at`` (monotonic) and ``wall`` (epoch), last.
    polling_request: Callable[[RequestInfo, bytes, float, float], None]
    """A polling POST body (client to server) was forwarded."""
    polling_reply: Callable[[RequestInfo, int, str | None, bytes, float, float], None]
    """A polling response (status, content encoding, body as sent) was forwarded."""
    websocket_opened: Callable[[RequestInfo, float, float], WebSocketLeg]
    """A WebSocket was accepted on both legs; returns the handle of its messages."""
    websocket_message: Callable[[WebSocketLeg, Direction, str | bytes, float, float], None]
    """A text or binary message was forwarded on that WebSocket."""
    websocket_closed: Callable[[WebSocketLeg, Direction | None, int | None, float, float], None]
    """The WebSocket ended: who closed first (``None``: the proxy gave up), the code."""

    def __init__(
        self,
        emit: Callable[[SessionEvent], None],
        *,
        max_sessions: int = 100_000,
        heartbeat_grace_s: float = 5.0,
        default_ping_interval_s: float = 25.0,
        default_ping_timeout_s: float = 20.0,
        max_attachments: int = 256,
        max_attachment_bytes: int = 16 * 1024 * 1024,
        max_body_bytes: int = 16 * 1024 * 1024,
        max_tombstones: int = 4096,
        max_unconfirmed: int = 256,
        max_unconfirmed_bytes: int = 32 * 1024 * 1024,
        unconfirmed_max_age_s: float = 60.0,
        sampler: SessionSampler | None = None,
    ) -> None:
        self._counters = counters = SessionCounters()
        self._registry = registry = SessionRegistry(
            emit,
            counters,
            max_sessions=max_sessions,
            heartbeat_grace_s=heartbeat_grace_s,
            default_ping_interval_s=default_ping_interval_s,
            default_ping_timeout_s=default_ping_timeout_s,
            max_tombstones=max_tombstones,
            sampler=sampler,
        )
        self._packets = packets = PacketReader(
            emit,
            counters,
            registry,
            max_attachments=max_attachments,
            max_attachment_bytes=max_attachment_bytes,
        )
        self._unconfirmed = unconfirmed = UnconfirmedBodies(
            counters,
            max_bodies=max_unconfirmed,
            max_bytes=max_unconfirmed_bytes,
            max_age_s=unconfirmed_max_age_s,
        )
        polling = PollingReader(
            registry, packets, counters, unconfirmed, max_body_bytes=max_body_bytes
        )
        websocket = WebSocketReader(registry, packets, polling, counters)
        self.polling_reader = polling  # what polling_request/polling_reply call (see PollingIntake)
        self.polling_request = polling.request
        self.polling_reply = polling.reply
        self.websocket_reader = websocket  # what websocket_message calls (see LegObserver)
        self.websocket_opened = websocket.opened
        self.websocket_message = websocket.message
        self.websocket_closed = websocket.closed

    # --- queries --------------------------------------------------------------------------

    @property
    def sampler(self) -> SessionSampler | None:
        """Session sampling, ``None`` when every session is traced."""
        return self._registry.sampler

    def session_count(self) -> int:
        return len(self._registry.sessions)

    def session_transport(self, sid: str) -> Transport | None:
        s = self._registry.sessions.get(sid)
        return None if s is None else s.transport

    def stats(self) -> SessionTableStats:
        sessions, unconfirmed = len(self._registry.sessions), len(self._unconfirmed)
        return self._counters.stats(sessions, unconfirmed, self._packets.packets)

    # --- time -----------------------------------------------------------------------------

    def tick(self, at: float, wall: float) -> None:
        """Expire the sessions without traffic for pingInterval + pingTimeout + grace, and
        held bodies that waited too long for their reply."""
        try:
            self._registry.tick(at, wall)
            self._unconfirmed.expire(at)
        except Exception:
            self._counters.internal_errors += 1

    def next_deadline(self) -> float | None:
        """The monotonic time at which :meth:`tick` next has work to do (``None``: idle)."""
        return self._registry.next_deadline()

    def close_all(self, at: float, wall: float, reason: CloseReason = CloseReason.SHUTDOWN) -> None:
        """End every session (proxy shutdown)."""
        try:
            self._registry.close_all(reason, at, wall)
        except Exception:
            self._counters.internal_errors += 1

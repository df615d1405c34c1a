"""The live Engine.IO sessions: creation, heartbeat expiry, eviction, close, tombstones.

Owns the sid -> session map and its bounds: at most ``max_sessions`` sessions (the least
recently active one is evicted), each expiring after pingInterval + pingTimeout + grace
without traffic, and a bounded memory of recently closed sids so that stragglers after a
close do not resurrect the session.  Sessions are grouped by heartbeat window; within a
group they are ordered by ``stamp`` (a lower bound of their last activity, fixed up
lazily), so the front of each group is the next to expire and the least recently active.
It emits :class:`SessionOpened` and :class:`SessionClosed`, stamped with the time it is
given.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from socketio_trace_proxy.tracking.events import (
    CloseReason,
    SessionClosed,
    SessionEvent,
    SessionOpened,
)
from socketio_trace_proxy.tracking.sampling import SessionSampler
from socketio_trace_proxy.tracking.sessions.state import (
    EngineSession,
    LegState,
    SessionCounters,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.engineio import OpenInfo

_TOMBSTONED = (CloseReason.CLOSE_PACKET, CloseReason.WEBSOCKET_CLOSED)


class SessionRegistry:
    """See the module docstring."""

    def __init__(
        self,
        emit: Callable[[SessionEvent], None],
        counters: SessionCounters,
        *,
        max_sessions: int,
        heartbeat_grace_s: float,
        default_ping_interval_s: float,
        default_ping_timeout_s: float,
        max_tombstones: int,
        sampler: SessionSampler | None = None,
    ) -> None:
        self._emit = emit
        # None when every session is traced: no check at all then.
        self.sampler = sampler if sampler is not None and not sampler.everything else None
        self._counters = counters
        self._max_sessions = max(1, max_sessions)
        self.grace = heartbeat_grace_s
        self._default_interval = default_ping_interval_s
        self._default_timeout = default_ping_timeout_s
        self._max_tombstones = max_tombstones
        self.sessions: dict[str, EngineSession] = {}
        self._buckets: dict[float, OrderedDict[str, EngineSession]] = {}
        self._tombstones: OrderedDict[str, None] = OrderedDict()

    def closed_recently(self, sid: str) -> bool:
        return sid in self._tombstones

    # --- opening ----------------------------------------------------------------------------

    def open_lazily(  # noqa: PLR0917
        self,
        sid: str,
        eio: int,
        transport: Transport,
        remote: str | None,
        traceparent: str | None,
        at: float,
        wall: float,
        remote_port: int | None = None,
    ) -> EngineSession:
        """Track a session whose handshake was not seen (the proxy started mid-session, or
        it was evicted or expired), with default heartbeat settings."""
        self._counters.lazily_opened += 1
        interval, timeout = self._default_interval, self._default_timeout
        s = self._create(sid, eio, transport, interval + timeout, at, wall)
        opened = SessionOpened(
            sid,
            transport,
            eio,
            interval,
            timeout,
            at,
            wall,
            remote,
            traceparent,
            None,
            True,
            remote_port,
        )
        self._emit(opened)
        return s

    def open_from_handshake(  # noqa: PLR0917
        self,
        handshake: OpenInfo,
        eio: int,
        transport: Transport,
        remote: str | None,
        traceparent: str | None,
        requested_at: float | None,
        at: float,
        wall: float,
        remote_port: int | None = None,
    ) -> EngineSession | None:
        """The session an OPEN packet names (the existing one if it is already tracked);
        ``None``: session sampling left it out (it is counted, never tracked)."""
        sid = handshake.sid
        existing = self.sessions.get(sid)
        if existing is not None:
            return existing
        if self.sampler is not None and not self.sampler.decide(sid):
            return None
        self._tombstones.pop(sid, None)
        interval, timeout = handshake.ping_interval_s, handshake.ping_timeout_s
        s = self._create(sid, eio, transport, interval + timeout, at, wall)
        opened = SessionOpened(
            sid,
            transport,
            eio,
            interval,
            timeout,
            at,
            wall,
            remote,
            traceparent,
            requested_at,
            remote_port=remote_port,
        )
        self._emit(opened)
        return s

    def _create(  # noqa: PLR0917
        self, sid: str, eio: int, transport: Transport, heartbeat: float, at: float, wall: float
    ) -> EngineSession:
        while len(self.sessions) >= self._max_sessions:
            victim = self._least_recent()
            if victim is None:  # pragma: no cover - buckets always hold every session
                break
            self._counters.evicted += 1
            self.close(victim, CloseReason.EVICTED, at, wall)
        s = EngineSession(sid, eio, transport, heartbeat + self.grace, at)
        self.sessions[sid] = s
        self._enqueue(s)
        self._counters.opened += 1
        return s

    def rewindow(self, s: EngineSession, handshake: OpenInfo) -> None:
        """An OPEN seen again for a live session: adopt its heartbeat settings."""
        window = handshake.ping_interval_s + handshake.ping_timeout_s + self.grace
        if window != s.window and s.bucket is not None:
            self._unbucket(s)
            s.window = window
            self._enqueue(s)

    # --- closing ----------------------------------------------------------------------------

    def close(  # noqa: PLR0917
        self,
        s: EngineSession,
        reason: CloseReason,
        at: float,
        wall: float,
        code: int | None = None,
        initiator: Direction | None = None,
    ) -> None:
        if s.closed:
            return
        s.closed = True
        self.sessions.pop(s.sid, None)
        self._unbucket(s)
        s.dec_c2s = s.dec_s2c = None
        leg = s.ws
        s.ws = None
        if reason in _TOMBSTONED:
            self._tombstones[s.sid] = None
            if len(self._tombstones) > self._max_tombstones:
                self._tombstones.popitem(last=False)
            if leg is not None and reason is CloseReason.CLOSE_PACKET:
                leg.state = LegState.CLOSED
        self._counters.closed += 1
        self._emit(SessionClosed(s.sid, reason, at, wall, code, initiator))

    def close_all(self, reason: CloseReason, at: float, wall: float) -> None:
        for s in list(self.sessions.values()):
            self.close(s, reason, at, wall)

    # --- heartbeat expiry -------------------------------------------------------------------

    def tick(self, at: float, wall: float) -> None:
        """Expire the sessions without traffic for their whole heartbeat window."""
        for window, bucket in list(self._buckets.items()):
            while bucket:
                s = next(iter(bucket.values()))
                if s.last > s.stamp:
                    s.stamp = s.last
                    bucket.move_to_end(s.sid)
                elif s.last + window <= at:
                    self._counters.heartbeat_expired += 1
                    self.close(s, CloseReason.HEARTBEAT_TIMEOUT, at, wall)
                else:
                    break

    def next_deadline(self) -> float | None:
        """The monotonic time at which :meth:`tick` next has work to do (``None``: idle)."""
        best: float | None = None
        for window, bucket in self._buckets.items():
            front = _settle(bucket)
            if front is not None:
                deadline = front.last + window
                if best is None or deadline < best:
                    best = deadline
        return best

    # --- buckets ----------------------------------------------------------------------------

    def _enqueue(self, s: EngineSession) -> None:
        bucket = self._buckets.get(s.window)
        if bucket is None:
            bucket = self._buckets[s.window] = OrderedDict()
        s.stamp = s.last
        bucket[s.sid] = s
        s.bucket = bucket

    def _unbucket(self, s: EngineSession) -> None:
        bucket = s.bucket
        if bucket is not None:
            bucket.pop(s.sid, None)
            if not bucket:
                self._buckets.pop(s.window, None)
            s.bucket = None

    def _least_recent(self) -> EngineSession | None:
        oldest: EngineSession | None = None
        for bucket in self._buckets.values():
            front = _settle(bucket)
            if front is not None and (oldest is None or front.last < oldest.last):
                oldest = front
        return oldest


def _settle(bucket: OrderedDict[str, EngineSession]) -> EngineSession | None:
    """Move recently active sessions off the front until it is truly the oldest."""
    while bucket:
        s = next(iter(bucket.values()))
        if s.last <= s.stamp:
            return s
        s.stamp = s.last
        bucket.move_to_end(s.sid)
    return None

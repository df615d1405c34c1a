"""Sessions as the correlation engine sees them, and their lifecycle records.

Owns the engine's session map (bounded: the oldest session is evicted) and the short
spans of a session's life: the handshake (continuing the client's ``traceparent``, timed
from the handshake request's arrival to the OPEN packet), namespace connects (CONNECT to
its reply, or CONNECT_ERROR), the upgrade, and the close (with the close code and the side
that closed).  Namespace-connect, upgrade and close records share the session's trace.
Closing a session ends what is still pending in it as abandoned (evicted, if the session
was evicted).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from socketio_trace_proxy.tracking.correlation.echo import forget_echoes
from socketio_trace_proxy.tracking.correlation.outcomes import Outcomes
from socketio_trace_proxy.tracking.correlation.state import SessionState
from socketio_trace_proxy.tracking.events import (
    CloseReason,
    HeartbeatObserved,
    PacketObserved,
    SessionOpened,
    SessionUpgraded,
)
from socketio_trace_proxy.tracking.ids import IdSource, parse_traceparent
from socketio_trace_proxy.tracking.metrics import Metrics
from socketio_trace_proxy.tracking.records import (
    HEARTBEATS_PER_RECORD,
    LifecycleKind,
    Outcome,
    Record,
    SessionRef,
    new_lifecycle_record,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacket

NAMESPACE_CONNECT_RULE = "namespace_connect"
_MAX_CONNECTING = 64  # namespace CONNECTs awaiting their reply, per session
_NOT_OK = (CloseReason.HEARTBEAT_TIMEOUT, CloseReason.EVICTED)


class SessionBook:
    """See the module docstring."""

    def __init__(
        self,
        emit: Callable[[Record], None],
        ids: IdSource,
        metrics: Metrics,
        outcomes: Outcomes,
        *,
        max_sessions: int,
        echo_rules: dict[int, str] | None = None,
    ) -> None:
        self._emit = emit
        self._ids = ids
        self._metrics = metrics
        self._outcomes = outcomes
        self._max_sessions = max_sessions
        self._echo_rules = echo_rules or {}
        self.sessions: dict[str, SessionState] = {}

    def opened(self, ev: SessionOpened) -> None:
        if ev.session_id in self.sessions:
            self._metrics.extra["duplicate_session_open"] += 1
            return
        parent = parse_traceparent(ev.traceparent)
        s = self._new_session(
            ev.session_id, ev.transport, ev.remote, ev.at, ev.wall, parent, ev.remote_port
        )
        requested_at = ev.requested_at
        duration = 0.0 if requested_at is None else max(0.0, ev.at - requested_at)
        self._emit(
            new_lifecycle_record(
                trace_id=s.ref.trace_id,
                span_id=s.ref.span_id,
                parent_span_id=parent[1] if parent else None,
                session=s.ref,
                kind=LifecycleKind.HANDSHAKE,
                namespace=None,
                transport=ev.transport,
                ok=True,
                error=None,
                start_wall=ev.wall - duration,
                duration_s=duration,
                detail=f"EIO={ev.eio_version}" + (", handshake not seen" if ev.lazily else ""),
            )
        )

    def _new_session(  # noqa: PLR0917
        self,
        sid: str,
        transport: Transport,
        remote: str | None,
        at: float,
        wall: float,
        parent: tuple[str, str] | None,
        remote_port: int | None = None,
    ) -> SessionState:
        while len(self.sessions) >= self._max_sessions:
            oldest = next(iter(self.sessions))
            self._metrics.evictions["sessions"] += 1
            self.closed(oldest, CloseReason.EVICTED, at, wall)
        trace_id = parent[0] if parent else self._ids.trace_id()
        ref = SessionRef(sid, trace_id, self._ids.span_id(), remote, remote_port)
        s = SessionState(ref=ref, transport=transport, remote=remote, opened_wall=wall)
        self.sessions[sid] = s
        return s

    def unseen(self, ev: PacketObserved) -> SessionState:
        """The session of a packet whose session was never opened (tracked from here)."""
        self._metrics.extra["sessions_without_handshake"] += 1
        return self._new_session(ev.session_id, ev.transport, None, ev.at, ev.wall, None)

    def upgraded(self, ev: SessionUpgraded) -> None:
        self._metrics.upgrade.observe(ev.duration_s)
        s = self.sessions.get(ev.session_id)
        if s is None:
            return
        s.transport = Transport.WEBSOCKET
        s.upgraded = True
        self._lifecycle(
            s,
            LifecycleKind.UPGRADE,
            start_wall=ev.wall - ev.duration_s,
            duration_s=ev.duration_s,
            detail="polling -> websocket",
        )

    def heartbeat(self, ev: HeartbeatObserved) -> None:
        """A PING/PONG round trip: into the metrics, and into the session's next HEARTBEAT
        record (emitted every :data:`HEARTBEATS_PER_RECORD` round trips and at close)."""
        rtt = ev.rtt_s
        self._metrics.heartbeat.observe(rtt)
        s = self.sessions.get(ev.session_id)
        if s is None:
            return
        s.heartbeat_rtt_s = rtt
        if s.hb_count == 0:
            s.hb_start_wall = ev.wall - rtt
            s.hb_min_s = s.hb_max_s = rtt
        else:
            s.hb_min_s = min(s.hb_min_s, rtt)
            s.hb_max_s = max(s.hb_max_s, rtt)
        s.hb_count += 1
        s.hb_sum_s += rtt
        s.hb_last_wall = ev.wall
        if s.hb_count >= HEARTBEATS_PER_RECORD:
            self._heartbeats(s, ev.wall)

    def _heartbeats(self, s: SessionState, wall: float) -> None:
        n = s.hb_count
        self._lifecycle(
            s,
            LifecycleKind.HEARTBEAT,
            start_wall=s.hb_start_wall,
            duration_s=max(0.0, wall - s.hb_start_wall),
            detail=f"{n} heartbeat{'s' if n != 1 else ''}, RTT min/avg/max "
            f"{s.hb_min_s * 1000:.1f}/{s.hb_sum_s / n * 1000:.1f}/{s.hb_max_s * 1000:.1f} ms",
            rtt=(n, s.hb_min_s, s.hb_sum_s / n, s.hb_max_s),
        )
        s.hb_count = 0
        s.hb_sum_s = 0.0

    def closed(  # noqa: PLR0917
        self,
        sid: str,
        reason: CloseReason,
        at: float,
        wall: float,
        code: int | None = None,
        initiator: Direction | None = None,
    ) -> None:
        s = self.sessions.pop(sid, None)
        if s is None:
            return
        outcome = Outcome.EVICTED if reason is CloseReason.EVICTED else Outcome.ABANDONED
        for p in list(s.pending.values()):
            self._outcomes.unanswered(p, outcome, at)
        if s.echoes:
            forget_echoes(s, self._metrics, self._echo_rules)
        if s.hb_count:
            self._heartbeats(s, s.hb_last_wall)
        ok = reason not in _NOT_OK
        self._lifecycle(
            s,
            LifecycleKind.CLOSE,
            ok=ok,
            error=None if ok else reason.value,
            start_wall=wall,
            detail=reason.value,
            close_code=code,
            close_initiator=initiator,
        )

    # --- namespaces -------------------------------------------------------------------------

    def connect(self, s: SessionState, ev: PacketObserved, p: SocketPacket) -> None:
        """A CONNECT: the client's opens a namespace connect, the server's completes it."""
        if ev.direction is Direction.CLIENT_TO_SERVER:
            s.connecting[p.namespace] = ev.at
            s.connecting.move_to_end(p.namespace)
            while len(s.connecting) > _MAX_CONNECTING:
                s.connecting.popitem(last=False)
                self._metrics.drops["namespace_connects"] += 1
            return
        started = s.connecting.pop(p.namespace, ev.at)
        s.namespaces[p.namespace] = None
        duration = ev.at - started
        self._metrics.pair(NAMESPACE_CONNECT_RULE, Outcome.OK, duration, False)
        self._lifecycle(
            s,
            LifecycleKind.NAMESPACE_CONNECT,
            namespace=p.namespace,
            start_wall=ev.wall - duration,
            duration_s=duration,
        )

    def connect_error(self, s: SessionState, ev: PacketObserved, p: SocketPacket) -> None:
        started = s.connecting.pop(p.namespace, ev.at)
        duration = ev.at - started
        self._metrics.pair(NAMESPACE_CONNECT_RULE, Outcome.ERROR, duration, False)
        self._lifecycle(
            s,
            LifecycleKind.NAMESPACE_CONNECT,
            namespace=p.namespace,
            ok=False,
            error=_connect_error_message(p.payload),
            start_wall=ev.wall - duration,
            duration_s=duration,
            detail="connect_error",
        )

    def _lifecycle(
        self,
        s: SessionState,
        kind: LifecycleKind,
        *,
        start_wall: float,
        namespace: str | None = None,
        ok: bool = True,
        error: str | None = None,
        duration_s: float = 0.0,
        detail: str | None = None,
        close_code: int | None = None,
        close_initiator: Direction | None = None,
        rtt: tuple[int, float, float, float] | None = None,
    ) -> None:
        self._emit(
            new_lifecycle_record(
                trace_id=s.ref.trace_id,
                span_id=self._ids.span_id(),
                parent_span_id=s.ref.span_id,
                session=s.ref,
                kind=kind,
                namespace=namespace,
                transport=s.transport,
                ok=ok,
                error=error,
                start_wall=start_wall,
                duration_s=duration_s,
                detail=detail,
                close_code=close_code,
                close_initiator=close_initiator,
                rtt_count=rtt[0] if rtt else None,
                rtt_min_s=rtt[1] if rtt else None,
                rtt_avg_s=rtt[2] if rtt else None,
                rtt_max_s=rtt[3] if rtt else None,
            )
        )


def _connect_error_message(payload: str) -> str:
    """The message of a CONNECT_ERROR payload (``{"message": ...}``, or a bare string in
    protocol v4), else ``"connect_error"``."""
    try:
        body = json.loads(payload) if payload else None
    except (ValueError, RecursionError):
        return "connect_error"
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, str):  # Socket.IO v4 protocol (v2 clients): bare string
        return body
    return "connect_error"

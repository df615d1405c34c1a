"""Read-only views of the engine's state (:mod:`tracking.views`), built when asked."""

from __future__ import annotations

from collections.abc import Iterable

from socketio_trace_proxy.tracking.correlation.state import Pending, SessionState
from socketio_trace_proxy.tracking.views import PendingView, SessionView


def pending_views(pending: Iterable[Pending], at: float) -> list[PendingView]:
    return [
        PendingView(
            span_id=p.span_id,
            session_id=p.session.ref.session_id,
            namespace=p.namespace,
            rule=p.label,
            operation=p.operation,
            request_event=p.request_event,
            initiator=p.initiator.value,
            ack_id=p.ack_id,
            match_key=p.key,
            started_wall=p.wall,
            age_s=max(0.0, at - p.at),
            timeout_s=p.timeout_s,
        )
        for p in pending
    ]


def session_view(s: SessionState) -> SessionView:
    return SessionView(
        session_id=s.ref.session_id,
        transport=s.transport.value,
        remote=s.remote,
        opened_wall=s.opened_wall,
        upgraded=s.upgraded,
        namespaces=tuple(s.namespaces),
        pending=len(s.pending),
        messages_in=s.messages_in,
        messages_out=s.messages_out,
        bytes_in=s.bytes_in,
        bytes_out=s.bytes_out,
        heartbeat_rtt_s=s.heartbeat_rtt_s,
        echo_count=s.echo_count,
        echo_avg_s=s.echo_sum_s / s.echo_count if s.echo_count else None,
        echo_max_s=s.echo_max_s if s.echo_count else None,
    )


def table_sizes(sessions: Iterable[SessionState]) -> dict[str, int]:
    """Sizes of the per-session tables, summed over ``sessions``."""
    sizes = {"session_pending": 0, "acks": 0, "group_entries": 0, "timed_out": 0, "echoes": 0}
    for s in sessions:
        sizes["session_pending"] += len(s.pending)
        sizes["acks"] += len(s.acks)
        sizes["group_entries"] += sum(len(g.order) + len(g.by_key) for g in s.groups.values())
        sizes["timed_out"] += len(s.timed_out)
        sizes["echoes"] += len(s.echoes or ())
    return sizes

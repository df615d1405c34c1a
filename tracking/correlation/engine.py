"""The correlation engine: session events and clock ticks in, records out (sans-IO).

:class:`CorrelationEngine` is the entry point: it dispatches each session event to the
part that owns it (:mod:`.dispatch` for packets, :mod:`.lifecycle` for sessions), fires
deadlines (:mod:`.pending`), and answers queries (:mod:`.views`).  It never sleeps:
``next_deadline()`` says when ``tick()`` is next due, and a deadline that passed before an
event happened fires before that event (a reply after its deadline is late, not ok).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.capture import Capturer
from socketio_trace_proxy.tracking.correlation.dispatch import PacketDispatch
from socketio_trace_proxy.tracking.correlation.lifecycle import SessionBook
from socketio_trace_proxy.tracking.correlation.outcomes import Outcomes
from socketio_trace_proxy.tracking.correlation.pending import PendingTable
from socketio_trace_proxy.tracking.correlation.views import (
    pending_views,
    session_view,
    table_sizes,
)
from socketio_trace_proxy.tracking.events import (
    CloseReason,
    DecodeFailed,
    HeartbeatObserved,
    PacketObserved,
    SessionClosed,
    SessionEvent,
    SessionOpened,
    SessionUpgraded,
)
from socketio_trace_proxy.tracking.ids import IdSource, RandomIds
from socketio_trace_proxy.tracking.metrics import Metrics
from socketio_trace_proxy.tracking.records import PairKind, Record
from socketio_trace_proxy.tracking.rules import RuleBook
from socketio_trace_proxy.tracking.traffic import Transport
from socketio_trace_proxy.tracking.views import MetricsSnapshot, PendingView, SessionView

_PACKET_OBSERVED: Final = PacketObserved  # a C static in the compiled build


class CorrelationEngine:
    """Pairs requests with replies; see the module docstring and :mod:`tracking.correlation`."""

    def __init__(
        self,
        settings: TrackingSettings,
        emit: Callable[[Record], None],
        ids: IdSource | None = None,
        wants_unsampled: Callable[[], bool] | None = None,
        on_deadline: Callable[[float], None] | None = None,
    ) -> None:
        """``wants_unsampled``: asked when a pair is left out by sampling; if it says no
        (nobody but the sinks would see the record), the record is not built at all.
        ``on_deadline``: called with a new deadline that has become the earliest
        (:meth:`next_deadline` only ever moves earlier that way)."""
        ids = ids if ids is not None else RandomIds()
        self.rules = RuleBook(settings)
        echo_rules = {r.index: r.name for r in self.rules.rules if r.kind is PairKind.ECHO}
        self.metrics = metrics = Metrics(settings.limits.max_event_names, echo_rules.values())
        capture = Capturer(settings.capture)
        limits = settings.limits
        self._table = table = PendingTable(
            metrics,
            on_deadline,
            late_window_s=settings.defaults.late_window,
            max_timed_out_per_session=limits.max_timed_out_per_session,
        )
        self._outcomes = outcomes = Outcomes(
            emit, ids, metrics, capture, table, settings.sample_rate, wants_unsampled
        )
        self._book = book = SessionBook(
            emit, ids, metrics, outcomes, max_sessions=limits.max_sessions, echo_rules=echo_rules
        )
        self._sessions = book.sessions
        self._heap = table.heap  # the same list for good (compacted in place)
        dispatch = PacketDispatch(
            settings, emit, ids, self.rules, metrics, capture, book, table, outcomes
        )
        self._dispatch = dispatch  # called as a method: a native call in the compiled build

    # --- input ------------------------------------------------------------------------------

    def handle(self, event: SessionEvent) -> None:
        heap = self._heap
        if heap and heap[0][0] <= event.at:
            # Deadlines that passed before this event happened fire first, whether or not the
            # timer has run yet: a reply after its deadline is late, not ok.
            self.tick(event.at, event.wall)
        if type(event) is _PACKET_OBSERVED:
            self._dispatch.packet(event)
        elif isinstance(event, SessionOpened):
            self._book.opened(event)
        elif isinstance(event, HeartbeatObserved):
            self._book.heartbeat(event)
        elif isinstance(event, SessionUpgraded):
            self._book.upgraded(event)
        elif isinstance(event, DecodeFailed):
            self.metrics.decode_errors += 1
        elif isinstance(event, SessionClosed):
            self._book.closed(
                event.session_id, event.reason, event.at, event.wall, event.code, event.initiator
            )

    def tick(self, at: float, wall: float) -> None:
        """Time out every pending request whose deadline is ``at`` or earlier."""
        table = self._table
        while (q := table.pop_due(at)) is not None:
            self._outcomes.timed_out(q)
        table.compact()

    def next_deadline(self) -> float | None:
        return self._table.next_deadline()

    def shutdown(self, at: float, wall: float) -> None:
        """Close every session as SHUTDOWN: what is still pending ends as abandoned."""
        for sid in list(self._sessions):
            self._book.closed(sid, CloseReason.SHUTDOWN, at, wall)

    # --- queries ----------------------------------------------------------------------------

    def pending_views(self, at: float) -> list[PendingView]:
        return pending_views(self._table.pending.values(), at)

    def session_views(self) -> list[SessionView]:
        return [session_view(s) for s in self._sessions.values()]

    def session_view(self, session_id: str) -> SessionView | None:
        s = self._sessions.get(session_id)
        return None if s is None else session_view(s)

    def snapshot(self, drops: dict[str, int] | None = None) -> MetricsSnapshot:
        by_transport: dict[str, int] = {t.value: 0 for t in Transport}
        for s in self._sessions.values():
            by_transport[s.transport.value] += 1
        return self.metrics.snapshot(len(self._table.pending), by_transport, drops)

    def sizes(self) -> dict[str, int]:
        """Sizes of every internal table (for tests and self-monitoring)."""
        return {
            "sessions": len(self._sessions),
            "pending": len(self._table.pending),
            "heap": len(self._table.heap),
            **table_sizes(self._sessions.values()),
            "event_names": self.metrics.event_slots,
            "rule_cache": self.rules.cache_size,
        }

"""How requests end: one pair record (and one metrics observation) per outcome.

Owns the record of every request's end: answered (ok, or error when the reply is an error
event or matches an error predicate, or rejected when it is one of the rule's negative
answers), timed out (remembered so a late reply can link to
it), late, abandoned (its session or namespace went away) and evicted (limits).  Every
record of one request carries the same ``operation`` whatever the outcome; the outcome
and error type are fields of their own.  Ok pairs that are neither slow nor sampled are
counted but not built when nobody would see them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

from socketio_trace_proxy.tracking.capture import Capturer
from socketio_trace_proxy.tracking.correlation.pending import PendingTable
from socketio_trace_proxy.tracking.correlation.state import Pending, SessionState, TimedOut
from socketio_trace_proxy.tracking.events import PacketObserved, record_target
from socketio_trace_proxy.tracking.ids import IdSource
from socketio_trace_proxy.tracking.metrics import Metrics
from socketio_trace_proxy.tracking.records import Outcome, Record, new_pair_record
from socketio_trace_proxy.tracking.traffic import Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacket

_new_pair_record: Final = new_pair_record
_OK: Final = Outcome.OK
_ERROR: Final = Outcome.ERROR


class Outcomes:
    """See the module docstring."""

    def __init__(  # noqa: PLR0917
        self,
        emit: Callable[[Record], None],
        ids: IdSource,
        metrics: Metrics,
        capture: Capturer,
        table: PendingTable,
        sample_rate: float,
        wants_unsampled: Callable[[], bool] | None,
    ) -> None:
        self._emit = emit
        self._target = record_target(emit)  # emit's receiver, called natively per pair
        self._trace_id = ids.trace_id
        self._span_id = ids.span_id
        self._metrics = metrics
        self._capture = capture
        self._capturing = capture.enabled
        self._table = table
        self._sample_rate = sample_rate
        self._wants_unsampled = wants_unsampled

    def answered(  # noqa: PLR0917 - positional: called per pair
        self,
        q: Pending,
        ev: PacketObserved,
        p: SocketPacket,
        template: str,
        error_type: str | None,
        outcome: Outcome | None = None,
    ) -> None:
        """``p`` (binding ``template``) answered ``q``: ok, or error with ``error_type``
        (or ``outcome``, REJECTED, when ``p`` is one of the rule's negative answers)."""
        table = self._table
        table.forget(q)
        duration = max(ev.at - q.at, 0.0)
        first_chunk_at = q.first_chunk_at
        self._pair(
            q,
            outcome if outcome is not None else _OK if error_type is None else _ERROR,
            p.event if p.event is not None else template,
            error_type,
            duration >= q.slow_s,
            duration,
            None if first_chunk_at is None else first_chunk_at - q.at,
            ev.transport,
            p.size,
            self._capture.capture(p, p.event, template) if self._capturing else None,
        )
        if len(table.heap) > 2 * len(table.pending) + 64:
            table.compact()

    def unanswered(self, q: Pending, outcome: Outcome, at: float) -> None:
        """``q`` ends without a reply: ABANDONED or EVICTED at ``at``."""
        self._table.forget(q)
        self._pair(
            q,
            outcome,
            None,
            outcome.value,
            False,
            max(0.0, at - q.at),
            None if q.first_chunk_at is None else q.first_chunk_at - q.at,
            None,
            0,
            None,
        )

    def timed_out(self, q: Pending) -> None:
        """``q`` reached its deadline; remembered so that a late reply can link to it."""
        self._table.forget(q)
        trace_id = q.parent[0] if q.parent else self._trace_id()
        self._table.remember_timeout(q, trace_id)
        self._pair(
            q,
            Outcome.TIMEOUT,
            None,
            Outcome.TIMEOUT.value,
            False,
            q.deadline - q.at,
            None if q.first_chunk_at is None else q.first_chunk_at - q.at,
            None,
            0,
            None,
            trace_id=trace_id,
        )

    def late(
        self, s: SessionState, o: TimedOut, ev: PacketObserved, p: SocketPacket, template: str
    ) -> None:
        """The reply to the timed-out request ``o`` arrived after all."""
        q = o.request
        duration = max(0.0, ev.at - q.at)
        record = new_pair_record(
            # The late span joins the timed-out span's trace, so its link resolves.
            trace_id=o.trace_id,
            span_id=self._span_id(),
            session=s.ref,
            namespace=q.namespace,
            kind=q.kind,
            rule=q.label,
            operation=q.operation,
            initiator=q.initiator,
            request_event=q.request_event,
            response_event=p.event if p.event is not None else template,
            ack_id=q.ack_id,
            match_key=q.key,
            outcome=Outcome.LATE,
            error_type=Outcome.LATE.value,
            slow=duration >= q.slow_s,
            start_wall=q.wall,
            duration_s=duration,
            first_chunk_s=None,
            chunk_count=0,
            request_transport=q.transport,
            response_transport=ev.transport,
            request_size=q.size,
            response_size=p.size,
            request_payload=None,
            response_payload=self._capture.capture(p, p.event, template),
            linked_span_id=q.span_id,
            sampled=True,
            parent_span_id=q.parent[1] if q.parent else None,
        )
        self._metrics.pair(q.label, Outcome.LATE, duration, record.slow)
        self._emit(record)

    def _sampled(self, span_id: str) -> bool:
        """Whether an ok, fast pair is kept (errors, timeouts, late and slow always are)."""
        if self._sample_rate >= 1.0:
            return True
        # Hash rather than random: deterministic per span id, whatever the IdSource.
        if zlib.crc32(span_id.encode()) < self._sample_rate * 0x1_0000_0000:
            return True
        self._metrics.extra["pairs_unsampled"] += 1
        return False

    def _pair(  # noqa: PLR0917 - positional: called per pair
        self,
        q: Pending,
        outcome: Outcome,
        response_event: str | None,
        error_type: str | None,
        slow: bool,
        duration: float,
        first_chunk_s: float | None,
        response_transport: Transport | None,
        response_size: int,
        response_payload: str | None,
        *,
        trace_id: str | None = None,
    ) -> None:
        span_id = q.span_id
        self._metrics.pair(q.label, outcome, duration, slow)
        sampled = outcome is not _OK or slow or self._sample_rate >= 1.0 or self._sampled(span_id)
        if not sampled and self._wants_unsampled is not None and not self._wants_unsampled():
            return
        parent = q.parent
        if trace_id is None:
            trace_id = parent[0] if parent is not None else self._trace_id()
        record = _new_pair_record(
            trace_id,
            span_id,
            q.session.ref,
            q.namespace,
            q.kind,
            q.label,
            q.operation,
            q.initiator,
            q.request_event,
            response_event,
            q.ack_id,
            q.key,
            outcome,
            error_type,
            slow,
            q.wall,
            duration,
            first_chunk_s,
            q.chunks,
            q.transport,
            response_transport,
            q.size,
            response_size,
            q.payload,
            response_payload,
            None,
            sampled,
            None if parent is None else parent[1],
        )
        target = self._target
        if target is not None:
            target.record(record)
        else:
            self._emit(record)

"""The record hub: where every record the engine makes goes, and the queries on them.

Owns the fan-out of each record, in this order: the recent-activity ring (bounded; each
item's ``seq`` follows from its position), the session's timeline, the record sinks
(exporters; pairs left out by sampling stay local), the subscribers, the live streams, and
the timeout/slow/error callbacks.  Every call out is guarded: a failing sink or callback is
counted per place (and logged once), never raised.  Per record it only stores references.

Once the tracker runs on a loop the fan-out past the timelines is deferred (issue 12,
decision 3): a packet's timeline row, a record's timeline entry and a closed session's
timeline retirement happen at once (a write into the session's ring: as cheap as queueing
it), while the records queue up in order for everything else and are fanned out together at most
:data:`FLUSH_INTERVAL_S` after the first of them (at once when :data:`MAX_DEFERRED` are
queued, and before any query), so that the per-frame path only appends to lists and the
fan-out's fixed cost (a timer handle, a call per sink and subscriber) is shared by every
record of those milliseconds, not paid per loop tick when frames arrive one at a time.
Records keep the frames' own timestamps; what is fanned out, and in which order, is what
the immediate path gives.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence

from socketio_trace_proxy.tracking.records import MessageRecord, Outcome, PairRecord, Record
from socketio_trace_proxy.tracking.runtime.feeds import (
    BatchCallback,
    ErrorCallback,
    RecordCallback,
    SlowCallback,
    Subscription,
    TimeoutCallback,
    remover,
)
from socketio_trace_proxy.tracking.runtime.intake import RecordIntake
from socketio_trace_proxy.tracking.runtime.timelines import Timelines
from socketio_trace_proxy.tracking.sink import RecordSink, SinkHealth
from socketio_trace_proxy.tracking.views import ActivityItem, new_activity_item

log = logging.getLogger("socketio_trace_proxy.tracking.runtime")

MAX_DEFERRED = 1024  # queued records that force a flush before the scheduled one
FLUSH_INTERVAL_S = 0.02  # the longest a queued record waits for its fan-out


class RecordHub:
    """See the module docstring."""

    def __init__(
        self,
        sinks: Sequence[RecordSink],
        timelines: Timelines,
        extra: Counter[str],
        *,
        activity: int,
        subscriber_queue: int,
        records: RecordIntake | None = None,
    ) -> None:
        """``records``: the engine's emit, if it was made before the hub (else one is)."""
        self._sinks = tuple(sinks)
        # A sink may take a batch at once (``submit_many``); the others get ``submit``.
        self._submitters: tuple[tuple[RecordSink, Callable[[Sequence[Record]], None] | None], ...]
        self._submitters = tuple((s, getattr(s, "submit_many", None)) for s in self._sinks)
        self._timelines = timelines
        self._extra = extra
        self._activity: deque[Record] = deque(maxlen=activity)
        self._activity_max = activity
        self._seq = 0
        self._subscriber_queue = subscriber_queue
        self._subscribers: list[RecordCallback] = []
        self._batch_subscribers: list[BatchCallback] = []
        self._streams: list[Subscription] = []
        self._on_timeout: list[TimeoutCallback] = []
        self._on_slow: list[SlowCallback] = []
        self._on_error: list[ErrorCallback] = []
        self.faults: dict[str, int] = {}
        # Deferred fan-out: the records since the last flush, in order (records.pending).
        self.records = records if records is not None else RecordIntake()
        self.records.attach(timelines, self._fan_out_many, self._arm, self.flush)
        self._schedule: Callable[[Callable[[], None]], object] | None = None

    def fault(self, where: str) -> None:
        """Count a failure at ``where`` (logged the first time only)."""
        n = self.faults.get(where, 0) + 1
        self.faults[where] = n
        if n == 1:  # once per place: a broken path must not flood the log
            log.exception("tracker fault in %s (counted; traffic is unaffected)", where)

    def wants_unsampled(self) -> bool:
        """Whether a pair left out by sampling is seen at all (it never reaches the sinks)."""
        return bool(
            self._activity_max
            or self._timelines
            or self._subscribers
            or self._batch_subscribers
            or self._streams
        )

    # --- deferral ---------------------------------------------------------------------------

    def defer(self, schedule: Callable[[Callable[[], None]], object] | None) -> None:
        """From now on queue the fan-out and run it through ``schedule`` (the tracker's is
        ``call_later(FLUSH_INTERVAL_S, ...)``), or at once again with ``None``."""
        self.flush()
        self._schedule = schedule
        self.records.deferred = schedule is not None
        self.records.max_deferred = MAX_DEFERRED

    @property
    def _pending(self) -> list[Record]:
        return self.records.pending

    def on_record(self, record: Record) -> None:
        """The engine made ``record``: into its timeline now, fanned out now or at the next
        flush (:meth:`RecordIntake.record`, the engine's own emit)."""
        self.records.record(record)

    def _arm(self) -> None:
        schedule = self._schedule
        if schedule is None:
            self.flush()
            return
        try:
            schedule(self.flush)
        except Exception:  # e.g. the loop is closed: never lose what is queued
            self.fault("schedule_flush")
            self.flush()

    def flush(self) -> None:
        """Fan the queued records out, in order (every query calls this first)."""
        records = self.records
        pending = records.pending
        if pending:
            records.pending = []
            self._fan_out_many(pending)

    # --- fan-out ----------------------------------------------------------------------------

    def _fan_out_many(self, records: Sequence[Record]) -> None:
        """Records whose timelines have them already: the activity ring, the sinks, the
        subscribers, the live streams and the callbacks, each given them in order."""
        first = self._seq + 1
        self._seq += len(records)
        activity = self._activity
        over = len(activity) + len(records) - self._activity_max
        if over > 0:
            self._extra["activity_rotated"] += min(over, len(records))
        activity.extend(records)
        submitters = self._submitters
        exported = (
            [r for r in records if type(r) is not PairRecord or r.sampled] if submitters else ()
        )
        if exported:
            for sink, submit_many in submitters:
                if submit_many is not None:
                    try:
                        submit_many(exported)
                    except Exception:
                        self.fault(f"sink_submit:{sink.name}")
                    continue
                for record in exported:
                    try:
                        sink.submit(record)
                    except Exception:
                        self.fault(f"sink_submit:{sink.name}")
        for cb in self._subscribers:
            for record in records:
                try:
                    cb(record)
                except Exception:
                    self.fault("subscriber")
        for batch_cb in self._batch_subscribers:
            try:
                batch_cb(records)
            except Exception:
                self.fault("subscriber")
        if self._streams:
            items = [new_activity_item(first + i, r) for i, r in enumerate(records)]
            for sub in self._streams:
                for item in items:
                    sub.push(item)
        if self._on_timeout or self._on_slow or self._on_error:
            for record in records:
                if type(record) is PairRecord:
                    self._callbacks(record)

    def _callbacks(self, record: PairRecord) -> None:
        if record.outcome is Outcome.TIMEOUT:
            for timeout_cb in self._on_timeout:
                try:
                    timeout_cb(record)
                except Exception:
                    self.fault("on_request_timeout")
        if record.slow:
            for slow_cb in self._on_slow:
                try:
                    slow_cb(record, record.duration_s)
                except Exception:
                    self.fault("on_slow_response")
        if record.outcome is Outcome.ERROR:
            for error_cb in self._on_error:
                try:
                    error_cb(record, record.error_type or "error")
                except Exception:
                    self.fault("on_error")

    # --- queries and registrations ----------------------------------------------------------

    def recent_activity(
        self,
        since_seq: int = 0,
        limit: int = 100,
        *,
        session: str | None = None,
        event: str | None = None,
        outcome: str | None = None,
        direction: str | None = None,
    ) -> list[ActivityItem]:
        """Items with ``seq > since_seq`` matching every given filter, oldest first."""
        self.flush()
        activity = self._activity
        if not activity or limit <= 0:
            return []
        first = self._seq - len(activity) + 1
        start = max(0, since_seq - first + 1)
        out: list[ActivityItem] = []
        for i in range(start, len(activity)):
            record = activity[i]
            if _matches(record, session, event, outcome, direction):
                out.append(new_activity_item(first + i, record))
                if len(out) >= limit:
                    break
        return out

    def subscribe(self, callback: RecordCallback) -> Callable[[], None]:
        """Call ``callback`` (synchronously, guarded) with every new record."""
        self._subscribers.append(callback)
        return remover(self._subscribers, callback)

    def subscribe_batches(self, callback: BatchCallback) -> Callable[[], None]:
        """Call ``callback`` (synchronously, guarded) with every new record, several at a
        time (in order; the sequence is valid only during the call)."""
        self._batch_subscribers.append(callback)
        return remover(self._batch_subscribers, callback)

    def stream(self, maxlen: int | None = None) -> Subscription:
        """A bounded async feed of new activity items (drops oldest when full)."""
        sub = Subscription(maxlen or self._subscriber_queue, self._streams.remove)
        self._streams.append(sub)
        return sub

    def on_request_timeout(self, callback: TimeoutCallback) -> Callable[[], None]:
        self._on_timeout.append(callback)
        return remover(self._on_timeout, callback)

    def on_slow_response(self, callback: SlowCallback) -> Callable[[], None]:
        self._on_slow.append(callback)
        return remover(self._on_slow, callback)

    def on_error(self, callback: ErrorCallback) -> Callable[[], None]:
        self._on_error.append(callback)
        return remover(self._on_error, callback)

    def sink_health(self) -> list[SinkHealth]:
        out: list[SinkHealth] = []
        for sink in self._sinks:
            try:
                out.append(sink.health())
            except Exception:
                self.fault(f"sink_health:{sink.name}")
                out.append(SinkHealth(sink.name, False, 0, 0, 0, 0, "health() failed"))
        return out

    def drops(self) -> dict[str, int]:
        """What the sinks and the live streams dropped."""
        drops = {f"sink:{h.name}": h.dropped for h in self.sink_health()}
        dropped_stream = sum(s.dropped for s in self._streams)
        if dropped_stream:
            drops["subscribers"] = dropped_stream
        return drops

    def close_streams(self) -> None:
        for sub in list(self._streams):
            sub.close()

    def sizes(self) -> dict[str, int]:
        self.flush()
        return {
            "activity": len(self._activity),
            **self._timelines.sizes(),
            "streams": len(self._streams),
        }


def _matches(
    record: Record,
    session: str | None,
    event: str | None,
    outcome: str | None,
    direction: str | None,
) -> bool:
    if session is not None and record.session.session_id != session:
        return False
    if isinstance(record, PairRecord):
        names: Iterable[str | None] = (
            record.request_event,
            record.response_event,
            record.rule,
            record.operation,
        )
        rec_outcome: str | None = record.outcome.value
        rec_direction: str | None = record.initiator.value
    elif isinstance(record, MessageRecord):
        names = (record.event,)
        rec_outcome = None
        rec_direction = record.direction.value
    else:
        names = (record.kind.value,)
        rec_outcome = "ok" if record.ok else "error"
        rec_direction = None
    if event is not None and event not in names:
        return False
    if outcome is not None and outcome != rec_outcome:
        return False
    return direction is None or direction == rec_direction

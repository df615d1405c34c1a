"""The tracker: what the relay observes with, and what embedding code, the admin listener
and the exporters talk to.

``Tracker`` implements :class:`tracking.observer.TrafficObserver`: it reads the clock once
per call, feeds the sans-IO session table, which feeds the correlation engine, whose
records fan out to the recent-activity ring, per-session timelines, subscribers,
callbacks and the record sinks.  Per frame and per record it only stores references and
plain tuples; query views (:class:`PacketView`, :class:`ActivityItem`) are built when asked.
It owns the one timer task (sleeping until the next deadline, at most :data:`MAX_SLEEP_S`)
and keeps a reference to every task it starts.  Nothing here raises into the relay: every
entry point is guarded and counts what escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.correlation import CorrelationEngine, IdSource
from socketio_trace_proxy.tracking.events import PacketObserved, SessionClosed, SessionEvent
from socketio_trace_proxy.tracking.observer import RequestInfo, WebSocketObserver
from socketio_trace_proxy.tracking.records import MessageRecord, Outcome, PairRecord, Record
from socketio_trace_proxy.tracking.sink import RecordSink, SinkHealth
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.views import (
    ActivityItem,
    MetricsSnapshot,
    PendingView,
    SessionView,
    new_activity_item,
)
from socketio_trace_proxy.tracking.wire.packets import SocketPacketType

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_SLEEP_S = 1.0  # the timer wakes at least this often (session heartbeat expiry)


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    # The functions themselves, not wrappers: the tracker reads both per frame.
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


class SessionLayer(Protocol):
    """What the tracker needs of :class:`tracking.sessions.SessionTable`."""

    def polling_request(self, info: RequestInfo, body: bytes, at: float, wall: float) -> None: ...

    def polling_response(  # noqa: PLR0917 - the observer's signature plus the clock
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
        at: float,
        wall: float,
    ) -> None: ...

    def websocket_opened(self, info: RequestInfo, at: float, wall: float) -> Any: ...

    def websocket_message(
        self, leg: Any, direction: Direction, data: str | bytes, at: float, wall: float
    ) -> None: ...

    def websocket_closed(
        self, leg: Any, initiator: Direction | None, code: int | None, at: float, wall: float
    ) -> None: ...

    def tick(self, at: float, wall: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def close_all(self, at: float, wall: float) -> None: ...


SessionFactory = Callable[[Callable[[SessionEvent], None], TrackingSettings], SessionLayer]


def _session_table(
    emit: Callable[[SessionEvent], None], settings: TrackingSettings
) -> SessionLayer:
    from socketio_trace_proxy.tracking.sessions import SessionTable  # noqa: PLC0415 - the default, replaceable

    table: SessionLayer = SessionTable(emit, max_sessions=settings.limits.max_sessions)
    return table


@dataclass(frozen=True, slots=True)
class PacketView:
    """One decoded Socket.IO packet in a session timeline."""

    wall: float
    direction: str  # Direction.value
    transport: str  # Transport.value
    type: str  # SocketPacketType name
    namespace: str
    event: str | None
    ack_id: int | None
    size: int


# What a timeline holds per packet (a PacketView's facts, built into one when asked):
# wall, direction, transport, type, namespace, event, ack id, size.
_PacketRow = tuple[float, Direction, Transport, SocketPacketType, str, str | None, int | None, int]
_TimelineItem = _PacketRow | Record


def _view(item: _TimelineItem) -> PacketView | Record:
    if isinstance(item, tuple):
        wall, direction, transport, ptype, namespace, event, ack_id, size = item
        return PacketView(
            wall, direction.value, transport.value, ptype.name, namespace, event, ack_id, size
        )
    return item


@dataclass(frozen=True, slots=True)
class SessionTimeline:
    """A session's recent packets and records, oldest first (bounded)."""

    session_id: str
    session: SessionView | None  # None once the session has closed
    items: tuple[PacketView | Record, ...]


class Subscription:
    """A bounded live feed of activity: ``async for item in subscription``.

    When the consumer falls behind, the oldest items are dropped and counted.
    """

    def __init__(self, maxlen: int, on_close: Callable[[Subscription], None]) -> None:
        self._queue: deque[ActivityItem] = deque()
        self._maxlen = maxlen
        self._ready = asyncio.Event()
        self._on_close = on_close
        self.dropped = 0
        self.closed = False

    def push(self, item: ActivityItem) -> None:
        if len(self._queue) >= self._maxlen:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(item)
        self._ready.set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._ready.set()
            self._on_close(self)

    async def get(self) -> ActivityItem | None:
        """The next item, or None once closed and drained."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[ActivityItem]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[ActivityItem]:
        while (item := await self.get()) is not None:
            yield item


class _WebSocketObserver:
    __slots__ = ("_leg", "_tracker")

    def __init__(self, tracker: Tracker, leg: object) -> None:
        self._tracker = tracker
        self._leg = leg

    def message(self, direction: Direction, data: str | bytes) -> None:
        t = self._tracker
        try:
            t._ws_message(self._leg, direction, data, t._monotonic(), t._time())
        except Exception:
            t._fault("websocket_message")

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        t = self._tracker
        try:
            t._sessions.websocket_closed(self._leg, initiator, code, t._monotonic(), t._time())
        except Exception:
            t._fault("websocket_closed")


class _NullWebSocketObserver:
    def message(self, direction: Direction, data: str | bytes) -> None:
        pass

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        pass


RecordCallback = Callable[[Record], None]
TimeoutCallback = Callable[[PairRecord], None]
SlowCallback = Callable[[PairRecord, float], None]
ErrorCallback = Callable[[PairRecord, str], None]


class Tracker:
    """Observer, timer owner, record fan-out and query API (see the module docstring)."""

    def __init__(
        self,
        settings: TrackingSettings,
        sinks: Sequence[RecordSink],
        *,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        session_factory: SessionFactory | None = None,
        max_sleep_s: float = MAX_SLEEP_S,
        on_session_event: Callable[[SessionEvent], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._monotonic = self._clock.monotonic
        self._time = self._clock.time
        self._sinks = tuple(sinks)
        self.engine = CorrelationEngine(
            settings,
            self._on_record,
            ids,
            wants_unsampled=self._wants_unsampled,
            on_deadline=self._earlier_deadline,
        )
        emit: Callable[[SessionEvent], None] = self._on_event
        if on_session_event is not None:
            emit = self._tapped(on_session_event)
        self._sessions = (session_factory or _session_table)(emit, settings)
        self._ws_message = self._sessions.websocket_message
        limits = settings.limits
        # Records only; an item's seq follows from its position (the newest is ``_seq``).
        self._activity: deque[Record] = deque(maxlen=limits.activity_buffer)
        self._activity_max = limits.activity_buffer
        self._seq = 0
        self._timelines: OrderedDict[str, deque[_TimelineItem]] = OrderedDict()
        self._closed_timelines: OrderedDict[str, tuple[_TimelineItem, ...]] = OrderedDict()
        self._timeline_len = limits.timeline_per_session
        self._max_timelines = limits.max_sessions
        self._subscribers: list[RecordCallback] = []
        self._streams: list[Subscription] = []
        self._on_timeout: list[TimeoutCallback] = []
        self._on_slow: list[SlowCallback] = []
        self._on_error: list[ErrorCallback] = []
        self._faults: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._armed = math.inf
        self._stopped = False
        self._max_sleep = max_sleep_s

    # ------------------------------------------------------ TrafficObserver

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        try:
            self._sessions.polling_request(info, body, self._monotonic(), self._time())
        except Exception:
            self._fault("polling_request")

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        try:
            self._sessions.polling_response(
                info,
                status,
                content_type,
                content_encoding,
                body,
                self._monotonic(),
                self._time(),
            )
        except Exception:
            self._fault("polling_response")

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver:
        try:
            leg = self._sessions.websocket_opened(info, self._monotonic(), self._time())
            return _WebSocketObserver(self, leg)
        except Exception:
            self._fault("websocket_opened")
            return _NullWebSocketObserver()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for sink in self._sinks:
            try:
                await sink.start()
            except Exception:
                self._fault(f"sink_start:{sink.name}")
                log.exception("record sink %s failed to start", sink.name)
        self._wake = asyncio.Event()
        self._timer = self._spawn(self._run_timer())

    async def stop(self, deadline_s: float) -> None:
        """End every session as SHUTDOWN (pending requests: abandoned), stop the timer,
        then let the sinks flush for at most ``deadline_s`` seconds."""
        if self._stopped:
            return
        self._stopped = True
        at, wall = self._clock.monotonic(), self._clock.time()
        try:
            self._sessions.close_all(at, wall)
            self.engine.shutdown(at, wall)
        except Exception:
            self._fault("shutdown")
        for sub in list(self._streams):
            sub.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sinks:
            flush = asyncio.gather(
                *(self._shutdown_sink(s, deadline_s) for s in self._sinks),
                return_exceptions=True,
            )
            try:
                await asyncio.wait_for(flush, timeout=deadline_s + 0.5)
            except TimeoutError:
                self._fault("sink_shutdown_deadline")

    async def _shutdown_sink(self, sink: RecordSink, deadline_s: float) -> None:
        try:
            await sink.shutdown(deadline_s)
        except Exception:
            self._fault(f"sink_shutdown:{sink.name}")
            log.exception("record sink %s failed to shut down", sink.name)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ----------------------------------------------------------------- timer

    def _earlier_deadline(self, deadline: float) -> None:
        """The engine's earliest deadline moved to ``deadline``: wake the timer if it
        sleeps past it."""
        if deadline < self._armed and self._wake is not None:
            self._armed = deadline
            self._wake.set()

    async def _run_timer(self) -> None:
        assert self._wake is not None
        while not self._stopped:
            self._wake.clear()
            deadline = self.engine.next_deadline()
            self._armed = deadline if deadline is not None else math.inf
            delay = self._max_sleep
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - self._clock.monotonic()))
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that arrives just as the wake event fires, and stop() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            if not self._stopped:
                self.tick()

    def tick(self) -> None:
        """Run due timers now (the timer task calls this; tests may too)."""
        at, wall = self._clock.monotonic(), self._clock.time()
        try:
            self._sessions.tick(at, wall)
        except Exception:
            self._fault("session_tick")
        try:
            self.engine.tick(at, wall)
        except Exception:
            self._fault("engine_tick")

    # ---------------------------------------------------------------- events

    def _on_event(self, event: SessionEvent) -> None:
        try:
            if type(event) is PacketObserved:
                sid, direction, transport, p, _, wall = event
                tl = self._timelines.get(sid)
                if tl is None:
                    tl = self._timeline(sid)
                tl.append(
                    (wall, direction, transport, p.type, p.namespace, p.event, p.ack_id, p.size)
                )
            self.engine.handle(event)
            if isinstance(event, SessionClosed):
                self._retire_timeline(event.session_id)
        except Exception:
            self._fault("engine")

    def _tapped(self, tap: Callable[[SessionEvent], None]) -> Callable[[SessionEvent], None]:
        """``_on_event`` preceded by ``tap`` (e.g. the demo's packet printer), guarded."""
        on_event = self._on_event

        def emit(event: SessionEvent) -> None:
            try:
                tap(event)
            except Exception:
                self._fault("session_event_tap")
            on_event(event)

        return emit

    def _timeline(self, sid: str) -> deque[_TimelineItem]:
        tl = self._timelines.get(sid)
        if tl is None:
            while len(self._timelines) >= self._max_timelines:
                self._timelines.popitem(last=False)
                self.engine.metrics.drops["timelines"] += 1
            tl = self._timelines[sid] = deque(maxlen=self._timeline_len)
        return tl

    def _retire_timeline(self, sid: str) -> None:
        tl = self._timelines.pop(sid, None)
        keep = self.settings.limits.closed_timelines
        if tl is None or keep == 0:
            return
        self._closed_timelines[sid] = tuple(tl)
        while len(self._closed_timelines) > keep:
            self._closed_timelines.popitem(last=False)

    def _wants_unsampled(self) -> bool:
        """Whether a pair left out by sampling is seen at all (it never reaches the sinks)."""
        return bool(self._activity_max or self._timelines or self._subscribers or self._streams)

    def _on_record(self, record: Record) -> None:
        self._seq += 1
        activity = self._activity
        if len(activity) == self._activity_max:
            self.engine.metrics.extra["activity_rotated"] += 1
        activity.append(record)
        sid = record.session.session_id
        tl = self._timelines.get(sid)
        if tl is not None:
            tl.append(record)
        elif sid in self._closed_timelines:  # records of a session just retired (its close)
            kept = (*self._closed_timelines[sid], record)
            self._closed_timelines[sid] = kept[-self._timeline_len :]
        pair = record if type(record) is PairRecord else None
        if pair is None or pair.sampled:
            for sink in self._sinks:
                try:
                    sink.submit(record)
                except Exception:
                    self._fault(f"sink_submit:{sink.name}")
        if self._subscribers:
            for cb in self._subscribers:
                try:
                    cb(record)
                except Exception:
                    self._fault("subscriber")
        if self._streams:
            item = new_activity_item(self._seq, record)
            for sub in self._streams:
                sub.push(item)
        if pair is not None and (self._on_timeout or self._on_slow or self._on_error):
            self._callbacks(pair)

    def _callbacks(self, record: PairRecord) -> None:
        if record.outcome is Outcome.TIMEOUT:
            for timeout_cb in self._on_timeout:
                try:
                    timeout_cb(record)
                except Exception:
                    self._fault("on_request_timeout")
        if record.slow:
            for slow_cb in self._on_slow:
                try:
                    slow_cb(record, record.duration_s)
                except Exception:
                    self._fault("on_slow_response")
        if record.outcome is Outcome.ERROR:
            for error_cb in self._on_error:
                try:
                    error_cb(record, record.error_type or "error")
                except Exception:
                    self._fault("on_error")

    def _fault(self, where: str) -> None:
        n = self._faults.get(where, 0) + 1
        self._faults[where] = n
        if n == 1:  # once per place: a broken path must not flood the log
            log.exception("tracker fault in %s (counted; traffic is unaffected)", where)

    # ------------------------------------------------------------------- API

    def get_metrics(self) -> MetricsSnapshot:
        drops: dict[str, int] = {}
        for h in self.sink_health():
            drops[f"sink:{h.name}"] = h.dropped
        dropped_stream = sum(s.dropped for s in self._streams)
        if dropped_stream:
            drops["subscribers"] = dropped_stream
        snap = self.engine.snapshot(drops)
        for where, n in self._faults.items():
            snap.extra[f"fault:{where}"] = n
        stats = getattr(self._sessions, "stats", None)
        if callable(stats):
            with contextlib.suppress(Exception):
                for name, value in vars_of(stats()).items():
                    snap.extra[f"sessions.{name}"] = value
        return snap

    def get_pending_requests(self) -> list[PendingView]:
        return self.engine.pending_views(self._clock.monotonic())

    def get_sessions(self) -> list[SessionView]:
        return self.engine.session_views()

    def get_session_timeline(self, session_id: str) -> SessionTimeline | None:
        live = self._timelines.get(session_id)
        if live is not None:
            return SessionTimeline(
                session_id, self.engine.session_view(session_id), tuple(map(_view, live))
            )
        closed = self._closed_timelines.get(session_id)
        if closed is not None:
            return SessionTimeline(session_id, None, tuple(map(_view, closed)))
        view = self.engine.session_view(session_id)
        return None if view is None else SessionTimeline(session_id, view, ())

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
        return _remover(self._subscribers, callback)

    def stream(self, maxlen: int | None = None) -> Subscription:
        """A bounded async feed of new activity items (drops oldest when full)."""
        sub = Subscription(maxlen or self.settings.limits.subscriber_queue, self._streams.remove)
        self._streams.append(sub)
        return sub

    def on_request_timeout(self, callback: TimeoutCallback) -> Callable[[], None]:
        self._on_timeout.append(callback)
        return _remover(self._on_timeout, callback)

    def on_slow_response(self, callback: SlowCallback) -> Callable[[], None]:
        self._on_slow.append(callback)
        return _remover(self._on_slow, callback)

    def on_error(self, callback: ErrorCallback) -> Callable[[], None]:
        self._on_error.append(callback)
        return _remover(self._on_error, callback)

    def sink_health(self) -> list[SinkHealth]:
        out: list[SinkHealth] = []
        for sink in self._sinks:
            try:
                out.append(sink.health())
            except Exception:
                self._fault(f"sink_health:{sink.name}")
                out.append(SinkHealth(sink.name, False, 0, 0, 0, 0, "health() failed"))
        return out

    def sizes(self) -> dict[str, int]:
        """Sizes of the tracker's own tables plus the engine's (self-monitoring, tests)."""
        return {
            **self.engine.sizes(),
            "activity": len(self._activity),
            "timelines": len(self._timelines),
            "closed_timelines": len(self._closed_timelines),
            "tasks": len(self._tasks),
            "streams": len(self._streams),
        }


def vars_of(stats: object) -> dict[str, int]:
    fields = getattr(stats, "__dataclass_fields__", {})
    return {
        name: value
        for name in fields
        if isinstance(value := getattr(stats, name), int) and not isinstance(value, bool)
    }


def _remover(items: list[_T], item: _T) -> Callable[[], None]:
    def remove() -> None:
        with contextlib.suppress(ValueError):
            items.remove(item)

    return remove


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

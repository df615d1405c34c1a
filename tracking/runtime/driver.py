"""The tracker's driver: what the relay calls, the one clock, the timer task.

:class:`Tracker` implements :class:`tracking.observer.TrafficObserver`.  It reads its clock
once per observation and passes that stamp (``at`` monotonic, ``wall`` epoch) with the
observation to the sans-IO session table, which passes it down to the session events it
causes; each event goes to the session's timeline and to the correlation engine, whose
records go to the record hub this class extends (:mod:`tracking.runtime.hub`).  It owns the
one timer task (sleeping until the next deadline, at most :data:`MAX_SLEEP_S`) and keeps a
reference to every task it starts.  Nothing here raises into the relay: every entry point
is guarded and counts what escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.correlation.engine import CorrelationEngine
from socketio_trace_proxy.tracking.events import SessionEvent
from socketio_trace_proxy.tracking.ids import IdSource
from socketio_trace_proxy.tracking.observer import RequestInfo, WebSocketObserver
from socketio_trace_proxy.tracking.runtime.hub import FLUSH_INTERVAL_S, RecordHub, log
from socketio_trace_proxy.tracking.runtime.intake import (
    EventIntake,
    LegObserver,
    PollingIntake,
    RecordIntake,
)
from socketio_trace_proxy.tracking.runtime.timelines import SessionTimeline, Timelines
from socketio_trace_proxy.tracking.sampling import SessionSampler
from socketio_trace_proxy.tracking.sessions.polling import PollingReader
from socketio_trace_proxy.tracking.sessions.websocket import WebSocketReader
from socketio_trace_proxy.tracking.sink import RecordSink
from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.views import MetricsSnapshot, PendingView, SessionView

MAX_SLEEP_S = 1.0  # the timer wakes at least this often (session heartbeat expiry)


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    # The functions themselves, not wrappers: the tracker reads both per frame.
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


class SessionLayer(Protocol):
    """What the tracker needs of :class:`tracking.sessions.table.SessionTable`."""

    def polling_request(self, info: RequestInfo, body: bytes, at: float, wall: float) -> None: ...

    def polling_reply(  # noqa: PLR0917
        self,
        info: RequestInfo,
        status: int,
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
    from socketio_trace_proxy.tracking.sessions.table import SessionTable  # noqa: PLC0415 - the default, replaceable

    table: SessionLayer = SessionTable(
        emit,
        max_sessions=settings.limits.max_sessions,
        sampler=SessionSampler(settings.session_sample_rate),
    )
    return table


class _NullWebSocketObserver:
    def message(self, direction: Direction, data: str | bytes) -> None:
        pass

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        pass


class Tracker(RecordHub):
    """Observer, clock and timer owner, record hub and query API (see the module docstring)."""

    # TrafficObserver's polling methods: :class:`PollingIntake`'s, bound in ``__init__``.
    request_arrived: Callable[..., RequestInfo]
    """A request head arrived on the Socket.IO path: its info, stamped now."""
    polling_request: Callable[[RequestInfo, bytes], None]
    """A polling POST body was forwarded."""
    polling_response: Callable[[RequestInfo, int, str | None, str | None, bytes], None]
    """A polling response was forwarded (status, content type and encoding, body as sent)."""

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
        records = RecordIntake()  # the engine's emit; joined to the hub below
        self.engine = CorrelationEngine(
            settings,
            records.record,
            ids,
            wants_unsampled=self.wants_unsampled,
            on_deadline=self._earlier_deadline,
        )
        metrics = self.engine.metrics
        limits = settings.limits
        timelines = Timelines(
            limits.timeline_per_session, limits.max_sessions, limits.closed_timelines, metrics.drops
        )
        super().__init__(
            sinks,
            timelines,
            metrics.extra,
            activity=limits.activity_buffer,
            subscriber_queue=limits.subscriber_queue,
            records=records,
        )
        self._intake = EventIntake(self.engine, timelines, self.fault)
        emit: Callable[[SessionEvent], None] = self._intake.event
        if on_session_event is not None:
            emit = self._tapped(on_session_event)
        self._sessions = (session_factory or _session_table)(emit, settings)
        self._ws_message = self._sessions.websocket_message
        # LegObserver calls the default table's reader natively if websocket_message is its.
        reader = getattr(self._sessions, "websocket_reader", None)
        direct = isinstance(reader, WebSocketReader) and self._ws_message == reader.message
        self._ws_reader = reader if direct else None
        # Session sampling: the table decides at each handshake; the driver skips the later
        # traffic of an unsampled sid before anything is decoded (None: all sampled).
        sampler = getattr(self._sessions, "sampler", None)
        self._sampler: SessionSampler | None = (
            sampler if isinstance(sampler, SessionSampler) else None
        )
        # the per-request sid check, only when some sessions are left out
        self._thinning = self._sampler if self._sampler and not self._sampler.everything else None
        self._bind_polling()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._armed = math.inf
        self._stopped = False
        self._max_sleep = max_sleep_s

    # --- TrafficObserver --------------------------------------------------------------------

    def _bind_polling(self) -> None:
        """The polling entry points: the compiled intake's own bound methods (no Python
        frame between the relay and the session table)."""
        sessions = self._sessions
        # Called natively if the table's polling entry points are its reader's.
        reader = getattr(sessions, "polling_reader", None)
        direct = (
            isinstance(reader, PollingReader)
            and sessions.polling_request == reader.request
            and sessions.polling_reply == reader.reply
        )
        polling = PollingIntake(
            sessions.polling_request,
            sessions.polling_reply,
            self._thinning,
            self._monotonic,
            self._time,
            self.fault,
            reader if direct else None,
        )
        self.request_arrived = polling.request_arrived
        self.polling_request = polling.polling_request
        self.polling_response = polling.polling_response

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver | None:
        """The observer of a new WebSocket; ``None`` for one of an unsampled session (the
        relay then tunnels it without looking at its frames)."""
        try:
            thinning = self._thinning
            if thinning is not None and (sid := info.query.get("sid")) and not thinning.keeps(sid):
                return None  # an upgrade of a session sampling left out
            sessions = self._sessions
            leg = sessions.websocket_opened(info, self._monotonic(), self._time())
            return LegObserver(
                self._ws_message,
                sessions.websocket_closed,
                leg,
                self._monotonic,
                self._time,
                self.fault,
                self._ws_reader,
            )
        except Exception:
            self.fault("websocket_opened")
            return _NullWebSocketObserver()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        for sink in self._sinks:
            try:
                await sink.start()
            except Exception:
                self.fault(f"sink_start:{sink.name}")
                log.exception("record sink %s failed to start", sink.name)
        self._wake = asyncio.Event()
        self.defer(functools.partial(asyncio.get_running_loop().call_later, FLUSH_INTERVAL_S))
        self._spawn(self._run_timer())

    async def stop(self, deadline_s: float) -> None:
        """End every session as SHUTDOWN (pending requests: abandoned), stop the timer,
        then let the sinks flush for at most ``deadline_s`` seconds."""
        if self._stopped:
            return
        self._stopped = True
        self.defer(None)  # what is queued is fanned out; from now on at once
        at, wall = self._monotonic(), self._time()
        try:
            self._sessions.close_all(at, wall)
            self.engine.shutdown(at, wall)
        except Exception:
            self.fault("shutdown")
        self.close_streams()
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
                self.fault("sink_shutdown_deadline")

    async def _shutdown_sink(self, sink: RecordSink, deadline_s: float) -> None:
        try:
            await sink.shutdown(deadline_s)
        except Exception:
            self.fault(f"sink_shutdown:{sink.name}")
            log.exception("record sink %s failed to shut down", sink.name)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- timer ------------------------------------------------------------------------------

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
                delay = min(delay, max(0.0, deadline - self._monotonic()))
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that arrives just as the wake event fires, and stop() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            if not self._stopped:
                self.tick()

    def tick(self) -> None:
        """Run due timers now (the timer task calls this; tests may too)."""
        at, wall = self._monotonic(), self._time()
        try:
            self._sessions.tick(at, wall)
        except Exception:
            self.fault("session_tick")
        try:
            self.engine.tick(at, wall)
        except Exception:
            self.fault("engine_tick")

    # --- session events ---------------------------------------------------------------------

    def _tapped(self, tap: Callable[[SessionEvent], None]) -> Callable[[SessionEvent], None]:
        """The intake's ``event`` preceded by ``tap`` (e.g. the demo's packet printer),
        guarded."""
        on_event = self._intake.event

        def emit(event: SessionEvent) -> None:
            try:
                tap(event)
            except Exception:
                self.fault("session_event_tap")
            on_event(event)

        return emit

    # --- queries ----------------------------------------------------------------------------

    def get_metrics(self) -> MetricsSnapshot:
        self.flush()
        snap = self.engine.snapshot(self.drops())
        if self._sampler is not None:
            snap = dataclasses.replace(snap, sampling=self._sampler.info())
            if self._sampler.forgotten:  # decisions recomputed, nothing lost: for sizing
                snap.extra["sampling_decisions_forgotten"] = self._sampler.forgotten
        for where, n in self.faults.items():
            snap.extra[f"fault:{where}"] = n
        stats = getattr(self._sessions, "stats", None)
        if callable(stats):
            with contextlib.suppress(Exception):
                for name, value in _int_fields(stats()).items():
                    snap.extra[f"sessions.{name}"] = value
        return snap

    def get_pending_requests(self) -> list[PendingView]:
        self.flush()
        return self.engine.pending_views(self._monotonic())

    def get_sessions(self) -> list[SessionView]:
        self.flush()
        return self.engine.session_views()

    def get_session_timeline(self, session_id: str) -> SessionTimeline | None:
        self.flush()
        return self._timelines.get(session_id, self.engine.session_view(session_id))

    def sizes(self) -> dict[str, int]:
        """Sizes of the tracker's own tables plus the engine's (self-monitoring, tests)."""
        return {**self.engine.sizes(), **super().sizes(), "tasks": len(self._tasks)}


def _int_fields(stats: object) -> dict[str, int]:
    fields = getattr(stats, "__dataclass_fields__", {})
    return {
        name: value
        for name in fields
        if isinstance(value := getattr(stats, name), int) and not isinstance(value, bool)
    }

"""The tracker's per-frame intake: a WebSocket's messages to the session table, the session
events it emits to the timelines and the correlation engine.

Owns the two objects between the relay and the sans-IO core on every frame, kept apart
from :mod:`tracking.runtime.driver` (asyncio, the timer task) so that the compiled build
compiles them with the core (:mod:`tracking.compiled`): :class:`LegObserver` (what
``Tracker.websocket_opened`` hands the relay: one clock read per message, straight into the
session layer), :class:`EventIntake` (the session layer's emit: a packet's timeline row,
then the engine; a closed session's timeline frozen after the engine's last records) and
:class:`RecordIntake` (the engine's emit: the record into its timeline, then fanned out at
once or queued for the hub's next flush).
Nothing here raises: failures are counted through ``fault``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from socketio_trace_proxy.tracking.correlation.engine import CorrelationEngine
from socketio_trace_proxy.tracking.events import (
    PacketObserved,
    PacketSink,
    RecordTarget,
    SessionClosed,
    SessionEvent,
)
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.query import query_value
from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.runtime.timelines import Timelines
from socketio_trace_proxy.tracking.sampling import SessionSampler
from socketio_trace_proxy.tracking.sessions.polling import PollingReader
from socketio_trace_proxy.tracking.sessions.state import LegState, WebSocketLeg
from socketio_trace_proxy.tracking.sessions.websocket import WebSocketReader
from socketio_trace_proxy.tracking.traffic import Direction

Fault = Callable[[str], None]
Clock = Callable[[], float]
_UNSAMPLED: Final = LegState.UNSAMPLED
_PACKET_OBSERVED: Final = PacketObserved  # a C static in the compiled build
_C2S: Final = Direction.CLIENT_TO_SERVER
_S2C: Final = Direction.SERVER_TO_CLIENT
_REQUEST_INFO: Final = RequestInfo
_tuple_new: Final = tuple.__new__  # builds a NamedTuple without its Python-level ``__new__``


class EventIntake(PacketSink):
    """The session layer's emit (see the module docstring); its packets come straight to
    :meth:`packet_observed` when ``event`` is the session layer's emit."""

    def __init__(self, engine: CorrelationEngine, timelines: Timelines, fault: Fault) -> None:
        self._engine = engine
        self._timelines = timelines
        self._live = timelines.live  # read per packet
        self._fault = fault

    def packet_observed(self, event: PacketObserved) -> None:
        try:
            p = event.packet
            sid = event.session_id
            tl = self._live.get(sid)
            if tl is None:
                tl = self._timelines.open(sid)
            tl.packet(
                event.wall,
                event.direction,
                event.transport,
                p.type,
                p.namespace,
                p.event,
                p.ack_id,
                p.size,
            )
            self._engine.handle(event)
        except Exception:
            self._fault("engine")

    def event(self, event: SessionEvent) -> None:
        if type(event) is _PACKET_OBSERVED:
            self.packet_observed(event)
            return
        try:
            self._engine.handle(event)
            if isinstance(event, SessionClosed):
                self._timelines.retire(event.session_id)
        except Exception:
            self._fault("engine")


class LegObserver:
    """Observes one relayed WebSocket (``tracking.observer.WebSocketObserver``) for the
    session layer's ``leg``.  ``reader``: the default session table's WebSocket reader,
    called directly (a native call in the compiled build, not through ``on_message``, a
    bound method behind the Python-level call protocol) when ``leg`` is its own leg."""

    def __init__(  # noqa: PLR0917 - built once per WebSocket
        self,
        on_message: Callable[[Any, Direction, str | bytes, float, float], None],
        on_closed: Callable[[Any, Direction | None, int | None, float, float], None],
        leg: object,
        monotonic: Clock,
        wall: Clock,
        fault: Fault,
        reader: WebSocketReader | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._leg = leg
        self._ws_leg = leg if reader is not None and isinstance(leg, WebSocketLeg) else None
        self._reader = reader
        self._monotonic = monotonic
        self._wall = wall
        self._fault = fault

    def message(self, direction: Direction, data: str | bytes) -> None:
        try:
            ws_leg = self._ws_leg
            reader = self._reader
            if ws_leg is not None and reader is not None:
                reader.message(ws_leg, direction, data, self._monotonic(), self._wall())
                return
            self._on_message(self._leg, direction, data, self._monotonic(), self._wall())
        except Exception:
            self._fault("websocket_message")

    @property
    def observing(self) -> bool:
        """False once session sampling left this WebSocket's session out: the relay then
        tunnels its messages without showing them (see ``WebSocketObserver``)."""
        return getattr(self._leg, "state", None) is not _UNSAMPLED

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        try:
            self._on_closed(self._leg, initiator, code, self._monotonic(), self._wall())
        except Exception:
            self._fault("websocket_closed")


class PollingIntake:
    """The tracker's polling entry points (``TrafficObserver.request_arrived``,
    ``polling_request``, ``polling_response``): the tracker binds them on itself, so the
    relay calls straight into this (compiled) code, one clock read per observation, into the
    session layer's ``on_request``/``on_reply``.  ``thinning``: the sampler when session
    sampling leaves some sessions out (their later traffic is counted, not decoded).
    ``reader``: the default session table's polling reader, called directly (a native call
    in the compiled build) when ``on_request``/``on_reply`` are its own methods."""

    def __init__(  # noqa: PLR0917 - built once per tracker
        self,
        on_request: Callable[[RequestInfo, bytes, float, float], None],
        on_reply: Callable[[RequestInfo, int, str | None, bytes, float, float], None],
        thinning: SessionSampler | None,
        monotonic: Clock,
        wall: Clock,
        fault: Fault,
        reader: PollingReader | None = None,
    ) -> None:
        self._reader = reader
        self._on_request = on_request
        self._on_reply = on_reply
        self._thinning = thinning
        self._monotonic = monotonic
        self._wall = wall
        self._fault = fault

    def request_arrived(
        self,
        method: str,
        query: Mapping[str, str],
        remote: str | None,
        traceparent: str | None,
        remote_port: int | None = None,
    ) -> RequestInfo:
        at = self._monotonic()
        info: RequestInfo = _tuple_new(
            _REQUEST_INFO, (method, query, remote, traceparent, at, remote_port)
        )
        return info

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        try:
            thinning = self._thinning
            if thinning is not None and _left_out(thinning, info):
                thinning.unsampled_body(_C2S, body)
                return
            reader = self._reader
            if reader is not None:
                reader.request(info, body, self._monotonic(), self._wall())
                return
            self._on_request(info, body, self._monotonic(), self._wall())
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
            thinning = self._thinning
            if thinning is not None and _left_out(thinning, info):
                # a body in reply to a GET is traffic, the "ok" answering a POST is not
                if info.method.upper() == "GET":
                    thinning.unsampled_body(_S2C, body)
                return
            reader = self._reader
            if reader is not None:
                reader.reply(info, status, content_encoding, body, self._monotonic(), self._wall())
                return
            self._on_reply(info, status, content_encoding, body, self._monotonic(), self._wall())
        except Exception:
            self._fault("polling_response")


def _left_out(thinning: SessionSampler, info: RequestInfo) -> bool:
    """The request belongs to a session that session sampling leaves out."""
    sid = query_value(info.query, "sid")
    return sid is not None and sid != "" and not thinning.keeps(sid)


def _nothing() -> None:
    pass


def _discard(records: Sequence[Record]) -> None:
    pass


class RecordIntake(RecordTarget):
    """The engine's emit (see the module docstring).  Made before the engine, joined to the
    record hub by :meth:`attach`; :attr:`pending` is the hub's queue (it takes the list and
    leaves an empty one at each flush)."""

    def __init__(self) -> None:
        self.pending: list[Record] = []
        self.deferred = False  # False: each record is fanned out at once
        self.max_deferred = 1024  # queued records that force a flush (the hub sets it)
        self._timelines: Timelines | None = None
        self._fan_out: Callable[[Sequence[Record]], None] = _discard
        self._arm: Callable[[], None] = _nothing
        self._flush: Callable[[], None] = _nothing

    def attach(
        self,
        timelines: Timelines,
        fan_out: Callable[[Sequence[Record]], None],
        arm: Callable[[], None],
        flush: Callable[[], None],
    ) -> None:
        """``fan_out``: records past the timelines; ``arm``: the queue just stopped being
        empty (schedule a flush); ``flush``: run the queue now."""
        self._timelines = timelines
        self._fan_out = fan_out
        self._arm = arm
        self._flush = flush

    def record(self, record: Record) -> None:
        timelines = self._timelines
        if timelines is not None:
            sid = record.session.session_id
            tl = timelines.live.get(sid)
            if tl is not None:
                tl.record(record)
            else:
                timelines.add_record(sid, record)  # a session just retired (its close)
        if not self.deferred:
            self._fan_out((record,))
            return
        pending = self.pending
        pending.append(record)
        if len(pending) == 1:
            self._arm()
        elif len(pending) >= self.max_deferred:
            self._flush()

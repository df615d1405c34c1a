"""Per-session timelines: each session's recent packets and records, bounded.

Owns the live timelines (one bounded :class:`~.ring.TimelineRing` per tracked session, at
most one per allowed session, the oldest dropped and counted) and the timelines of recently
closed sessions (frozen at the close, a bounded number kept).  Per packet the ring stores the
packet's facts in place; :class:`PacketView` values are built only when a timeline is asked
for.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass

from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.runtime.ring import TimelineItem, TimelineRing
from socketio_trace_proxy.tracking.views import SessionView


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


@dataclass(frozen=True, slots=True)
class SessionTimeline:
    """A session's recent packets and records, oldest first (bounded)."""

    session_id: str
    session: SessionView | None  # None once the session has closed
    items: tuple[PacketView | Record, ...]


def _view(item: TimelineItem) -> PacketView | Record:
    if isinstance(item, tuple):
        wall, direction, transport, ptype, namespace, event, ack_id, size = item
        return PacketView(
            wall, direction.value, transport.value, ptype.name, namespace, event, ack_id, size
        )
    return item


class Timelines:
    """See the module docstring.  ``live`` is read directly on the per-packet path."""

    def __init__(self, per_session: int, max_live: int, keep_closed: int, drops: Counter[str]):
        self.live: dict[str, TimelineRing] = {}  # oldest first; a plain dict: read per packet
        self._closed: OrderedDict[str, tuple[TimelineItem, ...]] = OrderedDict()
        self._per_session = per_session
        self._max_live = max_live
        self._keep_closed = keep_closed
        self._drops = drops

    def open(self, sid: str) -> TimelineRing:
        """The live timeline of ``sid``, started if it has none."""
        tl = self.live.get(sid)
        if tl is None:
            while len(self.live) >= self._max_live:
                del self.live[next(iter(self.live))]
                self._drops["timelines"] += 1
            tl = self.live[sid] = TimelineRing(self._per_session)
        return tl

    def retire(self, sid: str) -> None:
        """``sid`` closed: freeze its timeline (if closed timelines are kept)."""
        tl = self.live.pop(sid, None)
        if tl is None or self._keep_closed == 0:
            return
        self._closed[sid] = tuple(tl.items())
        while len(self._closed) > self._keep_closed:
            self._closed.popitem(last=False)

    def add_record(self, sid: str, record: Record) -> None:
        tl = self.live.get(sid)
        if tl is not None:
            tl.record(record)
        elif sid in self._closed:  # records of a session just retired (its close)
            kept = (*self._closed[sid], record)
            self._closed[sid] = kept[-self._per_session :]

    def get(self, sid: str, view: SessionView | None) -> SessionTimeline | None:
        live = self.live.get(sid)
        if live is not None:
            return SessionTimeline(sid, view, tuple(map(_view, live.items())))
        closed = self._closed.get(sid)
        if closed is not None:
            return SessionTimeline(sid, None, tuple(map(_view, closed)))
        return None if view is None else SessionTimeline(sid, view, ())

    def __bool__(self) -> bool:
        return bool(self.live)

    def sizes(self) -> dict[str, int]:
        return {"timelines": len(self.live), "closed_timelines": len(self._closed)}

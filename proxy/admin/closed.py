"""Recently closed sessions, kept browsable after the tracker's session table forgets them.

A session's CLOSE lifecycle record reaches the admin listener through the tracker's record
subscription; :meth:`ClosedSessions.on_record` only queues it (constant work on the record
path).  :meth:`ClosedSessions.settle`, run before each live-stream tick and every query,
turns queued closes into :class:`ClosedSession` entries: the close (time, reason, any close
code or initiator the record carries) and what the session's kept timeline still tells
(handshake time and transport, upgrade, namespaces; lifecycle records the timeline lacks
are taken from the activity ring, one pass per batch), or the tracker's last view of the
session when its timeline keeps one.  The newest ``max_entries`` are kept; older ones are
forgotten and counted.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from socketio_trace_proxy.proxy.admin.activity import lifecycles_in_ring, merged_timeline
from socketio_trace_proxy.proxy.admin.serialize import JSON, to_jsonable
from socketio_trace_proxy.proxy.admin.source import TrackerSource
from socketio_trace_proxy.tracking.records import LifecycleKind, LifecycleRecord
from socketio_trace_proxy.tracking.views import SessionView

_UNKNOWN_VIEW: dict[str, JSON] = {
    "remote": None,
    "pending": 0,
    "messages_in": None,
    "messages_out": None,
    "bytes_in": None,
    "bytes_out": None,
    "heartbeat_rtt_s": None,
}


@dataclass(frozen=True, slots=True)
class ClosedSession:
    session_id: str
    close: LifecycleRecord
    opened_wall: float | None  # None: the handshake left the kept timeline
    upgraded: bool | None  # None: not known from what was kept
    namespaces: tuple[str, ...]
    view: SessionView | None  # the tracker's last view, when its timeline keeps one

    @property
    def closed_wall(self) -> float:
        return self.close.start_wall

    @property
    def reason(self) -> str | None:
        return self.close.detail or self.close.error

    def matches(self, query: str | None, transport: str | None) -> bool:
        """``query``: a lower-cased id prefix/substring or address (see ``session_query``)."""
        if transport and self.close.transport.value != transport:
            return False
        if not query:
            return True
        remote = self.view.remote if self.view is not None else None
        return query in self.session_id.lower() or (remote is not None and query in remote)

    def json(self) -> JSON:
        """The shape of an open session's view, plus ``state``, ``closed_wall``,
        ``close_reason``, ``close_ok`` and the whole ``close`` record; unknowns are null."""
        base = to_jsonable(self.view) if self.view is not None else dict(_UNKNOWN_VIEW)
        base.update(
            {
                "session_id": self.session_id,
                "state": "closed",
                "transport": self.close.transport.value,
                "opened_wall": self.opened_wall,
                "upgraded": self.upgraded,
                "namespaces": list(self.namespaces),
                "pending": 0,
                "closed_wall": self.closed_wall,
                "close_reason": self.reason,
                "close_ok": self.close.ok,
                "close": to_jsonable(self.close),
            }
        )
        return base


def summarize(
    close: LifecycleRecord, timeline: object, ring: Sequence[LifecycleRecord] = ()
) -> ClosedSession:
    """A closed session from its CLOSE record, the tracker's timeline for it (an object with
    ``session`` and ``items``, as ``Tracker.get_session_timeline`` returns; or None) and its
    lifecycle records still in the activity ring."""
    items = merged_timeline(getattr(timeline, "items", None) or (), ring)
    view = getattr(timeline, "session", None)
    opened: float | None = None
    upgraded: bool | None = None
    namespaces: list[str] = []
    for item in items:
        if not isinstance(item, LifecycleRecord):
            continue
        if item.kind is LifecycleKind.HANDSHAKE:
            opened = item.start_wall
            upgraded = bool(upgraded)
        elif item.kind is LifecycleKind.UPGRADE:
            upgraded = True
        elif (
            item.kind is LifecycleKind.NAMESPACE_CONNECT
            and item.ok
            and item.namespace
            and item.namespace not in namespaces
        ):
            namespaces.append(item.namespace)
    if isinstance(view, SessionView):
        opened = view.opened_wall
        upgraded = view.upgraded
        namespaces = list(view.namespaces)
    else:
        view = None
    return ClosedSession(close.session.session_id, close, opened, upgraded, tuple(namespaces), view)


class ClosedSessions:
    """The newest ``max_entries`` closed sessions (0: none kept)."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._waiting: deque[LifecycleRecord] = deque(maxlen=max(1, max_entries))
        self._entries: OrderedDict[str, ClosedSession] = OrderedDict()
        self._settling = asyncio.Lock()
        self.evicted = 0

    def on_record(self, record: object) -> None:
        """Called with every record: a CLOSE is queued for :meth:`settle`."""
        if self._max and isinstance(record, LifecycleRecord) and record.kind is LifecycleKind.CLOSE:
            if len(self._waiting) == self._waiting.maxlen:
                self.evicted += 1  # it would have been the oldest entry anyway
            self._waiting.append(record)

    async def settle(self, source: TrackerSource) -> None:
        """Summarize the queued closes (the tracker still holds their closed timelines).
        One at a time: a query waits for a summary under way rather than miss it."""
        async with self._settling:
            if not self._waiting:
                return
            closes = list(self._waiting)
            self._waiting.clear()
            ring = await lifecycles_in_ring(source, {c.session.session_id for c in closes})
            for close in closes:
                self._add(summarize(close, _timeline(source, close), ring.get(_sid(close), ())))

    def _add(self, entry: ClosedSession) -> None:
        self._entries.pop(entry.session_id, None)
        self._entries[entry.session_id] = entry
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
            self.evicted += 1

    def newest_first(self) -> list[ClosedSession]:
        return list(reversed(self._entries.values()))

    def get(self, session_id: str) -> ClosedSession | None:
        return self._entries.get(session_id)

    def __len__(self) -> int:
        return len(self._entries)


def _sid(close: LifecycleRecord) -> str:
    return close.session.session_id


def _timeline(source: TrackerSource, close: LifecycleRecord) -> object:
    try:
        return source.get_session_timeline(_sid(close))
    except KeyError:
        return None

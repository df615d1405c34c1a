"""What ``socketio-trace-proxy demo`` adds: print every decoded packet; fan out observers.

:class:`EventPrinter` prints one line per Engine.IO session event and Socket.IO packet the
tracker decodes, so a newcomer sees the decoded traffic next to the tracker's pair lines.
:class:`TeeObserver` hands the same raw traffic to several observers.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TextIO

from socketio_trace_proxy.tracking.events import (
    DecodeFailed,
    HeartbeatObserved,
    PacketObserved,
    SessionClosed,
    SessionEvent,
    SessionOpened,
    SessionUpgraded,
)
from socketio_trace_proxy.tracking.observer import RequestInfo, TrafficObserver, WebSocketObserver
from socketio_trace_proxy.tracking.traffic import Direction

_ARROW = {Direction.CLIENT_TO_SERVER: "C->S", Direction.SERVER_TO_CLIENT: "S->C"}


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_event(event: SessionEvent) -> str | None:
    """One human-readable line for a session event (``None``: not worth printing)."""
    if isinstance(event, PacketObserved):
        p = event.packet
        parts = [
            _ARROW[event.direction],
            event.transport.value,
            event.session_id[:8],
            p.type.name,
            p.namespace,
        ]
        if p.event is not None:
            parts.append(p.event)
        if p.ack_id is not None:
            parts.append(f"ack={p.ack_id}")
        if p.attachments:
            parts.append(f"+{len(p.attachments)} binary")
        parts.append(_excerpt(p.payload))
        return " ".join(parts)
    if isinstance(event, SessionOpened):
        return f"open {event.session_id[:8]} {event.transport.value} EIO={event.eio_version}"
    if isinstance(event, SessionUpgraded):
        return f"upgrade {event.session_id[:8]} -> websocket"
    if isinstance(event, SessionClosed):
        return f"close {event.session_id[:8]} ({event.reason.value})"
    if isinstance(event, DecodeFailed):
        return f"undecodable {_ARROW[event.direction]} {event.transport.value}: {event.reason}"
    if isinstance(event, HeartbeatObserved):
        return None
    return None


class EventPrinter:
    """Prints one line per session event the tracker decodes (the demo's traffic view).

    Pass it as ``Tracker(on_session_event=...)``: the packets are decoded once, by the
    tracker itself.
    """

    def __init__(self, out: TextIO | None = None, prefix: str = "[traffic] ") -> None:
        self._out = out if out is not None else sys.stdout
        self._prefix = prefix

    def __call__(self, event: SessionEvent) -> None:
        line = format_event(event)
        if line is not None:
            print(self._prefix + line, file=self._out, flush=True)


class _TeeLeg:
    __slots__ = ("_legs",)

    def __init__(self, legs: Sequence[WebSocketObserver]) -> None:
        self._legs = legs

    def message(self, direction: Direction, data: str | bytes) -> None:
        for leg in self._legs:
            leg.message(direction, data)

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        for leg in self._legs:
            leg.closed(initiator, code)


class TeeObserver:
    """Hands every observation to each of ``observers`` in order.

    An observer that can be idle (the recorder: ``active`` false, and ``watch(callback)``
    to hear when that changes) is left out while it is idle.  With one observer left the
    tee steps aside: that observer's bound methods replace the tee's own on the instance,
    so the relay calls it directly and an idle recorder costs nothing per message.
    """

    def __init__(self, observers: Sequence[TrafficObserver]) -> None:
        self._observers = tuple(observers)
        self._live = self._observers
        self._lock = threading.Lock()  # a recorder starts and stops off the event loop
        for observer in self._observers:
            watch = getattr(observer, "watch", None)
            if watch is not None:
                watch(self._rewire)
        self._rewire()

    def _rewire(self) -> None:
        with self._lock:
            live = tuple(o for o in self._observers if getattr(o, "active", True))
            direct = vars(self)
            if len(live) == 1:
                direct.update({name: getattr(live[0], name) for name in _CALLS})
            else:
                for name in _CALLS:
                    direct.pop(name, None)
            self._live = live

    def request_arrived(
        self,
        method: str,
        query: Mapping[str, str],
        remote: str | None,
        traceparent: str | None,
        remote_port: int | None = None,
    ) -> RequestInfo:
        """Every observer is told; the request's info is the first observer's (its arrival
        stamp is on that observer's clock)."""
        infos = [
            o.request_arrived(method, query, remote, traceparent, remote_port) for o in self._live
        ]
        return (
            infos[0]
            if infos
            else RequestInfo(method, query, remote, traceparent, None, remote_port)
        )

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        for o in self._live:
            o.polling_request(info, body)

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        for o in self._live:
            o.polling_response(info, status, content_type, content_encoding, body)

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver | None:
        legs = tuple(w for o in self._live if (w := o.websocket_opened(info)) is not None)
        if len(legs) <= 1:
            return legs[0] if legs else None
        return _TeeLeg(legs)


_CALLS = ("request_arrived", "polling_request", "polling_response", "websocket_opened")

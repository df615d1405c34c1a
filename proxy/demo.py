"""Observers used by ``socketio-trace-proxy demo``: print every decoded packet, fan out.

:class:`PacketPrinter` feeds the relay's raw traffic through the sans-IO session table
(:class:`tracking.sessions.SessionTable`) and prints one line per Engine.IO session event
and Socket.IO packet, so a newcomer sees the decoded traffic next to the tracker's pair
lines.  :class:`TeeObserver` hands the same traffic to several observers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from tracking.events import (
    DecodeFailed,
    HeartbeatObserved,
    PacketObserved,
    SessionClosed,
    SessionEvent,
    SessionOpened,
    SessionUpgraded,
)
from tracking.observer import RequestInfo, TrafficObserver, WebSocketObserver
from tracking.sessions import SessionTable, WebSocketLeg
from tracking.wire.packets import Direction

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


class _PrinterLeg:
    __slots__ = ("_leg", "_table")

    def __init__(self, table: SessionTable, leg: WebSocketLeg) -> None:
        self._table = table
        self._leg = leg

    def message(self, direction: Direction, data: str | bytes) -> None:
        self._table.websocket_message(self._leg, direction, data, time.monotonic(), time.time())

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        self._table.websocket_closed(self._leg, initiator, code, time.monotonic(), time.time())


class PacketPrinter:
    """A :class:`TrafficObserver` printing decoded packets, one line each (demo only)."""

    def __init__(self, out: TextIO | None = None, prefix: str = "[traffic] ") -> None:
        self._out = out if out is not None else sys.stdout
        self._prefix = prefix
        self.table = SessionTable(self._print, max_sessions=1000)

    def _print(self, event: SessionEvent) -> None:
        line = format_event(event)
        if line is not None:
            print(self._prefix + line, file=self._out, flush=True)

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        self.table.polling_request(info, body, time.monotonic(), time.time())

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        self.table.polling_response(
            info, status, content_type, content_encoding, body, time.monotonic(), time.time()
        )

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver:
        return _PrinterLeg(
            self.table, self.table.websocket_opened(info, time.monotonic(), time.time())
        )


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
    """Hands every observation to each of ``observers`` in order."""

    def __init__(self, observers: Sequence[TrafficObserver]) -> None:
        self._observers = tuple(observers)

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        for o in self._observers:
            o.polling_request(info, body)

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        for o in self._observers:
            o.polling_response(info, status, content_type, content_encoding, body)

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver:
        return _TeeLeg(tuple(o.websocket_opened(info) for o in self._observers))

"""What the session table is told: one immutable value per relayed observation.

The tracker's driver reads its clock once per observation and stamps it with ``at``
(monotonic seconds, for durations) and ``wall`` (Unix epoch seconds, for record
timestamps); the session table passes that stamp down to every event the observation
causes and keeps no time of its own.  Per HTTP request or WebSocket the observation is a
``typing.NamedTuple`` below; a relayed WebSocket message, the one observation made per
frame, passes its direction, data and stamp as arguments of
:meth:`SessionTable.websocket_message` instead (a value per message cost about 0.2 us,
some 10 % of decoding the frame, measured).
"""

from __future__ import annotations

from typing import NamedTuple

from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.traffic import Direction


class PollingRequest(NamedTuple):
    """A long-polling POST body (client to server) was forwarded upstream."""

    info: RequestInfo
    body: bytes
    at: float
    wall: float


class PollingReply(NamedTuple):
    """A long-polling response was forwarded to the client (``body`` as the upstream sent
    it, still compressed when ``content_encoding`` says so)."""

    info: RequestInfo
    status: int
    content_encoding: str | None
    body: bytes
    at: float
    wall: float


class WebSocketOpened(NamedTuple):
    """A WebSocket was accepted on both legs (the upstream answered 101)."""

    info: RequestInfo
    at: float
    wall: float


class WebSocketClosed(NamedTuple):
    """A WebSocket ended: ``initiator`` closed first (``None``: the proxy gave up on a
    vanished leg), with close ``code`` when there was one."""

    initiator: Direction | None
    code: int | None
    at: float
    wall: float

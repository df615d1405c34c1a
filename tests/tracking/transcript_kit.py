"""Transcript-style tracker tests: traffic in, the complete ordered list of records out.

:class:`Transcript` drives a real :class:`Tracker` (session table, correlation engine, hub)
through the relay-facing observer API on a fake clock, and renders every record the sink
received as one line, so that a test compares the whole list: what it expects, in order,
and nothing else.  Times are seconds on the fake clock (wall time minus ``WALL0``).
"""

from __future__ import annotations

import json
from typing import Any

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.ids import SequentialIds
from socketio_trace_proxy.tracking.observer import RequestInfo, WebSocketObserver
from socketio_trace_proxy.tracking.records import (
    LifecycleRecord,
    MessageRecord,
    PairRecord,
    Record,
)
from socketio_trace_proxy.tracking.runtime import Tracker
from socketio_trace_proxy.tracking.traffic import Direction
from tests.tracking.runtime_kit import WALL0, FakeClock, RecordingSink

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


def open_packet(sid: str, interval_ms: int = 25000, timeout_ms: int = 20000) -> str:
    """The server's Engine.IO OPEN packet naming ``sid``."""
    handshake = {"sid": sid, "upgrades": [], "pingInterval": interval_ms, "pingTimeout": timeout_ms}
    return "0" + json.dumps(handshake)


def render(record: Record) -> str:
    """One line per record, with every field a transcript asserts on."""
    if isinstance(record, PairRecord):
        parts = [
            f"{record.start_wall - WALL0:.3f} pair {record.operation}",
            record.outcome.value
            if record.error_type in (None, record.outcome.value)
            else f"{record.outcome.value}({record.error_type})",
            f"{record.duration_s:.3f}s",
            f"{record.request_event} -> {record.response_event}",
        ]
        if record.match_key is not None:
            parts.append(f"key={record.match_key}")
        if record.parent_span_id is not None:
            parts.append(f"parent={record.parent_span_id}")
        return " ".join(parts)
    if isinstance(record, MessageRecord):
        return f"{record.wall - WALL0:.3f} message {record.direction.value} {record.event}"
    return _render_lifecycle(record)


def _render_lifecycle(record: LifecycleRecord) -> str:
    parts = [
        f"{record.start_wall - WALL0:.3f} {record.kind.value} {record.session.session_id}",
        "ok" if record.ok else f"error({record.error})",
        f"{record.duration_s:.3f}s",
    ]
    if record.namespace is not None:
        parts.append(record.namespace)
    if record.detail is not None:
        parts.append(record.detail)
    if record.close_code is not None:
        parts.append(f"code={record.close_code}")
    if record.close_initiator is not None:
        parts.append(f"by={record.close_initiator.value}")
    if record.parent_span_id is not None and record.span_id == record.session.span_id:
        parts.append(f"parent={record.parent_span_id}")
    return " ".join(parts)


class Transcript:
    """A tracker on a fake clock, fed as the relay feeds it (see the module docstring)."""

    def __init__(self, **tracking: Any) -> None:
        self.clock = FakeClock(0.0)
        self.sink = RecordingSink()
        self.tracker = Tracker(
            TrackingSettings.model_validate(tracking),
            [self.sink],
            clock=self.clock,
            ids=SequentialIds(),
        )

    def at(self, t: float) -> None:
        """Move the clock to ``t`` (the timer has not run: call :meth:`tick` for that)."""
        self.clock.set(t)

    def tick(self) -> None:
        self.tracker.tick()

    def request(
        self,
        method: str,
        sid: str | None = None,
        *,
        transport: str = "polling",
        traceparent: str | None = None,
        arrived: float | None = None,
    ) -> RequestInfo:
        """A request head arriving (at ``arrived``, or now), as the relay reports it."""
        query = {"EIO": "4", "transport": transport, **({"sid": sid} if sid else {})}
        now = self.clock.mono
        self.clock.set(now if arrived is None else arrived)
        info = self.tracker.request_arrived(method, query, "127.0.0.1", traceparent)
        self.clock.set(now)
        return info

    def get(self, sid: str | None, body: str, *, status: int = 200, **kw: Any) -> None:
        """A polling GET answered now with ``body``."""
        info = self.request("GET", sid, **kw)
        self.tracker.polling_response(info, status, "text/plain", None, body.encode())

    def post(self, sid: str, body: str, *, status: int = 200, **kw: Any) -> None:
        """A polling POST of ``body``, forwarded and answered now."""
        info = self.request("POST", sid, **kw)
        self.tracker.polling_request(info, body.encode())
        answer = b"ok" if status == 200 else b'{"code":1,"message":"Session ID unknown"}'
        self.tracker.polling_response(info, status, "text/html", None, answer)

    def websocket(self, sid: str | None = None, **kw: Any) -> WebSocketObserver:
        """A WebSocket accepted now (its upgrade request arrived at ``arrived``, or now)."""
        return self.tracker.websocket_opened(self.request("GET", sid, transport="websocket", **kw))

    def lines(self) -> list[str]:
        return [render(r) for r in self.sink.records]

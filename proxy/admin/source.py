"""Exactly what the admin listener reads from the tracker and the relay.

The composition root hands :func:`proxy.admin.build_admin_app` a :class:`MonitorSource`;
:class:`TrackerMonitorSource` builds one from the tracker (``tracking.runtime.Tracker``)
and a getter for the relay's counters, :class:`RelayOnlySource` one for a plain relay
(tracking off: only the relay's counters, ``tracking_enabled`` false).  Tests use fakes fed
with real views and records.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.sink import SinkHealth
from socketio_trace_proxy.tracking.views import (
    ActivityItem,
    LatencySummary,
    MetricsSnapshot,
    PendingView,
    SessionView,
)

RelayCounters = Mapping[str, float | Mapping[str, float]]
"""Counter name -> value, or -> {label value -> value} for per-direction/per-kind counters."""


class TrackerSource(Protocol):
    """The tracker's query API, as the admin listener uses it."""

    def get_metrics(self) -> MetricsSnapshot: ...

    def get_pending_requests(self) -> Sequence[PendingView]: ...

    def get_sessions(self) -> Sequence[SessionView]: ...

    def get_session_timeline(self, session_id: str) -> object:
        """That session's recent packets and pairs (any structure of views/records), or
        ``None`` / ``KeyError`` when the session is unknown."""

    def recent_activity(self, since_seq: int, limit: int) -> Sequence[ActivityItem]:
        """Items with ``seq > since_seq``, at most ``limit`` of them."""

    def subscribe(self, callback: Callable[[Record], None]) -> Callable[[], None]:
        """Calls ``callback`` with every new record; returns the unsubscribe function."""

    def subscribe_batches(self, callback: Callable[[Sequence[Record]], None]) -> Callable[[], None]:
        """Calls ``callback`` with the new records, several at a time, in order."""

    def sink_health(self) -> Sequence[SinkHealth]: ...


class MonitorSource(TrackerSource, Protocol):
    """The tracker's API plus the relay's own counters.  With ``tracking_enabled`` false
    the tracker's part answers empty and the admin listener says tracking is off."""

    tracking_enabled: bool

    def relay_counters(self) -> RelayCounters: ...


def flatten_counters(stats: object) -> dict[str, float | dict[str, float]]:
    """Numeric fields of a stats dataclass (or mapping), and mappings of numbers, as counters.

    Anything else (strings, nested objects) is left out.
    """
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        items = [(f.name, getattr(stats, f.name)) for f in dataclasses.fields(stats)]
    elif isinstance(stats, Mapping):
        items = [(str(k), v) for k, v in stats.items()]
    else:
        return {}
    out: dict[str, float | dict[str, float]] = {}
    for name, value in items:
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, int | float):
            if math.isfinite(value):
                out[name] = float(value)
        elif isinstance(value, Mapping):
            sub = {
                str(getattr(k, "value", k)): float(v)
                for k, v in value.items()
                if isinstance(v, int | float) and math.isfinite(v)
            }
            if sub:
                out[name] = sub
    return out


class TrackerMonitorSource:
    """A :class:`MonitorSource` over a tracker and the relay's stats getter.

    ``relay_stats`` returns the relay's frozen stats view (e.g. ``RelayServer.stats``, a
    ``RelayStats``); ``None`` when there is no relay to report on.
    """

    tracking_enabled = True

    def __init__(
        self, tracker: TrackerSource, relay_stats: Callable[[], object] | None = None
    ) -> None:
        self._tracker = tracker
        self._relay_stats = relay_stats

    def get_metrics(self) -> MetricsSnapshot:
        return self._tracker.get_metrics()

    def get_pending_requests(self) -> Sequence[PendingView]:
        return self._tracker.get_pending_requests()

    def get_sessions(self) -> Sequence[SessionView]:
        return self._tracker.get_sessions()

    def get_session_timeline(self, session_id: str) -> object:
        return self._tracker.get_session_timeline(session_id)

    def recent_activity(self, since_seq: int, limit: int) -> Sequence[ActivityItem]:
        return self._tracker.recent_activity(since_seq=since_seq, limit=limit)

    def subscribe(self, callback: Callable[[Record], None]) -> Callable[[], None]:
        return self._tracker.subscribe(callback)

    def subscribe_batches(self, callback: Callable[[Sequence[Record]], None]) -> Callable[[], None]:
        return self._tracker.subscribe_batches(callback)

    def sink_health(self) -> Sequence[SinkHealth]:
        return self._tracker.sink_health()

    def relay_counters(self) -> RelayCounters:
        if self._relay_stats is None:
            return {}
        return flatten_counters(self._relay_stats())


_NO_LATENCY = LatencySummary(count=0, p50_s=None, p95_s=None, p99_s=None, max_s=None)
_NO_METRICS = MetricsSnapshot(
    rules=(),
    events=(),
    pending=0,
    sessions_by_transport={},
    messages_by_direction={},
    bytes_by_direction={},
    heartbeat_rtt=_NO_LATENCY,
    upgrade_duration=_NO_LATENCY,
    decode_errors=0,
    evictions={},
    drops={},
)


class RelayOnlySource:
    """A :class:`MonitorSource` for a plain relay (``tracking.enabled: false``): the relay's
    counters, and an empty tracker part (no records, sessions, pending requests or sinks)."""

    tracking_enabled = False

    def __init__(self, relay_stats: Callable[[], object]) -> None:
        self._relay_stats = relay_stats

    def get_metrics(self) -> MetricsSnapshot:
        return _NO_METRICS

    def get_pending_requests(self) -> Sequence[PendingView]:
        return ()

    def get_sessions(self) -> Sequence[SessionView]:
        return ()

    def get_session_timeline(self, session_id: str) -> object:
        return None

    def recent_activity(self, since_seq: int, limit: int) -> Sequence[ActivityItem]:
        return ()

    def subscribe(self, callback: Callable[[Record], None]) -> Callable[[], None]:
        return _nothing

    def subscribe_batches(self, callback: Callable[[Sequence[Record]], None]) -> Callable[[], None]:
        return _nothing

    def sink_health(self) -> Sequence[SinkHealth]:
        return ()

    def relay_counters(self) -> RelayCounters:
        return flatten_counters(self._relay_stats())


def _nothing() -> None:
    return None

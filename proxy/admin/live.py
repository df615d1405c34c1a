"""The live stream behind the dashboard: one aggregated update per interval, per client.

A single ticker builds each update once (metrics, rates, the oldest pending requests, a
latency point per rule, sink and relay health) and adds, per client, the newest activity
items matching that client's filter.  Each client has a bounded queue of updates; a client
that reads too slowly loses its oldest updates, which are counted (and reported to it).
Finished requests reach :meth:`LiveHub.on_records` through the tracker's batch subscription
(one call per tracker flush, not per record) and only touch bounded per-interval buckets; a
session's close is queued for the closed-session table, summarized before the next tick.
Each activity item is encoded once per tick, whatever the number of clients.  With tracking
off the updates carry the relay's counters only (``tracking`` false).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.activity import scan_activity
from socketio_trace_proxy.proxy.admin.closed import ClosedSessions
from socketio_trace_proxy.proxy.admin.metrics import DurationHistograms
from socketio_trace_proxy.proxy.admin.serialize import (
    JSON,
    ActivityFilter,
    filter_items,
    item_json,
    item_text,
    to_jsonable,
)
from socketio_trace_proxy.proxy.admin.source import MonitorSource
from socketio_trace_proxy.tracking.metrics import LatencyWindow
from socketio_trace_proxy.tracking.records import PairRecord
from socketio_trace_proxy.tracking.views import ActivityItem, MetricsSnapshot

log = logging.getLogger(__name__)

LATENCY_HISTORY_POINTS = 600
LATENCY_SAMPLES_PER_RULE = 512
LATENCY_RULES_PER_POINT = 40
TOP_EVENTS = 50
RECENT_TIMEOUTS = 20


@dataclass(frozen=True, slots=True)
class StreamCounters:
    """The live stream's counters (part of the admin listener's counters)."""

    stream_clients: int
    stream_updates_dropped: int
    stream_clients_refused: int
    stream_tick_errors: int
    subscription_errors: int
    histogram_series_folded: int
    closed_sessions: int
    closed_sessions_evicted: int


@dataclass(slots=True, eq=False)  # identity: clients live in a set
class LiveClient:
    filter: ActivityFilter
    queue: deque[str]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    closed: bool = False

    def push(self, build: Callable[[int], str]) -> bool:
        """Queue one update built with the client's drop count (including a drop this push
        causes); returns False when the oldest queued update had to make room."""
        full = len(self.queue) == self.queue.maxlen
        if full:
            self.dropped += 1
        self.queue.append(build(self.dropped))
        self.wake.set()
        return not full


def _finish_update(head: str, dropped: int) -> str:
    return f'{head}"dropped_updates":{dropped}}}'


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class LiveHub:
    def __init__(
        self,
        source: MonitorSource,
        settings: AdminSettings,
        histograms: DurationHistograms,
        clock: Callable[[], float] = time.time,
        closed: ClosedSessions | None = None,
    ) -> None:
        self._source = source
        self._settings = settings
        self._histograms = histograms
        self._clock = clock
        self.closed = closed if closed is not None else ClosedSessions(settings.closed_sessions)
        self._clients: set[LiveClient] = set()
        self._history: deque[JSON] = deque(maxlen=LATENCY_HISTORY_POINTS)
        self._timeouts: deque[PairRecord] = deque(maxlen=RECENT_TIMEOUTS)
        self._rng = random.Random(0)
        # Each finished request's share of the stream, taken in compiled code.
        self._latency = LatencyWindow(
            histograms, LATENCY_SAMPLES_PER_RULE, self._rng.random, self._timeouts
        )
        self._last_seq: int | None = None  # None: re-read the ring's end before streaming
        self._prev_totals: tuple[float, dict[str, int], dict[str, int]] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.updates_dropped = 0
        self.clients_refused = 0
        self.subscription_errors = 0
        self.tick_errors = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._source.tracking_enabled:
            self._unsubscribe = self._source.subscribe_batches(self.on_records)
        self._task = asyncio.create_task(self._run(), name="admin-live-hub")

    async def stop(self) -> None:
        self.close_clients()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def close_clients(self) -> None:
        for client in self._clients:
            client.closed = True
            client.wake.set()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.stream_interval_s)
            try:
                await self.closed.settle(self._source)
                self.tick()
            except Exception:  # a bad snapshot must not end the stream for good
                self.tick_errors += 1
                if self.tick_errors == 1:
                    log.exception("admin live stream: building an update failed (counted)")

    # -- records (called by the tracker for every record) ------------------------------

    def on_record(self, record: object) -> None:
        if isinstance(record, ActivityItem):
            record = record.record
        self.on_records((record,))

    def on_records(self, records: Sequence[object]) -> None:
        """The records of one tracker flush, in order (one call per flush, at most
        ``FLUSH_INTERVAL_S`` apart, not one per record)."""
        self.subscription_errors += self._latency.take(records, self.closed.on_record)

    # -- clients ---------------------------------------------------------------------

    def connect(self, flt: ActivityFilter) -> LiveClient | None:
        if len(self._clients) >= self._settings.max_stream_clients:
            self.clients_refused += 1
            return None
        client = LiveClient(flt, deque(maxlen=self._settings.stream_client_buffer))
        self._clients.add(client)
        return client

    def disconnect(self, client: LiveClient) -> None:
        client.closed = True
        self._clients.discard(client)
        if not self._clients:
            self._last_seq = None

    def hello(self, client: LiveClient) -> str:
        """The first message: recent matching activity and the latency history."""
        items, _ = scan_activity(self._source, 0)
        matching = filter_items(items, client.filter)[-self._settings.stream_activity_items :]
        if self._last_seq is None:  # the first client: updates continue where this ends
            self._last_seq = items[-1].seq if items else 0
        return json.dumps(
            {
                "type": "hello",
                "t": self._clock(),
                "tracking": self._source.tracking_enabled,
                "interval_s": self._settings.stream_interval_s,
                "latency_history": list(self._history),
                "activity": {
                    "items": [item_json(i) for i in matching],
                    "last_seq": items[-1].seq if items else 0,
                },
            },
            separators=(",", ":"),
        )

    def counters(self) -> StreamCounters:
        return StreamCounters(
            stream_clients=len(self._clients),
            stream_updates_dropped=self.updates_dropped,
            stream_clients_refused=self.clients_refused,
            stream_tick_errors=self.tick_errors,
            subscription_errors=self.subscription_errors,
            histogram_series_folded=self._histograms.folded,
            closed_sessions=len(self.closed),
            closed_sessions_evicted=self.closed.evicted,
        )

    # -- one update ------------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        point = self._roll_latency(now)
        if not self._clients:
            return
        if self._last_seq is None:
            items, _ = scan_activity(self._source, 0)
            self._last_seq = items[-1].seq if items else 0
        # Everything since the last update (the tracker's ring bounds it), so that clients
        # always see the newest items even when more arrived than they are sent.
        new_items, lost = scan_activity(self._source, self._last_seq)
        if new_items:
            self._last_seq = new_items[-1].seq
        shared = json.dumps(self._shared(now, point), separators=(",", ":"))
        encoded: dict[int, str] = {}  # seq -> JSON, each item encoded once per tick
        per_client_cap = self._settings.stream_activity_items
        for client in list(self._clients):
            matching = filter_items(new_items, client.filter)
            sent = matching[-per_client_cap:]
            head = (
                f'{{"type":"update","shared":{shared},"activity":{{"items":['
                f"{','.join(_encoded(i, encoded) for i in sent)}],"
                f'"skipped":{len(matching) - len(sent)},"lost":{lost},'
                f'"last_seq":{self._last_seq}}},'
            )
            if not client.push(functools.partial(_finish_update, head)):
                self.updates_dropped += 1

    def _roll_latency(self, now: float) -> JSON:
        buckets = self._latency.roll()
        ranked = sorted(buckets.items(), key=lambda kv: kv[1].count, reverse=True)
        rules: dict[str, JSON] = {}
        for rule, bucket in ranked[:LATENCY_RULES_PER_POINT]:
            samples = sorted(bucket.samples)
            rules[rule] = {
                "n": bucket.count,
                "errors": bucket.errors,
                "timeouts": bucket.timeouts,
                "p50": _percentile(samples, 0.5) if samples else None,
                "p95": _percentile(samples, 0.95) if samples else None,
                "max": samples[-1] if samples else None,
            }
        point = {"t": now, "rules": rules}
        self._history.append(point)
        return point

    def _shared(self, now: float, latency_point: JSON) -> JSON:
        common = {
            "t": now,
            "tracking": self._source.tracking_enabled,
            "relay": to_jsonable(self._source.relay_counters()),
            "admin": to_jsonable(self.counters()),
        }
        if not self._source.tracking_enabled:
            return common | {"metrics": None, "pending": {"total": 0, "items": []}}
        snap = self._source.get_metrics()
        pending = self._source.get_pending_requests()
        oldest = heapq.nsmallest(
            self._settings.stream_pending_items, pending, key=lambda p: p.started_wall
        )
        return common | {
            "metrics": _metrics_json(snap),
            "rates": self._rates(now, snap),
            "pending": {"total": len(pending), "items": to_jsonable(oldest)},
            "latency": latency_point,
            "timeouts": to_jsonable(list(self._timeouts)),
            "sinks": to_jsonable(self._source.sink_health()),
        }

    def _rates(self, now: float, snap: MetricsSnapshot) -> JSON:
        rates: dict[str, JSON] = {}
        totals = (now, dict(snap.messages_by_direction), dict(snap.bytes_by_direction))
        if self._prev_totals is not None and now > self._prev_totals[0]:
            dt = now - self._prev_totals[0]
            rates = {
                "messages_per_s": {
                    d: max(0.0, (n - self._prev_totals[1].get(d, 0)) / dt)
                    for d, n in totals[1].items()
                },
                "bytes_per_s": {
                    d: max(0.0, (n - self._prev_totals[2].get(d, 0)) / dt)
                    for d, n in totals[2].items()
                },
            }
        self._prev_totals = totals
        return rates


def _encoded(item: ActivityItem, memo: dict[int, str]) -> str:
    text = memo.get(item.seq)
    if text is None:
        text = memo[item.seq] = item_text(item)
    return text


def _metrics_json(snap: MetricsSnapshot) -> JSON:
    top_events = heapq.nlargest(TOP_EVENTS, snap.events, key=lambda e: e.messages)
    return {
        "rules": to_jsonable(snap.rules),
        "events": to_jsonable(top_events),
        "pending": snap.pending,
        "sessions_by_transport": snap.sessions_by_transport,
        "messages_by_direction": snap.messages_by_direction,
        "bytes_by_direction": snap.bytes_by_direction,
        "heartbeat_rtt": to_jsonable(snap.heartbeat_rtt),
        "upgrade_duration": to_jsonable(snap.upgrade_duration),
        "decode_errors": snap.decode_errors,
        "evictions": snap.evictions,
        "drops": snap.drops,
        "extra": snap.extra,
        "sampling": to_jsonable(snap.sampling) if snap.sampling is not None else None,
        # echo rules without their histogram buckets (Prometheus reads those)
        "echo": [
            {k: v for k, v in to_jsonable(e).items() if k not in ("buckets", "sum_s")}
            for e in snap.echo
        ],
    }

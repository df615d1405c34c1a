"""The live stream: aggregated updates, per-client filters, bounded per-client queues."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.live import LiveHub
from socketio_trace_proxy.proxy.admin.metrics import DurationHistograms
from socketio_trace_proxy.proxy.admin.serialize import ActivityFilter
from socketio_trace_proxy.tracking.records import Outcome
from socketio_trace_proxy.tracking.traffic import Direction
from tests.proxy.admin.conftest import MakeClient
from tests.proxy.admin.fakes import FakeSource, message, pair, pending_view, session_view


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_100.0

    def __call__(self) -> float:
        return self.now


def make_hub(source: FakeSource, **settings: Any) -> tuple[LiveHub, FakeClock]:
    clock = FakeClock()
    cfg = AdminSettings(**settings)
    hub = LiveHub(source, cfg, DurationHistograms(cfg.duration_buckets_s, 10), clock=clock)
    source.subscribe(hub.on_record)
    return hub, clock


def drain(hub_client: Any) -> list[dict[str, Any]]:
    out = [json.loads(m) for m in hub_client.queue]
    hub_client.queue.clear()
    return out


def test_update_carries_filtered_activity_per_client() -> None:
    source = FakeSource()
    hub, _ = make_hub(source, stream_activity_items=2)
    everything = hub.connect(ActivityFilter())
    timeouts = hub.connect(ActivityFilter(outcome="timeout"))
    assert everything is not None and timeouts is not None
    hub.tick()  # positions the cursor at the ring's end
    drain(everything), drain(timeouts)

    source.emit(message("s1", "terminal_output", Direction.SERVER_TO_CLIENT))
    source.emit(pair("s1", "create_terminal", outcome=Outcome.TIMEOUT, response=None))
    source.emit(pair("s1", "resize"))
    hub.tick()
    (upd,) = drain(everything)
    assert [i["seq"] for i in upd["activity"]["items"]] == [2, 3]  # newest two
    assert upd["activity"]["skipped"] == 1
    (upd,) = drain(timeouts)
    assert [i["record"]["outcome"] for i in upd["activity"]["items"]] == ["timeout"]
    assert upd["activity"]["skipped"] == 0
    assert upd["shared"]["timeouts"][0]["request_event"] == "create_terminal"


def test_slow_client_loses_oldest_updates_and_is_told() -> None:
    source = FakeSource()
    hub, clock = make_hub(source, stream_client_buffer=2)
    client = hub.connect(ActivityFilter())
    assert client is not None
    for _ in range(5):
        clock.now += 1
        hub.tick()
    updates = drain(client)
    assert len(updates) == 2
    assert client.dropped == 3
    assert hub.counters().stream_updates_dropped == 3
    assert updates[-1]["dropped_updates"] == 3
    assert updates[-1]["shared"]["t"] == clock.now  # the newest survived


def test_client_limit() -> None:
    hub, _ = make_hub(FakeSource(), max_stream_clients=1)
    first = hub.connect(ActivityFilter())
    assert first is not None
    assert hub.connect(ActivityFilter()) is None
    assert hub.counters().stream_clients_refused == 1
    hub.disconnect(first)
    assert hub.connect(ActivityFilter()) is not None


def test_latency_points_and_rates() -> None:
    source = FakeSource()
    source.pending = [pending_view("s", f"{i:016x}", started=100.0 - i) for i in range(5)]
    hub, clock = make_hub(source, stream_pending_items=3)
    client = hub.connect(ActivityFilter())
    assert client is not None
    hub.tick()
    for d in (0.01, 0.02, 0.03, 0.04, 1.0):
        source.emit(pair("s", "create_terminal", duration_s=d))
    source.emit(pair("s", "create_terminal", outcome=Outcome.TIMEOUT, duration_s=5.0))
    clock.now += 2
    source.metrics = replace(source.metrics, messages_by_direction={"c2s": 30, "s2c": 20})
    hub.tick()
    upd = drain(client)[-1]
    point = upd["shared"]["latency"]["rules"]["create_terminal"]
    assert point["n"] == 6 and point["timeouts"] == 1
    assert point["p50"] == 0.03 and point["max"] == 1.0  # timeouts are not latencies
    assert upd["shared"]["rates"]["messages_per_s"] == {"c2s": 10.0, "s2c": 0.0}
    pending = upd["shared"]["pending"]
    assert pending["total"] == 5
    assert [p["started_wall"] for p in pending["items"]] == [96.0, 97.0, 98.0]
    # the next interval starts empty
    hub.tick()
    assert drain(client)[-1]["shared"]["latency"]["rules"] == {}


def test_items_lost_between_ticks_are_reported() -> None:
    source = FakeSource(ring_size=2)
    hub, _ = make_hub(source)
    client = hub.connect(ActivityFilter())
    assert client is not None
    hub.tick()
    for i in range(5):
        source.emit(message("s", f"e{i}", Direction.CLIENT_TO_SERVER))
    hub.tick()
    upd = drain(client)[-1]
    assert [i["seq"] for i in upd["activity"]["items"]] == [4, 5]
    assert upd["activity"]["lost"] == 3


def test_hello_has_backlog_and_history() -> None:
    source = FakeSource()
    hub, _ = make_hub(source)
    source.emit(pair("s", "create_terminal", duration_s=0.2))
    hub.tick()
    source.emit(message("s2", "x", Direction.CLIENT_TO_SERVER))
    client = hub.connect(ActivityFilter(session="s2"))
    assert client is not None
    hello = json.loads(hub.hello(client))
    assert [i["seq"] for i in hello["activity"]["items"]] == [2]
    assert hello["latency_history"][0]["rules"]["create_terminal"]["n"] == 1


async def read_event(resp: Any, kind: str) -> dict[str, Any]:
    event = None
    while True:
        line = (await resp.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event == kind:
            return json.loads(line[len("data: ") :])  # type: ignore[no-any-return]


async def test_sse_endpoint_streams_updates(make_client: MakeClient) -> None:
    source = FakeSource()
    client = await make_client(source, AdminSettings(stream_interval_s=0.05))
    resp = await client.get("/api/stream?event=resize")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    hello = await asyncio.wait_for(read_event(resp, "hello"), 10)
    assert hello["activity"]["items"] == []
    source.emit(pair("s", "create_terminal"))
    source.emit(pair("s", "resize"))
    for _ in range(100):
        upd = await asyncio.wait_for(read_event(resp, "update"), 10)
        if upd["activity"]["items"]:
            break
    assert [i["record"]["request_event"] for i in upd["activity"]["items"]] == ["resize"]
    assert (await client.get("/api/stream?outcome=nope")).status == 400
    resp.close()


def test_updates_stay_bounded_at_scale() -> None:
    """10,000 sessions and pending requests, 30,000 records between two updates."""
    sids = [f"sid{i:05d}" for i in range(10_000)]
    source = FakeSource(ring_size=10_000)
    source.sessions = [session_view(s) for s in sids]
    source.pending = [pending_view(s, f"{i:016x}", started=1000.0 + i) for i, s in enumerate(sids)]
    hub, clock = make_hub(source, stream_activity_items=100, stream_pending_items=50)
    client = hub.connect(ActivityFilter())
    assert client is not None
    hub.tick()
    drain(client)
    for i in range(30_000):
        source.emit(pair(sids[i % len(sids)], "terminal_input", duration_s=0.001 * (i % 50)))
    clock.now += 1
    hub.tick()
    (raw,) = list(client.queue)
    update = json.loads(raw)
    assert len(raw) < 150_000
    items = update["activity"]["items"]
    assert [i["seq"] for i in items] == list(range(29_901, 30_001))  # the newest
    assert update["activity"]["lost"] == 20_000  # left the ring before this update
    assert update["activity"]["skipped"] == 9_900
    assert update["shared"]["pending"]["total"] == 10_000
    assert len(update["shared"]["pending"]["items"]) == 50
    assert update["shared"]["latency"]["rules"]["terminal_input"]["n"] == 30_000

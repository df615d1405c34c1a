"""The deferred fan-out loses nothing (issue 12, decision 3).

Once the tracker runs on a loop, records are queued and fanned out (activity ring, sinks,
subscribers, batch subscribers such as the admin live hub) on a timer or at a query; the
timelines take packets and records at once.  Hypothesis feeds the same random interleaving of
frames (several WebSocket sessions: acks, a configured event pair, one-way events, closes)
and clock ticks to a tracker that fans out at once and to one that defers, flushing only at
random "loop ticks" (and at the bound, made small here): the records the sinks get, the
activity ring, every timeline, the metrics, the pending and session views must be equal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.ids import SequentialIds
from socketio_trace_proxy.tracking.observer import RequestInfo, WebSocketObserver
from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.runtime import Tracker, driver, hub
from socketio_trace_proxy.tracking.traffic import Direction
from tests.tracking.runtime_kit import FakeClock, RecordingSink

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
SESSIONS = 3

SETTINGS = TrackingSettings.model_validate(
    {
        "defaults": {"timeout": "2s", "slow": "1s"},
        "rules": [{"request": "q", "responses": ["r"], "errors": ["bad"], "match": "id"}],
        "limits": {"timeline_per_session": 8, "activity_buffer": 16, "closed_timelines": 2},
    }
)

# One step: (kind, session, number).
step = st.tuples(
    st.sampled_from(
        ["ack_req", "ack_rep", "pair_req", "pair_rep", "push", "tick", "loop", "close"]
    ),
    st.integers(0, SESSIONS - 1),
    st.integers(0, 3),
)


class Rig:
    def __init__(self, deferred: bool) -> None:
        self.clock = FakeClock(100.0)
        self.sink = RecordingSink()
        self.tracker = Tracker(SETTINGS, [self.sink], clock=self.clock, ids=SequentialIds())
        self.batched: list[Record] = []  # what a batch subscriber got, in order
        self.batches = 0
        self.tracker.subscribe_batches(self.take_batch)
        self.scheduled: list[Callable[[], None]] = []
        if deferred:
            self.tracker.defer(self.scheduled.append)
        self.legs: dict[int, WebSocketObserver] = {}
        self.opened = 0

    def leg(self, n: int) -> WebSocketObserver:
        leg = self.legs.get(n)
        if leg is None:
            info = RequestInfo("GET", {"EIO": "4", "transport": "websocket"})
            opened = self.tracker.websocket_opened(info)
            assert opened is not None
            leg = self.legs[n] = opened
            self.opened += 1
            hello = {"sid": f"S{n}-{self.opened}", "pingInterval": 25000}
            leg.message(S2C, "0" + json.dumps({**hello, "pingTimeout": 20000}))
            leg.message(C2S, "40")
            leg.message(S2C, '40{"sid":"x"}')
        return leg

    def take_batch(self, records: Sequence[Record]) -> None:
        self.batched.extend(records)
        self.batches += 1

    def run_loop(self) -> None:
        callbacks, self.scheduled[:] = list(self.scheduled), []
        for cb in callbacks:
            cb()

    def apply(self, kind: str, n: int, k: int) -> None:
        self.clock.advance(0.25)
        if kind == "tick":
            self.clock.advance(k)
            self.tracker.tick()
        elif kind == "loop":
            self.run_loop()
        elif kind == "close":
            leg = self.legs.pop(n, None)
            if leg is not None:
                leg.closed(C2S, 1000)
        elif kind == "ack_req":
            self.leg(n).message(C2S, f'42{k}["echo",{k}]')
        elif kind == "ack_rep":
            self.leg(n).message(S2C, f"43{k}[{k}]")
        elif kind == "pair_req":
            self.leg(n).message(C2S, f'42["q",{{"id":{k}}}]')
        elif kind == "pair_rep":
            name = "bad" if k == 3 else "r"
            self.leg(n).message(S2C, f'42["{name}",{{"id":{k}}}]')
        else:
            self.leg(n).message(S2C, f'42["push{k}",{{}}]')

    def views(self) -> dict[str, Any]:
        t = self.tracker
        activity = t.recent_activity(limit=100)  # a query: what is queued goes out first
        sids = {r.session.session_id for r in self.sink.records}
        return {
            "records": list(self.sink.records),
            "batched": list(self.batched),
            "activity": activity,
            "timelines": {sid: t.get_session_timeline(sid) for sid in sorted(sids)},
            "metrics": t.get_metrics(),
            "pending": t.get_pending_requests(),
            "sessions": t.get_sessions(),
            "sizes": t.sizes(),
        }


@pytest.fixture(autouse=True)
def small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # A small bound, so that the forced flush runs too.
    monkeypatch.setattr(hub, "MAX_DEFERRED", 5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, max_size=60), query_at=st.integers(0, 60))
def test_deferred_fan_out_equals_the_immediate_one(
    steps: list[tuple[str, int, int]], query_at: int
) -> None:
    immediate, deferred = Rig(False), Rig(True)
    for i, (kind, n, k) in enumerate(steps):
        immediate.apply(kind, n, k)
        deferred.apply(kind, n, k)
        if i == query_at:  # a query in between sees what the immediate path shows
            assert deferred.views() == immediate.views()
    for rig in (immediate, deferred):
        rig.clock.advance(10)
        rig.tracker.tick()
    deferred.run_loop()
    assert deferred.views() == immediate.views()
    assert deferred.scheduled == []
    # the same records, in fewer calls when deferred (one per flush, not per record)
    assert deferred.batches <= immediate.batches == len(immediate.batched)


def test_queued_work_waits_for_the_loop_and_stays_bounded() -> None:
    rig = Rig(True)
    rig.leg(0)
    rig.run_loop()
    before = len(rig.sink.records)
    rig.apply("ack_req", 0, 1)
    rig.apply("ack_rep", 0, 1)
    assert len(rig.sink.records) == before  # queued: the loop has not ticked yet
    assert len(rig.scheduled) == 1  # one flush per tick, however many items
    rig.run_loop()
    assert [getattr(r, "operation", None) for r in rig.sink.records][-1] == "echo -> ack"
    for k in range(3):  # more than the bound (5) without a loop tick
        rig.apply("ack_req", 0, k)
        rig.apply("ack_rep", 0, k)
    assert len(rig.tracker._pending) < hub.MAX_DEFERRED


async def test_a_running_tracker_fans_out_on_a_timer_not_per_loop_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long interval: loop ticks alone never flush; a query does (nothing waits on the timer).
    monkeypatch.setattr(driver, "FLUSH_INTERVAL_S", 3600.0)
    rig = Rig(False)
    await rig.tracker.start()
    try:
        rig.leg(0)
        rig.apply("ack_req", 0, 1)
        rig.apply("ack_rep", 0, 1)
        for _ in range(5):
            await asyncio.sleep(0)
        assert rig.sink.records == [] and rig.tracker._pending
        rig.tracker.get_metrics()
        assert [getattr(r, "operation", None) for r in rig.sink.records][-1] == "echo -> ack"
    finally:
        await rig.tracker.stop(1.0)


async def test_the_flush_timer_delivers_without_a_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "FLUSH_INTERVAL_S", 0.001)
    rig = Rig(False)
    await rig.tracker.start()
    try:
        rig.leg(0)
        rig.apply("ack_req", 0, 1)
        rig.apply("ack_rep", 0, 1)
        for _ in range(1000):  # bounded: the timer fires long before
            if rig.tracker._pending == [] and rig.sink.records:
                break
            await asyncio.sleep(0.005)
        assert [getattr(r, "operation", None) for r in rig.sink.records][-1] == "echo -> ack"
        assert rig.batches == 1  # everything queued since the timer was armed: one call
    finally:
        await rig.tracker.stop(1.0)

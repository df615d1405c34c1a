"""The tracker runtime: observer guards, fan-out, callbacks, queries, timer task, shutdown."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.ids import SequentialIds
from socketio_trace_proxy.tracking.observer import RequestInfo, WebSocketObserver
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    Outcome,
    PairRecord,
    Record,
)
from socketio_trace_proxy.tracking.runtime import PacketView, Tracker
from socketio_trace_proxy.tracking.sessions.table import SessionTable
from socketio_trace_proxy.tracking.traffic import Direction
from tests.tracking.runtime_kit import FakeClock, RecordingSink

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


def tracking(**kw: Any) -> TrackingSettings:
    base: dict[str, Any] = {
        "rules": [{"request": "q", "responses": ["r"], "errors": ["bad"], "slow": "1s"}],
        "aggregate": ["noise"],
    }
    base.update(kw)
    return TrackingSettings.model_validate(base)


def make(
    settings: TrackingSettings | None = None, sinks: list[RecordingSink] | None = None, **kw: Any
) -> tuple[Tracker, FakeClock, RecordingSink]:
    clock = FakeClock(100.0)
    sink = RecordingSink()
    tracker = Tracker(
        settings or tracking(),
        sinks if sinks is not None else [sink],
        clock=clock,
        ids=SequentialIds(),
        **kw,
    )
    return tracker, clock, sink


def open_ws(tracker: Tracker, sid: str = "S1") -> WebSocketObserver:
    ws = tracker.websocket_opened(RequestInfo("GET", {"EIO": "4", "transport": "websocket"}))
    ws.message(S2C, "0" + json.dumps({"sid": sid, "pingInterval": 25000, "pingTimeout": 20000}))
    return ws


def emit(ws: WebSocketObserver, direction: Direction, name: str, arg: Any = None) -> None:
    ws.message(direction, "42" + json.dumps([name] if arg is None else [name, arg]))


def test_records_fan_out_and_unsampled_pairs_stay_local() -> None:
    tracker, clock, sink = make(tracking(sample_rate=0.0))
    ws = open_ws(tracker)
    emit(ws, C2S, "q")
    clock.advance(0.1)
    emit(ws, S2C, "r")
    emit(ws, C2S, "q")
    emit(ws, S2C, "bad")
    emit(ws, C2S, "hello")
    emit(ws, C2S, "noise")
    kinds = [type(r).__name__ for r in sink.records]
    assert kinds == ["LifecycleRecord", "PairRecord", "MessageRecord"]
    assert isinstance(sink.records[1], PairRecord) and sink.records[1].outcome is Outcome.ERROR
    activity = tracker.recent_activity(0, 100)
    assert [i.seq for i in activity] == [1, 2, 3, 4]  # the unsampled ok pair is visible here
    metrics = tracker.get_metrics()
    assert metrics.rules[0].outcomes == {"ok": 1, "error": 1}
    assert metrics.drops["sink:recording"] == 3  # the sink's own drop count surfaces


def test_callbacks_timeout_slow_error_and_unsubscribe() -> None:
    tracker, clock, _ = make()
    seen: list[tuple[str, object]] = []
    tracker.on_request_timeout(lambda r: seen.append(("timeout", r.operation)))
    tracker.on_slow_response(lambda r, d: seen.append(("slow", round(d, 3))))
    off = tracker.on_error(lambda r, e: seen.append(("error", e)))
    ws = open_ws(tracker)
    emit(ws, C2S, "q")
    clock.advance(1.5)
    emit(ws, S2C, "r")
    emit(ws, C2S, "q")
    emit(ws, S2C, "bad")
    emit(ws, C2S, "q")
    clock.advance(6)
    tracker.tick()
    off()
    emit(ws, C2S, "q")
    emit(ws, S2C, "bad")
    assert seen == [("slow", 1.5), ("error", "bad"), ("timeout", "q -> r")]


def test_a_failing_callback_or_sink_never_reaches_the_relay() -> None:
    broken = RecordingSink(name="broken", fail_submit=True)
    good = RecordingSink(name="good")
    tracker, _, _ = make(sinks=[broken, good])

    def boom(record: Record) -> None:
        raise ValueError("subscriber bug")

    tracker.subscribe(boom)
    ws = open_ws(tracker)
    emit(ws, C2S, "hello")
    assert len(good.records) == 2  # handshake + message, despite the broken neighbours
    extra = tracker.get_metrics().extra
    assert extra["fault:sink_submit:broken"] == 2
    assert extra["fault:subscriber"] == 2


def test_a_failing_session_layer_is_counted_not_raised() -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: object) -> None:
                raise RuntimeError(name)

            return fail

    tracker = Tracker(
        tracking(), [], clock=FakeClock(), session_factory=lambda emit, s: Exploding()
    )
    tracker.polling_request(RequestInfo("POST", {}), b"40")
    tracker.polling_response(RequestInfo("GET", {}), 200, None, None, b"6")
    ws = tracker.websocket_opened(RequestInfo("GET", {}))
    ws.message(C2S, "42[]")
    ws.closed(C2S, 1000)
    extra = tracker.get_metrics().extra
    assert extra["fault:polling_request"] == 1
    assert extra["fault:polling_response"] == 1
    assert extra["fault:websocket_opened"] == 1


def test_recent_activity_cursor_filters_and_bound() -> None:
    tracker, _, _ = make(tracking(limits={"activity_buffer": 5}))
    ws = open_ws(tracker)
    for i in range(3):
        emit(ws, C2S, "q")
        emit(ws, S2C, "r" if i != 1 else "bad")
        emit(ws, S2C, f"push{i}")
    items = tracker.recent_activity(0, 100)
    assert [i.seq for i in items] == [3, 4, 5, 6, 7]  # 7 records made, ring keeps 5
    assert [i.seq for i in tracker.recent_activity(5, 100)] == [6, 7]
    assert [i.seq for i in tracker.recent_activity(3, 1)] == [4]
    errors = tracker.recent_activity(0, 100, outcome="error")
    assert [i.record.outcome for i in errors if isinstance(i.record, PairRecord)] == [Outcome.ERROR]
    pushes = tracker.recent_activity(0, 100, event="push2", direction="s2c")
    assert len(pushes) == 1
    assert tracker.recent_activity(0, 100, session="other") == []
    assert tracker.get_metrics().extra["activity_rotated"] == 2


def test_session_timeline_live_then_closed() -> None:
    tracker, _, _ = make()
    ws = open_ws(tracker)
    ws.message(C2S, "40")
    emit(ws, C2S, "q", {"x": 1})
    emit(ws, S2C, "r")
    timeline = tracker.get_session_timeline("S1")
    assert timeline is not None and timeline.session is not None
    packets = [i for i in timeline.items if isinstance(i, PacketView)]
    assert [(p.type, p.event) for p in packets] == [
        ("CONNECT", None),
        ("EVENT", "q"),
        ("EVENT", "r"),
    ]
    assert any(isinstance(i, PairRecord) for i in timeline.items)
    ws.message(C2S, "1")  # Engine.IO CLOSE
    closed = tracker.get_session_timeline("S1")
    assert closed is not None and closed.session is None
    last = closed.items[-1]
    assert isinstance(last, LifecycleRecord) and last.kind is LifecycleKind.CLOSE
    assert tracker.get_session_timeline("nope") is None
    assert [s.session_id for s in tracker.get_sessions()] == []


def test_timeline_is_bounded() -> None:
    tracker, _, _ = make(tracking(limits={"timeline_per_session": 4}))
    ws = open_ws(tracker)
    for _ in range(10):
        emit(ws, C2S, "noise")
    timeline = tracker.get_session_timeline("S1")
    assert timeline is not None and len(timeline.items) == 4


def test_pending_and_sessions_views() -> None:
    tracker, clock, _ = make()
    ws = open_ws(tracker)
    emit(ws, C2S, "q")
    clock.advance(2.0)
    (pending,) = tracker.get_pending_requests()
    assert (pending.rule, pending.age_s, pending.timeout_s) == ("q", 2.0, 5.0)
    (session,) = tracker.get_sessions()
    assert (session.session_id, session.transport, session.pending) == ("S1", "websocket", 1)


async def test_stream_subscription_drops_oldest_when_full() -> None:
    tracker, _, _ = make()
    sub = tracker.stream(maxlen=2)
    ws = open_ws(tracker)
    for name in ("a", "b", "c"):
        emit(ws, C2S, name)
    assert sub.dropped == 2
    got = [await sub.get(), await sub.get()]
    assert [i.seq for i in got if i is not None] == [3, 4]
    assert tracker.get_metrics().drops["subscribers"] == 2
    sub.close()
    assert await sub.get() is None
    assert tracker.sizes()["streams"] == 0


async def test_timer_task_times_out_without_traffic_and_stop_abandons() -> None:
    sink = RecordingSink()
    clock = FakeClock(100.0)
    tracker = Tracker(tracking(), [sink], clock=clock, max_sleep_s=0.005)
    await tracker.start()
    assert sink.started
    ws = open_ws(tracker)
    emit(ws, C2S, "q")
    emit(ws, C2S, "q")
    clock.advance(0.5)
    emit(ws, S2C, "r")
    emit(ws, C2S, "q")
    clock.advance(4.8)  # the unanswered q of t=100 is due; the one of t=100.5 is not yet
    for _ in range(200):
        if any(isinstance(r, PairRecord) and r.outcome is Outcome.TIMEOUT for r in sink.records):
            break
        await asyncio.sleep(0.005)
    outcomes = [r.outcome for r in sink.records if isinstance(r, PairRecord)]
    assert outcomes == [Outcome.OK, Outcome.TIMEOUT]
    await tracker.stop(2.0)
    outcomes = [r.outcome for r in sink.records if isinstance(r, PairRecord)]
    assert outcomes == [Outcome.OK, Outcome.TIMEOUT, Outcome.ABANDONED]
    close = sink.records[-1]
    assert isinstance(close, LifecycleRecord) and close.detail == "shutdown"
    assert sink.shutdown_deadline == 2.0
    assert tracker.sizes()["tasks"] == 0 and tracker.sizes()["sessions"] == 0


async def test_timer_is_rearmed_for_an_earlier_deadline() -> None:
    clock = FakeClock(100.0)
    sink = RecordingSink()
    settings = tracking(
        rules=[
            {"request": "slowq", "responses": ["r1"], "timeout": "60s"},
            {"request": "fastq", "responses": ["r2"], "timeout": "1s"},
        ]
    )
    # With a long idle sleep, only re-arming can fire the 1 s timeout promptly.
    tracker = Tracker(settings, [sink], clock=clock, max_sleep_s=3600)
    await tracker.start()
    ws = open_ws(tracker)
    emit(ws, C2S, "slowq")
    await asyncio.sleep(0)  # the timer now sleeps towards the 60 s deadline
    emit(ws, C2S, "fastq")
    clock.advance(1.0)
    for _ in range(200):
        if any(isinstance(r, PairRecord) for r in sink.records):
            break
        await asyncio.sleep(0.005)
    timed_out = [(r.operation, r.outcome) for r in sink.records if isinstance(r, PairRecord)]
    assert timed_out == [("fastq -> r2", Outcome.TIMEOUT)]
    await tracker.stop(1.0)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_stop_ends_the_timer_even_when_it_is_woken_as_it_is_cancelled(turns: int) -> None:
    # Python 3.11's asyncio.wait_for swallows a cancellation that arrives as the awaited event
    # fires; the timer must still end, or stop() would wait for it forever.
    tracker, _, _ = make(max_sleep_s=3600)
    await tracker.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the timer is asleep
    assert tracker._wake is not None
    tracker._wake.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    await asyncio.wait_for(tracker.stop(0.1), timeout=10)  # a hang fails here
    assert tracker.sizes()["tasks"] == 0


@pytest.mark.parametrize("health_fails", [True])
def test_sink_health_guarded(health_fails: bool) -> None:
    class BadHealth(RecordingSink):
        def health(self) -> Any:
            raise RuntimeError("nope")

    tracker, _, _ = make(sinks=[BadHealth(name="bad")])
    (h,) = tracker.sink_health()
    assert (h.name, h.healthy, h.last_error) == ("bad", False, "health() failed")


def test_a_wrapped_session_layer_still_sees_every_websocket_message() -> None:
    """The default table's reader is called directly only when the layer's own
    ``websocket_message`` is that reader's: a wrapper that intercepts it sees every message."""
    seen: list[str | bytes] = []

    class Wrapped:
        def __init__(self, emit: Any, settings: TrackingSettings) -> None:
            self._table = SessionTable(emit, max_sessions=settings.limits.max_sessions)

        def websocket_message(self, leg: Any, direction: Direction, data: Any, *at: float) -> None:
            seen.append(data)
            self._table.websocket_message(leg, direction, data, *at)

        def __getattr__(self, name: str) -> Any:  # everything else, websocket_reader too
            return getattr(self._table, name)

    tracker, _, sink = make(session_factory=Wrapped)
    ws = open_ws(tracker)
    emit(ws, C2S, "q")
    emit(ws, S2C, "r")
    assert len(seen) == 3 and seen[1:] == ['42["q"]', '42["r"]']
    tracker.flush()
    assert [r.request_event for r in sink.records if isinstance(r, PairRecord)] == ["q"]

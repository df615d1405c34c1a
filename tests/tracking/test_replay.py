"""The recorded AetherTerm traffic, replayed through the real session table and the tracker
with the packaged default config, gives the pairs issue 3's table expects."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.tracking.ids import SequentialIds
from socketio_trace_proxy.tracking.observer import RequestInfo, WebSocketObserver
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    PairKind,
    PairRecord,
)
from socketio_trace_proxy.tracking.runtime import Tracker
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.fixtures.recordings import (
    EVENT_PROBE,
    MULTI_SESSION_TABS,
    PYTHON_CLIENT,
    VUE_FRONTEND,
    FrameKind,
    RecordedFrame,
    event_frames,
    load_events,
    load_frames,
)
from tests.tracking.runtime_kit import FakeClock, RecordingSink


def make_tracker() -> tuple[Tracker, FakeClock, RecordingSink]:
    clock = FakeClock()
    sink = RecordingSink()
    tracker = Tracker(load_settings(None, {}).tracking, [sink], clock=clock, ids=SequentialIds())
    return tracker, clock, sink


def replay(tracker: Tracker, clock: FakeClock, frames: Iterable[RecordedFrame]) -> None:
    ws: WebSocketObserver | None = None
    for f in frames:
        clock.set(f.at)
        tracker.tick()  # what the timer task does as time passes
        info = RequestInfo(f.method, f.query)
        if f.kind is FrameKind.POLL_REQUEST:
            tracker.polling_request(info, f.data.encode())
        elif f.kind is FrameKind.POLL_RESPONSE:
            tracker.polling_response(info, 200, "text/plain; charset=UTF-8", None, f.data.encode())
        elif f.kind is FrameKind.POLL_POST_RESPONSE:
            tracker.polling_response(info, 200, "text/html", None, f.data.encode())
        elif f.kind is FrameKind.WS_OPEN:
            ws = tracker.websocket_opened(RequestInfo("GET", f.query))
        elif f.kind is FrameKind.WS_MESSAGE:
            assert ws is not None
            ws.message(f.direction, f.data)


def replay_events(tracker: Tracker, clock: FakeClock, name: str) -> None:
    """A probe recording over one WebSocket session opened by the server's OPEN packet."""
    ws = tracker.websocket_opened(RequestInfo("GET", {"EIO": "4", "transport": "websocket"}))
    open_packet = {"sid": "probe-sid", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000}
    ws.message(Direction.SERVER_TO_CLIENT, "0" + json.dumps(open_packet))
    ws.message(Direction.CLIENT_TO_SERVER, "40")
    ws.message(Direction.SERVER_TO_CLIENT, '40{"sid":"ns-sid"}')
    for at, direction, frame in event_frames(load_events(name)):
        clock.set(at)
        tracker.tick()
        ws.message(direction, frame)


def pairs(sink: RecordingSink) -> list[tuple[str, str, str | None]]:
    return [
        (r.operation, r.outcome.value, r.match_key)
        for r in sink.records
        if isinstance(r, PairRecord)
    ]


def test_python_client_recording() -> None:
    tracker, clock, sink = make_tracker()
    replay(tracker, clock, load_frames(PYTHON_CLIENT))
    assert pairs(sink) == [
        ("create_terminal -> terminal_ready", "ok", "rawsess1"),
        ("terminal_input -> ack", "ok", None),
        ("get_block_status -> block_status_response", "ok", "rawsess1"),
    ]
    kinds = [r.kind for r in sink.records if isinstance(r, LifecycleRecord)]
    assert kinds == [
        LifecycleKind.HANDSHAKE,
        LifecycleKind.NAMESPACE_CONNECT,
        LifecycleKind.UPGRADE,
    ]
    # The EVENT batched before the namespace CONNECT reply is still seen, as one-way.
    assert [m.event for m in sink.records if isinstance(m, MessageRecord)] == ["connected"]
    create = next(r for r in sink.records if isinstance(r, PairRecord))
    assert create.duration_s == pytest.approx(0.014)
    assert create.session.session_id == "R3jHV-5XTXX0XlbEAAAD"


def test_vue_frontend_request_by_polling_reply_over_websocket() -> None:
    tracker, clock, sink = make_tracker()
    replay(tracker, clock, load_frames(VUE_FRONTEND))
    create = next(r for r in sink.records if isinstance(r, PairRecord))
    assert create.operation == "create_terminal -> terminal_ready"
    assert create.request_transport is Transport.POLLING
    assert create.response_transport is Transport.WEBSOCKET
    assert create.match_key == "session_1795614255375"
    (pending,) = tracker.get_pending_requests()
    assert pending.rule == "ai_get_info"
    clock.advance(5.0)
    tracker.tick()
    assert pairs(sink)[-1] == ("ai_get_info -> ai_info_response", "timeout", None)
    # Keystrokes and echoes are aggregated: counted, not recorded one by one.
    assert not any(
        isinstance(r, MessageRecord) and r.event.startswith("terminal_") for r in sink.records
    )
    events = {(e.event, e.direction): e.messages for e in tracker.get_metrics().events}
    assert events[("terminal_input", "c2s")] == 13
    assert events[("terminal_output", "s2c")] == 15


def test_event_probe_recording() -> None:
    tracker, clock, sink = make_tracker()
    replay_events(tracker, clock, EVENT_PROBE)
    clock.advance(30.0)
    tracker.tick()
    assert pairs(sink) == [
        ("create_terminal -> terminal_ready", "ok", "session_1795613910760"),
        ("terminal_input -> ack", "ok", None),
        ("get_block_status -> block_status_response", "ok", "session_1795613910760"),
        ("unblock_request -> unblock_response", "error", "session_1795613910760"),
        ("get_wrapper_sessions -> wrapper_sessions_response", "ok", None),
        ("wrapper_session_sync -> wrapper_session_sync_response", "ok", "123"),
        ("create_terminal -> terminal_ready", "ok", "session_1795613910760"),
        ("ai_get_info -> ai_info_response", "timeout", None),
        ("create_terminal -> terminal_ready", "rejected", "session_1795613910760"),  # closed
        ("terminal:create -> terminal:created", "timeout", "r1"),
        ("create_terminal -> terminal_ready", "ok", None),  # sent without a session: FIFO
        ("ai_chat_message -> ai_chat_complete", "timeout", "m1"),  # the stream rule: 30 s
    ]
    # The operation is the rule's; the reply that ended it is the record's response event.
    responses = [r.response_event for r in sink.records if isinstance(r, PairRecord)]
    assert responses[8] == "terminal_closed" and responses[7] is None
    one_way = [r.event for r in sink.records if isinstance(r, MessageRecord)]
    assert one_way == ["connected", "terminal_resize", "wrapper_session_update"]
    # Input -> echo: each of the three keystroke lines is answered by the next
    # terminal_output of its terminal (2, 3 and 3 ms), none slow, so none is a record.
    echoes = {e.rule: e for e in tracker.get_metrics().echo}
    assert echoes["terminal:input echo"].latency.count == 0  # the branch's rule: not here
    echo = echoes["terminal echo"]
    assert echo.latency.exact
    assert echo.latency.count == 3 and echo.slow == 0 and echo.unanswered == 0
    assert echo.latency.p50_s == pytest.approx(0.003) and echo.latency.max_s == pytest.approx(0.003)
    assert not [r for r in sink.records if isinstance(r, PairRecord) and r.kind is PairKind.ECHO]


def test_multi_session_tabs_recording() -> None:
    tracker, clock, sink = make_tracker()
    replay_events(tracker, clock, MULTI_SESSION_TABS)
    tmpl = "workspace:tab:{tab}:pane:{pane}:terminal:create"
    got = pairs(sink)
    assert (f"{tmpl} -> workspace:tab:{{tab}}:pane:{{pane}}:terminal:created", "ok", "termA") in got
    assert ("workspace:tab:create -> workspace:tab:created", "ok", "req_1_4") in got
    assert ("workspace:tab:close -> workspace:tab:closed", "ok", "req_1_5") in got
    clock.advance(10.0)
    tracker.tick()
    timed_out = {op for op, outcome, _ in pairs(sink) if outcome == "timeout"}
    assert timed_out == {
        "workspace:sync:request -> workspace:sync:response",
        "workspace:initialize -> workspace:initialized",
        "terminal:create -> terminal:created",
        "create_terminal -> terminal_ready",
    }
    rules = {r.rule for r in tracker.get_metrics().rules}
    assert tmpl in rules
    assert not any("tabA" in r for r in rules)  # templates, never concrete ids
    # The per-pane input and resize are aggregated under their templates: one metric each,
    # no record per frame; the keystroke waits for its terminal:data (none was recorded).
    events = {(e.event, e.direction) for e in tracker.get_metrics().events}
    pane = "workspace:tab:{tab}:pane:{pane}:terminal:"
    assert {(pane + "input", "c2s"), (pane + "resize", "c2s"), (pane + "close", "c2s")} <= events
    assert not any("tabA" in name for name, _ in events)  # close: folded, not aggregated
    one_way = {r.event for r in sink.records if isinstance(r, MessageRecord)}
    assert one_way == {
        "workspace:tab:tabA:pane:paneA:terminal:close",  # recorded under its concrete name
        "ai_agent:status:request",
        "ai_agent:status:error",
    }
    echo = {e.rule: e for e in tracker.get_metrics().echo}["terminal:input echo"]
    assert echo.latency.count == 0

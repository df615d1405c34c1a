"""Correlation playbooks on a fake clock: events in, expected records out."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketio_trace_proxy import config
from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.correlation import CorrelationEngine
from socketio_trace_proxy.tracking.events import (
    CloseReason,
    DecodeFailed,
    HeartbeatObserved,
    SessionUpgraded,
)
from socketio_trace_proxy.tracking.ids import SequentialIds, parse_traceparent
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    Outcome,
    PairKind,
    PairRecord,
    Record,
)
from socketio_trace_proxy.tracking.traffic import Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacketType
from tests.tracking.engine_kit import (
    C2S,
    S2C,
    WALL0,
    Harness,
    ack,
    control,
    event,
    settings,
)


@pytest.fixture
def aether() -> TrackingSettings:
    return load_settings(None, {}).tracking


def test_client_ack_pairs_by_id_namespace_and_direction() -> None:
    h = Harness()
    h.open()
    h.send(event("terminal_input", {"data": "x"}, ack=1))
    h.send(event("other", ack=1, ns="/admin"))
    h.now += 0.25
    h.reply(ack(1, ns="/admin"))
    h.now += 0.25
    h.send(ack(1))  # same id, same direction as the request: not its reply
    assert [p.operation for p in h.pairs()] == ["other -> ack"]
    h.reply(ack(1))
    first, second = h.pairs()
    assert (first.namespace, first.duration_s) == ("/admin", 0.25)
    assert second.kind is PairKind.ACK
    assert second.operation == "terminal_input -> ack"
    assert second.ack_id == 1 and second.outcome is Outcome.OK
    assert second.duration_s == pytest.approx(0.5)
    assert second.initiator is C2S
    assert h.engine.snapshot().extra["unmatched_acks"] == 1


def test_server_initiated_ack() -> None:
    h = Harness()
    h.open()
    h.reply(event("confirm", {"q": 1}, ack=7))
    h.now += 0.1
    h.send(ack(7, True))
    (pair,) = h.pairs()
    assert pair.initiator is S2C
    assert pair.request_event == "confirm" and pair.outcome is Outcome.OK


def test_keyed_pairs_match_out_of_order(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("create_terminal", {"session": "A"}))
    h.now += 0.1
    h.send(event("create_terminal", {"session": "B"}))
    h.now += 0.1
    h.reply(event("terminal_ready", {"session": "B", "status": "ready"}))
    h.now += 0.1
    h.reply(event("terminal_ready", {"session": "A", "status": "ready"}))
    assert h.summary() == [
        ("create_terminal -> terminal_ready", "ok", "B"),
        ("create_terminal -> terminal_ready", "ok", "A"),
    ]
    assert [round(p.duration_s, 3) for p in h.pairs()] == [0.1, 0.3]
    assert h.messages() == []


def test_missing_or_empty_key_falls_back_to_fifo(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("create_terminal", {}))
    h.send(event("create_terminal", {"session": ""}))
    h.reply(event("terminal_ready", {"session": "fresh-uuid", "status": "ready"}))
    h.reply(event("terminal_error", {"error": "no pty"}))  # carries no session: FIFO
    # One operation, one name: the error reply shows in the outcome and error type.
    assert h.summary() == [
        ("create_terminal -> terminal_ready", "ok", None),
        ("create_terminal -> terminal_ready", "error", None),
    ]
    assert h.pairs()[1].error_type == "terminal_error"
    assert h.pairs()[1].response_event == "terminal_error"


def test_keyed_reply_for_unknown_key_is_one_way(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("create_terminal", {"session": "A"}))
    h.reply(event("terminal_ready", {"session": "Z"}))
    assert h.pairs() == []
    assert [m.event for m in h.messages()] == ["terminal_ready"]
    assert h.engine.snapshot().pending == 1


def test_payload_predicate_makes_error(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("unblock_request", {"session_id": "s", "unlock_key": "ctrl_d"}))
    h.reply(event("unblock_response", {"status": "error", "session_id": "s", "error": "no"}))
    (pair,) = h.pairs()
    assert pair.outcome is Outcome.ERROR
    assert pair.error_type == 'unblock_response (status="error")'
    h.send(event("get_block_status", {"session_id": "s"}))
    h.reply(event("block_status_response", {"status": "success", "session_id": "s"}))
    assert h.pairs()[-1].outcome is Outcome.OK


def test_noop_request_id_is_never_a_key(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("terminal:create", {"_requestId": "noop", "terminalId": "t1"}))
    h.send(event("terminal:create", {"_requestId": "r2", "terminalId": "t2"}))
    h.reply(event("terminal:created", {"_requestId": "r2"}))
    h.reply(event("terminal:created", {"_requestId": "noop"}))
    assert h.summary() == [
        ("terminal:create -> terminal:created", "ok", "r2"),
        ("terminal:create -> terminal:created", "ok", None),
    ]


def test_templated_names_pair_by_captures(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    tmpl = "workspace:tab:{tab}:pane:{pane}:terminal:create"
    h.send(event("workspace:tab:A:pane:P:terminal:create", {"terminalId": "t"}))
    h.send(event("workspace:tab:B:pane:Q:terminal:create", {"terminalId": "t"}))
    h.reply(event("workspace:tab:B:pane:Q:terminal:created", {"terminalId": "t"}))
    h.reply(event("workspace:tab:C:pane:P:terminal:created", {"terminalId": "t"}))  # no such
    (pair,) = h.pairs()
    assert pair.rule == tmpl
    assert pair.operation == f"{tmpl} -> workspace:tab:{{tab}}:pane:{{pane}}:terminal:created"
    assert pair.request_event == "workspace:tab:B:pane:Q:terminal:create"
    assert pair.response_event == "workspace:tab:B:pane:Q:terminal:created"
    assert [m.event for m in h.messages()] == ["workspace:tab:C:pane:P:terminal:created"]
    snap = h.engine.snapshot()
    assert [r.rule for r in snap.rules] == [tmpl]
    assert {e.event for e in snap.events} == {
        tmpl,
        "workspace:tab:{tab}:pane:{pane}:terminal:created",
    }
    # An untemplated error event still ends the templated request (key terminalId).
    h.reply(event("terminal:error", {"terminalId": "t", "error": "boom"}))
    assert h.pairs()[-1].outcome is Outcome.ERROR
    assert h.pairs()[-1].request_event == "workspace:tab:A:pane:P:terminal:create"


def test_stream_first_chunk_total_and_sliding_timeout(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("ai_chat_message", {"message": "hi", "message_id": "m1"}))
    h.advance(2.0)
    h.reply(event("ai_chat_chunk", {"message_id": "m1", "chunk": "a"}))
    h.advance(25.0)
    h.reply(event("ai_chat_chunk", {"message_id": "m1", "chunk": "b"}))
    h.advance(25.0)  # 52 s after the request, but never 30 s without a chunk
    h.reply(event("ai_chat_chunk", {"message_id": "m1", "chunk": "c"}))
    h.advance(1.0)
    h.reply(event("ai_chat_complete", {"message_id": "m1"}))
    (pair,) = h.pairs()
    assert pair.kind is PairKind.STREAM
    assert pair.outcome is Outcome.OK
    assert pair.first_chunk_s == pytest.approx(2.0)
    assert pair.chunk_count == 3
    assert pair.duration_s == pytest.approx(53.0)
    assert pair.slow  # the stream rule's slow threshold is 5 s


def test_stream_error_and_stream_timeout(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("ai_chat_message", {"message_id": "m1"}))
    h.send(event("ai_chat_message", {"message_id": "m2"}))
    h.reply(event("ai_chat_chunk", {"message_id": "m2"}))
    h.reply(event("ai_chat_error", {"message_id": "m2", "error": "quota"}))
    h.advance(31.0)
    assert h.summary() == [
        ("ai_chat_message -> ai_chat_complete", "error", "m2"),
        ("ai_chat_message -> ai_chat_complete", "timeout", "m1"),
    ]
    assert [(p.response_event, p.error_type) for p in h.pairs()] == [
        ("ai_chat_error", "ai_chat_error"),
        (None, "timeout"),
    ]


def test_timeout_then_late_reply_is_linked(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("ai_get_info", {}))
    assert h.engine.next_deadline() == pytest.approx(h.now + 5.0)
    h.advance(4.9)
    assert h.pairs() == []
    h.advance(0.2)
    (timed_out,) = h.pairs()
    assert timed_out.outcome is Outcome.TIMEOUT
    assert timed_out.operation == "ai_get_info -> ai_info_response"
    assert (timed_out.rule, timed_out.error_type) == ("ai_get_info", "timeout")
    assert timed_out.duration_s == pytest.approx(5.0)
    assert timed_out.response_event is None
    h.advance(2.0)
    h.reply(event("ai_info_response", {"model": "x"}))
    late = h.pairs()[-1]
    assert late.outcome is Outcome.LATE
    assert late.linked_span_id == timed_out.span_id
    assert late.operation == timed_out.operation and late.error_type == "late"
    assert late.span_id != timed_out.span_id
    assert late.duration_s == pytest.approx(7.1)
    assert late.sampled
    # The remembered timeout is consumed: another reply is just a one-way message.
    h.reply(event("ai_info_response", {"model": "x"}))
    assert [m.event for m in h.messages()] == ["ai_info_response"]
    outcomes = h.engine.snapshot().rules[0].outcomes
    assert outcomes == {"timeout": 1, "late": 1}


def test_late_ack_and_late_window() -> None:
    h = Harness(settings(defaults={"timeout": "1s", "late_window": "10s"}))
    h.open()
    h.send(event("slowpoke", ack=3))
    h.send(event("slowpoke", ack=4))
    h.advance(2)
    h.reply(ack(3))
    h.advance(20)
    h.reply(ack(4))  # past the late window: forgotten
    assert [p.outcome for p in h.pairs()] == [Outcome.TIMEOUT, Outcome.TIMEOUT, Outcome.LATE]
    assert h.pairs()[2].linked_span_id == h.pairs()[0].span_id
    assert h.engine.snapshot().extra["unmatched_acks"] == 1


def test_a_reply_past_its_deadline_is_late_even_before_the_timer_ran() -> None:
    h = Harness(settings(defaults={"timeout": "1s"}))
    h.open()
    h.send(event("slowpoke", ack=7))
    h.now += 1.5  # the clock moves on, but no tick(): the runtime's timer has not fired yet
    h.reply(ack(7))
    assert [p.outcome for p in h.pairs()] == [Outcome.TIMEOUT, Outcome.LATE]
    timed_out, late = h.pairs()
    assert late.linked_span_id == timed_out.span_id
    assert late.trace_id == timed_out.trace_id  # the link resolves within one trace
    assert h.engine.pending_views(h.now) == []


def test_slow_flag_uses_rule_threshold() -> None:
    h = Harness(
        settings(rules=[{"request": "q", "responses": ["r"], "slow": "250ms", "timeout": 2}])
    )
    h.open()
    h.send(event("q"))
    h.advance(0.2)
    h.reply(event("r"))
    h.send(event("q"))
    h.advance(0.3)
    h.reply(event("r"))
    assert [p.slow for p in h.pairs()] == [False, True]
    assert h.engine.snapshot().rules[0].slow == 1


def test_session_close_abandons_and_frees_state(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("get_wrapper_sessions", {}))
    h.send(event("x", ack=1))
    h.advance(1.0)
    h.close()
    assert [(p.operation, p.outcome, p.error_type) for p in h.pairs()] == [
        ("get_wrapper_sessions -> wrapper_sessions_response", Outcome.ABANDONED, "abandoned"),
        ("x -> ack", Outcome.ABANDONED, "abandoned"),
    ]
    assert h.pairs()[0].duration_s == pytest.approx(1.0)
    close = h.lifecycle()[-1]
    assert close.kind is LifecycleKind.CLOSE and close.ok and close.detail == "close_packet"
    sizes = h.engine.sizes()
    assert sizes["sessions"] == sizes["pending"] == sizes["acks"] == 0
    h.advance(10)  # stale timers fire into nothing
    assert len(h.pairs()) == 2


def test_namespace_disconnect_abandons_its_pending_only() -> None:
    h = Harness()
    h.open()
    h.send(event("a", ack=1, ns="/x"))
    h.send(event("b", ack=1))
    h.send(control(SocketPacketType.DISCONNECT, ns="/x"))
    assert [(p.namespace, p.outcome) for p in h.pairs()] == [("/x", Outcome.ABANDONED)]
    assert h.engine.snapshot().pending == 1


def test_pending_limits_evict_oldest_and_count() -> None:
    h = Harness(settings(limits={"max_pending_per_session": 2, "max_pending": 3}))
    h.open("s1")
    h.open("s2")
    for i in range(3):
        h.send(event("e", ack=i), sid="s1")
    assert [(p.ack_id, p.outcome) for p in h.pairs()] == [(0, Outcome.EVICTED)]
    h.send(event("e", ack=9), sid="s2")
    h.send(event("e", ack=10), sid="s2")
    assert [(p.session.session_id, p.ack_id) for p in h.pairs()] == [("s1", 0), ("s1", 1)]
    snap = h.engine.snapshot()
    assert snap.evictions == {"pending_per_session": 1, "pending_global": 1}
    assert snap.pending == 3


def test_session_limit_evicts_oldest_session() -> None:
    h = Harness(settings(limits={"max_sessions": 2}))
    for sid in ("a", "b", "c"):
        h.open(sid)
        h.send(event("e", ack=1), sid=sid)
    assert [(p.session.session_id, p.outcome) for p in h.pairs()] == [("a", Outcome.EVICTED)]
    assert [s.session_id for s in h.engine.session_views()] == ["b", "c"]
    closes = [r for r in h.lifecycle() if r.kind is LifecycleKind.CLOSE]
    assert [(c.session.session_id, c.ok) for c in closes] == [("a", False)]


def test_sampling_keeps_errors_slow_and_counts_everything() -> None:
    h = Harness(
        settings(
            sample_rate=0.0,
            defaults={"slow": "1s", "error_when": [{"path": "status", "equals": "error"}]},
            rules=[{"request": "q", "responses": ["r"]}],
        )
    )
    h.open()
    for status, wait in (("ok", 0.1), ("error", 0.1), ("ok", 1.5)):
        h.send(event("q"))
        h.advance(wait)
        h.reply(event("r", {"status": status}))
    assert [(p.outcome, p.slow, p.sampled) for p in h.pairs()] == [
        (Outcome.OK, False, False),
        (Outcome.ERROR, False, True),
        (Outcome.OK, True, True),
    ]
    snap = h.engine.snapshot()
    assert snap.rules[0].outcomes == {"ok": 2, "error": 1}
    assert snap.extra["pairs_unsampled"] == 1


def test_unsampled_pairs_nobody_would_see_are_not_built_but_counted() -> None:
    records: list[Record] = []
    asked: list[bool] = []

    def wants() -> bool:
        asked.append(True)
        return False

    s = settings(sample_rate=0.0, defaults={"slow": "1s"})
    engine = CorrelationEngine(s, records.append, SequentialIds(), wants_unsampled=wants)
    h = Harness(s)
    h.engine = engine
    h.open()
    h.send(event("e", ack=1))
    h.reply(ack(1))  # ok, fast, unsampled: nobody wants it
    h.send(event("e", ack=2))
    h.advance(1.5)
    h.reply(ack(2))  # slow: always kept
    assert [(p.ack_id, p.slow, p.sampled) for p in records if isinstance(p, PairRecord)] == [
        (2, True, True)
    ]
    assert len(asked) == 1
    snap = engine.snapshot()
    assert snap.rules[0].outcomes == {"ok": 2} and snap.extra["pairs_unsampled"] == 1


def test_partial_sampling_is_roughly_the_rate() -> None:
    h = Harness(settings(sample_rate=0.5))
    h.open()
    for i in range(400):
        h.send(event("e", ack=i))
        h.reply(ack(i))
    kept = sum(p.sampled for p in h.pairs())
    assert 100 < kept < 300


def test_one_way_and_aggregated_events(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.reply(event("connected", {"data": "hi"}))
    for ch in "abc":
        h.send(event("terminal_input", {"session": "s", "data": ch}))
        h.reply(event("terminal_output", {"session": "s", "data": ch}))
    h.send(event("terminal_resize", {"cols": 80}))
    assert [(m.event, m.direction) for m in h.messages()] == [
        ("connected", S2C),
        ("terminal_resize", C2S),
    ]
    events = {(e.event, e.direction): e.messages for e in h.engine.snapshot().events}
    assert events[("terminal_output", "s2c")] == 3
    assert events[("terminal_input", "c2s")] == 3
    # An aggregated event that asks for an ack is still paired.
    h.send(event("terminal_input", {"data": "\r"}, ack=1))
    h.reply(ack(1))
    assert h.summary() == [("terminal_input -> ack", "ok", None)]


def test_event_names_fold_past_the_cap() -> None:
    h = Harness(settings(limits={"max_event_names": 3}))
    h.open()
    for i in range(10):
        h.send(event(f"e{i}"))
    names = {e.event for e in h.engine.snapshot().events}
    assert names == {"e0", "e1", "e2", "(other)"}
    assert len(h.messages()) == 10  # records keep the concrete name


def test_handshake_continues_traceparent_and_lifecycle_spans() -> None:
    h = Harness()
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    h.open(transport=Transport.POLLING, traceparent=tp)
    hs = h.lifecycle()[0]
    assert hs.kind is LifecycleKind.HANDSHAKE
    assert hs.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert hs.parent_span_id == "00f067aa0ba902b7"
    assert hs.span_id == hs.session.span_id
    h.send(control(SocketPacketType.CONNECT), transport=Transport.POLLING)
    h.advance(0.05)
    h.reply(control(SocketPacketType.CONNECT, {"sid": "x"}), transport=Transport.POLLING)
    h.feed(SessionUpgraded("sid1", 0.5, h.now, h.wall))
    h.feed(HeartbeatObserved("sid1", 0.002, h.now, h.wall))
    h.send(event("x", ack=1))
    h.reply(ack(1))
    connect, upgrade = h.lifecycle()[1:]
    assert connect.kind is LifecycleKind.NAMESPACE_CONNECT and connect.ok
    assert connect.namespace == "/" and connect.duration_s == pytest.approx(0.05)
    assert connect.parent_span_id == hs.span_id and connect.trace_id == hs.trace_id
    assert upgrade.kind is LifecycleKind.UPGRADE
    assert upgrade.start_wall == pytest.approx(h.wall - 0.5)
    (pair,) = h.pairs()
    assert pair.session == hs.session and pair.trace_id != hs.trace_id
    (view,) = h.engine.session_views()
    assert view.transport == "websocket" and view.upgraded and view.namespaces == ("/",)
    assert view.heartbeat_rtt_s == 0.002
    snap = h.engine.snapshot()
    assert snap.upgrade_duration.count == 1 and snap.heartbeat_rtt.count == 1
    assert snap.sessions_by_transport == {"polling": 0, "websocket": 1}


def test_connect_error_is_an_error_lifecycle() -> None:
    h = Harness()
    h.open()
    h.send(control(SocketPacketType.CONNECT, {"token": "t"}, ns="/admin"))
    h.reply(control(SocketPacketType.CONNECT_ERROR, {"message": "Not authorized"}, ns="/admin"))
    err = h.lifecycle()[-1]
    assert (err.kind, err.ok, err.error) == (
        LifecycleKind.NAMESPACE_CONNECT,
        False,
        "Not authorized",
    )
    assert h.engine.snapshot().rules[0].outcomes == {"error": 1}


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    ],
)
def test_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_server_initiated_rule_and_direction_check() -> None:
    h = Harness(
        settings(rules=[{"request": "ask", "responses": ["answer"], "initiator": "server"}])
    )
    h.open()
    h.send(event("ask"))  # wrong direction for this rule: a plain one-way message
    h.reply(event("ask"))
    h.send(event("answer"))
    (pair,) = h.pairs()
    assert pair.initiator is S2C and pair.outcome is Outcome.OK
    assert [m.direction for m in h.messages()] == [C2S]


def test_packets_of_an_unseen_session_and_decode_failures() -> None:
    h = Harness()
    h.send(event("x", ack=1), sid="ghost")
    h.reply(ack(1), sid="ghost")
    h.feed(DecodeFailed(None, C2S, Transport.POLLING, "bad", 3, h.now, h.wall))
    snap = h.engine.snapshot()
    assert snap.extra["sessions_without_handshake"] == 1
    assert snap.decode_errors == 1
    assert h.summary() == [("x -> ack", "ok", None)]


def test_pending_views_report_age() -> None:
    h = Harness()
    h.open()
    h.send(event("x", ack=1))
    h.advance(1.5)
    (view,) = h.engine.pending_views(h.now)
    assert view.age_s == pytest.approx(1.5)
    assert view.rule == "x -> ack" and view.ack_id == 1 and view.timeout_s == 5.0
    assert view.started_wall == pytest.approx(WALL0 + 100.0)


def test_memory_stays_flat_over_a_long_session(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()

    def burst(n: int) -> None:
        for i in range(n):
            h.send(event("get_block_status", {"session_id": f"s{i}"}))
            h.send(event("terminal_input", {"data": "x"}, ack=i))
            h.reply(event("terminal_output", {"data": "x"}))
            h.reply(ack(i))
            h.advance(0.01)
            h.reply(event("block_status_response", {"session_id": f"s{i}"}))
            if i % 100 == 0:
                h.send(event("ai_get_info", {}))  # never answered: times out
        h.records.clear()

    burst(12_000)  # 120 s of traffic: the timed-out memory (100) is full already
    h.advance(10)
    first = h.engine.sizes()
    burst(20_000)
    h.advance(10)
    assert h.engine.sizes() == first
    assert first["pending"] == 0
    assert first["heap"] <= 64 + 2 * first["pending"]
    assert first["timed_out"] == 100  # limits.max_timed_out_per_session


def test_close_reason_heartbeat_is_not_ok() -> None:
    h = Harness()
    h.open()
    h.close(reason=CloseReason.HEARTBEAT_TIMEOUT)
    close = h.lifecycle()[-1]
    assert not close.ok and close.error == "heartbeat_timeout"


def test_default_config_file_is_package_data() -> None:
    assert (Path(config.__file__).parent / "default.yaml").is_file()

"""Echo rules and negative answers: events in on a fake clock, metrics and records out."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.exporters.openobserve_json import pair_json
from socketio_trace_proxy.exporters.spans import StatusCode, pair_span
from socketio_trace_proxy.tracking.correlation.echo import (
    MAX_ECHO_SLOTS,
    key_prefix,
    quick_key,
)
from socketio_trace_proxy.tracking.records import Outcome, PairKind
from socketio_trace_proxy.tracking.views import EchoStats
from socketio_trace_proxy.tracking.wire.packets import SocketPacket, SocketPacketType
from tests.tracking.engine_kit import C2S, S2C, Harness, event, settings

TABS_INPUT = "workspace:tab:{tab}:pane:{pane}:terminal:input"


@pytest.fixture
def aether() -> TrackingSettings:
    return load_settings(None, {}).tracking


def compact(name: str, arg: object) -> SocketPacket:
    """An EVENT packet as python-socketio and socket.io-client encode it (no spaces)."""
    payload = json.dumps([name, arg], separators=(",", ":"))
    return SocketPacket(SocketPacketType.EVENT, "/", None, name, payload, (), len(payload) + 2)


def echo_stats(h: Harness, rule: str = "terminal echo") -> EchoStats:
    return {e.rule: e for e in h.engine.snapshot().echo}[rule]


def keystroke(h: Harness, data: str, terminal: str = "s1") -> None:
    h.send(event("terminal_input", {"session": terminal, "data": data}))


def output(h: Harness, data: str, terminal: str = "s1") -> None:
    h.reply(event("terminal_output", {"session": terminal, "data": data}))


def test_input_to_first_output_no_record_per_keystroke(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    output(h, "prompt$ ")  # output with no input waiting: nothing measured
    for ms in (2, 3, 5):
        keystroke(h, "x")
        h.advance(ms / 1000)
        output(h, "x")
        h.advance(0.001)
        output(h, "more output of the same keystroke")  # only the first output counts
    stats = echo_stats(h)
    assert stats.latency.count == 3 and stats.latency.exact
    assert stats.latency.p50_s == pytest.approx(0.003)
    assert stats.latency.max_s == pytest.approx(0.005)
    assert stats.slow == 0 and stats.unanswered == 0
    assert h.records[1:] == []  # the handshake only: no pair, no message per keystroke
    view = h.engine.session_view("sid1")
    assert view is not None and view.echo_count == 3
    assert view.echo_avg_s == pytest.approx(0.010 / 3) and view.echo_max_s == pytest.approx(0.005)


def test_slow_echo_is_recorded(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    keystroke(h, "a")
    h.advance(0.3)  # the rule's slow threshold is 250 ms
    output(h, "a")
    (record,) = h.pairs()
    assert record.kind is PairKind.ECHO and record.outcome is Outcome.OK and record.slow
    assert record.operation == "terminal echo -> terminal_output"
    assert (record.request_event, record.response_event) == ("terminal_input", "terminal_output")
    assert record.match_key == "s1" and record.initiator is C2S
    assert record.duration_s == pytest.approx(0.3) and record.error_type is None
    assert echo_stats(h).slow == 1


def test_typing_ahead_keeps_the_first_unanswered_input(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    keystroke(h, "a")
    h.advance(0.010)
    keystroke(h, "b")
    h.advance(0.005)
    output(h, "ab")
    stats = echo_stats(h)
    assert stats.latency.count == 1 and stats.latency.max_s == pytest.approx(0.015)


def test_terminals_are_measured_apart(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    keystroke(h, "a", "s1")
    h.advance(0.002)
    keystroke(h, "b", "s2")
    h.advance(0.002)
    output(h, "b", "s2")  # 2 ms for s2
    h.advance(0.006)
    output(h, "a", "s1")  # 10 ms for s1
    stats = echo_stats(h)
    assert stats.latency.count == 2
    assert stats.latency.max_s == pytest.approx(0.010) and stats.latency.p50_s == pytest.approx(
        0.002
    )


def test_per_key_false_measures_per_session() -> None:
    rule = {
        "kind": "echo",
        "request": "terminal_input",
        "responses": ["terminal_output"],
        "match": "session",
        "per_key": False,
        "name": "echo",
    }
    h = Harness(settings(rules=[rule]))
    h.open()
    keystroke(h, "a", "s1")
    h.advance(0.004)
    output(h, "b", "s2")  # any output of the session answers
    stats = echo_stats(h, "echo")
    assert stats.latency.count == 1 and stats.latency.max_s == pytest.approx(0.004)


def test_unanswered_inputs_are_counted_never_recorded(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    keystroke(h, "a")
    h.advance(6.0)  # past the default 5 s timeout: no timer, no timeout record
    assert h.records[1:] == []
    output(h, "a")  # too late to be its echo
    stats = echo_stats(h)
    assert stats.unanswered == 1 and stats.latency.count == 0
    keystroke(h, "b")
    h.advance(6.0)
    keystroke(h, "c")  # the stale one is counted and replaced
    h.advance(0.001)
    output(h, "c")
    stats = echo_stats(h)
    assert stats.unanswered == 2 and stats.latency.count == 1
    keystroke(h, "d")
    h.close()
    assert echo_stats(h).unanswered == 3
    assert h.pairs() == [] and h.engine.sizes()["echoes"] == 0


def test_echo_slots_per_session_are_bounded(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    for i in range(MAX_ECHO_SLOTS + 6):
        keystroke(h, "x", f"term{i}")
    assert h.engine.sizes()["echoes"] == MAX_ECHO_SLOTS
    assert echo_stats(h).evicted == 6
    output(h, "x", "term0")  # evicted: no measurement
    output(h, "x", f"term{MAX_ECHO_SLOTS + 5}")
    assert echo_stats(h).latency.count == 1


def test_branch_echo_templated_input_and_folded_metrics(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    for tab, pane, terminal in (("tabA", "paneA", "termA"), ("tabB", "paneB", "termB")):
        h.send(
            event(
                f"workspace:tab:{tab}:pane:{pane}:terminal:input",
                {"terminalId": terminal, "data": "l", "_requestId": "req_1_3"},
            )
        )
        h.advance(0.004)
        h.reply(event("terminal:data", {"terminalId": terminal, "data": "l"}))
        h.send(event(f"workspace:tab:{tab}:pane:{pane}:terminal:focus", {"terminalId": terminal}))
    stats = echo_stats(h, "terminal:input echo")
    assert stats.latency.count == 2 and stats.latency.max_s == pytest.approx(0.004)
    events = {(e.event, e.direction): e.messages for e in h.engine.snapshot().events}
    # one metric per template, never one per tab/pane; all aggregated: no record
    assert events[(TABS_INPUT, "c2s")] == 2
    assert events[("workspace:tab:{tab}:pane:{pane}:terminal:focus", "c2s")] == 2
    assert events[("terminal:data", "s2c")] == 2
    assert not any("tabA" in name for name, _ in events)
    assert h.records[1:] == []


def test_output_before_input_of_other_direction_is_ignored(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    # a server-sent terminal_input is not an input of a client-initiated echo rule
    h.send(event("terminal_input", {"session": "s1", "data": "x"}), S2C)
    h.advance(0.001)
    output(h, "x")
    assert echo_stats(h).latency.count == 0


def test_rejection_is_its_own_outcome(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("create_terminal", {"session": "s1"}))
    h.advance(0.01)
    h.reply(event("terminal_closed", {"session": "s1", "reason": "session_already_closed"}))
    h.send(event("create_terminal", {"session": "s2"}))
    h.reply(event("terminal_ready", {"session": "s2", "status": "ready"}))
    rejected, ok = h.pairs()
    assert rejected.outcome is Outcome.REJECTED and rejected.error_type == "terminal_closed"
    assert rejected.operation == "create_terminal -> terminal_ready"
    assert rejected.response_event == "terminal_closed"
    assert ok.outcome is Outcome.OK
    (rule,) = [r for r in h.engine.snapshot().rules if r.rule == "create_terminal"]
    assert rule.outcomes == {"rejected": 1, "ok": 1} and rule.latency.count == 2


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "echo", "request": "a"}, "an echo rule needs 'responses'"),
        (
            {"kind": "echo", "request": "a", "responses": ["b"], "errors": ["c"]},
            "an echo rule has no 'errors'",
        ),
        (
            {"kind": "echo", "request": "a:{x}", "responses": ["b:{x}"]},
            "responses cannot have placeholders",
        ),
        ({"request": "a:{x", "responses": ["b"]}, r"not part of a '\{name\}' placeholder"),
        ({"request": "a:{1x}", "responses": ["b"]}, r"is not '\{name\}'"),
        ({"request": "a:{x}:{x}", "responses": ["b"]}, "a placeholder is repeated"),
    ],
)
def test_bad_echo_and_template_rules_are_refused(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(rules=[rule])


def test_bad_aggregate_template_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"aggregate entry 'x:\{y'"):
        settings(aggregate=["x:{y"])


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('["terminal_input",{"session":"s1","data":"e"}]', "s1"),
        ('["terminal_input",{"session":"a\\"b"}]', None),  # an escape: parse instead
        ('["terminal_input",{"session":"a\\\\b"}]', None),
        ('["terminal_input",{"session":""}]', None),
        ('["terminal_input",{"session":"s1', None),  # cut short
    ],
)
def test_quick_key_reads_only_what_it_can_be_sure_of(payload: str, expected: str | None) -> None:
    prefix = key_prefix("terminal_input", ("session",))
    assert payload.startswith(prefix)
    assert quick_key(payload, prefix) == expected
    if expected is not None:  # whatever it reads, the JSON parse agrees
        assert json.loads(payload)[1]["session"] == expected


def test_quick_key_prefix_only_for_plain_names() -> None:
    assert key_prefix("a:b", ("terminalId",)) == '["a:b",{"terminalId":"'
    assert key_prefix('a"b', ("k",)) == ""  # would be escaped in the payload
    assert key_prefix("a", ("k", "nested")) == ""
    assert key_prefix(None, ("k",)) == ""


def test_keys_the_quick_reader_refuses_are_parsed(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(compact("terminal_input", {"data": "{", "session": "s1"}))  # not first: parsed
    h.advance(0.002)
    h.reply(compact("terminal_output", {"session": "s2", "data": "x"}))  # another terminal
    h.reply(compact("terminal_output", {"session": "s1", "data": "{"}))  # read quickly
    stats = echo_stats(h)
    assert stats.latency.count == 1 and stats.latency.max_s == pytest.approx(0.002)


def test_a_rejection_is_exported_as_an_error(aether: TrackingSettings) -> None:
    h = Harness(aether)
    h.open()
    h.send(event("create_terminal", {"session": "s1"}))
    h.reply(event("terminal_closed", {"session": "s1", "reason": "session_already_closed"}))
    (rejected,) = h.pairs()
    span = pair_span(rejected)
    assert span.status is StatusCode.ERROR and span.status_message == "terminal_closed"
    attrs = dict(span.all_attributes)
    assert attrs["error.type"] == "terminal_closed" and attrs["socket.success"] is False
    assert attrs["messaging.socket.io.outcome"] == "rejected"
    row = pair_json(rejected, "svc")
    assert row["socket.success"] is False and row["level"] == "ERROR"
    assert row["socket.outcome"] == "rejected" and row["error_type"] == "terminal_closed"

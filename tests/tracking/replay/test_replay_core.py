"""The sans-IO replay core: scripts from recordings, the per-session state machine fed with
scripted live packets, the structural diff, the summary."""

from __future__ import annotations

import json

from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.recording.format import read_lines
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.replay.diff import Comparer, Difference, Remap
from socketio_trace_proxy.tracking.replay.report import Summary, percentile
from socketio_trace_proxy.tracking.replay.script import SessionScript, build_script, load_sessions
from socketio_trace_proxy.tracking.replay.session import (
    Close,
    ReplaySession,
    Send,
    Status,
    Upgrade,
    Wait,
)
from socketio_trace_proxy.tracking.traffic import Transport
from tests.fixtures.record_fixtures import fixture_text
from tests.fixtures.recordings import PYTHON_CLIENT

TRACKING = load_settings(None, {}).tracking  # AetherTerm's rules
WS = Transport.WEBSOCKET


def script_of(text: str, tracking: TrackingSettings = TRACKING) -> SessionScript:
    header, sessions = load_sessions(read_lines(text.splitlines(), "t"))
    assert header is not None and len(sessions) == 1
    return build_script(sessions[0], tracking)


def test_script_of_the_python_client_recording() -> None:
    s = script_of(fixture_text(PYTHON_CLIENT))
    assert (
        s.transport is Transport.POLLING and s.upgrade_at == 0.005
    )  # times run from the handshake (0.004)
    assert [st.data for st in s.steps] == [
        "40",
        '42["create_terminal",{"session":"rawsess1","user":"","path":""}]',
        '421["terminal_input",{"session":"rawsess1","data":"[REDACTED]"}]',
        '42["get_block_status",{"session_id":"rawsess1"}]',
        '42["terminal_input",{"session":"rawsess1","data":"[REDACTED]"}]',
        "41",
    ]
    rules = [(e.rule, e.outcome, round(e.latency_s or 0, 3)) for e in s.expectations]
    assert rules == [
        ("namespace_connect", "ok", 0.001),
        ("create_terminal", "ok", 0.014),
        ("terminal_input -> ack", "ok", 0.001),
        ("get_block_status", "ok", 0.002),
    ]
    # terminal_input waits for terminal_ready, as the client did then
    ready = next(e.id for e in s.expectations if e.rule == "create_terminal")
    assert ready in s.steps[2].after


def drive(rs: ReplaySession, replies: dict[str, list[str]], until: float = 60.0) -> list[object]:
    """Run the state machine on a fake clock; the 'server' answers each sent packet with
    ``replies[packet]`` at once."""
    now, actions = 0.0, []
    rs.opened("LIVE")
    while now < until:
        action = rs.next_action(now)
        actions.append(action)
        if isinstance(action, Close):
            break
        if isinstance(action, Send):
            rs.sent(action, WS, now)
            for packet in action.packets:
                for reply in replies.get(str(packet), []):
                    now += 0.001
                    rs.received(reply, WS, now)
        elif isinstance(action, Upgrade):
            rs.upgraded()
        elif isinstance(action, Wait):
            now = action.until if action.until is not None else now + 0.5
    rs.finish(now)
    return actions


def session(text: str, tracking: TrackingSettings = TRACKING, **kwargs: object) -> ReplaySession:
    s = script_of(text, tracking)
    redactor = PacketRedactor(tracking.capture)
    comparer = Comparer(kwargs.pop("ignore", ("sid",)))  # type: ignore[arg-type]
    return ReplaySession(s, tracking, comparer, redactor, **kwargs)  # type: ignore[arg-type]


def python_client_server(ready: str = "ready", block: str = "success") -> dict[str, list[str]]:
    return {
        "40": ['40{"sid":"NEW"}'],
        '42["create_terminal",{"session":"rawsess1","user":"","path":""}]': [
            f'42["terminal_ready",{{"session":"rawsess1","status":"{ready}"}}]'
        ],
        '421["terminal_input",{"session":"rawsess1","data":"[REDACTED]"}]': ["431[]"],
        '42["get_block_status",{"session_id":"rawsess1"}]': [
            f'42["block_status_response",{{"status":"{block}","session_id":"rawsess1",'
            '"is_blocked":false}]'
        ],
    }


def test_same_replies_match() -> None:
    rs = session(fixture_text(PYTHON_CLIENT), speed=None, upgrade_at=0.005)
    actions = drive(rs, python_client_server())
    assert any(isinstance(a, Upgrade) for a in actions)
    assert [(r.rule, r.status) for r in rs.result.replies] == [
        ("namespace_connect", Status.MATCH),
        ("create_terminal", Status.MATCH),
        ("terminal_input -> ack", Status.MATCH),
        ("get_block_status", Status.MATCH),
    ]
    assert not rs.result.failed and rs.result.sent == 6


def test_changed_and_missing_replies() -> None:
    rs = session(fixture_text(PYTHON_CLIENT), speed=None)
    server = python_client_server(block="error")
    del server['421["terminal_input",{"session":"rawsess1","data":"[REDACTED]"}]']
    drive(rs, server)
    by_rule = {r.rule: r for r in rs.result.replies}
    assert by_rule["get_block_status"].status is Status.DIFFER
    assert by_rule["get_block_status"].differences == (
        Difference("[0].status", "changed", "success", "error"),
    )
    assert by_rule["terminal_input -> ack"].status is Status.MISSING
    assert rs.result.failed


def test_pace_follows_the_recording_scaled_by_speed() -> None:
    rs = session(fixture_text(PYTHON_CLIENT), speed=2.0)
    actions = drive(rs, python_client_server())
    waits = [a.until for a in actions if isinstance(a, Wait) and a.until is not None]
    # get_block_status was sent 3.515 s into the session then: 1.7575 s in now
    assert 3.515 / 2 in waits


def test_server_ids_are_remapped_in_later_client_packets() -> None:
    server = python_client_server()
    key = '42["create_terminal",{"session":"rawsess1","user":"","path":""}]'
    server[key] = ['42["terminal_ready",{"session":"fresh-id","status":"ready"}]']
    sent: list[str] = []
    # a server-issued id: the request carries no key (FIFO), the reply a new one each time
    fifo = TrackingSettings.model_validate(
        {"rules": [{"request": "create_terminal", "responses": ["terminal_ready"]}]}
    )
    rs = session(fixture_text(PYTHON_CLIENT), fifo, speed=None, ignore=("sid", "session"))
    rs.opened("LIVE")
    now = 0.0
    while not isinstance(action := rs.next_action(now), Close):
        if isinstance(action, Send):
            rs.sent(action, WS, now)
            sent += [str(p) for p in action.packets]
            for p in action.packets:
                for reply in server.get(str(p), []):
                    rs.received(reply, WS, now)
        now += 0.01
    assert '421["terminal_input",{"session":"fresh-id","data":"[REDACTED]"}]' in sent
    statuses = {r.rule: r.status for r in rs.finish(now).replies}
    assert statuses["create_terminal"] is Status.MATCH  # the new id is no difference


def test_server_request_ack_ids_are_the_live_ones() -> None:
    lines = fixture_text(PYTHON_CLIENT).splitlines()[:3]  # header, session, OPEN
    sid = json.loads(lines[1])["session"]

    def packet(t: float, d: str, text: str) -> str:
        return json.dumps(
            {
                "type": "packet",
                "session": sid,
                "t": t,
                "dir": d,
                "transport": "websocket",
                "text": text,
            }
        )

    lines += [
        packet(0.1, "c2s", "40"),
        packet(0.2, "s2c", '40{"sid":"x"}'),
        packet(0.3, "s2c", '427["question",{"n":1}]'),
        packet(0.4, "c2s", '437[{"answer":2}]'),
    ]
    rs = session("\n".join(lines), speed=None)
    rs.opened("LIVE")
    rs.next_action(0.0)  # the CONNECT
    sent: list[str] = []
    rs.received('40{"sid":"y"}', WS, 0.1)
    rs.received('4212["question",{"n":1}]', WS, 0.2)
    now = 0.2
    while not isinstance(action := rs.next_action(now), Close):
        if isinstance(action, Send):
            sent += [str(p) for p in action.packets]
            rs.sent(action, WS, now)
        now += 0.05
    assert sent == ['4312[{"answer":2}]']


def test_comparer_ignores_remaps_and_reports_structure() -> None:
    c = Comparer(("sid", "ts"), {"ready": ("meta.id",)})
    remap = Remap()
    then = [{"sid": "a", "ts": 1, "meta": {"id": 5, "v": [1, 2]}, "gone": True}]
    now = [{"sid": "b", "ts": 2, "meta": {"id": 6, "v": [1, 3, 4]}, "new": None}]
    diffs = c.compare(["ready"], then, now, remap)
    assert [d.describe() for d in diffs] == [
        "[0].meta.v[1]: 2 -> 3",
        "[0].meta.v[2]: added 4",
        "[0].gone: removed (was true)",
        "[0].new: added null",
    ]
    assert remap.values == {"a": "b"}
    assert c.compare([None], ["a"], ["b"], remap) == []  # a remapped id is no difference
    assert [d.kind for d in c.compare([None], [1], ["1"], Remap())] == ["type"]


def test_summary_percentiles_and_table() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert percentile([], 50) is None
    rs = session(fixture_text(PYTHON_CLIENT), speed=None)
    drive(rs, python_client_server())
    summary = Summary()
    summary.add(rs.result)
    summary.elapsed_s = 2.0
    table = summary.table()
    assert "create_terminal" in table and "1 sessions (0 with problems" in table
    assert summary.ok and summary.to_json()["rules"]["create_terminal"]["match"] == 1

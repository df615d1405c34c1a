"""The splitter: raw observations in, record lines out (no sockets, no clock)."""

from __future__ import annotations

import json

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.recording.format import (
    CloseLine,
    Line,
    PacketLine,
    SessionLine,
    decode,
)
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.recording.splitter import RecordSplitter
from socketio_trace_proxy.tracking.rules import RuleBook
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.fixtures.record_fixtures import fixture_text
from tests.fixtures.recordings import PYTHON_CLIENT, load_frames

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
OPEN = '0{"sid":"S1","upgrades":["websocket"],"pingTimeout":20000,"pingInterval":25000}'


def splitter(**kwargs: object) -> RecordSplitter:
    tracking = TrackingSettings.model_validate(
        {
            "rules": [{"request": "ws:{tab}:open", "responses": ["ws:{tab}:opened"]}],
            "capture": {"redact_paths": {"terminal_input": ["data"], "ws:{tab}:open": ["key"]}},
        }
    )
    redactor = PacketRedactor(tracking.capture, RuleBook(tracking))
    return RecordSplitter(redactor, wall_offset=1000.0, **kwargs)  # type: ignore[arg-type]


def packets(lines: list[Line]) -> list[tuple[str, str, str | bytes, int | None]]:
    return [
        (p.direction.value, p.transport.value, p.data, p.body)
        for p in lines
        if isinstance(p, PacketLine)
    ]


def test_python_client_recording_packet_by_packet() -> None:
    no_paths = TrackingSettings.model_validate({"capture": {"redact_paths": {}}})
    lines = [decode(t) for t in fixture_text(PYTHON_CLIENT, no_paths).splitlines()[1:]]
    assert isinstance(lines[0], SessionLine)
    assert lines[0].session == "R3jHV-5XTXX0XlbEAAAD" and lines[0].wall == 1_700_000_000.004
    got = packets(lines)
    frames = load_frames(PYTHON_CLIENT)
    # every frame of the recording, polling bodies cut at \x1e; nothing redacted in it
    expected = []
    for f in frames:
        if f.kind.value in {"poll_post_response", "ws_open"}:
            continue
        parts = f.data.split("\x1e")
        transport = "polling" if f.kind.value.startswith("poll") else "websocket"
        expected += [(f.direction.value, transport, p) for p in parts]
    assert [(d, t, data) for d, t, data, _ in got] == expected
    bodies = [b for d, t, _, b in got if t == "polling"]
    assert bodies == [0, 1, 2, 2]  # the batched GET body is one body


def test_direct_websocket_session_and_close() -> None:
    sp = splitter()
    assert sp.websocket_message(7, S2C, OPEN, 0.0) == []  # leg never opened: ignored
    sp.websocket_opened(1, {"EIO": "4", "transport": "websocket"}, 10.0)
    out = sp.websocket_message(1, S2C, OPEN, 10.0)
    out += sp.websocket_message(1, C2S, "40", 10.5)
    out += sp.websocket_message(1, S2C, b"\x01\x02", 10.75)
    out += sp.websocket_closed(1, C2S, 1000, 11.0)
    assert out[0] == SessionLine("S1", 1010.0, 4, Transport.WEBSOCKET)
    assert packets(out) == [
        ("s2c", "websocket", OPEN, None),
        ("c2s", "websocket", "40", None),
        ("s2c", "websocket", b"\x01\x02", None),
    ]
    assert out[-1] == CloseLine("S1", 1.0, "websocket_closed", C2S, 1000)
    assert sp.open_sessions == []


def test_upgrade_probe_then_active_websocket() -> None:
    sp = splitter()
    out = sp.polling_response(
        {"EIO": "4", "transport": "polling"}, "GET", 200, None, OPEN.encode(), 0
    )
    sp.websocket_opened(1, {"EIO": "4", "transport": "websocket", "sid": "S1"}, 1)
    out += sp.websocket_message(1, C2S, "2probe", 1)
    out += sp.websocket_message(1, S2C, "3probe", 1)
    out += sp.websocket_message(1, C2S, "5", 1)
    out += sp.websocket_closed(1, S2C, 1001, 2)
    assert out[-1] == CloseLine("S1", 2.0, "websocket_closed", S2C, 1001)


def test_failed_probe_leaves_the_polling_session_open() -> None:
    sp = splitter()
    sp.polling_response({"EIO": "4"}, "GET", 200, None, OPEN.encode(), 0)
    sp.websocket_opened(1, {"EIO": "4", "sid": "S1"}, 1)
    sp.websocket_message(1, C2S, "2probe", 1)
    assert sp.websocket_closed(1, C2S, 1000, 2) == []
    assert sp.open_sessions == ["S1"]


def test_redaction_by_capture_rules_and_exact_text_otherwise() -> None:
    sp = splitter()
    sp.polling_response({"EIO": "4"}, "GET", 200, None, OPEN.encode(), 0)
    body = (
        '42["login",{"user":"u","Password":"p","nested":{"api_token":"t"}}]\x1e'
        '42["terminal_input",{"session":"s","data":"ls"}]\x1e'
        '42["ws:tab1:open",{"key":"k","x":1}]\x1e'
        '42["plain",{"a": 1,  "b":"\\u00e9"}]\x1e'
        '40{"token":"secret"}'
    )
    out = sp.polling_request({"EIO": "4", "sid": "S1"}, body.encode(), 1)
    texts = [d for _, _, d, _ in packets(out)]
    assert json.loads(texts[0][2:]) == [
        "login",
        {"user": "u", "Password": "[REDACTED]", "nested": {"api_token": "[REDACTED]"}},
    ]
    assert json.loads(texts[1][2:]) == ["terminal_input", {"session": "s", "data": "[REDACTED]"}]
    assert json.loads(texts[2][2:]) == ["ws:tab1:open", {"key": "[REDACTED]", "x": 1}]
    assert texts[3] == '42["plain",{"a": 1,  "b":"\\u00e9"}]'  # untouched, spacing and all
    assert texts[4] == '40{"token":"[REDACTED]"}'


def test_sessions_limit_and_eviction_are_bounded_and_counted() -> None:
    sp = splitter(max_sessions=2, max_open_sessions=1)
    for i in range(3):
        body = OPEN.replace("S1", f"S{i}").encode()
        sp.polling_response({"EIO": "4"}, "GET", 200, None, body, i)
    assert sp.stats.sessions == 2 and sp.stats.skipped_sessions == 1
    assert sp.stats.evicted == 1 and sp.open_sessions == ["S1"]
    sp.polling_request({"EIO": "4", "sid": "S2"}, b'42["x"]', 4)  # skipped: not counted
    sp.polling_request({"EIO": "4", "sid": "nobody"}, b'42["x"]', 4)
    assert sp.stats.unknown == 1


def test_close_packet_ends_the_session_and_errors_are_not_payloads() -> None:
    sp = splitter()
    sp.polling_response({"EIO": "4"}, "GET", 200, None, OPEN.encode(), 0)
    assert sp.polling_response({"EIO": "4", "sid": "S1"}, "GET", 400, None, b"{}", 1) == []
    assert sp.polling_response({"EIO": "4", "sid": "S1"}, "POST", 200, None, b"ok", 1) == []
    out = sp.polling_request({"EIO": "4", "sid": "S1"}, b'1\x1e42["late"]', 2)
    assert packets(out) == [("c2s", "polling", "1", 1)]
    assert out[-1] == CloseLine("S1", 2.0, "close_packet", C2S)

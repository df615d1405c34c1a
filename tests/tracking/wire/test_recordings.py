"""Golden tests: every frame of the recorded AetherTerm traffic decodes as expected."""

from __future__ import annotations

import json
import re

import pytest

from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.wire.engineio import decode_ws_frame
from socketio_trace_proxy.tracking.wire.packets import (
    DecodeFailure,
    EnginePacket,
    EnginePacketType,
    SocketPacket,
    SocketPacketType,
)
from socketio_trace_proxy.tracking.wire.payload import decode_payload
from socketio_trace_proxy.tracking.wire.socketio import SocketIOStreamDecoder, parse_args
from tests.fixtures.recordings import (
    EVENT_PROBE,
    MULTI_SESSION_TABS,
    PYTHON_CLIENT,
    VUE_FRONTEND,
    FrameKind,
    event_frames,
    load_events,
    load_frames,
)

E = EnginePacketType
S = SocketPacketType
C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT

Row = tuple[Direction, E, S | None, str | None, int | None, str]


def _decode(name: str) -> list[Row]:
    """(direction, engine type, socket type, event, ack id, namespace) for every packet."""
    rows: list[Row] = []
    decoders = {C2S: SocketIOStreamDecoder(), S2C: SocketIOStreamDecoder()}
    for f in load_frames(name):
        if f.kind in (FrameKind.WS_OPEN, FrameKind.POLL_GET, FrameKind.POLL_POST_RESPONSE):
            continue
        if f.kind is FrameKind.WS_MESSAGE:
            packets = [decode_ws_frame(f.data)]
        else:
            packets = decode_payload(f.data.encode(), eio=4)
        for p in packets:
            assert isinstance(p, EnginePacket), (f, p)
            if p.type is not E.MESSAGE:
                rows.append((f.direction, p.type, None, None, None, ""))
                continue
            for sp in decoders[f.direction].feed(p):
                assert isinstance(sp, SocketPacket), (f, sp)
                rows.append((f.direction, p.type, sp.type, sp.event, sp.ack_id, sp.namespace))
    return rows


def ev(d: Direction, name: str, ack: int | None = None) -> Row:
    return (d, E.MESSAGE, S.EVENT, name, ack, "/")


def test_python_client_recording() -> None:
    assert _decode(PYTHON_CLIENT) == [
        (S2C, E.OPEN, None, None, None, ""),
        (C2S, E.MESSAGE, S.CONNECT, None, None, "/"),
        # the polling body batching an EVENT before the namespace CONNECT reply
        ev(S2C, "connected"),
        (S2C, E.MESSAGE, S.CONNECT, None, None, "/"),
        (C2S, E.PING, None, None, None, ""),
        (S2C, E.PONG, None, None, None, ""),
        (C2S, E.UPGRADE, None, None, None, ""),
        (S2C, E.NOOP, None, None, None, ""),
        ev(C2S, "create_terminal"),
        ev(S2C, "terminal_ready"),
        ev(S2C, "terminal_output"),
        ev(C2S, "terminal_input", 1),
        (S2C, E.MESSAGE, S.ACK, None, 1, "/"),
        ev(S2C, "terminal_output"),
        ev(S2C, "terminal_output"),
        ev(S2C, "terminal_output"),
        ev(C2S, "get_block_status"),
        ev(S2C, "block_status_response"),
        ev(C2S, "terminal_input"),
        ev(S2C, "terminal_output"),
        ev(S2C, "terminal_output"),
        (C2S, E.MESSAGE, S.DISCONNECT, None, None, "/"),
    ]


def test_vue_frontend_recording() -> None:
    """Every WebSocket frame and polling body decodes; event names agree with a plain
    regular expression over the raw text."""
    expected: list[tuple[Direction, str]] = []
    for f in load_frames(VUE_FRONTEND):
        if f.kind in (FrameKind.WS_MESSAGE, FrameKind.POLL_REQUEST):
            expected += [(f.direction, m) for m in re.findall(r'42\["([^"]+)"', f.data)]
    rows = _decode(VUE_FRONTEND)
    assert [(r[0], r[3]) for r in rows if r[2] is S.EVENT] == expected
    assert ("create_terminal" in [name for _, name in expected]) is True
    types = [r[1] for r in rows]
    assert types.count(E.PING) == 1 and types.count(E.PONG) == 1  # 2probe / 3probe
    assert types.count(E.UPGRADE) == 1 and types.count(E.NOOP) == 1
    assert len([r for r in rows if r[3] == "terminal_input"]) == 13


@pytest.mark.parametrize("name", [EVENT_PROBE, MULTI_SESSION_TABS])
def test_event_probe_recordings_roundtrip(name: str) -> None:
    events = [e for e in load_events(name) if e.direction is not None]
    frames = event_frames(events)
    assert len(frames) == len(events)
    for ev, (_, direction, text) in zip(events, frames, strict=True):
        p = decode_ws_frame(text)
        assert isinstance(p, EnginePacket)
        (sp,) = SocketIOStreamDecoder().feed(p)
        assert isinstance(sp, SocketPacket), (text, sp)
        assert direction is ev.direction
        if ev.name == "ACK":
            assert sp.type is S.ACK and sp.ack_id is not None
            assert parse_args(sp) == ev.args
        else:
            assert (sp.type, sp.event) == (S.EVENT, ev.name)
            assert parse_args(sp) == [ev.args]
            assert (sp.ack_id is not None) == bool(ev.note and "ack" in ev.note)


def test_event_probe_parser_reads_every_line() -> None:
    events = load_events(EVENT_PROBE)
    assert len(events) == 39
    assert events[1].direction is None and events[1].name == "connect"
    assert isinstance(events[1].args, dict) and events[1].args["transport"] == "websocket"
    ack = next(e for e in events if e.name == "ACK")
    assert ack.ack_for == "terminal_input" and ack.args == []
    unblock = next(e for e in events if e.name == "unblock_response")
    assert isinstance(unblock.args, dict) and unblock.args["status"] == "error"
    assert json.dumps(unblock.args, ensure_ascii=False).isascii() is False
    tabs = load_events(MULTI_SESSION_TABS)
    assert tabs[4].name == "workspace:tab:tabA:pane:paneA:terminal:create"


def test_no_failures_anywhere() -> None:
    for name in (PYTHON_CLIENT, VUE_FRONTEND):
        for f in load_frames(name):
            if f.kind is FrameKind.WS_MESSAGE:
                assert not isinstance(decode_ws_frame(f.data), DecodeFailure)

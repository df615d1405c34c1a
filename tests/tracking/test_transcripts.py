"""Transcripts: relayed traffic in, the complete ordered list of records out, nothing else.

Each test states every record the tracker must make for a piece of traffic, in order, with
its time on the fake clock.  (The first one caught the session table's ambient clock: the
WebSocket's close was stamped with the time of the message before it, 1.000.)
"""

from __future__ import annotations

from socketio_trace_proxy.tracking.records import PairRecord
from tests.tracking.transcript_kit import C2S, S2C, Transcript, open_packet

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
OTHER_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_websocket_session_handshake_to_close() -> None:
    t = Transcript()
    t.at(0.02)
    ws = t.websocket(arrived=0.0)  # the upgrade request arrived at 0.000, the 101 at 0.020
    t.at(0.03)
    ws.message(S2C, open_packet("S1"))
    t.at(1.0)
    ws.message(C2S, '42["hello"]')
    t.at(5.0)
    ws.closed(C2S, 1000)
    assert t.lines() == [
        "0.000 handshake S1 ok 0.030s EIO=4",
        "1.000 message c2s hello",
        "5.000 close S1 ok 0.000s websocket_closed code=1000 by=c2s",
    ]


def test_websocket_closed_by_the_server_and_by_nobody() -> None:
    t = Transcript()
    ws = t.websocket()
    ws.message(S2C, open_packet("A"))
    t.at(2.0)
    ws.closed(S2C, 1001)
    t.at(3.0)
    gone = t.websocket()
    gone.message(S2C, open_packet("B"))
    t.at(4.0)
    gone.closed(None, None)  # the upstream vanished: no close frame from either side
    assert t.lines() == [
        "0.000 handshake A ok 0.000s EIO=4",
        "2.000 close A ok 0.000s websocket_closed code=1001 by=s2c",
        "3.000 handshake B ok 0.000s EIO=4",
        "4.000 close B ok 0.000s websocket_closed",
    ]


def test_polling_session_handshake_to_close_packet() -> None:
    t = Transcript()
    t.at(0.05)
    t.get(None, open_packet("P1"), arrived=0.0)
    t.at(0.1)
    t.post("P1", "40")
    t.at(0.12)
    t.get("P1", '40{"sid":"x"}')
    t.at(0.5)
    t.post("P1", '421["echo",1]')
    t.at(0.6)
    t.get("P1", "431[1]")
    t.at(0.7)
    t.post("P1", '422["echo",2]')
    t.at(1.0)
    t.post("P1", "1")
    t.at(1.1)
    t.get("P1", "6")  # the poll in flight at the close: a straggler, no record
    assert t.lines() == [
        "0.000 handshake P1 ok 0.050s EIO=4",
        "0.100 namespace_connect P1 ok 0.020s /",
        "0.500 pair echo -> ack ok 0.100s echo -> ack",
        "0.700 pair echo -> ack abandoned 0.300s echo -> None",
        "1.000 close P1 ok 0.000s close_packet by=c2s",
    ]


def test_one_operation_one_name_whatever_the_outcome() -> None:
    t = Transcript(
        rules=[
            {"request": "ai_get_info", "responses": ["ai_info_response"], "timeout": "5s"},
            {"request": "risky", "errors": ["risky_failed"], "timeout": "5s"},
        ]
    )
    ws = t.websocket()
    ws.message(S2C, open_packet("S"))
    t.at(1.0)
    ws.message(C2S, '42["ai_get_info"]')
    ws.message(C2S, '42["risky"]')
    ws.message(C2S, '42["ai_get_info"]')
    t.at(2.0)
    ws.message(S2C, '42["risky_failed",{"why":"no"}]')
    t.at(6.5)
    t.tick()
    t.at(7.0)
    ws.message(S2C, '42["ai_info_response",{}]')
    t.at(8.0)
    ws.message(C2S, '42["ai_get_info"]')
    ws.message(C2S, '42["ai_get_info"]')
    ws.closed(C2S, 1000)
    assert t.lines() == [
        "0.000 handshake S ok 0.000s EIO=4",
        "1.000 pair risky error(risky_failed) 1.000s risky -> risky_failed",
        "1.000 pair ai_get_info -> ai_info_response timeout 5.000s ai_get_info -> None",
        "1.000 pair ai_get_info -> ai_info_response timeout 5.000s ai_get_info -> None",
        "1.000 pair ai_get_info -> ai_info_response late 6.000s ai_get_info -> ai_info_response",
        "8.000 pair ai_get_info -> ai_info_response abandoned 0.000s ai_get_info -> None",
        "8.000 pair ai_get_info -> ai_info_response abandoned 0.000s ai_get_info -> None",
        "8.000 close S ok 0.000s websocket_closed code=1000 by=c2s",
    ]
    labels = {r.rule: r.outcomes for r in t.tracker.get_metrics().rules}
    assert labels == {
        "ai_get_info": {"timeout": 2, "late": 1, "abandoned": 2},
        "risky": {"error": 1},
    }


def test_a_traceparent_on_any_request_parents_the_pairs_its_packets_open() -> None:
    t = Transcript()
    t.get(None, open_packet("P"), traceparent=TRACEPARENT)  # the handshake's own
    t.post("P", '421["a"]')  # no traceparent on this request: a trace of its own
    t.post("P", '422["b"]', traceparent=OTHER_TRACEPARENT)
    t.get("P", "431[]\x1e432[]")
    t.at(1.0)
    ws = t.websocket("P", traceparent=TRACEPARENT)  # the upgrade carries one too
    ws.message(C2S, "2probe")
    ws.message(S2C, "3probe")
    ws.message(C2S, "5")
    ws.message(S2C, '423["c"]')
    ws.message(C2S, "433[]")
    assert t.lines() == [
        "0.000 handshake P ok 0.000s EIO=4 parent=00f067aa0ba902b7",
        "0.000 pair a -> ack ok 0.000s a -> ack",
        "0.000 pair b -> ack ok 0.000s b -> ack parent=b7ad6b7169203331",
        "1.000 upgrade P ok 0.000s polling -> websocket",
        "1.000 pair c -> ack ok 0.000s c -> ack parent=00f067aa0ba902b7",
    ]
    pairs = [r for r in t.sink.records if isinstance(r, PairRecord)]
    handshake_trace = t.sink.records[0].trace_id
    assert handshake_trace == TRACE
    assert pairs[0].trace_id not in (TRACE, "0af7651916cd43dd8448eb211c80319c")
    assert [p.trace_id for p in pairs[1:]] == ["0af7651916cd43dd8448eb211c80319c", TRACE]
    assert all(p.session.trace_id == TRACE for p in pairs)  # each still names its session


def test_made_up_sids_make_no_record_at_all() -> None:
    t = Transcript()
    for i in range(50):
        t.post(f"made-up-{i}", '421["x",{}]', status=400)
        t.get(f"made-up-{i}", '{"code":1,"message":"Session ID unknown"}', status=400)
    assert t.lines() == []
    extra = t.tracker.get_metrics().extra
    assert extra["sessions.refused"] == 100 and extra["sessions.unconfirmed"] == 0


def test_records_carry_the_client_address_and_port_of_the_handshake_request() -> None:
    """The relay's peer address and port (``request_arrived(..., remote_port=)``) reach the
    session reference of every record of the session, on either transport."""
    t = Transcript()
    tracker = t.tracker
    info = tracker.request_arrived(
        "GET", {"EIO": "4", "transport": "polling"}, "10.0.0.7", None, remote_port=51234
    )
    tracker.polling_response(info, 200, "text/plain", None, open_packet("P1").encode())
    t.post("P1", '421["echo",1]')
    t.get("P1", "431[1]")
    upgrade = tracker.request_arrived(
        "GET", {"EIO": "4", "transport": "websocket"}, "10.0.0.8", None, remote_port=40000
    )
    ws = tracker.websocket_opened(upgrade)
    assert ws is not None
    ws.message(S2C, open_packet("W1"))
    ws.message(C2S, '42["hello"]')
    by_sid = {
        (r.session.session_id, r.session.client_address, r.session.client_port)
        for r in t.sink.records
    }
    assert by_sid == {("P1", "10.0.0.7", 51234), ("W1", "10.0.0.8", 40000)}
    assert t.lines()[:2] == [
        "0.000 handshake P1 ok 0.000s EIO=4",
        "0.000 pair echo -> ack ok 0.000s echo -> ack",
    ]

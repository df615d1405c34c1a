"""The Engine.IO session table, driven by recordings and a fake clock."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.tracking.events import (
    CloseReason,
    DecodeFailed,
    HeartbeatObserved,
    PacketObserved,
    SessionClosed,
    SessionEvent,
    SessionOpened,
    SessionUpgraded,
)
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.sessions import SessionTable
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacketType
from socketio_trace_proxy.tracking.wire.socketio import parse_args
from tests.fixtures.recordings import PYTHON_CLIENT, VUE_FRONTEND, load_frames, replay_frames

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT


class Recorder:
    def __init__(self) -> None:
        self.events: list[SessionEvent] = []

    def __call__(self, event: SessionEvent) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    def packets(self) -> list[PacketObserved]:
        return self.of(PacketObserved)


def _table(**kw: object) -> tuple[SessionTable, Recorder]:
    rec = Recorder()
    return SessionTable(rec, **kw), rec  # type: ignore[arg-type]


def _open(sid: str, interval: int = 25000, timeout: int = 20000) -> bytes:
    return (
        "0"
        + json.dumps(
            {
                "sid": sid,
                "upgrades": ["websocket"],
                "pingInterval": interval,
                "pingTimeout": timeout,
                "maxPayload": 1000000,
            }
        )
    ).encode()


def _q(
    sid: str | None = None, eio: str = "4", transport: str = "polling", **extra: str
) -> dict[str, str]:
    q = {"EIO": eio, "transport": transport, **extra}
    if sid:
        q["sid"] = sid
    return q


def _handshake(table: SessionTable, sid: str, at: float = 0.0, **kw: int) -> None:
    table.polling_reply(RequestInfo("GET", _q()), 200, None, _open(sid, **kw), at, 1000.0 + at)


def _get(
    table: SessionTable,
    sid: str,
    body: bytes,
    at: float,
    eio: str = "4",
    *,
    status: int = 200,
    encoding: str | None = None,
) -> None:
    table.polling_reply(RequestInfo("GET", _q(sid, eio)), status, encoding, body, at, 1000.0 + at)


def _post(table: SessionTable, sid: str, body: bytes, at: float, eio: str = "4") -> None:
    table.polling_request(RequestInfo("POST", _q(sid, eio)), body, at, 1000.0 + at)


def _answer_post(table: SessionTable, sid: str, at: float, status: int = 200) -> None:
    """The backend's answer to a POST for ``sid``: ``ok``, or its refusal."""
    body = b"ok" if status == 200 else b'{"code":1,"message":"Session ID unknown"}'
    info = RequestInfo("POST", _q(sid))
    table.polling_reply(info, status, None, body, at, 1000.0 + at)


# --- recordings ------------------------------------------------------------------------------


def test_vue_frontend_polling_request_and_websocket_reply_share_one_session() -> None:
    table, rec = _table()
    replay_frames(table, load_frames(VUE_FRONTEND))
    (opened,) = rec.of(SessionOpened)
    assert opened.session_id == "ivPP7c3wC0fTefGPAAAA"
    by_event = {p.packet.event: p for p in rec.packets() if p.packet.event}
    request, reply = by_event["create_terminal"], by_event["terminal_ready"]
    assert (request.transport, request.direction) == (Transport.POLLING, C2S)
    assert (reply.transport, reply.direction) == (Transport.WEBSOCKET, S2C)
    assert request.session_id == reply.session_id == opened.session_id
    req_arg, reply_arg = parse_args(request.packet)[0], parse_args(reply.packet)[0]
    assert isinstance(req_arg, dict) and isinstance(reply_arg, dict)
    assert req_arg["session"] == reply_arg["session"] == "session_1795614255375"
    (upgraded,) = rec.of(SessionUpgraded)
    assert upgraded.duration_s == pytest.approx(0.48 - 0.45)  # 2probe -> 5
    assert table.session_transport(opened.session_id) is Transport.WEBSOCKET
    assert rec.of(DecodeFailed) == [] and rec.of(SessionClosed) == []
    stats = table.stats()
    assert (stats.sessions, stats.lazily_opened, stats.upgrades) == (1, 1, 1)
    assert stats.packets == len(rec.packets()) == 32


def test_python_client_recording_handshake_and_upgrade() -> None:
    table, rec = _table()
    replay_frames(table, load_frames(PYTHON_CLIENT))
    (opened,) = rec.of(SessionOpened)
    assert (opened.session_id, opened.transport) == ("R3jHV-5XTXX0XlbEAAAD", Transport.POLLING)
    assert (opened.ping_interval_s, opened.ping_timeout_s, opened.eio_version) == (25.0, 20.0, 4)
    kinds = [(p.packet.type, p.packet.event, p.transport) for p in rec.packets()][:4]
    assert kinds == [
        (SocketPacketType.CONNECT, None, Transport.POLLING),
        (SocketPacketType.EVENT, "connected", Transport.POLLING),  # before the CONNECT reply
        (SocketPacketType.CONNECT, None, Transport.POLLING),
        (SocketPacketType.EVENT, "create_terminal", Transport.WEBSOCKET),
    ]
    acks = [p.packet.ack_id for p in rec.packets() if p.packet.ack_id is not None]
    assert acks == [1, 1]
    (upgraded,) = rec.of(SessionUpgraded)
    assert upgraded.duration_s == pytest.approx(0.511 - 0.009)
    assert table.stats().lazily_opened == 0


# --- lifecycle -------------------------------------------------------------------------------


def test_websocket_only_session_learns_its_sid_from_open() -> None:
    table, rec = _table()
    leg = table.websocket_opened(
        RequestInfo("GET", _q(transport="websocket"), remote="1.2.3.4"), 0.0, 1000.0
    )
    table.websocket_message(leg, S2C, _open("wsonly").decode(), 0.01, 1000.01)
    table.websocket_message(leg, C2S, '42["hi"]', 0.02, 1000.02)
    (opened,) = rec.of(SessionOpened)
    assert (opened.session_id, opened.transport, opened.remote) == (
        "wsonly",
        Transport.WEBSOCKET,
        "1.2.3.4",
    )
    assert rec.packets()[0].session_id == "wsonly"
    table.websocket_closed(leg, C2S, 1000, 1.0, 1001.0)
    (closed,) = rec.of(SessionClosed)
    assert (closed.session_id, closed.reason) == ("wsonly", CloseReason.WEBSOCKET_CLOSED)
    assert table.session_count() == 0


def test_failed_probe_websocket_does_not_end_the_polling_session() -> None:
    table, rec = _table()
    _handshake(table, "p1")
    probe = table.websocket_opened(RequestInfo("GET", _q("p1", transport="websocket")), 0.1, 0)
    table.websocket_message(probe, C2S, "2probe", 0.2, 0)
    table.websocket_closed(probe, S2C, None, 0.3, 0)
    assert rec.of(SessionClosed) == []
    assert table.session_transport("p1") is Transport.POLLING
    # a second, successful upgrade; then closing that WebSocket ends the session
    ws = table.websocket_opened(RequestInfo("GET", _q("p1", transport="websocket")), 1.0, 0)
    table.websocket_message(ws, C2S, "2probe", 1.0, 0)
    table.websocket_message(ws, S2C, "3probe", 1.01, 0)
    _get(table, "p1", b"6", 1.02)
    table.websocket_message(ws, C2S, "5", 1.25, 0)
    (up,) = rec.of(SessionUpgraded)
    assert up.duration_s == pytest.approx(0.25)
    _get(table, "p1", b'{"code":3,"message":"Bad request"}', 1.3, status=400)  # late poll
    assert table.stats().error_replies == 1 and rec.of(DecodeFailed) == []
    table.websocket_closed(ws, None, None, 2.0, 0)
    assert [(c.session_id, c.reason) for c in rec.of(SessionClosed)] == [
        ("p1", CloseReason.WEBSOCKET_CLOSED)
    ]


def test_close_packet_ends_the_session_once_and_stragglers_do_not_revive_it() -> None:
    table, rec = _table()
    _handshake(table, "c1")
    _post(table, "c1", b"1", 1.0)
    _get(table, "c1", b"6", 1.1)  # the poll that was in flight
    _post(table, "c1", b'42["late"]', 1.2)
    assert [(c.session_id, c.reason) for c in rec.of(SessionClosed)] == [
        ("c1", CloseReason.CLOSE_PACKET)
    ]
    assert table.session_count() == 0 and len(rec.of(SessionOpened)) == 1
    assert rec.packets() == []
    assert table.stats().unattributed == 2


def test_heartbeat_round_trip_v4_server_ping() -> None:
    table, rec = _table()
    _handshake(table, "h1")
    _get(table, "h1", b"2", 25.0)
    _post(table, "h1", b"3", 25.04)
    (hb,) = rec.of(HeartbeatObserved)
    assert (hb.session_id, hb.rtt_s) == ("h1", pytest.approx(0.04))
    _post(table, "h1", b"3", 25.5)  # an unsolicited PONG measures nothing
    assert len(rec.of(HeartbeatObserved)) == 1


def test_missed_heartbeats_expire_on_a_fake_clock() -> None:
    table, rec = _table(heartbeat_grace_s=5.0)
    assert table.next_deadline() is None
    _handshake(table, "e1", at=10.0, interval=1000, timeout=500)  # 1 s + 0.5 s + 5 s grace
    _handshake(table, "e2", at=11.0)  # 25 s + 20 s + 5 s
    assert table.next_deadline() == pytest.approx(16.5)
    _get(table, "e1", b"2", 14.0)  # traffic pushes e1's deadline
    assert table.next_deadline() == pytest.approx(20.5)
    table.tick(20.4, 0)
    assert rec.of(SessionClosed) == []
    table.tick(20.5, 0)
    assert [(c.session_id, c.reason) for c in rec.of(SessionClosed)] == [
        ("e1", CloseReason.HEARTBEAT_TIMEOUT)
    ]
    assert table.next_deadline() == pytest.approx(61.0)
    table.tick(100.0, 0)
    assert table.session_count() == 0 and table.stats().heartbeat_expired == 2
    assert table.next_deadline() is None
    # a session that expired but keeps talking is tracked again once the backend's answer
    # shows it is alive (nothing is lost)
    _post(table, "e2", b'42["still here"]', 101.0)
    _answer_post(table, "e2", 101.01)
    assert table.session_count() == 1 and rec.packets()[-1].session_id == "e2"


def test_eviction_of_the_least_recently_active() -> None:
    table, rec = _table(max_sessions=2)
    _handshake(table, "a", at=0.0)
    _handshake(table, "b", at=1.0)
    _post(table, "a", b'42["x"]', 2.0)  # a is now more recent than b
    _handshake(table, "c", at=3.0)
    assert [(c.session_id, c.reason) for c in rec.of(SessionClosed)] == [("b", CloseReason.EVICTED)]
    assert table.session_count() == 2 and table.stats().evicted == 1


def test_unknown_sid_is_tracked_only_once_the_backend_accepted_it() -> None:
    table, rec = _table()
    _get(table, "ghost", b'{"code":1,"message":"Session ID unknown"}', 1.0, status=400)
    _post(table, "made-up", b'42["hello",{}]', 1.5)
    assert rec.events == [] and table.stats().unconfirmed == 1  # held, not decoded
    _answer_post(table, "made-up", 1.6, status=400)
    assert rec.events == [] and table.session_count() == 0
    stats = table.stats()
    assert (stats.refused, stats.unconfirmed, stats.error_replies) == (2, 0, 2)
    assert stats.decode_failures == stats.lazily_opened == 0
    # A session picked up mid-way: its POST is held until the backend says "ok", then the
    # packets are seen with their own time, after the session opened at that time.
    _post(table, "midway", b'42["hello",{}]', 2.0)
    _post(table, "midway", b'42["again",{}]', 2.1)
    assert rec.events == []
    _answer_post(table, "midway", 2.2)
    opened, first, second = rec.events
    assert isinstance(opened, SessionOpened) and (opened.session_id, opened.at) == ("midway", 2.0)
    assert opened.lazily and table.stats().lazily_opened == 1
    assert isinstance(first, PacketObserved) and isinstance(second, PacketObserved)
    assert [(p.packet.event, p.at) for p in (first, second)] == [("hello", 2.0), ("again", 2.1)]
    assert table.stats().unconfirmed == 0


def test_a_reply_or_a_101_for_the_sid_confirms_what_was_held() -> None:
    table, rec = _table()
    _post(table, "p", b'42["first"]', 1.0)
    _get(table, "p", b'42["reply"]', 1.1)  # a 200 poll names the sid: the backend knows it
    assert [p.packet.event for p in rec.packets()] == ["first", "reply"]
    _post(table, "w", b'42["before upgrade"]', 2.0)
    leg = table.websocket_opened(RequestInfo("GET", _q("w", "4", "websocket")), 2.1, 0)
    assert [p.packet.event for p in rec.packets()][-1] == "before upgrade"
    assert leg.session_id == "w" and table.session_count() == 2


def test_held_bodies_are_bounded_and_expire() -> None:
    table, rec = _table(max_unconfirmed=3, max_unconfirmed_bytes=100, unconfirmed_max_age_s=10.0)
    for i in range(5):
        _post(table, f"s{i}", b'42["x"]', float(i))
    assert table.stats().unconfirmed == 3 and table.stats().unconfirmed_dropped == 2
    _post(table, "big", b"4" + b"x" * 200, 5.0)  # larger than the byte bound on its own
    assert table.stats().unconfirmed_dropped == 3
    table.tick(13.5, 0)  # s2 (held at 2.0) and s3 (3.0) waited 10 s or more
    assert table.stats().unconfirmed == 1 and table.stats().unconfirmed_dropped == 5
    _answer_post(table, "s4", 14.0)
    assert [p.session_id for p in rec.packets()] == ["s4"]
    assert table.stats().unconfirmed == 0


def test_post_answer_ok_is_not_a_payload() -> None:
    table, rec = _table()
    _handshake(table, "k")
    table.polling_reply(RequestInfo("POST", _q("k")), 200, None, b"ok", 1, 0)
    assert rec.of(DecodeFailed) == []


def test_gzip_polling_response_is_decoded_from_a_copy() -> None:
    table, rec = _table()
    _handshake(table, "z")
    body = "\x1e".join(f'42["tick",{i}]' for i in range(100)).encode()
    _get(table, "z", gzip.compress(body), 1.0, encoding="gzip")
    assert [parse_args(p.packet) for p in rec.packets()] == [[i] for i in range(100)]
    _get(table, "z", b"garbage", 2.0, encoding="gzip")
    assert table.stats().decompress_failures == 1
    assert rec.of(DecodeFailed)[0].session_id == "z"


def test_polling_payloads_opening_with_a_message_decode_as_the_general_path() -> None:
    # A payload whose first packet is a MESSAGE takes the hot path; one led by a NOOP, the
    # general one.  Both must see the same packets, sizes, failures and attachments.
    packets = [
        '42["a",1]',
        "2",
        '42["é",{"x":"ü"}]',
        '451-["bin",{"_placeholder":true,"num":0}]',
        "bAQID",
        '421["next",2]',
        "43/ns,5[1]",
        "4",
        "x",
        '42["\\u00e9",3]',
    ]
    body = "\x1e".join(packets).encode()
    seen = _seen_alone_and_behind_a_noop(body, packets_each=6)
    assert seen[0] == seen[2] and seen[1] == seen[3]


def _seen_alone_and_behind_a_noop(
    body: bytes, packets_each: int | None = None
) -> list[list[PacketObserved | DecodeFailed]]:
    """The packets and failures a POST and a GET of ``body`` show, alone (the first two)
    and behind a NOOP (the last two); ``packets_each``: how many packets each must show."""
    seen = []
    for lead in (b"", b"6\x1e"):
        for send in (_post, _get):
            table, rec = _table()
            _handshake(table, "m")
            send(table, "m", lead + body, 1.0)
            events = [e for e in rec.events if isinstance(e, (PacketObserved, DecodeFailed))]
            if packets_each is not None:
                assert len(rec.packets()) == packets_each
            seen.append(events)
    return seen


def test_a_payload_of_one_packet_decodes_as_the_general_path() -> None:
    # A body holding one packet (the common case) is decoded without being split; it must
    # see what the same packet sees behind a NOOP (the general path).
    bodies = [
        b'42["a",1]',
        '42["é",{"x":"ü"}]'.encode(),
        b"43/ns,5[1]",
        b"4",
        b'42["\\u00e9",3]',
        b'42["\xff"]',  # not UTF-8
    ]
    for body in bodies:
        seen = _seen_alone_and_behind_a_noop(body)
        assert seen[0] == seen[2] and seen[1] == seen[3], body
        assert seen[0] or seen[1], body


def test_v3_session_polling_heartbeat_and_binary() -> None:
    table, rec = _table()
    handshake = _open("v3sid", 25000, 5000).decode()
    body = f"{len(handshake)}:{handshake}2:40".encode()
    table.polling_reply(RequestInfo("GET", _q(eio="3")), 200, None, body, 0, 0)
    (opened,) = rec.of(SessionOpened)
    assert (opened.session_id, opened.eio_version, opened.ping_timeout_s) == ("v3sid", 3, 5.0)
    _post(table, "v3sid", b"1:2", 1.0, eio="3")  # v3: the client pings
    _get(table, "v3sid", b"1:3", 1.05, eio="3")
    assert rec.of(HeartbeatObserved)[0].rtt_s == pytest.approx(0.05)
    # binary event in the raw binary payload format, attachment with its 0x04 type byte
    head = b'451-["up",{"_placeholder":true,"num":0}]'
    raw = bytes([0]) + bytes(int(d) for d in str(len(head))) + b"\xff" + head
    raw += bytes([1, 4, 0xFF]) + b"\x04\x00\x01\x02"
    _post(table, "v3sid", raw, 2.0, eio="3")
    # then a base64 one (b64=1 clients) with emoji lengths in UTF-16 units
    text = '42["😀",1]'
    b64 = "b4" + base64.b64encode(b"zz").decode()
    head2 = '451-["bin",{"_placeholder":true,"num":0}]'
    body2 = f"{len(text.encode('utf-16-le')) // 2}:{text}{len(head2)}:{head2}{len(b64)}:{b64}"
    _get(table, "v3sid", body2.encode(), 3.0, eio="3")
    packets = [p.packet for p in rec.packets()]
    assert [(p.type, p.event) for p in packets] == [
        (SocketPacketType.CONNECT, None),
        (SocketPacketType.BINARY_EVENT, "up"),
        (SocketPacketType.EVENT, "😀"),
        (SocketPacketType.BINARY_EVENT, "bin"),
    ]
    assert parse_args(packets[1]) == [b"\x00\x01\x02"] and parse_args(packets[3]) == [b"zz"]
    # v3 WebSocket: binary frames carry the 0x04 type byte
    ws = table.websocket_opened(RequestInfo("GET", _q("v3sid", "3", "websocket")), 4.0, 0)
    table.websocket_message(ws, C2S, "2probe", 4.0, 0)
    table.websocket_message(ws, C2S, "5", 4.1, 0)
    table.websocket_message(ws, S2C, '451-["ws",{"_placeholder":true,"num":0}]', 4.2, 0)
    table.websocket_message(ws, S2C, b"\x04\xaa", 4.3, 0)
    last = rec.packets()[-1]
    assert (last.transport, last.packet.event, last.packet.attachments) == (
        Transport.WEBSOCKET,
        "ws",
        (b"\xaa",),
    )
    assert table.stats().decode_failures == 0


def test_binary_attachments_across_polling_payloads_and_websocket() -> None:
    table, rec = _table()
    _handshake(table, "b")
    _post(
        table, "b", b'452-1["two",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', 1.0
    )
    _post(table, "b", b"b" + base64.b64encode(b"first"), 1.1)
    assert rec.packets() == []
    ws = table.websocket_opened(RequestInfo("GET", _q("b", transport="websocket")), 1.2, 0)
    table.websocket_message(ws, C2S, "2probe", 1.2, 0)
    table.websocket_message(ws, C2S, "5", 1.3, 0)
    table.websocket_message(ws, C2S, b"second", 1.4, 0)
    (p,) = rec.packets()
    assert p.packet.attachments == (b"first", b"second") and p.packet.ack_id == 1
    assert p.transport is Transport.WEBSOCKET


def test_attachment_limits_are_counted() -> None:
    table, rec = _table(max_attachments=1)
    _handshake(table, "l")
    _post(table, "l", b'452-["x",1]', 1.0)
    assert table.stats().attachment_overflows == 1
    assert len(rec.of(DecodeFailed)) == 1


# --- garbage and robustness ------------------------------------------------------------------


def test_garbage_frames_are_counted_and_never_raise() -> None:
    table, rec = _table()
    _handshake(table, "g")
    ws = table.websocket_opened(RequestInfo("GET", _q("g", transport="websocket")), 0, 0)
    junk_frames: list[str | bytes] = ["", "9", "4", "4zzz", '42["unterminated', b"\x00\x01", "b!!"]
    for junk in junk_frames:
        table.websocket_message(ws, C2S, junk, 1.0, 0)
    _post(table, "g", b"\xff\xfe\x1e\x1e", 1.0)
    _post(table, "g", bytes([0x84, 0xA4]) + b"type", 1.0)  # msgpack-style custom parser
    failures = rec.of(DecodeFailed)
    assert len(failures) == table.stats().decode_failures >= 9
    assert all(f.session_id == "g" for f in failures)
    assert table.stats().internal_errors == 0


def test_a_raising_emit_is_contained() -> None:
    def boom(event: SessionEvent) -> None:
        raise RuntimeError("sink broke")

    table = SessionTable(boom)
    _handshake(table, "x")
    _post(table, "x", b'42["a"]', 1.0)
    assert table.stats().internal_errors == 2


_ops = st.lists(
    st.tuples(
        st.sampled_from(["post", "get", "ws", "msg", "close", "tick", "handshake"]),
        st.sampled_from(["s1", "s2", "s3"]),
        st.one_of(st.binary(max_size=30), st.text(max_size=30)),
        st.sampled_from(["3", "4"]),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_random_operations_never_raise_and_keep_the_books(
    ops: list[tuple[str, str, bytes | str, str]],
) -> None:
    table, rec = _table(max_sessions=2)
    legs = []
    at = 0.0
    for op, sid, data, eio in ops:
        at += 7.0
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        if op == "post":
            _post(table, sid, raw, at, eio)
        elif op == "get":
            _get(table, sid, raw, at, eio)
        elif op == "handshake":
            _handshake(table, sid, at)
        elif op == "ws":
            legs.append(
                table.websocket_opened(
                    RequestInfo("GET", _q(sid if eio == "4" else None, eio, "websocket")), at, 0
                )
            )
        elif op == "msg" and legs:
            table.websocket_message(legs[-1], C2S if len(raw) % 2 else S2C, data, at, 0)
        elif op == "close" and legs:
            table.websocket_closed(legs.pop(0), None, None, at, 0)
        else:
            table.tick(at, 0)
    stats = table.stats()
    assert stats.internal_errors == 0
    assert stats.sessions == len(rec.of(SessionOpened)) - len(rec.of(SessionClosed)) <= 2
    closed = [c.session_id for c in rec.of(SessionClosed)]
    opened = [o.session_id for o in rec.of(SessionOpened)]
    for sid in set(closed):
        assert closed.count(sid) <= opened.count(sid)
    table.close_all(at + 1, 0)
    assert table.session_count() == 0 and table.next_deadline() is None
    assert len(rec.of(SessionOpened)) == len(rec.of(SessionClosed))


def test_idle_websocket_session_memory_stays_small() -> None:
    """The proxy's budget is 24 KiB per idle WebSocket session in total; the session
    table's share must stay a small fraction of it (measured: ~0.45 KiB)."""
    table, _ = _table()
    legs = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            leg = table.websocket_opened(RequestInfo("GET", _q(transport="websocket")), 0, 0)
            table.websocket_message(leg, S2C, _open(f"idle-session-{i:08d}").decode(), 0, 0)
            table.websocket_message(leg, C2S, "40", 0, 0)
            table.websocket_message(leg, S2C, '40{"sid":"socket-sid-0123456789"}', 0, 0)
            legs.append(leg)
        per_session = (tracemalloc.get_traced_memory()[0] - before) / 1000
    finally:
        tracemalloc.stop()
    assert table.session_count() == 1000
    assert per_session < 1536, per_session

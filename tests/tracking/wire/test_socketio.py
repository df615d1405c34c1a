"""Socket.IO decoding: header fast path, lazy args, binary reassembly, bounds, garbage."""

from __future__ import annotations

import itertools
import json
from typing import Any

import engineio.packet as eio_packet
import engineio.payload as eio_payload
import pytest
import socketio.packet as sio_packet
from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.tracking.wire import socketio as sio_wire
from socketio_trace_proxy.tracking.wire.engineio import decode_ws_frame
from socketio_trace_proxy.tracking.wire.packets import (
    DecodeFailure,
    EnginePacket,
    EnginePacketType,
    SocketPacket,
    SocketPacketType,
)
from socketio_trace_proxy.tracking.wire.payload import decode_payload
from socketio_trace_proxy.tracking.wire.socketio import (
    SocketIOStreamDecoder,
    decode_packet,
    parse_args,
    parse_header,
    try_parse_args,
)

S = SocketPacketType


def _msg(data: str | bytes) -> EnginePacket:
    return EnginePacket(EnginePacketType.MESSAGE, data, len(data))


def _ok(result: SocketPacket | DecodeFailure) -> SocketPacket:
    assert isinstance(result, SocketPacket), result
    return result


@pytest.mark.parametrize(
    ("text", "ptype", "nsp", "ack", "event"),
    [
        ("0", S.CONNECT, "/", None, None),
        ('0{"token":"x"}', S.CONNECT, "/", None, None),
        ("0/admin,", S.CONNECT, "/admin", None, None),
        ("0/admin?token=secret,", S.CONNECT, "/admin", None, None),
        ("1/admin,", S.DISCONNECT, "/admin", None, None),
        ("1", S.DISCONNECT, "/", None, None),
        ('2["hello",1]', S.EVENT, "/", None, "hello"),
        ('2/chat,12["hello"]', S.EVENT, "/chat", 12, "hello"),
        (
            '27["workspace:tab:a:pane:b:terminal:create",{}]',
            S.EVENT,
            "/",
            7,
            "workspace:tab:a:pane:b:terminal:create",
        ),
        ("2[1,2]", S.EVENT, "/", None, None),
        ("31[]", S.ACK, "/", 1, None),
        ('3/chat,140["ok"]', S.ACK, "/chat", 140, None),
        ('4{"message":"Not authorized"}', S.CONNECT_ERROR, "/", None, None),
        ('4"Invalid namespace"', S.CONNECT_ERROR, "/", None, None),
    ],
)
def test_headers(text: str, ptype: S, nsp: str, ack: int | None, event: str | None) -> None:
    p = _ok(decode_packet(text))
    assert (p.type, p.namespace, p.ack_id, p.event) == (ptype, nsp, ack, event)
    assert p.attachments == ()


def test_event_name_with_escapes_and_unicode() -> None:
    assert _ok(decode_packet('2["a\\"b\\u00e9",1]')).event == 'a"bé'
    assert _ok(decode_packet('2["日本語😀",1]')).event == "日本語😀"


def test_payload_is_kept_raw_and_parsed_lazily() -> None:
    p = _ok(decode_packet('2/x,5["ev",{"a":[1,2]},"s"]'))
    assert p.payload == '["ev",{"a":[1,2]},"s"]'
    assert parse_args(p) == [{"a": [1, 2]}, "s"]
    assert parse_args(_ok(decode_packet('35["r",2]'))) == ["r", 2]
    assert parse_args(_ok(decode_packet('0{"sid":"x"}'))) == [{"sid": "x"}]
    assert parse_args(_ok(decode_packet("1"))) == []


def test_header_fast_path_does_not_parse_the_payload() -> None:
    # invalid JSON after the event name: the header still decodes, parse_args fails softly
    p = _ok(decode_packet('2["ev",{not json]'))
    assert p.event == "ev"
    assert parse_args(p) == []
    assert isinstance(try_parse_args(p), DecodeFailure)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "9",
        "x",
        "2",
        "2{}",
        '2"ev"',
        "3[]",
        "3x",
        "5[]",
        "5-[]",
        "5a-[]",
        '2["unterminated]',
        "0[]",
        "1x",
        "4[]",
        "3" + "9" * 30 + "[]",
    ],
)
def test_garbage_headers_fail(text: str) -> None:
    assert isinstance(decode_packet(text), DecodeFailure)


# --- python-socketio as the oracle -----------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_with_bytes = st.recursive(
    _json | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=5).filter(lambda k: k != "_placeholder"), inner, max_size=3
        )
    ),
    max_leaves=8,
)
_namespace = st.sampled_from([None, "/", "/chat", "/a-b", "/日本"])
_ack = st.one_of(st.none(), st.integers(0, 2**40))


@st.composite
def _sio_packets(draw: st.DrawFn) -> sio_packet.Packet:
    kind = draw(st.sampled_from(["event", "ack", "connect", "disconnect", "error"]))
    nsp = draw(_namespace)
    if kind == "event":
        name = draw(st.text(min_size=1, max_size=15))
        args = draw(st.lists(_with_bytes, max_size=3))
        return sio_packet.Packet(sio_packet.EVENT, [name, *args], nsp, draw(_ack))
    if kind == "ack":
        args = draw(st.lists(_with_bytes, max_size=3))
        return sio_packet.Packet(sio_packet.ACK, args, nsp, draw(st.integers(0, 2**40)))
    if kind == "connect":
        data = draw(st.one_of(st.none(), st.dictionaries(st.text(max_size=5), _json, max_size=3)))
        return sio_packet.Packet(sio_packet.CONNECT, data, nsp)
    if kind == "error":
        return sio_packet.Packet(sio_packet.CONNECT_ERROR, {"message": draw(st.text())}, nsp)
    return sio_packet.Packet(sio_packet.DISCONNECT, None, nsp)


def _encode(p: sio_packet.Packet) -> list[str | bytes]:
    enc = p.encode()
    return enc if isinstance(enc, list) else [enc]


def _check(decoded: SocketPacket, original: sio_packet.Packet) -> None:
    assert decoded.type == original.packet_type
    assert decoded.namespace == (original.namespace or "/")
    assert decoded.ack_id == original.id
    data: Any = original.data
    if original.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
        assert decoded.event == data[0]
        assert parse_args(decoded) == data[1:]
    elif original.packet_type in (sio_packet.ACK, sio_packet.BINARY_ACK):
        assert parse_args(decoded) == data
    elif data is None:
        assert parse_args(decoded) == []
    else:
        assert parse_args(decoded) == [data]


@settings(max_examples=300, deadline=None)
@given(st.lists(_sio_packets(), min_size=1, max_size=10))
def test_roundtrip_against_python_socketio(packets: list[sio_packet.Packet]) -> None:
    dec = SocketIOStreamDecoder()
    out: list[SocketPacket | DecodeFailure] = []
    for p in packets:
        for frame in _encode(p):
            out += dec.feed(_msg(frame))
    assert len(out) == len(packets)
    for decoded, original in zip(out, packets, strict=True):
        _check(_ok(decoded), original)


def _frames(packets: list[sio_packet.Packet]) -> list[str | bytes]:
    return [frame for p in packets for frame in _encode(p)]


def _stream(messages: list[EnginePacket | DecodeFailure]) -> list[SocketPacket | DecodeFailure]:
    dec = SocketIOStreamDecoder()
    out: list[SocketPacket | DecodeFailure] = []
    for m in messages:
        assert isinstance(m, EnginePacket)
        out += dec.feed(m)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_sio_packets(), min_size=1, max_size=10),
    st.lists(st.integers(0, 100), max_size=6),
)
def test_any_chunking_of_the_frame_sequence_decodes_the_same(
    packets: list[sio_packet.Packet], cuts: list[int]
) -> None:
    """The same messages over WebSocket, or grouped into polling payloads at any
    boundaries (attachments across payloads included), give the same packets."""
    frames = _frames(packets)
    over_ws = _stream([decode_ws_frame("4" + f if isinstance(f, str) else f) for f in frames])
    points = sorted({c % (len(frames) + 1) for c in cuts} | {0, len(frames)})
    over_polling: list[EnginePacket | DecodeFailure] = []
    for a, b in itertools.pairwise(points):
        if a == b:
            continue
        group = [eio_packet.Packet(eio_packet.MESSAGE, f) for f in frames[a:b]]
        body = eio_payload.Payload(packets=group).encode().encode()
        over_polling += decode_payload(body, eio=4)
    polled = _stream(over_polling)
    assert [
        (p.type, p.namespace, p.ack_id, p.event, p.payload, p.attachments) for p in map(_ok, polled)
    ] == [
        (p.type, p.namespace, p.ack_id, p.event, p.payload, p.attachments)
        for p in map(_ok, over_ws)
    ]
    assert len(over_ws) == len(packets)


# --- binary reassembly -----------------------------------------------------------------------


def test_binary_event_reassembly_and_placeholders() -> None:
    dec = SocketIOStreamDecoder()
    head = '52-/files,9["upload",{"a":{"_placeholder":true,"num":0}},{"_placeholder":true,"num":1}]'
    assert dec.feed(_msg(head)) == ()
    assert dec.pending_attachments == 2
    assert dec.feed(_msg(b"AAA")) == ()
    (p,) = dec.feed(_msg(b"BB"))
    p = _ok(p)
    assert (p.type, p.namespace, p.ack_id, p.event) == (S.BINARY_EVENT, "/files", 9, "upload")
    assert p.attachments == (b"AAA", b"BB")
    assert p.size == len(head) + 5
    assert parse_args(p) == [{"a": b"AAA"}, b"BB"]
    assert dec.pending_attachments == 0


def test_binary_ack_with_zero_attachments_is_complete() -> None:
    (p,) = SocketIOStreamDecoder().feed(_msg("60-3[1]"))
    assert _ok(p).type is S.BINARY_ACK
    assert parse_args(_ok(p)) == [1]


def test_text_interrupting_attachments_fails_the_pending_packet() -> None:
    dec = SocketIOStreamDecoder()
    dec.feed(_msg('51-["a",{"_placeholder":true,"num":0}]'))
    out = dec.feed(_msg('2["b"]'))
    assert isinstance(out[0], DecodeFailure)
    assert _ok(out[1]).event == "b"
    assert isinstance(dec.feed(_msg(b"late"))[0], DecodeFailure)


def test_placeholder_out_of_range() -> None:
    dec = SocketIOStreamDecoder()
    dec.feed(_msg('51-["a",{"_placeholder":true,"num":3}]'))
    (p,) = dec.feed(_msg(b"x"))
    assert isinstance(try_parse_args(_ok(p)), DecodeFailure)
    assert parse_args(_ok(p)) == []


def test_attachment_limits_are_enforced_and_counted() -> None:
    dec = SocketIOStreamDecoder(max_attachments=2, max_attachment_bytes=10)
    (fail,) = dec.feed(_msg('53-["a",1]'))
    assert isinstance(fail, DecodeFailure) and dec.overflows == 1
    # its three attachments are skipped silently, then decoding resumes
    assert dec.feed(_msg(b"1")) == dec.feed(_msg(b"2")) == dec.feed(_msg(b"3")) == ()
    assert _ok(dec.feed(_msg('2["next"]'))[0]).event == "next"
    dec.feed(_msg('52-["big",1]'))
    (fail,) = dec.feed(_msg(b"x" * 11))
    assert isinstance(fail, DecodeFailure) and dec.overflows == 2
    assert dec.feed(_msg(b"y")) == ()  # the second attachment of the dropped packet
    assert not dec.busy


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.binary(max_size=20)), max_size=10))
def test_random_input_never_raises(items: list[str | bytes]) -> None:
    dec = SocketIOStreamDecoder(max_attachments=3, max_attachment_bytes=50)
    for item in items:
        for r in dec.feed(_msg(item)):
            assert isinstance(r, SocketPacket | DecodeFailure)
            if isinstance(r, SocketPacket):
                try_parse_args(r)
                parse_args(r)
        if isinstance(item, str):
            parse_header(item)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from("0123456"), st.text(max_size=40))
def test_random_text_after_a_valid_type_never_raises(kind: str, rest: str) -> None:
    r = sio_wire.parse_header(kind + rest)
    if not isinstance(r, DecodeFailure):
        parse_args(r[0])


def test_msgpack_like_binary_frames_only_yield_failures() -> None:
    # a custom parser (socket.io-msgpack-parser) sends every packet as one binary frame
    frame = bytes([0x84, 0xA4]) + b"type" + bytes([0x02, 0xA4]) + b"data"
    out = SocketIOStreamDecoder().feed(_msg(frame))
    assert len(out) == 1 and isinstance(out[0], DecodeFailure)


def test_event_name_scan_matches_json() -> None:
    for name in ["plain", "with space", 'q"uote', "back\\slash", "tab\t", "é", "😀", ""]:
        text = "2" + json.dumps([name, {"x": 1}])
        assert _ok(decode_packet(text)).event == name


_shape = st.one_of(
    st.builds(
        lambda kind, ack, name, arg: (
            f"{kind}{'' if ack is None else ack}"
            + json.dumps([name, arg] if kind == "2" else [arg], ensure_ascii=False)
        ),
        st.sampled_from("23"),
        st.none() | st.integers(min_value=0, max_value=10**18),
        st.text(max_size=12),
        st.none() | st.integers() | st.text(max_size=8),
    ),
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["2", "3", "2[", "3[", '2["', "21[", "31"]),
        st.text(max_size=30),
    ),
    st.text(max_size=40),
)


@settings(max_examples=1000, deadline=None)
@given(_shape)
def test_fast_message_agrees_with_parse_header(text: str) -> None:
    fast = sio_wire.fast_message("4" + text)
    assert sio_wire.fast_message(text, 0) == fast  # the packet text alone (polling)
    if fast is None:
        return
    full = parse_header(text)
    assert not isinstance(full, DecodeFailure), full
    packet, count = full
    assert count == 0 and fast == packet and type(fast) is SocketPacket
    assert sio_wire.fast_message(text, 0, 12345) == packet._replace(size=12345)


def test_fast_message_covers_the_common_shapes() -> None:
    for text in ['2["ev",{"a":1}]', '217["ev",1]', "3140[]", '31["ok"]', '2["日本語😀",1]']:
        fast = sio_wire.fast_message("4" + text)
        assert fast is not None and fast == _ok(decode_packet(text)), text
    # namespaces, escapes, binary and malformed packets take the general path
    for text in ['2/chat,["ev"]', '2["a\\"b"]', '51-["ev",{}]', '3["no id"]', '2["ev"', "2"]:
        assert sio_wire.fast_message("4" + text) is None, text


def _fast_reference(frame: str) -> tuple[object, ...] | None:
    """What fast_message accepts, written the plain way (str methods, int() of the digits):
    the compiled-friendly char-by-char reading must accept and refuse exactly the same."""
    n = len(frame)
    if n < 4 or frame[-1] != "]" or frame[1] not in "23":
        return None
    k = 2
    ack_id: int | None = None
    if frame[k] != "[":
        k = frame.find("[", 3, 3 + 16)
        digits = frame[2:k] if k > 0 else ""
        if not digits.isdigit() or not digits.isascii():
            return None
        ack_id = int(digits)
    if frame[1] == "3":
        return None if ack_id is None else ("ack", ack_id, frame[k:])
    if frame[k + 1] != '"':
        return None
    end = frame.find('"', k + 2)
    if end < 0 or end - k - 2 > sio_wire.MAX_EVENT_NAME:
        return None
    name = frame[k + 2 : end]
    if "\\" in name or not name.isprintable():
        return None
    return ("event", ack_id, name, frame[k:])


def _fast_view(packet: SocketPacket | None) -> tuple[object, ...] | None:
    if packet is None:
        return None
    if packet.type is SocketPacketType.ACK:
        return ("ack", packet.ack_id, packet.payload)
    return ("event", packet.ack_id, packet.event, packet.payload)


@pytest.mark.parametrize(
    "text",
    [
        "2" + "9" * 16 + '["ev"]',  # the longest ack id taken
        "2" + "9" * 17 + '["ev"]',  # one digit more: the general path
        "3" + "1" * 16 + "[]",
        "3" + "1" * 17 + "[]",
        "3٣[]",  # a digit, but not an ASCII one
        '2٣["ev"]',
        "3[]",
        '2x["ev"]',
        '2["café",1]',  # printable, not ASCII
        '2["a\u00a0b"]',  # not printable
        '2["a\x7fb"]',
        '2["a\tb"]',
        '2["~ !"]',
        '2[""]',
        '2["' + "n" * sio_wire.MAX_EVENT_NAME + '"]',
        '2["' + "n" * (sio_wire.MAX_EVENT_NAME + 1) + '"]',
        '2[1,"ev"]',
        "2[]",
        "3]",
        '2["ev]',
    ],
)
def test_fast_message_takes_exactly_what_the_plain_reading_takes(text: str) -> None:
    assert _fast_view(sio_wire.fast_message("4" + text)) == _fast_reference("4" + text)


@settings(max_examples=1000, deadline=None)
@given(_shape)
def test_fast_message_agrees_with_the_plain_reading(text: str) -> None:
    assert _fast_view(sio_wire.fast_message("4" + text)) == _fast_reference("4" + text)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(list(SocketPacketType)),
    st.one_of(
        st.lists(_json, max_size=3).map(json.dumps),
        _json.map(json.dumps),
        st.text(max_size=20),
    ),
    st.lists(st.binary(max_size=4), max_size=2).map(tuple),
)
def test_first_arg_is_the_first_of_parse_args(
    ptype: SocketPacketType, payload: str, attachments: tuple[bytes, ...]
) -> None:
    packet = SocketPacket(ptype, "/", 1, None, payload, attachments, len(payload))
    args = parse_args(packet)
    # repr: a "NaN" payload must compare equal to itself
    assert repr(sio_wire.first_arg(packet)) == repr(args[0] if args else None)

"""Engine.IO decoding: packets, v4/v3 polling payloads, JSONP, compressed bodies."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from urllib.parse import urlencode

import engineio.packet as eio_packet
import engineio.payload as eio_payload
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.tracking.wire.engineio import (
    decode_open,
    decode_text_packet,
    decode_ws_frame,
    decompress,
)
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket, EnginePacketType
from socketio_trace_proxy.tracking.wire.payload import PollingPayloadDecoder, decode_payload

T = EnginePacketType


def _packets(items: list[EnginePacket | DecodeFailure]) -> list[tuple[T, str | bytes]]:
    out = []
    for p in items:
        assert isinstance(p, EnginePacket), p
        out.append((p.type, p.data))
    return out


# --- single packets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ptype", "data"),
    [
        ("0{}", T.OPEN, "{}"),
        ("1", T.CLOSE, ""),
        ("2", T.PING, ""),
        ("2probe", T.PING, "probe"),
        ("3probe", T.PONG, "probe"),
        ('42["a"]', T.MESSAGE, '42["a"]'[1:]),
        ("5", T.UPGRADE, ""),
        ("6", T.NOOP, ""),
    ],
)
def test_text_packet_types(text: str, ptype: T, data: str) -> None:
    p = decode_text_packet(text)
    assert isinstance(p, EnginePacket)
    assert (p.type, p.data, p.size) == (ptype, data, len(text))


def test_v4_base64_binary_packet() -> None:
    p = decode_text_packet("b" + base64.b64encode(b"\x00\x01\xff").decode())
    assert isinstance(p, EnginePacket)
    assert (p.type, p.data) == (T.MESSAGE, b"\x00\x01\xff")


def test_v3_base64_binary_packet_carries_its_type() -> None:
    p = decode_text_packet("b4" + base64.b64encode(b"\x10\x20").decode(), eio=3)
    assert isinstance(p, EnginePacket)
    assert p.data == b"\x10\x20"
    assert isinstance(decode_text_packet("b2AAAA", eio=3), DecodeFailure)


def test_binary_ws_frames_v4_raw_and_v3_with_type_byte() -> None:
    v4 = decode_ws_frame(b"\x04abc", eio=4)
    v3 = decode_ws_frame(b"\x04abc", eio=3)
    assert isinstance(v4, EnginePacket) and v4.data == b"\x04abc"
    assert isinstance(v3, EnginePacket) and v3.data == b"abc"
    assert isinstance(decode_ws_frame(b"\x02abc", eio=3), DecodeFailure)
    assert isinstance(decode_ws_frame(b"", eio=3), DecodeFailure)


@pytest.mark.parametrize("text", ["", "7", "x", "b!!!notbase64"])
def test_garbage_packets_are_failures(text: str) -> None:
    assert isinstance(decode_text_packet(text), DecodeFailure)


def test_size_counts_utf8_bytes() -> None:
    p = decode_ws_frame('42["é😀"]')
    assert isinstance(p, EnginePacket)
    assert p.size == len('42["é😀"]'.encode())


def test_decode_open() -> None:
    info = decode_open(
        '{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,'
        '"maxPayload":1000000}'
    )
    assert not isinstance(info, DecodeFailure)
    assert (info.sid, info.upgrades, info.ping_interval_s, info.ping_timeout_s) == (
        "abc",
        ("websocket",),
        25.0,
        20.0,
    )
    assert info.max_payload == 1_000_000
    for bad in ["", "[]", '{"sid":""}', '{"sid":"a","pingInterval":"x","pingTimeout":1}', "{"]:
        assert isinstance(decode_open(bad), DecodeFailure), bad


# --- v4 payloads: python-engineio as the oracle ---------------------------------------------

_text_data = st.text(
    alphabet=st.characters(exclude_characters="\x1e", exclude_categories=["Cs"]), max_size=40
)
_eio_packet = st.one_of(
    st.builds(
        eio_packet.Packet,
        st.sampled_from([0, 1, 2, 3, 4, 5, 6]),
        # python-engineio decodes a leading digit as an int: keep data non-numeric-led
        _text_data.filter(lambda s: not s[:1].isdigit()),
    ),
    st.builds(lambda d: eio_packet.Packet(eio_packet.MESSAGE, d), st.binary(max_size=40)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_eio_packet, min_size=1, max_size=40))
def test_v4_payload_roundtrip_against_python_engineio(packets: list[eio_packet.Packet]) -> None:
    body = eio_payload.Payload(packets=packets).encode().encode("utf-8")
    decoded = _packets(decode_payload(body, eio=4))
    assert decoded == [(T(p.packet_type), p.data) for p in packets]


def test_v4_payload_has_no_packet_limit() -> None:
    body = "\x1e".join(f'42["e",{i}]' for i in range(500)).encode()
    assert len(_packets(decode_payload(body))) == 500


def test_v4_payload_bad_packet_does_not_hide_the_others() -> None:
    out = decode_payload(b'42["a"]\x1ezzz\x1e\x1e3')
    assert [type(p).__name__ for p in out] == [
        "EnginePacket",
        "DecodeFailure",
        "DecodeFailure",
        "EnginePacket",
    ]


# --- v3 payloads: encoders written from engine.io-parser v2 ---------------------------------


def _js_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _v3_text(packets: list[str]) -> bytes:
    return "".join(f"{_js_len(p)}:{p}" for p in packets).encode("utf-8")


def _v3_binary(packets: list[str | bytes]) -> bytes:
    out = bytearray()
    for p in packets:
        raw = p.encode("utf-8") if isinstance(p, str) else b"\x04" + p
        out.append(0 if isinstance(p, str) else 1)
        out += bytes(int(d) for d in str(len(raw)))
        out.append(0xFF)
        out += raw
    return bytes(out)


def test_v3_length_counts_utf16_units() -> None:
    body = '3:4😀7:42["é"]'.encode()  # 😀 is two UTF-16 code units
    assert _packets(decode_payload(body, eio=3)) == [(T.MESSAGE, "😀"), (T.MESSAGE, '2["é"]')]
    # counting code points (1 for the emoji) instead must not decode
    bad = decode_payload("2:4😀".encode(), eio=3)
    assert any(isinstance(p, DecodeFailure) for p in bad)


def test_v3_empty_payload_and_base64_binary() -> None:
    assert decode_payload(b"0:", eio=3) == []
    b64 = "b4" + base64.b64encode(b"\x01\x02").decode()
    assert _packets(decode_payload(_v3_text(["2", b64]), eio=3)) == [
        (T.PING, ""),
        (T.MESSAGE, b"\x01\x02"),
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("0123456"), st.text(max_size=30)), max_size=30))
def test_v3_text_payload_roundtrip(items: list[tuple[str, str]]) -> None:
    packets = [t + d for t, d in items]
    decoded = _packets(decode_payload(_v3_text(packets), eio=3))
    assert decoded == [(T(int(p[0])), p[1:]) for p in packets]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from("0123456"), st.text(max_size=30)).map(lambda x: x[0] + x[1]),
            st.binary(max_size=30),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_v3_binary_payload_roundtrip(packets: list[str | bytes]) -> None:
    decoded = _packets(decode_payload(_v3_binary(packets), eio=3))
    expected = [(T(int(p[0])), p[1:]) if isinstance(p, str) else (T.MESSAGE, p) for p in packets]
    assert decoded == expected


def test_v3_truncated_and_garbage_payloads_fail_once() -> None:
    for body in [b"10:4abc", b"x:4abc", b"3:4ab\x80", b"\x00\x09\x09\xff4a", b"\x01\xff"]:
        out = decode_payload(body, eio=3)
        assert out and isinstance(out[-1], DecodeFailure), body


# --- JSONP ---------------------------------------------------------------------------------


def test_jsonp_response_from_python_engineio() -> None:
    pkts = [eio_packet.Packet(4, '2["say","he said \\"hi\\""]'), eio_packet.Packet(2)]
    body = eio_payload.Payload(packets=pkts).encode(jsonp_index=3).encode()
    assert body.startswith(b'___eio[3]("')
    assert _packets(decode_payload(body, eio=4, jsonp=True)) == [
        (T.MESSAGE, '2["say","he said \\"hi\\""]'),
        (T.PING, ""),
    ]


def test_jsonp_v3_response_and_form_request() -> None:
    payload = '7:42["x"]'
    body = f"___eio[0]({json.dumps(payload)});".encode()
    assert _packets(decode_payload(body, eio=3, jsonp=True)) == [(T.MESSAGE, '2["x"]')]
    form = urlencode({"d": payload}).encode()
    assert _packets(decode_payload(form, eio=3, jsonp=True, request=True)) == [
        (T.MESSAGE, '2["x"]')
    ]
    assert isinstance(decode_payload(b"nonsense", eio=3, jsonp=True)[0], DecodeFailure)
    assert isinstance(decode_payload(b"e=1", eio=3, jsonp=True, request=True)[0], DecodeFailure)


# --- incremental decoding: any split decodes the same ---------------------------------------


def _feed_split(body: bytes, cuts: list[int], **kw: object) -> list[EnginePacket | DecodeFailure]:
    dec = PollingPayloadDecoder(**kw)  # type: ignore[arg-type]
    out: list[EnginePacket | DecodeFailure] = []
    prev = 0
    for cut in sorted(set(c % (len(body) + 1) for c in cuts)):
        out += dec.feed(body[prev:cut])
        prev = cut
    out += dec.feed(body[prev:])
    return out + dec.close()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_eio_packet, max_size=20),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_v4_any_split_decodes_the_same(packets: list[eio_packet.Packet], cuts: list[int]) -> None:
    body = eio_payload.Payload(packets=packets).encode().encode("utf-8")
    assert _feed_split(body, cuts, eio=4) == decode_payload(body, eio=4)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from("0123456"), st.text(max_size=20)).map(lambda x: x[0] + x[1]),
            st.binary(max_size=20),
        ),
        max_size=15,
    ),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_v3_any_split_decodes_the_same(
    packets: list[str | bytes], binary_format: bool, cuts: list[int]
) -> None:
    if binary_format:
        body = _v3_binary(packets)
    else:
        body = _v3_text(
            [p if isinstance(p, str) else "b4" + base64.b64encode(p).decode() for p in packets]
        )
    whole = decode_payload(body, eio=3)
    assert _feed_split(body, cuts, eio=3) == whole
    assert not any(isinstance(p, DecodeFailure) for p in whole)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200),
    st.sampled_from([3, 4]),
    st.lists(st.integers(min_value=0, max_value=300), max_size=6),
)
def test_garbage_any_split_decodes_the_same_and_never_raises(
    body: bytes, eio: int, cuts: list[int]
) -> None:
    # decode_payload sniffs JSONP responses by their prefix; the incremental decoder is told.
    jsonp = body.startswith(b"___eio[")
    assert _feed_split(body, cuts, eio=eio, jsonp=jsonp) == decode_payload(body, eio=eio)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(max_size=200), st.text(max_size=200)),
    st.sampled_from([3, 4]),
    st.booleans(),
    st.booleans(),
)
def test_random_input_never_raises(data: bytes | str, eio: int, jsonp: bool, request: bool) -> None:
    decode_ws_frame(data, eio=eio)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    for p in decode_payload(raw, eio=eio, jsonp=jsonp, request=request):
        assert isinstance(p, EnginePacket | DecodeFailure)
    decode_open(data)
    decompress(raw, "gzip")
    decompress(raw, "deflate")


def test_oversized_packet_is_refused_and_counted() -> None:
    dec = PollingPayloadDecoder(eio=4, max_packet_bytes=100)
    assert dec.feed(b"4" + b"x" * 200) == []
    out = dec.close()
    assert dec.overflowed
    assert len(out) == 1 and isinstance(out[0], DecodeFailure)


# --- Content-Encoding ------------------------------------------------------------------------


def test_decompress_gzip_deflate_and_raw_deflate() -> None:
    body = ("\x1e".join(f'42["e",{i}]' for i in range(300))).encode()
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = raw_deflate.compress(body) + raw_deflate.flush()
    assert decompress(gzip.compress(body), "gzip") == body
    assert decompress(zlib.compress(body), "deflate") == body
    assert decompress(raw, "deflate") == body
    assert decompress(body, None) == body
    assert decompress(body, "identity") == body


def test_decompress_is_bounded_and_refuses_unknown_or_corrupt() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    too_big = decompress(bomb, "gzip", max_size=1_000_000)
    assert isinstance(too_big, DecodeFailure) and "too large" in too_big.reason
    assert isinstance(decompress(b"abc", "br"), DecodeFailure)
    assert isinstance(decompress(b"not gzip", "gzip"), DecodeFailure)
    assert isinstance(decompress(gzip.compress(b"x" * 1000)[:-12], "gzip"), DecodeFailure)

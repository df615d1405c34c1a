"""The tunnel's frame scanner, sans sockets: whatever the split, the same bytes are forwarded
and the same messages observed; garbage never raises; the size limit stops at a frame
boundary; compressed messages (RFC 7692, with and without context takeover) are inflated."""

from __future__ import annotations

import itertools
import os
import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.proxy.wsframes import (
    CloseFrame,
    FrameScanner,
    Scanned,
    close_frame,
    unmask,
)

TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool, rsv1: bool = False
) -> bytes:
    """RFC 6455 5.2 framing, written independently of the scanner."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mask_bit | n))
    elif n < 65536:
        head = bytes((b0, mask_bit | 126)) + n.to_bytes(2)
    else:
        head = bytes((b0, mask_bit | 127)) + n.to_bytes(8)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def message_frames(
    payload: bytes, *, text: bool, masked: bool, pieces: int, rsv1: bool = False
) -> bytes:
    """One message split into ``pieces`` frames, a ping between the first two."""
    size = max(1, len(payload) // pieces) if payload else 1
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        opcode = (TEXT if text else BINARY) if i == 0 else 0
        out.append(
            frame(opcode, chunk, fin=i == len(chunks) - 1, masked=masked, rsv1=rsv1 and i == 0)
        )
        if i == 0 and len(chunks) > 1:
            out.append(frame(PING, b"ping", masked=masked))
    return b"".join(out)


def scan_all(scanner: FrameScanner, stream: bytes, cuts: list[int]) -> tuple[bytes, list[Scanned]]:
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    results = [scanner.feed(stream[a:b]) for a, b in itertools.pairwise(bounds)]
    return b"".join(r.forward for r in results), results


messages_strategy = st.lists(
    st.tuples(st.booleans(), st.binary(max_size=300), st.integers(1, 4)), max_size=8
)


@settings(max_examples=150, deadline=None)
@given(messages=messages_strategy, masked=st.booleans(), cuts=st.lists(st.integers(0, 10_000)))
def test_any_split_forwards_every_byte_and_observes_every_message(
    messages: list[tuple[bool, bytes, int]], masked: bool, cuts: list[int]
) -> None:
    stream = b"".join(message_frames(p, text=t, masked=masked, pieces=k) for t, p, k in messages)
    scanner = FrameScanner(max_message=1 << 20, observe=True, deflate=False)
    forwarded, results = scan_all(scanner, stream, cuts)
    assert forwarded == stream
    observed = [m for r in results for m in r.messages]
    assert observed == [p.decode("utf-8", "replace") if t else p for t, p, _ in messages]
    assert sum(r.message_count for r in results) == len(messages)
    assert sum(r.byte_count for r in results) == sum(len(p) for _, p, _ in messages)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 3000), max_size=6))
@example(data=b"\x00\x7f\x00\x00\x00\x00@\x00\x00\x01\x00\x00\x00\x00", cuts=[])
def test_garbage_never_raises_and_passes_through(data: bytes, cuts: list[int]) -> None:
    for deflate in (False, True):
        scanner = FrameScanner(max_message=1 << 30, observe=True, deflate=deflate)
        forwarded, _ = scan_all(scanner, data, cuts)
        assert data.startswith(forwarded)
        if not scanner.stopped:
            # Only an incomplete frame header at the very end may be held back; a frame
            # declaring more than the limit (random bytes can) stops the stream before it.
            assert len(data) - len(forwarded) < 14


def test_a_message_over_the_limit_stops_at_its_frame_boundary() -> None:
    first = frame(TEXT, b"x" * 50, masked=True)
    big = frame(BINARY, b"y" * 60, fin=False, masked=True) + frame(0, b"y" * 60, masked=True)
    scanner = FrameScanner(max_message=100, observe=False, deflate=False)
    stream = first + big + frame(TEXT, b"after", masked=True)
    got = scanner.feed(stream[: len(first) + 3]), scanner.feed(stream[len(first) + 3 :])
    # The first 60-byte fragment fits; the continuation takes the message to 120.
    assert b"".join(r.forward for r in got) == first + big[: len(big) // 2]
    assert [r.too_big for r in got] == [False, True]
    assert scanner.stopped
    assert scanner.feed(b"more").forward == b""


def test_close_frames_empty_and_with_code() -> None:
    scanner = FrameScanner(max_message=100, observe=False, deflate=False)
    assert scanner.feed(frame(CLOSE, b"", masked=False)).close == CloseFrame(None, b"")
    payload = (4001).to_bytes(2) + "raison é".encode()
    assert scanner.feed(frame(CLOSE, payload, masked=True)).close == CloseFrame(
        4001, "raison é".encode()
    )
    made = close_frame(1009, b"", os.urandom(4))
    assert scanner.feed(made).close == CloseFrame(1009, b"")
    assert FrameScanner(max_message=9, observe=False, deflate=False).feed(
        close_frame(1001, b"bye", None)
    ).close == CloseFrame(1001, b"bye")


def _deflate_messages(texts: list[bytes], takeover: bool) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    out = []
    for text in texts:
        if not takeover:
            compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(message_frames(data[:-4], text=True, masked=True, pieces=2, rsv1=True))
    return b"".join(out)


def test_compressed_messages_are_inflated_with_and_without_context_takeover() -> None:
    texts = [b'42["echo",{"n":1}]', b'42["echo",{"n":1}]', b"4" + b"z" * 5000]
    for takeover in (True, False):
        scanner = FrameScanner(max_message=1 << 20, observe=True, deflate=True)
        stream = _deflate_messages(texts, takeover)
        forwarded, results = scan_all(scanner, stream, [7, 100, 101])
        assert forwarded == stream
        assert [m for r in results for m in r.messages] == [t.decode() for t in texts]
    # A stream ended with BFINAL (RFC 7692 7.2.3.4): the next message starts a new one.
    final = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    data = final.compress(b"40") + final.flush(zlib.Z_FINISH)
    scanner = FrameScanner(max_message=1 << 20, observe=True, deflate=True)
    first = scanner.feed(frame(TEXT, data, masked=False, rsv1=True))
    second = scanner.feed(_deflate_messages([b"2"], takeover=True))
    assert (first.messages, second.messages) == (["40"], ["2"])


def test_what_does_not_inflate_ends_observation_but_not_forwarding() -> None:
    scanner = FrameScanner(max_message=1000, observe=True, deflate=True)
    junk = frame(TEXT, b"\xff\xfe not deflate", masked=True, rsv1=True)
    later = frame(TEXT, b"plain", masked=True)
    assert scanner.feed(junk).forward == junk
    assert scanner.unobservable == 1
    result = scanner.feed(later)
    assert (result.forward, result.messages, result.message_count) == (later, (), 1)
    # Inflating past max_message is refused the same way (a small frame, a big message).
    bomb = _deflate_messages([b"a" * 5000], takeover=True)
    scanner = FrameScanner(max_message=1000, observe=True, deflate=True)
    assert scanner.feed(bomb).forward == bomb
    assert scanner.unobservable == 1


def test_unmask_is_its_own_inverse() -> None:
    key = b"\x01\x02\x03\x04"
    payload = os.urandom(1001)
    assert unmask(key, unmask(key, payload)) == payload
    assert unmask(None, payload) is payload


PONG = 0xA


@pytest.mark.parametrize("opcode", [CLOSE, PING, PONG, 0xB])
@pytest.mark.parametrize("declared", [126, 65_535, 2**40])
def test_a_control_frame_over_125_bytes_is_a_protocol_error(opcode: int, declared: int) -> None:
    """RFC 6455 5.5: control frames carry at most 125 bytes.  One declaring more stops the
    stream before it (the tunnel then closes both sides with 1002): nothing of it is
    forwarded, and nothing of what follows is kept, whatever the opcode."""
    before = frame(TEXT, b"fine", masked=True) + frame(PING, b"p" * 125, masked=True)
    head = frame(opcode, b"", masked=True)
    head = bytes((head[0], 0x80 | (126 if declared < 65_536 else 127)))
    head += declared.to_bytes(2 if declared < 65_536 else 8) + os.urandom(4)
    for observe in (False, True):
        scanner = FrameScanner(max_message=1 << 30, observe=observe, deflate=False)
        first = scanner.feed(before + head[:3])  # the header split across two chunks
        assert first.forward == before and not first.protocol_error
        assert first.message_count == 1
        second = scanner.feed(head[3:] + b"\x00" * 100_000)
        assert second.protocol_error and not second.too_big
        assert second.forward == b"" and second.close is None
        assert scanner.stopped
        assert scanner.feed(b"\x00" * 100_000) == Scanned(b"", (), 0, 0, None, False)


@pytest.mark.parametrize("masked", [True, False])
def test_a_new_message_inside_a_fragmented_one_is_observed_joined_as_before(
    masked: bool,
) -> None:
    """Whole one-frame messages skip the fragment list, but not while a fragmented message
    is open: a data frame with an opcode there (a peer's protocol error, forwarded as is)
    still joins what came before it, as the scanner always observed it."""
    stream = (
        frame(TEXT, b"one", masked=masked)
        + frame(TEXT, b"ab", fin=False, masked=masked)
        + frame(BINARY, b"cd", masked=masked)
        + frame(TEXT, "t\u00e9".encode(), masked=masked)
        + frame(BINARY, b"", masked=masked)
    )
    scanned = FrameScanner(max_message=1000, observe=True, deflate=False).feed(stream)
    assert list(scanned.messages) == ["one", b"abcd", "t\u00e9", b""]
    # the BINARY frame started a new message as far as sizes go: 2 bytes, not 4
    assert (scanned.message_count, scanned.byte_count) == (4, 3 + 2 + 3 + 0)


def test_ending_says_whether_a_chunk_holds_a_close_an_oversize_or_a_protocol_error() -> None:
    """The tunnel reads ``ending`` alone per chunk: it is set exactly when one of the three
    is."""
    plain = FrameScanner(max_message=10, observe=True, deflate=False)
    assert not plain.feed(frame(TEXT, b"hi", masked=True) + frame(PING, b"", masked=True)).ending
    closing = FrameScanner(max_message=10, observe=True, deflate=False)
    scanned = closing.feed(frame(TEXT, b"hi", masked=False) + close_frame(1000, b"", None))
    assert scanned.ending and scanned.close == CloseFrame(1000, b"")
    assert list(scanned.messages) == ["hi"]
    big = FrameScanner(max_message=10, observe=False, deflate=False).feed(
        frame(BINARY, b"x" * 11, masked=True)
    )
    assert big.ending and big.too_big
    bad = FrameScanner(max_message=1000, observe=False, deflate=False).feed(
        frame(PING, b"x" * 126, masked=False)
    )
    assert bad.ending and bad.protocol_error
    for made in (Scanned(b"", (), 0, 0, None, False), Scanned(b"x", ["m"], 1, 1, None, False)):
        assert not made.ending

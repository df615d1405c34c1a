"""Issue 17.9: one observation's work follows what the tracker needs, not the body's size.

A hostile body (runs of digits where an ack id may stand, a namespace that never ends, an
``EIO=3`` length prefix over non-ASCII text, JSONP full of escaped newlines) used to make the
decoder loop in Python once per character: seconds of event-loop time for 16 MiB.  These
tests count the Python lines executed (``sys.settrace``) while such bodies are decoded, at
two sizes: the count must be small and must not grow with the body.  No clock involved.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.sessions import SessionTable
from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure
from socketio_trace_proxy.tracking.wire.payload import decode_payload
from socketio_trace_proxy.tracking.wire.socketio import fast_message, parse_header
from tests.tracking.transcript_kit import open_packet

SIZES = (64 * 1024, 512 * 1024)
LINE_BUDGET = 400  # Python lines per observation, whatever the body's size


def python_lines(fn: Callable[[], object]) -> int:
    """How many Python lines ``fn()`` executes (any module)."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


def assert_bounded(make: Callable[[int], Callable[[], object]]) -> None:
    counts = [python_lines(make(size)) for size in SIZES]
    assert max(counts) <= LINE_BUDGET, counts
    assert counts[1] <= counts[0] + 20, counts  # 8x the body, not 8x the work


def test_ack_id_digits_are_bounded_before_they_are_scanned() -> None:
    def make(n: int) -> Callable[[], object]:
        text = "2" + "1" * n + '["x"]'
        return lambda: parse_header(text)

    assert_bounded(make)
    result = parse_header("2" + "1" * 1000 + '["x"]')
    assert isinstance(result, DecodeFailure) and result.reason == "ack id too long"
    assert_bounded(lambda n: lambda: fast_message("42" + "1" * n + '["x"]'))


def test_a_namespace_that_never_ends_is_bounded() -> None:
    assert_bounded(lambda n: lambda: parse_header("2/" + "a" * n))
    result = parse_header("2/" + "a" * 10_000)
    assert isinstance(result, DecodeFailure) and result.reason == "namespace too long"
    packet, _ = parse_header('2/admin?token=abc,["x"]')  # type: ignore[misc]
    assert (packet.namespace, packet.event) == ("/admin", "x")


def test_long_event_names_are_cut() -> None:
    packet, _ = parse_header('2["' + "n" * 5000 + '"]')  # type: ignore[misc]
    assert packet.event == "n" * 1024 + "…"
    assert fast_message('42["' + "n" * 5000 + '"]') is None  # left to the general path


@pytest.mark.parametrize("char", ["é", "😀"])
def test_eio3_length_prefixes_over_non_ascii_text_are_counted_by_the_codecs(char: str) -> None:
    def make(n: int) -> Callable[[], object]:
        text = "4" + char * (n // 4)
        units = len(text.encode("utf-16-le")) // 2
        body = f"{units}:{text}".encode()
        return lambda: decode_payload(body, eio=3)

    assert_bounded(make)
    text = "42" + '["é😀"]'
    body = f"{len(text.encode('utf-16-le')) // 2}:{text}".encode()
    (packet,) = decode_payload(body, eio=3)
    assert not isinstance(packet, DecodeFailure) and packet.data == '2["é😀"]'


def test_jsonp_full_of_escaped_newlines_is_bounded() -> None:
    def make(n: int) -> Callable[[], object]:
        body = b"d=" + b"4" + b"\\n" * (n // 2)
        return lambda: decode_payload(body, eio=4, jsonp=True, request=True)

    assert_bounded(make)


def _table_with_session() -> tuple[SessionTable, Any]:
    table = SessionTable(lambda event: None)
    q = {"EIO": "4", "transport": "websocket"}
    leg = table.websocket_opened(RequestInfo("GET", q), 0.0, 0.0)
    table.websocket_message(leg, Direction.SERVER_TO_CLIENT, open_packet("S"), 0.0, 0.0)
    return table, leg


def test_hostile_messages_of_a_live_session_cost_bounded_work() -> None:
    table, leg = _table_with_session()

    def websocket(n: int) -> Callable[[], object]:
        frame = "42" + "1" * n + "[]"
        return lambda: table.websocket_message(leg, Direction.CLIENT_TO_SERVER, frame, 1.0, 0.0)

    def polling_v3(n: int) -> Callable[[], object]:
        text = "4" + "é" * (n // 2)
        body = f"{len(text)}:{text}".encode()
        info = RequestInfo("POST", {"EIO": "3", "transport": "polling", "sid": "S"})
        return lambda: table.polling_request(info, body, 1.0, 0.0)

    def polling_reply(n: int) -> Callable[[], object]:
        body = ("42" + "7" * n + "[]").encode()
        info = RequestInfo("GET", {"EIO": "4", "transport": "polling", "sid": "S"})
        return lambda: table.polling_reply(info, 200, None, body, 1.0, 0.0)

    for make in (websocket, polling_v3, polling_reply):
        assert_bounded(make)
    assert table.stats().internal_errors == 0 and table.stats().decode_failures >= 6

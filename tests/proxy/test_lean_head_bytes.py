"""Issue 14: the typed, sans-IO head module (:mod:`proxy.lean.head`, compiled in the compiled
build) gives byte for byte what the Python loops it replaced gave (kept here as references),
for any header lines: the noted values, the upstream request head, and the decision to
write an upstream reply as received (only when that is exactly what the serializer writes);
and its httptools callback targets read heads cut anywhere, within the head limits."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.proxy.headers import DROP_RESPONSE_BYTES
from socketio_trace_proxy.proxy.lean.head import (
    ADDRESS_LIKE,
    MAX_FIELD,
    MAX_HEADERS,
    MAX_TARGET,
    NOTED,
    Refused,
    RequestHead,
    ResponseHead,
    Seen,
    TooLarge,
    as_received,
    noted,
    request_head,
)
from socketio_trace_proxy.proxy.polling import copy_headers

NAMES = [
    b"Host", b"host", b"Connection", b"Keep-Alive", b"X-Forwarded-For", b"x_real_ip",
    b"X_Forwarded_For", b"Content-Length", b"content-length", b"Content-Type",
    b"CONTENT-ENCODING", b"Transfer-Encoding", b"Expect", b"Upgrade", b"X-Custom",
    b"Traceparent", b"Set-Cookie", b"Date", b"Server",
]  # fmt: skip
VALUES = [b"", b"a", b"keep-alive", b"close", b"12", b"text/plain", b"gzip", b"\xc3\xa9\xff"]
HEADERS = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=10)
DROPS = st.frozensets(st.sampled_from([n.lower() for n in NAMES]), max_size=6)


def _noted_reference(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    # Written apart from noted(): walking backwards, the first value of a name wins last.
    last_write: dict[bytes, bytes] = {}
    for name, value in reversed(raw):
        last_write[name.lower()] = value
    return {name: value for name, value in last_write.items() if name in NOTED}


def _head_reference(  # noqa: PLR0917 - request_head's parameters
    line: bytes,
    raw: list[tuple[bytes, bytes]],
    dropped: frozenset[bytes],
    guard: bool,
    added: list[bytes],
    length: int,
) -> bytes:
    """``RelayCore.head``'s loop before the head module."""
    parts = [line]
    for name, value in raw:
        lname = name.lower()
        underscored = b"_" in lname and lname.replace(b"_", b"-") in ADDRESS_LIKE
        if lname not in dropped and not (guard and underscored):
            parts.extend((name, b": ", value, b"\r\n"))
    parts.extend(added)
    if length >= 0:
        parts.append(b"Content-Length: %d\r\n" % length)
    parts.append(b"\r\n")
    return b"".join(parts)


@settings(max_examples=300, deadline=None)
@given(headers=HEADERS)
def test_noted_values_are_the_first_of_each_noted_name(headers: list[tuple[bytes, bytes]]) -> None:
    assert noted(headers) == _noted_reference(headers)


@settings(max_examples=300, deadline=None)
@given(
    headers=HEADERS,
    dropped=DROPS,
    guard=st.booleans(),
    added=st.lists(st.sampled_from([b"X-Forwarded-Proto: http\r\n", b"X-Real-IP: ::1\r\n"])),
    length=st.sampled_from([-1, 0, 7, 123456]),
)
def test_the_request_head_is_the_loops(
    headers: list[tuple[bytes, bytes]],
    dropped: frozenset[bytes],
    guard: bool,
    added: list[bytes],
    length: int,
) -> None:
    line = b"POST /socket.io/?EIO=4 HTTP/1.1\r\n"
    expected = _head_reference(line, headers, dropped, guard, added, length)
    assert request_head(line, headers, dropped, guard, added, length) == expected
    lnames = [name.lower() for name, _ in headers]
    assert request_head(line, headers, dropped, guard, added, length, lnames) == expected


SEPARATORS = [b": ", b": ", b":", b":  ", b":\t"]


@settings(max_examples=500, deadline=None)
@given(
    headers=HEADERS,
    separators=st.lists(st.sampled_from(SEPARATORS), min_size=10, max_size=10),
    trailing=st.lists(st.sampled_from([b"", b"", b"", b" "]), min_size=10, max_size=10),
    status=st.sampled_from([200, 201, 400, 503]),
    reason=st.sampled_from([b"OK", b"", b"Odd Reason"]),
    body=st.sampled_from([b"", b"ok", b"4" * 300]),
)
def test_a_reply_passes_as_received_only_when_it_is_the_serialized_one(  # noqa: PLR0917
    headers: list[tuple[bytes, bytes]],
    separators: list[bytes],
    trailing: list[bytes],
    status: int,
    reason: bytes,
    body: bytes,
) -> None:
    lines = [
        name + sep + value + (tail if value else b"") + b"\r\n"
        for (name, value), sep, tail in zip(headers, separators, trailing, strict=False)
    ]
    raw = b"HTTP/1.1 %d %s\r\n" % (status, reason) + b"".join(lines) + b"\r\n" + body
    parsed = _parse(raw)
    if parsed is None:
        return  # llhttp refuses it (a bad Content-Length, a Transfer-Encoding): never relayed
    got = as_received(raw, status, reason, parsed, len(body), DROP_RESPONSE_BYTES)
    serialized = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    seen = copy_headers(parsed, False, serialized.append)
    exact = b"".join(serialized) + b"\r\n" + body == raw
    hop = any(n.lower() in DROP_RESPONSE_BYTES for n, _ in parsed)
    expected = exact and not hop and seen.length is not None
    assert (got is not None) == expected, (raw, parsed)
    if got is not None:
        assert _facts(got) == _facts(seen)


def _facts(seen: Seen) -> tuple[bytes | None, bytes | None, bytes | None]:
    return seen.length, seen.content_type, seen.content_encoding


def _parse(raw: bytes) -> list[tuple[bytes, bytes]] | None:
    """The header lines as the upstream client's parser (llhttp) reads them."""

    class _Sink:
        def __init__(self) -> None:
            self.headers: list[tuple[bytes, bytes]] = []
            self.complete = False

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_message_complete(self) -> None:
            self.complete = True

    sink = _Sink()
    try:
        httptools.HttpResponseParser(sink).feed_data(raw)
    except httptools.HttpParserError:
        return None
    return sink.headers if sink.complete else None


class _RequestSink:
    """httptools' callbacks for a request: the head's parts from :class:`RequestHead`."""

    def __init__(self, head: RequestHead) -> None:
        self.on_url = head.on_url
        self.on_header = head.on_header
        self.heads: list[tuple[bytes, list[tuple[bytes, bytes]]]] = []
        self.head = head

    def on_headers_complete(self) -> None:
        self.heads.append(self.head.take())


@settings(max_examples=200, deadline=None)
@given(headers=HEADERS, cut=st.integers(min_value=1, max_value=300))
def test_a_request_head_read_in_pieces_is_its_target_and_lines(
    headers: list[tuple[bytes, bytes]], cut: int
) -> None:
    framing = (b"content-length", b"transfer-encoding", b"connection", b"upgrade")
    lines = [(n, v) for n, v in headers if n.lower() not in framing]
    target = b"/socket.io/?EIO=4&transport=polling&t=" + b"x" * cut
    raw = b"GET " + target + b" HTTP/1.1\r\n"
    raw += b"".join(n + b": " + v + b"\r\n" for n, v in lines) + b"\r\n"
    head = RequestHead()
    sink = _RequestSink(head)
    parser = httptools.HttpRequestParser(sink)
    for at in range(0, len(raw) * 2, cut):  # the same head twice, cut anywhere
        parser.feed_data((raw + raw)[at : at + cut])
    assert sink.heads == [(target, lines), (target, lines)]
    assert not head.started


@settings(max_examples=200, deadline=None)
@given(headers=HEADERS)
def test_a_request_head_notes_its_lines_as_they_come(headers: list[tuple[bytes, bytes]]) -> None:
    """The lower-case names and noted values :meth:`RequestHead.take_all` gives are those
    of the lines read (the references), and the next head starts without them."""
    head = RequestHead()
    for _ in range(2):
        head.on_url(b"/x")
        for name, value in headers:
            head.on_header(name, value)
        url, lines, lnames, seen = head.take_all()
        assert (url, lines) == (b"/x", headers)
        assert lnames == [name.lower() for name, _ in headers]
        assert seen == _noted_reference(headers)


def test_a_request_head_over_the_limits_is_refused() -> None:
    head = RequestHead()
    head.on_url(b"/" * MAX_TARGET)
    with pytest.raises(Refused) as too_long:
        head.on_url(b"x")
    assert too_long.value.status == 414
    head = RequestHead()
    with pytest.raises(Refused) as field:
        head.on_header(b"X-Big", b"v" * MAX_FIELD)
    assert field.value.status == 431
    head = RequestHead()
    for _ in range(MAX_HEADERS):
        head.on_header(b"X-A", b"1")
    with pytest.raises(Refused) as many:
        head.on_header(b"X-A", b"1")
    assert (many.value.status, str(many.value)) == (431, "Request Header Fields Too Large")


def test_a_response_head_collects_its_reason_and_lines_until_reset() -> None:
    head = ResponseHead()
    parser = httptools.HttpResponseParser(head)
    raw = b"HTTP/1.1 200 All Good\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n"
    for at in range(len(raw)):
        parser.feed_data(raw[at : at + 1])
    kept = head.headers
    assert (head.reason, kept) == (b"All Good", [(b"Content-Length", b"0"), (b"X-A", b"1")])
    head.reset()
    assert (head.reason, head.headers, kept[1]) == (b"", [], (b"X-A", b"1"))


def test_a_response_body_is_kept_within_its_limit() -> None:
    head = ResponseHead()
    head.start(5)
    parser = httptools.HttpResponseParser(head)
    parser.feed_data(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    assert (head.done, head.body, head.size) == (True, [b"abc"], 3)
    with pytest.raises(httptools.HttpParserCallbackError) as over:
        parser.feed_data(b"defghi")
    assert isinstance(over.value.__context__, TooLarge)
    head.start(9)
    assert (head.done, head.body, head.size, head.headers) == (False, [], 0, [])

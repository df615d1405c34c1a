"""Issue 14: a client connection's polls send the same header lines again and again; the
lean leg builds the upstream lines for each set of lines once per connection
(:meth:`HeadBuilder.build_known`) and the upstream gets byte for byte the head it got
before, whatever the lines, the reads they came in, pipelined or not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.proxy.core import RelayCore
from socketio_trace_proxy.proxy.lean.exchange import lean_heads
from socketio_trace_proxy.proxy.lean.head import MAX_KNOWN_LINES
from tests.proxy.peers import RawUpstream, relay_in_front_of
from tests.proxy.test_lean_head import HEADERS


@settings(max_examples=300, deadline=None)
@given(
    headers=HEADERS,
    method=st.sampled_from(["GET", "POST"]),
    lengths=st.lists(st.integers(-1, 20), min_size=1, max_size=3),
    remote=st.sampled_from([None, "127.0.0.1"]),
)
def test_lines_known_are_the_lines_built(
    headers: list[tuple[bytes, bytes]], method: str, lengths: list[int], remote: str | None
) -> None:
    core = RelayCore(ProxySettings(upstream="http://127.0.0.1:1/base"), None)
    heads = lean_heads(core)
    noted: dict[bytes, bytes] = {}
    for name, value in headers:
        noted.setdefault(name.lower(), value)
    known: dict[bytes, bytes] = {}
    for n, length in enumerate(lengths):  # the first built, the others known
        target = f"/socket.io/?t={n}"
        expected = heads.build(method, target, headers, noted, remote, length)
        got = heads.build_known(method, target, headers, noted, remote, length, None, known)
        assert got == expected
        assert len(known) == 1
    # Other lines are not taken for these.
    other = [*headers, (b"X-Other", b"")]
    noted.setdefault(b"x-other", b"")
    expected = heads.build(method, "/", other, noted, remote, -1)
    assert heads.build_known(method, "/", other, noted, remote, -1, None, known) == expected
    assert len(known) == 2


def test_the_lines_known_are_bounded_and_their_clears_counted() -> None:
    core = RelayCore(ProxySettings(upstream="http://127.0.0.1:1"), None)
    heads = lean_heads(core)
    known: dict[bytes, bytes] = {}
    for n in range(MAX_KNOWN_LINES * 2 + 1):
        headers = [(b"X-N", b"%d" % n)]
        head = heads.build_known("GET", "/", headers, {}, None, -1, None, known)
        assert head == heads.build("GET", "/", headers, {}, None, -1)
        assert len(known) <= MAX_KNOWN_LINES
    assert heads.lines_cleared == 2


class _Recording(RawUpstream):
    """Answers "ok"; keeps each request as received, by its target."""

    got: dict[bytes, bytes]

    def data_received(self, data: bytes) -> None:
        head = data.partition(b"\r\n\r\n")[0]
        self.got[head.split(b" ", 2)[1]] = data  # one exchange per write from the pool
        super().data_received(data)

    def answer(self, url: bytes, transport: asyncio.Transport) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[dict[bytes, bytes], str]]:
    got: dict[bytes, bytes] = {}
    factory = type("Rec", (_Recording,), {"got": got})
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        yield got, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


LINES = [
    b"Host: h\r\nAccept: */*\r\n",
    b"Host: h\r\nCookie: a=1\r\nAccept: */*\r\n",
    b"Accept: */*\r\nHost: h\r\n",
    b"Host: h\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n",
    b"Host: h\r\nContent-Type: text/plain\r\n",
    b"",
]


def _request(n: int, block: bytes) -> bytes:
    if n % 3 == 2:
        body = b"4:hi" + b"x" * n  # its length differs: Content-Length is no part of the key
        return b"POST /socket.io/?t=%d HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            n,
            block,
            len(body),
            body,
        )
    return b"GET /socket.io/?t=%d HTTP/1.1\r\n%s\r\n" % (n, block)


async def _answers(reader: asyncio.StreamReader, count: int) -> None:
    for _ in range(count):
        assert (await reader.readuntil(b"\r\n\r\nok")).startswith(b"HTTP/1.1 200 OK\r\n")


async def test_the_upstream_gets_the_heads_it_got_without_known_lines(
    upstream: tuple[dict[bytes, bytes], str],
) -> None:
    got, url = upstream
    # Lines 0 and 1 in turn (known after their first), then 2, 3 (the table full), 4 (it
    # is emptied): one clear if each set of lines is known again, more if not.
    order = [0, 1] * 5 + [2, 3, 4]
    order += [n * 7 % len(LINES) for n in range(24)]
    requests = [_request(n, LINES[b]) for n, b in enumerate(order)]
    async with relay_in_front_of(url) as relay:
        host, port = relay.url.removeprefix("http://").split(":")
        # Alone, each on a connection of its own: nothing known yet.
        for data in requests:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(data)
            await _answers(reader, 1)
            writer.close()
        alone = dict(got)
        got.clear()
        assert relay.server.stats().header_lines_cleared == 0
        reader, writer = await asyncio.open_connection(host, int(port))
        for data in requests[:13]:
            writer.write(data)
            await _answers(reader, 1)
        assert relay.server.stats().header_lines_cleared == 1
        # Then one at a time cut in two reads (in the method, the target, the lines, the
        # body or the last line end), or two in one write.
        n = 13
        while n < len(requests):
            data = requests[n]
            if n % 4 == 3 and n + 1 < len(requests):
                writer.write(data + requests[n + 1])
                await _answers(reader, 2)
                n += 2
                continue
            cut = (1, 6, 30, len(data) - 3, len(data))[n % 5]
            writer.write(data[:cut])
            await asyncio.sleep(0.01)  # apart, in all likelihood: two reads
            writer.write(data[cut:])
            await _answers(reader, 1)
            n += 1
        writer.close()
    assert got == alone
    assert len(got) == len(requests)

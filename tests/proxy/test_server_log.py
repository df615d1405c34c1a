"""Issue 17.14: malformed requests and upstream outages are counted and logged once per
interval with the count, never one traceback (or one warning) per request."""

from __future__ import annotations

import asyncio
import logging

import pytest

from socketio_trace_proxy.proxy.serverlog import Throttled
from tests.proxy.peers import free_port, relay_in_front_of

MALFORMED = (
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
)


async def _exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_malformed_requests_are_counted_not_logged_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with relay_in_front_of(f"http://127.0.0.1:{free_port()}") as relay:
        for _ in range(6):
            for data in MALFORMED:
                answer = await _exchange(relay.url, data)
                assert answer.startswith(b"HTTP/1.0 400 ") or answer.startswith(b"HTTP/1.1 400 ")
        assert relay.counters.malformed_requests == 6 * len(MALFORMED)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert loud[0].exc_info is None
    assert "malformed HTTP requests" in loud[0].getMessage()


async def test_an_upstream_outage_warns_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with relay_in_front_of(f"http://127.0.0.1:{free_port()}") as relay:
        for _ in range(20):
            answer = await _exchange(
                relay.url,
                b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: h\r\n"
                b"Connection: close\r\n\r\n",
            )
            assert answer.startswith(b"HTTP/1.1 502 ")
        assert relay.counters.upstream_errors == 20
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    assert "upstream requests failed" in loud[0].getMessage()


def test_throttled_reports_the_count_since_its_last_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = logging.getLogger("test.throttled")
    throttled = Throttled(log, "things failed", interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttled"):
        throttled.hit("a")  # the first is reported at once
        for _ in range(5):
            now[0] += 1.0
            throttled.hit("b")
        now[0] += 10.0
        throttled.hit("c")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "things failed: 1 in the last 10 s (latest: a)",
        "things failed: 6 in the last 10 s (latest: c)",
    ]

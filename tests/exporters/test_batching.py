"""The batching core: queue limits, batch/interval flushes, retries, log-once, shutdown."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import deque
from collections.abc import Sequence

import pytest

from socketio_trace_proxy.exporters.batching import (
    BatchingSink,
    BatchPolicy,
    Encoded,
    SendResult,
    Verdict,
)
from socketio_trace_proxy.tracking.records import PairRecord, Record
from tests.exporters.kit import pair

FAST = BatchPolicy(
    max_batch=4,
    interval_s=60.0,  # no timed flush unless a test asks for one
    max_queue=10,
    max_retries=3,
    backoff_initial_s=0.001,
    backoff_max_s=0.002,
    max_retry_after_s=0.05,
    request_timeout_s=1.0,
)


class FakePlugin:
    """Records batches; answers with scripted results (then OK)."""

    def __init__(self, results: Sequence[SendResult] = (), gate: threading.Event | None = None):
        self.results = deque(results)
        self.batches: list[list[str]] = []
        self.attempts = 0
        self.timeouts: list[float] = []
        self.gate = gate
        self.closed = False

    def encode(self, records: Sequence[Record]) -> Encoded:
        ids = [r.span_id for r in records if isinstance(r, PairRecord)]
        return Encoded(",".join(ids).encode(), len(ids))

    def send(self, batch: Encoded, timeout_s: float) -> SendResult:
        if self.gate is not None:
            self.gate.wait(5)
        self.attempts += 1
        self.timeouts.append(timeout_s)
        result = self.results.popleft() if self.results else SendResult(Verdict.OK)
        if result.verdict is Verdict.OK:
            self.batches.append(batch.payload.decode().split(","))
        return result

    def close(self) -> None:
        self.closed = True


async def eventually(check: object, within_s: float = 5.0) -> None:
    assert callable(check)
    end = asyncio.get_running_loop().time() + within_s
    while not check():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def sink_with(plugin: FakePlugin, policy: BatchPolicy = FAST) -> BatchingSink:
    return BatchingSink("fake", plugin, policy, rng=random.Random(1))


async def test_full_batch_is_sent_without_waiting_for_the_interval() -> None:
    plugin = FakePlugin()
    sink = sink_with(plugin)
    await sink.start()
    records = [pair() for _ in range(4)]
    for record in records:
        sink.submit(record)
    await eventually(lambda: plugin.batches)
    assert plugin.batches == [[r.span_id for r in records]]
    assert sink.health().sent == 4
    await sink.shutdown(1.0)
    assert plugin.closed


async def test_interval_flushes_a_partial_batch() -> None:
    plugin = FakePlugin()
    sink = sink_with(plugin, BatchPolicy(max_batch=100, interval_s=0.02))
    await sink.start()
    record = pair()
    sink.submit(record)
    await eventually(lambda: plugin.batches)
    assert plugin.batches == [[record.span_id]]
    await sink.shutdown(1.0)


async def test_queue_drops_oldest_and_counts() -> None:
    gate = threading.Event()  # the plugin blocks: nothing leaves the queue
    plugin = FakePlugin(gate=gate)
    sink = sink_with(plugin, BatchPolicy(max_batch=100, interval_s=60.0, max_queue=3))
    records = [pair() for _ in range(5)]
    for record in records:
        sink.submit(record)  # not started yet: everything stays queued
    health = sink.health()
    assert (health.queued, health.dropped) == (3, 2)
    await sink.start()
    gate.set()
    assert await sink.flush(5.0)
    assert plugin.batches == [[r.span_id for r in records[2:]]]  # the two oldest went
    await sink.shutdown(1.0)


async def test_retry_then_success_honours_retry_after() -> None:
    plugin = FakePlugin(
        [
            SendResult(Verdict.RETRY, status=503, error="busy"),
            SendResult(Verdict.RETRY, status=429, error="slow down", retry_after_s=0.01),
        ]
    )
    sink = sink_with(plugin)
    await sink.start()
    for _ in range(4):
        sink.submit(pair())
    # The plugin records the batch before the sink's thread counts it and marks the
    # export healthy again: wait for the sink, not the plugin.
    await eventually(lambda: sink.health().sent == 4 and sink.health().healthy)
    assert plugin.attempts == 3
    health = sink.health()
    assert (health.sent, health.failed, health.healthy) == (4, 0, True)
    await sink.shutdown(1.0)


async def test_gives_up_after_max_retries(caplog: pytest.LogCaptureFixture) -> None:
    plugin = FakePlugin([SendResult(Verdict.RETRY, status=503, error="down")] * 10)
    sink = sink_with(plugin)
    await sink.start()
    for _ in range(4):
        sink.submit(pair())
    await eventually(lambda: sink.health().failed == 4)
    assert plugin.attempts == FAST.max_retries + 1
    health = sink.health()
    assert not health.healthy
    assert health.last_error is not None and "gave up after 3 retries" in health.last_error
    await sink.shutdown(1.0)


async def test_reject_is_not_retried_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reject = SendResult(Verdict.REJECT, status=401, error="HTTP 401 (check credentials)")
    plugin = FakePlugin([reject, reject])
    sink = sink_with(plugin)
    await sink.start()
    with caplog.at_level(logging.ERROR, logger="socketio_trace_proxy.exporters.batching"):
        for _ in range(8):
            sink.submit(pair())
        await eventually(lambda: sink.health().failed == 8)
    assert plugin.attempts == 2  # two batches, one attempt each
    errors = [r for r in caplog.records if "401" in r.getMessage()]
    assert len(errors) == 1
    assert "not retried" in errors[0].getMessage()
    await sink.shutdown(1.0)


async def test_partial_rejection_counts_failed_but_stays_healthy() -> None:
    plugin = FakePlugin([SendResult(Verdict.OK, rejected=1, error="1 too old", key="partial")])
    sink = sink_with(plugin)
    await sink.start()
    for _ in range(4):
        sink.submit(pair())
    await eventually(lambda: sink.health().sent == 3)
    health = sink.health()
    assert (health.failed, health.healthy, health.last_error) == (1, True, "1 too old")
    await sink.shutdown(1.0)


async def test_shutdown_flushes_what_is_queued() -> None:
    plugin = FakePlugin()
    sink = sink_with(plugin, BatchPolicy(max_batch=100, interval_s=60.0))
    await sink.start()
    records = [pair() for _ in range(3)]
    for record in records:
        sink.submit(record)
    await sink.shutdown(2.0)
    assert plugin.batches == [[r.span_id for r in records]]
    assert sink.health().sent == 3
    sink.submit(pair())  # after shutdown: counted, not queued
    health = sink.health()
    assert (health.dropped, health.queued) == (1, 0)


async def test_shutdown_deadline_bounds_retries_and_counts_the_rest() -> None:
    plugin = FakePlugin([SendResult(Verdict.RETRY, status=503, error="down")] * 100)
    policy = BatchPolicy(
        max_batch=2, interval_s=60.0, max_retries=100, backoff_initial_s=0.02, backoff_max_s=0.02
    )
    sink = sink_with(plugin, policy)
    await sink.start()
    for _ in range(6):
        sink.submit(pair())
    await sink.shutdown(0.2)
    health = sink.health()
    # every record is accounted for: failed (tried) or dropped (never tried), none sent
    assert health.sent == 0
    assert health.failed + health.dropped == 6
    assert health.failed >= 2
    assert all(t <= 1.0 for t in plugin.timeouts)


async def test_submit_never_raises_and_counts_filter_errors() -> None:
    def broken(record: Record) -> bool:
        raise RuntimeError("bug")

    sink = BatchingSink("fake", FakePlugin(), FAST, accepts=broken)
    sink.submit(pair())
    assert sink.health().dropped == 1


async def test_filter_skips_silently() -> None:
    plugin = FakePlugin()
    sink = BatchingSink("fake", plugin, FAST, accepts=lambda r: False)
    sink.submit(pair())
    health = sink.health()
    assert (health.queued, health.dropped) == (0, 0)


async def test_encode_failure_counts_failed() -> None:
    class Broken(FakePlugin):
        def encode(self, records: Sequence[Record]) -> Encoded:
            raise ValueError("cannot")

    plugin = Broken()
    sink = sink_with(plugin)
    await sink.start()
    for _ in range(4):
        sink.submit(pair())
    await eventually(lambda: sink.health().failed == 4)
    assert plugin.attempts == 0
    await sink.shutdown(1.0)


async def test_submit_stays_cheap_while_the_backend_stalls() -> None:
    gate = threading.Event()
    plugin = FakePlugin(gate=gate)
    sink = sink_with(plugin, BatchPolicy(max_batch=2, interval_s=60.0, max_queue=5))
    await sink.start()
    for _ in range(50):
        sink.submit(pair())  # returns at once although the worker is stuck in send()
    health = sink.health()
    assert health.queued <= 5 + 2  # queue limit plus the batch in flight
    assert health.dropped >= 50 - 7
    gate.set()
    await sink.shutdown(2.0)


def test_submit_many_is_submit_in_order() -> None:
    """The tracker's deferred fan-out hands a loop tick's records over at once: the queue,
    the filter and the overflow count end up as with one submit per record."""
    policy = BatchPolicy(max_batch=100, interval_s=60.0, max_queue=3)
    records = [pair(request_event=f"e{i}") for i in range(5)]
    keep = lambda r: r.request_event != "e1"  # noqa: E731
    one, many = (BatchingSink("fake", FakePlugin(), policy, accepts=keep) for _ in range(2))
    for r in records:
        one.submit(r)
    many.submit_many(records)
    assert list(many._queue) == list(one._queue) == [records[2], records[3], records[4]]
    assert many.health().dropped == one.health().dropped == 1

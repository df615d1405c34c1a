"""The shared batching core every exporter plugs into (encode -> batch -> send).

:class:`BatchingSink` implements :class:`tracking.sink.RecordSink`.  ``submit`` runs on the
event loop and only appends to a bounded queue (oldest dropped and counted when full); a
dedicated worker thread takes batches (when one is full, or every ``interval_s``), asks the
plugin (:class:`Plugin`) to encode and send them, retries with exponential backoff and jitter
on what the plugin calls transient (429/502/503/504, network errors, a missed deadline),
honouring ``Retry-After``, for up to ``retry_budget_s`` per batch (long enough for a receiver
started beside the proxy to come up: meanwhile new records wait in the bounded queue), gives
up at once on the rest (400, 401, ...: logged once, clearly), and flushes on shutdown within a
deadline.  Nothing of this runs on the event loop, so a stalled backend never delays the
relay.

A failure is visible at once: the first failed send of a streak logs one warning (what
failed, with the URL redacted, and what happens next), :meth:`BatchingSink.health` says
``retrying`` while it lasts, and the recovery is logged.  Health follows the last completed
send and the drop counter (see :class:`ExportState`).

Counters are in records: ``sent`` (accepted by the receiver), ``failed`` (tried and given up
on, including records the receiver refused inside a successful reply), ``dropped`` (never
tried: queue overflow, shutdown deadline, submitted after shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from socketio_trace_proxy.exporters.batch_policy import STALL_MARGIN_S, BatchPolicy, ExportState
from socketio_trace_proxy.exporters.plugin import (
    Encoded,
    LogOnce,
    Plugin,
    SendResult,
    Verdict,
    replace_unencodable,
    utf8,
)
from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.sink import SinkHealth

__all__ = [
    "BatchPolicy",
    "BatchingSink",
    "Encoded",
    "ExportState",
    "LogOnce",
    "Plugin",
    "SendResult",
    "Verdict",
    "replace_unencodable",
    "utf8",
]

log = logging.getLogger(__name__)


class BatchingSink:
    """A :class:`tracking.sink.RecordSink` running ``plugin`` on its own worker thread.

    ``accepts`` filters records on the submitting side (cheap; ``None`` accepts all).
    ``rng`` draws the backoff jitter (injectable for tests).  ``where`` is reported in
    :meth:`health` (see :class:`tracking.sink.SinkHealth`).
    """

    def __init__(
        self,
        name: str,
        plugin: Plugin,
        policy: BatchPolicy,
        *,
        accepts: Callable[[Record], bool] | None = None,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
        where: str | None = None,
    ) -> None:
        self.name = name
        self.where = where
        self._plugin = plugin
        self._policy = policy
        self._accepts = accepts
        self._rng = rng or random.Random()
        self._log = LogOnce(logger or log)
        self._lock = threading.Lock()
        # Bounded by maxlen: appending to a full queue drops the oldest record.  The event
        # loop only appends and the worker only takes from the left, each atomic in CPython,
        # so submit needs no lock.
        self._queue: deque[Record] = deque(maxlen=policy.max_queue)
        self._max_queue = policy.max_queue
        self._max_batch = policy.max_batch
        self._wake = threading.Event()  # batch full, flush requested, or stopping
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = asyncio.Event()  # replaced in start(), bound to the running loop
        self._signal_finished: Callable[[], None] = lambda: None
        self._closed = False  # no more submits accepted
        self._deadline: float | None = None  # monotonic, set by shutdown
        self._flush_requested = 0  # generations: flush() bumps, the worker catches up
        self._flush_done = 0
        # counters; each written by one thread only
        self._sent = 0
        self._failed = 0
        self._dropped_overflow = 0  # event loop thread
        self._dropped_late = 0  # event loop thread: submitted after shutdown / internal error
        self._dropped_shutdown = 0  # worker thread
        self._inflight = 0
        self._abandoned = False  # shutdown gave up on the worker: its outcomes no longer count
        self._last_error: str | None = None
        self._state: str = ExportState.OK  # worker thread writes, anyone reads
        self._dropped_at_send = 0  # the drop count when the last send completed
        self._send_started: float | None = None  # monotonic, while a request is in flight
        self._failing_since: float | None = None  # monotonic start of the failure streak
        self._replaced = 0

    # -- event loop side -------------------------------------------------------------

    def submit(self, record: Record) -> None:
        try:
            if self._closed:
                self._dropped_late += 1
                return
            accepts = self._accepts
            if accepts is not None and not accepts(record):
                return
            queue = self._queue
            if len(queue) == self._max_queue:
                # (over-counts by one if the worker takes a batch in between: rare, and
                # only ever when the queue is full anyway)
                self._dropped_overflow += 1
            queue.append(record)
            if len(queue) >= self._max_batch and not self._wake.is_set():
                self._wake.set()
        except Exception:  # never let observation break forwarding
            self._dropped_late += 1

    def submit_many(self, records: Sequence[Record]) -> None:
        """:meth:`submit` for each of ``records`` in order, in one step (the tracker's
        deferred fan-out hands over a loop tick's records at once)."""
        try:
            if self._closed:
                self._dropped_late += len(records)
                return
            accepts = self._accepts
            batch = records if accepts is None else [r for r in records if accepts(r)]
            queue = self._queue
            over = len(queue) + len(batch) - self._max_queue
            if over > 0:
                self._dropped_overflow += min(over, len(batch))
            queue.extend(batch)
            if len(queue) >= self._max_batch and not self._wake.is_set():
                self._wake.set()
        except Exception:  # never let observation break forwarding
            self._dropped_late += len(records)

    async def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        self._finished = finished

        def signal_finished() -> None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(finished.set)

        self._signal_finished = signal_finished
        self._thread = threading.Thread(target=self._run, name=f"exporter-{self.name}", daemon=True)
        self._thread.start()

    async def flush(self, timeout_s: float) -> bool:
        """Send what is queued now (not part of RecordSink); True when all of it was handled."""
        self._flush_requested += 1
        wanted = self._flush_requested
        self._wake.set()
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self._flush_done >= wanted:
                return True
            if self._thread is None or not self._thread.is_alive():
                return False
            await asyncio.sleep(0.01)
        return False

    async def shutdown(self, deadline_s: float) -> None:
        self._closed = True
        self._deadline = time.monotonic() + max(deadline_s, 0.0)
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None:  # never started: what is queued cannot be sent
            with self._lock:
                self._dropped_shutdown += len(self._queue)
                self._queue.clear()
            self._close_plugin()
            return
        # The worker bounds its own requests by the deadline; allow it a moment past it, less
        # than the moment the tracker allows this call (Tracker.stop: deadline + 0.5 s), so the
        # accounting below always runs before anyone cancels this coroutine.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), max(deadline_s, 0.0) + 0.2)
        if thread.is_alive():
            # a request is still in flight: stop counting its outcome and account for it and
            # everything behind it now, as dropped at shutdown
            with self._lock:
                self._abandoned = True
                left = len(self._queue) + self._inflight
                self._queue.clear()
                self._dropped_shutdown += left
                self._inflight = 0
            self._log.error(
                "shutdown",
                f"{self.name}: still sending at the shutdown deadline; {left} records dropped",
            )

    def _dropped(self) -> int:
        return self._dropped_overflow + self._dropped_late + self._dropped_shutdown

    def state(self) -> str:
        """The :class:`ExportState` now (from any thread)."""
        started = self._send_started
        if started is not None and (
            time.monotonic() - started > self._policy.request_timeout_s + STALL_MARGIN_S
        ):
            return ExportState.STALLED
        state = self._state
        if state == ExportState.OK and self._dropped() > self._dropped_at_send:
            return ExportState.DROPPING
        return state

    def health(self) -> SinkHealth:
        with self._lock:
            queued = len(self._queue)
        state = self.state()
        return SinkHealth(
            name=self.name,
            healthy=state == ExportState.OK,
            sent=self._sent,
            failed=self._failed,
            dropped=self._dropped(),
            queued=queued + self._inflight,
            last_error=self._last_error,
            state=state,
            text_replaced=self._replaced,
            where=self.where,
        )

    # -- worker thread ---------------------------------------------------------------

    def _take(self) -> list[Record]:
        with self._lock:
            queue = self._queue
            count = min(len(queue), self._max_batch)
            batch = [queue.popleft() for _ in range(count)]
            self._inflight = count
        return batch

    def _queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def _run(self) -> None:
        interval = self._policy.interval_s
        next_flush = time.monotonic() + interval
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                due = now >= next_flush or self._flush_requested > self._flush_done
                if due:
                    generation = self._flush_requested
                    # send everything queued now, in batches; records arriving meanwhile wait
                    rounds = -(-self._queued() // self._max_batch)
                    for _ in range(rounds):
                        if self._stop.is_set():
                            break
                        self._deliver(self._take())
                    self._flush_done = generation
                    next_flush = time.monotonic() + interval
                    continue
                if self._queued() >= self._max_batch:
                    self._deliver(self._take())
                    continue
                self._wake.wait(next_flush - now)
                self._wake.clear()
            self._drain()
        except Exception as exc:  # a bug here must not kill the process, only this exporter
            log.exception("%s: exporter worker crashed", self.name)
            self._last_error = f"worker crashed: {exc!r}"
            self._state = ExportState.FAILING
        finally:
            self._inflight = 0
            self._close_plugin()
            self._signal_finished()

    def _drain(self) -> None:
        deadline = self._deadline if self._deadline is not None else time.monotonic()
        while self._queued() and time.monotonic() < deadline:
            self._deliver(self._take())
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self._dropped_shutdown += left
            self._log.error(
                "shutdown-drop", f"{self.name}: shutdown deadline reached, {left} records dropped"
            )
        self._flush_done = self._flush_requested

    def _close_plugin(self) -> None:
        try:
            self._plugin.close()
        except Exception:
            log.debug("%s: close failed", self.name, exc_info=True)

    def _backoff(self, attempt: int) -> float:
        policy = self._policy
        base = min(policy.backoff_max_s, policy.backoff_initial_s * (2.0**attempt))
        return base * self._rng.uniform(1 - policy.jitter, 1 + policy.jitter)

    def _fail(self, count: int, result_error: str, key: str) -> None:
        self._failed += count
        self._last_error = result_error
        self._state = ExportState.FAILING
        self._log.error(key, f"{self.name}: {result_error}")

    def _completed(self) -> None:
        """A send got its answer: health restarts from here."""
        self._dropped_at_send = self._dropped()

    def _succeeded(self, count: int) -> None:
        self._sent += count
        self._completed()
        if self._failing_since is not None:
            log.warning(
                "%s: export works again after %.1f s of failures",
                self.name,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        self._state = ExportState.OK
        self._log.reset()

    def _retrying(self, error: str, count: int, delay: float, first_failure: float) -> None:
        """Between two tries of a batch; the first failure of a streak is logged at once."""
        self._state = ExportState.RETRYING
        self._last_error = f"{error}; retrying in {delay:.1f}s"
        if self._failing_since is None:
            self._failing_since = first_failure
            policy = self._policy
            log.warning(
                "%s: %s; retrying these %d records for up to %.0f s (next try in %.1f s); "
                "new records wait in the queue (up to %d, the oldest dropped beyond)",
                self.name,
                error,
                count,
                policy.retry_budget_s,
                delay,
                policy.max_queue,
            )
        else:
            log.debug("%s: %s", self.name, self._last_error)

    def _deliver(self, batch: list[Record]) -> None:
        try:
            if batch:
                self._deliver_batch(batch)
        finally:
            with self._lock:
                self._inflight = 0

    def _deliver_batch(self, batch: list[Record]) -> None:
        try:
            encoded = self._plugin.encode(batch)
        except Exception as exc:
            self._fail(len(batch), f"could not encode {len(batch)} records: {exc!r}", "encode")
            return
        if encoded.replaced:
            self._replaced += encoded.replaced
            self._log.error(
                "encode-replaced",
                f"{self.name}: {encoded.replaced} records held text that cannot be encoded "
                "(lone surrogates); sent with it replaced by U+FFFD",
            )
        if encoded.skipped:
            self._fail(
                encoded.skipped,
                f"skipped {encoded.skipped} records it could not encode: {encoded.skip_error}",
                "encode-skip",
            )
        if encoded.count == 0:
            return
        self._send_with_retries(encoded)

    def _send_once(self, encoded: Encoded, timeout: float) -> SendResult:
        self._send_started = time.monotonic()
        try:
            return self._plugin.send(encoded, timeout)
        except Exception as exc:
            return SendResult(Verdict.REJECT, error=f"send failed: {exc!r}", key="send-bug")
        finally:
            self._send_started = None

    def _send_with_retries(self, encoded: Encoded) -> None:
        policy = self._policy
        attempt = 0
        first_failure: float | None = None
        while True:
            timeout = policy.request_timeout_s
            if self._stop.is_set() and self._deadline is not None:
                timeout = min(timeout, self._deadline - time.monotonic())
                if timeout <= 0:
                    self._fail(encoded.count, "shutdown deadline reached while sending", "deadline")
                    return
            result = self._send_once(encoded, timeout)
            if self._abandoned:
                return
            if result.verdict is Verdict.OK:
                self._succeeded(max(encoded.count - result.rejected, 0))
                if result.rejected:
                    self._fail(
                        result.rejected,
                        result.error or f"receiver rejected {result.rejected} records",
                        result.key or "partial",
                    )
                    self._state = ExportState.OK  # the receiver is up; it refused some records
                return
            error = result.error or f"send failed (HTTP {result.status})"
            key = result.key or f"http-{result.status}"
            if result.status is not None:
                self._completed()  # an answer, if not the one hoped for
            now = time.monotonic()
            if result.verdict is Verdict.REJECT:
                self._failing_since = self._failing_since or now
                self._fail(encoded.count, f"{error}; not retried", key)
                return
            first_failure = now if first_failure is None else first_failure
            if result.retry_after_s is not None:
                delay = min(result.retry_after_s, policy.max_retry_after_s)
            else:
                delay = self._backoff(attempt)
            spent = now - first_failure
            if (
                policy.max_retries is not None and attempt >= policy.max_retries
            ) or spent + delay > policy.retry_budget_s:
                self._failing_since = self._failing_since or first_failure
                self._fail(
                    encoded.count,
                    f"{error}; gave up after {attempt} retries ({spent:.0f} s)",
                    key,
                )
                return
            self._retrying(error, encoded.count, delay, first_failure)
            if not self._sleep(delay):
                self._fail(encoded.count, f"{error}; shutdown deadline reached", "deadline")
                return
            attempt += 1

    def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds; False if shutting down and the deadline comes first."""
        wake_at = time.monotonic() + delay
        if not self._stop.is_set():
            self._stop.wait(delay)  # returns early when shutdown begins
        if self._stop.is_set():
            deadline = self._deadline if self._deadline is not None else time.monotonic()
            if wake_at > deadline:
                return False
            remaining = wake_at - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
        return True

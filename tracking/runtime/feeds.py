"""Live feeds of records: the bounded async subscription and the callback types.

Owns :class:`Subscription` (``async for item in tracker.stream()``), which drops its oldest
items when its consumer falls behind and counts them, and the signatures of the record
callbacks (every record, timeouts, slow replies, errors).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

from socketio_trace_proxy.tracking.records import PairRecord, Record
from socketio_trace_proxy.tracking.views import ActivityItem

_T = TypeVar("_T")

RecordCallback = Callable[[Record], None]
BatchCallback = Callable[[Sequence[Record]], None]
TimeoutCallback = Callable[[PairRecord], None]
SlowCallback = Callable[[PairRecord, float], None]
ErrorCallback = Callable[[PairRecord, str], None]


class Subscription:
    """A bounded live feed of activity: ``async for item in subscription``.

    When the consumer falls behind, the oldest items are dropped and counted.
    """

    def __init__(self, maxlen: int, on_close: Callable[[Subscription], None]) -> None:
        self._queue: deque[ActivityItem] = deque()
        self._maxlen = maxlen
        self._ready = asyncio.Event()
        self._on_close = on_close
        self.dropped = 0
        self.closed = False

    def push(self, item: ActivityItem) -> None:
        if len(self._queue) >= self._maxlen:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(item)
        self._ready.set()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._ready.set()
            self._on_close(self)

    async def get(self) -> ActivityItem | None:
        """The next item, or None once closed and drained."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[ActivityItem]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[ActivityItem]:
        while (item := await self.get()) is not None:
            yield item


def remover(items: list[_T], item: _T) -> Callable[[], None]:
    """A function that takes ``item`` out of ``items`` (once; later calls do nothing)."""

    def remove() -> None:
        with contextlib.suppress(ValueError):
            items.remove(item)

    return remove

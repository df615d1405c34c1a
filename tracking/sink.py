"""The interface the tracker hands records to; exporters implement it.

``submit`` is called on the event loop right after a record is made: it must return at
once, never raise, and never grow without bound (a sink keeps a bounded queue and counts
what it drops).  ``start``/``shutdown`` bracket the sink's own background work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from socketio_trace_proxy.tracking.records import Record


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """``state`` says more than ``healthy`` where the sink knows (the exporters: ``ok``,
    ``retrying``, ``failing``, ``dropping``, ``stalled``); ``text_replaced`` counts records
    sent with text that could not be encoded replaced; ``where`` says where a user finds what
    the sink sent (for OpenObserve: the stream as it stores it, and some of its columns)."""

    name: str
    healthy: bool
    sent: int
    failed: int
    dropped: int
    queued: int
    last_error: str | None
    state: str | None = None
    text_replaced: int = 0
    where: str | None = None


class RecordSink(Protocol):
    name: str

    def submit(self, record: Record) -> None: ...

    async def start(self) -> None: ...

    async def shutdown(self, deadline_s: float) -> None:
        """Flush what is queued, giving up after ``deadline_s`` seconds."""

    def health(self) -> SinkHealth: ...

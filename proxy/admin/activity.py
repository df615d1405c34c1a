"""Reading the tracker's activity ring: all of it, or what came after a cursor, a page at a
time, with the items that left the ring unread counted; and the lifecycle records of given
sessions that are still in it.

The tracker's timeline of a session starts with the session's first packet, so the
handshake (and an upgrade done before any packet) are records of the ring only;
:func:`lifecycles_in_ring` finds them for the waterfall and the closed-session summaries
in one pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Sequence

from socketio_trace_proxy.proxy.admin.source import TrackerSource
from socketio_trace_proxy.tracking.records import LifecycleRecord
from socketio_trace_proxy.tracking.views import ActivityItem

_PAGE = 1000


def activity_pages(
    source: TrackerSource, since_seq: int, page_size: int = _PAGE
) -> Iterator[tuple[list[ActivityItem], int]]:
    """Pages of items with ``seq > since_seq`` in ascending order, each with how many
    sequence numbers before its items were skipped (items that left the ring unread)."""
    cursor = since_seq
    while True:
        page = sorted(source.recent_activity(cursor, page_size), key=_seq)
        page = [i for i in page if i.seq > cursor]
        if not page:
            return
        gaps = 0
        for item in page:
            if item.seq > cursor + 1:
                gaps += item.seq - cursor - 1
            cursor = item.seq
        yield page, gaps
        if len(page) < page_size:
            return


def scan_activity(source: TrackerSource, since_seq: int) -> tuple[list[ActivityItem], int]:
    """Items with ``seq > since_seq`` in ascending order, paging through the ring, and how
    many sequence numbers were skipped (items that left the ring before they were read)."""
    items: list[ActivityItem] = []
    gaps = 0
    for page, skipped in activity_pages(source, since_seq):
        items.extend(page)
        gaps += skipped
    return items, gaps


def _seq(item: ActivityItem) -> int:
    return item.seq


async def lifecycles_in_ring(
    source: TrackerSource, session_ids: Collection[str]
) -> dict[str, list[LifecycleRecord]]:
    """The lifecycle records of these sessions still in the ring, oldest first.  A full
    ring is many milliseconds of work, so this yields to the event loop after every page."""
    found: dict[str, list[LifecycleRecord]] = {}
    if not session_ids:
        return found
    for page, _ in activity_pages(source, 0):
        for item in page:
            record = item.record
            if type(record) is LifecycleRecord and record.session.session_id in session_ids:
                found.setdefault(record.session.session_id, []).append(record)
        await asyncio.sleep(0)
    return found


def merged_timeline(items: Sequence[object], lifecycles: Sequence[LifecycleRecord]) -> list[object]:
    """A session timeline's items plus the lifecycle records it lacks, in time order."""
    have = {r.span_id for r in items if isinstance(r, LifecycleRecord)}
    missing = [r for r in lifecycles if r.span_id not in have]
    if not missing:
        return list(items)
    return sorted([*items, *missing], key=_wall)


def _wall(item: object) -> float:
    wall = getattr(item, "wall", None)
    if not isinstance(wall, int | float):
        wall = getattr(item, "start_wall", 0.0)
    return float(wall) if isinstance(wall, int | float) else 0.0

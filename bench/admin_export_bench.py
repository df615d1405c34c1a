"""Admin export benchmark (issue 17 item 13): what /api/export costs the event loop it shares
with the relay.

Fills an activity ring with captured pairs (1 KiB payloads each way, ~28 MB as NDJSON, the
size of the report), serves the real admin app on loopback and downloads exports, some at
once, while a task that yields with ``sleep(0)`` records the longest stretch of CPU time
between two of its turns: the longest stall any other connection on that loop would wait
through.  CPU time (``time.thread_time``), so a shared machine inflates it less than wall
time; the heap that exists before the downloads is frozen out of the garbage collector.
Also printed: CPU seconds per export and the bytes served.

Usage: ``.venv/bin/python bench/admin_export_bench.py [--records 10000] [--concurrent 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from socketio_trace_proxy.config.admin import AdminSettings  # noqa: E402
from socketio_trace_proxy.proxy.admin import RelayOnlySource, build_admin_app  # noqa: E402
from socketio_trace_proxy.proxy.admin.source import RelayCounters  # noqa: E402
from socketio_trace_proxy.tracking.records import (  # noqa: E402
    Outcome,
    PairKind,
    PairRecord,
    Record,
    SessionRef,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport  # noqa: E402
from socketio_trace_proxy.tracking.views import ActivityItem  # noqa: E402

PAYLOAD = '["terminal_output",{"data":"' + "x" * 1000 + '"}]'


class RingSource(RelayOnlySource):
    """An activity ring of records and nothing else (the admin app's view of a tracker)."""

    tracking_enabled = True

    def __init__(self, records: Sequence[Record]) -> None:
        super().__init__(dict)
        self._items = [ActivityItem(i + 1, r) for i, r in enumerate(records)]

    def recent_activity(self, since_seq: int, limit: int) -> Sequence[ActivityItem]:
        return self._items[since_seq : since_seq + limit]

    def relay_counters(self) -> RelayCounters:
        return {}


def records(n: int) -> list[Record]:
    ref = SessionRef("s" * 20, "0" * 32, "0" * 16)
    template = PairRecord(
        "1" * 32, "2" * 16, ref, "/", PairKind.ACK, "terminal_input", "terminal_input -> ack",
        Direction.CLIENT_TO_SERVER, "terminal_input", None, 7, None, Outcome.OK, None, False,
        time.time(), 0.002, None, 0, Transport.WEBSOCKET, Transport.WEBSOCKET, 1040, 1040,
        PAYLOAD, PAYLOAD,
    )  # fmt: skip
    return [replace(template, span_id=f"{i:016x}") for i in range(n)]


async def longest_stall(work: Callable[[], asyncio.Future[list[int]]]) -> tuple[float, list[int]]:
    longest = 0.0
    done = False

    async def watch() -> None:
        nonlocal longest
        last = time.thread_time()
        while not done:
            await asyncio.sleep(0)
            now = time.thread_time()
            longest = max(longest, now - last)
            last = now

    watcher = asyncio.create_task(watch())
    result = await work()
    done = True
    await watcher
    return longest, result


async def main(n: int, concurrent: int, fmt: str) -> None:
    source = RingSource(records(n))
    app = build_admin_app(
        source,
        AdminSettings(max_concurrent_exports=concurrent),
        lambda: asyncio.sleep(0, True),
    )
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()

    async def download() -> int:
        resp = await client.get(f"/api/export?format={fmt}")
        return sum([len(c) async for c in resp.content.iter_chunked(1 << 16)])

    try:
        gc.collect()
        gc.freeze()
        cpu = time.thread_time()
        stall, sizes = await longest_stall(
            lambda: asyncio.gather(*(download() for _ in range(concurrent)))
        )
        cpu = time.thread_time() - cpu
    finally:
        gc.unfreeze()
        await client.close()
    print(f"{n} records, {concurrent} concurrent {fmt} exports of {sizes[0] / 1e6:.1f} MB each")
    print(f"  CPU per export (server and client in this thread): {cpu / concurrent:.3f} s")
    print(f"  longest event-loop stall: {stall * 1000:.1f} ms of CPU")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--records", type=int, default=10_000)
    p.add_argument("--concurrent", type=int, default=2)
    p.add_argument("--format", default="ndjson", choices=("json", "csv", "ndjson"))
    a = p.parse_args()
    asyncio.run(main(a.records, a.concurrent, a.format))

"""/api/export streams in chunks that yield to the event loop, and runs at most
``max_concurrent_exports`` at a time (issue 17, item 13)."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
import time
from dataclasses import replace
from typing import Any

import pytest

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.export import ExportLoss, Exports
from socketio_trace_proxy.proxy.admin.serialize import ActivityFilter
from socketio_trace_proxy.tracking.record_json import record_builtins
from tests.proxy.admin.conftest import MakeClient
from tests.proxy.admin.fakes import FakeSource, pair, pending_view

PAYLOAD = '["terminal_output",' + json.dumps({"data": "x" * 1000}) + "]"


def big_source(records: int = 10_000) -> FakeSource:
    """The activity ring full of captured pairs: an export of ~28 MB, as in the report."""
    source = FakeSource(ring_size=records)
    template = pair("s0", "terminal_input")
    for i in range(records):
        source.emit(
            replace(
                template,
                span_id=f"{i:016x}",
                session=replace(template.session, session_id=f"s{i % 50}"),
                request_payload=PAYLOAD,
                response_payload=PAYLOAD,
            )
        )
    source.pending = [pending_view(f"s{i}", f"{i:016x}", started=100.0 + i) for i in range(2_000)]
    return source


class LongestStall:
    """The most CPU time the event loop spent between two turns of this monitor.

    A task that yields with ``sleep(0)`` runs once per loop iteration; the CPU time of this
    thread between two of its turns is what the other callbacks of that iteration took, the
    stall every other connection waited through.  CPU time, not wall time, so that a busy
    machine descheduling the process does not look like a stall.  The objects that exist
    when it starts (the test's records, pytest's own) are frozen out of the garbage
    collector meanwhile: a full collection of the test process's heap is not the handler's
    stall (what the handlers allocate is still collected).
    """

    def __init__(self) -> None:
        self.longest_s = 0.0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LongestStall:
        gc.collect()
        gc.freeze()
        self._task = asyncio.create_task(self._watch())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        assert self._task is not None
        await self._task
        gc.unfreeze()

    async def _watch(self) -> None:
        last = time.thread_time()
        while not self._stop:
            await asyncio.sleep(0)
            now = time.thread_time()
            self.longest_s = max(self.longest_s, now - last)
            last = now


async def read_all(resp: Any) -> bytes:
    assert resp.status == 200, await resp.text()
    return bytes(await resp.read())


async def read_chunks(resp: Any) -> list[bytes]:
    """The body as it arrives (joining 28 MB at the end would stall the test's own loop)."""
    assert resp.status == 200, await resp.text()
    return [chunk async for chunk in resp.content.iter_chunked(1 << 16)]


async def test_exports_do_not_stall_the_event_loop(make_client: MakeClient) -> None:
    source = big_source()
    client = await make_client(source, AdminSettings(max_concurrent_exports=3))

    async def fetch(path: str) -> list[bytes]:
        return await read_chunks(await client.get(path))

    async with LongestStall() as stall:
        bodies = await asyncio.gather(
            *(fetch(f"/api/export?format={fmt}") for fmt in ("json", "ndjson", "csv")),
            fetch("/api/events?limit=5000"),
        )
    json_body, ndjson_body, csv_body, events_body = (b"".join(b) for b in bodies)
    assert len(ndjson_body) > 20_000_000  # a real, large export ...
    exported = json.loads(json_body)
    assert len(exported["items"]) == 10_000 and len(exported["pending"]) == 2_000
    assert exported["lost"] == 0
    assert len(ndjson_body.splitlines()) == 10_000
    assert len(list(csv.reader(io.StringIO(csv_body.decode())))) == 10_001
    assert len(json.loads(events_body)["items"]) == 5_000
    # ... encoded in short stretches: built whole, one export held the loop ~0.45 s here.
    assert stall.longest_s < 0.1, f"the event loop stalled {stall.longest_s:.3f} s of CPU"


async def test_concurrent_exports_are_capped_and_refusals_counted(make_client: MakeClient) -> None:
    source = big_source()
    client = await make_client(source, AdminSettings(max_concurrent_exports=1))
    first = await client.get("/api/export?format=ndjson")  # streaming; the body is not read yet
    assert first.status == 200
    assert first.headers["Transfer-Encoding"] == "chunked"

    async def active() -> int:
        body = await (await client.get("/api/metrics")).json()
        return int(body["admin"]["exports_active"])

    for _ in range(200):  # bounded: the first export fills the socket and waits for the reader
        if await active() == 1:
            break
        await asyncio.sleep(0.01)
    refused = await client.get("/api/export?format=csv")
    assert refused.status == 429
    assert refused.headers["Retry-After"]
    assert "max_concurrent_exports" in (await refused.json())["error"]

    lines = (await read_all(first)).splitlines()
    assert len(lines) == 10_000
    assert json.loads(lines[-1]) == record_builtins(source.activity[-1].record)
    assert await active() == 0
    again = await client.get("/api/export?format=csv")
    assert again.status == 200
    await again.read()
    metrics = await (await client.get("/metrics")).text()
    assert "socketio_proxy_admin_exports_refused_total 1.0" in metrics


async def test_items_that_leave_the_ring_during_an_export_are_counted() -> None:
    source = FakeSource(ring_size=1_500)
    for i in range(1_500):
        source.emit(pair("s", "terminal_input", span=f"{i:016x}"))
    exports = Exports(source, AdminSettings(), time.time)
    lost = ExportLoss()
    records = exports.records(ActivityFilter(), lost)
    seen = [i.seq for i in await anext(records)]  # the first page (1..1000) is read
    for i in range(1_300):  # meanwhile the ring turns over: 1001..1300 leave it unread
        source.emit(pair("s", "terminal_input", span=f"{0xF0000 + i:016x}"))
    seen += [i.seq for part in [p async for p in records] for i in part]
    assert seen == [*range(1, 1_001), *range(1_301, 2_801)]
    assert lost.count == 300


async def test_a_downloader_that_leaves_frees_its_slot_quietly(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(big_source(), AdminSettings(max_concurrent_exports=1))
    resp = await client.get("/api/export?format=ndjson")
    await resp.content.read(1 << 16)
    resp.close()  # the browser tab closes mid-download

    async def active() -> int:
        body = await (await client.get("/api/metrics")).json()
        return int(body["admin"]["exports_active"])

    for _ in range(500):  # bounded: the export notices at its next write
        if await active() == 0:
            break
        await asyncio.sleep(0.01)
    assert await active() == 0
    again = await client.get("/api/export?format=csv")
    assert again.status == 200
    await again.read()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text

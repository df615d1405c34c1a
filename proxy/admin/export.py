"""``/api/export``: the activity ring (and for JSON the metrics and pending requests) as a
download, streamed.

An export can be tens of megabytes and runs on the relay's event loop, so it is never built
whole: the ring is read a page at a time, encoded :data:`~proxy.admin.responses.ENCODE_CHUNK`
records at a time and written as a chunked response, yielding to the loop between chunks
(memory per export: one page and the socket's write buffer).  At most
``max_concurrent_exports`` run at once; more are refused with 429 and counted.  Items that
leave the ring while an export reads it are missing from it; JSON says how many (``lost``).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Callable, Iterable

from aiohttp import web

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.activity import activity_pages
from socketio_trace_proxy.proxy.admin.responses import (
    activity_filter,
    bad_request,
    chunks,
    dumps,
    json_response,
    tracking_off,
    write_chunks,
)
from socketio_trace_proxy.proxy.admin.serialize import (
    CSV_COLUMNS,
    ActivityFilter,
    csv_row,
    item_text,
    to_jsonable,
)
from socketio_trace_proxy.proxy.admin.source import MonitorSource
from socketio_trace_proxy.tracking.record_json import record_json
from socketio_trace_proxy.tracking.views import ActivityItem

_CONTENT_TYPES = {"json": "application/json", "csv": "text/csv", "ndjson": "application/x-ndjson"}


class Exports:
    def __init__(
        self, source: MonitorSource, settings: AdminSettings, clock: Callable[[], float]
    ) -> None:
        self._source = source
        self._clock = clock
        self._max = settings.max_concurrent_exports
        self.active = 0
        self.refused = 0

    def counters(self) -> dict[str, int]:
        return {"exports_active": self.active, "exports_refused": self.refused}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._source.tracking_enabled:
            return tracking_off()
        fmt = request.query.get("format", "json")
        if fmt not in _CONTENT_TYPES:
            raise bad_request("format must be json, csv or ndjson")
        flt = activity_filter(request)
        if self.active >= self._max:
            self.refused += 1
            return json_response(
                {"error": f"{self.active} exports are running (max_concurrent_exports); retry"},
                status=429,
                headers={"Retry-After": "2"},
            )
        self.active += 1
        try:
            return await self._stream(request, fmt, flt)
        finally:
            self.active -= 1

    async def _stream(
        self, request: web.Request, fmt: str, flt: ActivityFilter
    ) -> web.StreamResponse:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        response = web.StreamResponse(
            headers={
                "Content-Type": f"{_CONTENT_TYPES[fmt]}; charset=utf-8",
                "Content-Disposition": f'attachment; filename="socketio-trace-{stamp}.{fmt}"',
                "Cache-Control": "no-store",
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        lost = ExportLoss()
        records = self.records(flt, lost)
        if fmt == "ndjson":
            await write_chunks(response, records, _ndjson_lines)
        elif fmt == "csv":
            await response.write(_csv_text([CSV_COLUMNS]).encode())
            await write_chunks(response, records, lambda part: _csv_text(map(csv_row, part)))
        else:
            await self._json(response, flt, records, lost)
        await response.write_eof()
        return response

    async def _json(
        self,
        response: web.StreamResponse,
        flt: ActivityFilter,
        records: AsyncIterator[list[ActivityItem]],
        lost: ExportLoss,
    ) -> None:
        head = (
            f'{{"exported_at":{dumps(self._clock())},"filter":{dumps(to_jsonable(flt))},'
            f'"metrics":{dumps(to_jsonable(self._source.get_metrics()))},"pending":['
        )
        await response.write(head.encode())
        pending = chunks(self._source.get_pending_requests())
        await write_chunks(response, pending, lambda part: ",".join(map(_json_of, part)), ",")
        await response.write(b'],"items":[')
        await write_chunks(response, records, lambda part: ",".join(map(item_text, part)), ",")
        await response.write(f'],"lost":{lost.count}}}'.encode())

    async def records(
        self, flt: ActivityFilter, lost: ExportLoss
    ) -> AsyncIterator[list[ActivityItem]]:
        """The ring's matching items, oldest first, a chunk at a time (yielding before each);
        items that leave the ring before they are read are counted in ``lost``."""
        first = True
        for page, skipped in activity_pages(self._source, 0):
            if not first:
                lost.count += skipped  # rotated out while this export read the ring
            first = False
            matching = [i for i in page if flt.matches(i.record)] if flt.active else page
            async for part in chunks(matching):
                yield part


class ExportLoss:
    """How many items left the ring while an export was reading it."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _ndjson_lines(part: list[ActivityItem]) -> bytes:
    """The records as NDJSON: the same lines the NDJSON file exporter writes."""
    return b"".join([record_json(item.record) + b"\n" for item in part])


def _json_of(value: object) -> str:
    return dumps(to_jsonable(value))


def _csv_text(rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()

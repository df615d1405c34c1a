"""Admin API of the recorder: status, start, stop, and download of the record file.

``GET /api/record`` (status and counters), ``POST /api/record/start``, ``POST
/api/record/stop``, ``GET /api/record/file`` (every part that exists, oldest first, as one
JSON Lines download: concatenated parts are a valid recording).  The file path is the
configured one: the API never lets a caller choose where the proxy writes.  Guarded like
every ``/api`` route by the admin listener's token middleware.  Without a recorder (tracking
off and ``record.path`` unset: the relay then runs with no observer) the same routes answer
503 saying so.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from socketio_trace_proxy.tracking.recording.recorder import Recorder, recorder_status_json

_CHUNK = 256 * 1024


def _status(recorder: Recorder, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(recorder_status_json(recorder.status()), separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


RECORDING_UNAVAILABLE = (
    "recording is not available: tracking is off (tracking.enabled: false, or "
    "SOCKET_TRACKING_ENABLED=0) and record.path is unset, so the relay runs with no observer; "
    "set record.path (or --record FILE) to record, or turn tracking on to record on demand"
)


def unavailable_record_routes() -> list[web.RouteDef]:
    async def unavailable(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"error": RECORDING_UNAVAILABLE}, status=503, headers={"Cache-Control": "no-store"}
        )

    return [
        web.get("/api/record", unavailable),
        web.post("/api/record/start", unavailable),
        web.post("/api/record/stop", unavailable),
        web.get("/api/record/file", unavailable),
    ]


def record_routes(recorder: Recorder) -> list[web.RouteDef]:
    async def status(request: web.Request) -> web.StreamResponse:
        return _status(recorder)

    async def start(request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.to_thread(recorder.start)
        except OSError as exc:
            return web.json_response(
                {"error": f"cannot record to {recorder.path}: {exc.strerror or exc}"}, status=500
            )
        return _status(recorder)

    async def stop(request: web.Request) -> web.StreamResponse:
        await asyncio.to_thread(recorder.stop)
        return _status(recorder)

    async def download(request: web.Request) -> web.StreamResponse:
        await asyncio.to_thread(recorder.flush)
        parts = recorder.files()
        if not parts:
            return web.json_response({"error": "nothing recorded yet"}, status=404)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-ndjson",
                "Content-Disposition": f'attachment; filename="socketio-record-{stamp}.jsonl"',
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        for part in parts:
            try:
                f = await asyncio.to_thread(part.open, "rb")
            except OSError:
                continue  # rotated away meanwhile
            try:
                while chunk := await asyncio.to_thread(f.read, _CHUNK):
                    await response.write(chunk)
            finally:
                f.close()
        await response.write_eof()
        return response

    return [
        web.get("/api/record", status),
        web.post("/api/record/start", start),
        web.post("/api/record/stop", stop),
        web.get("/api/record/file", download),
    ]

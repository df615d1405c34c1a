"""The JSON API under ``/api``: info, metrics, pending requests, sessions (open and
recently closed), a session's timeline, the activity log and the live stream.

Every endpoint that needs the tracker answers 503 with an explanation when tracking is off;
``/api/info`` and ``/api/metrics`` (the relay's and the admin listener's counters) and the
live stream keep working.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from socketio_trace_proxy.config.about import version
from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.activity import (
    lifecycles_in_ring,
    merged_timeline,
    scan_activity,
)
from socketio_trace_proxy.proxy.admin.closed import ClosedSessions
from socketio_trace_proxy.proxy.admin.info import DashboardInfo
from socketio_trace_proxy.proxy.admin.live import LiveHub
from socketio_trace_proxy.proxy.admin.responses import (
    Handler,
    activity_filter,
    choice_param,
    chunks,
    dumps,
    int_param,
    json_response,
    stream_json,
    tracking_off,
)
from socketio_trace_proxy.proxy.admin.serialize import (
    JSON,
    filter_items,
    item_text,
    session_query,
    to_jsonable,
)
from socketio_trace_proxy.proxy.admin.source import MonitorSource
from socketio_trace_proxy.tracking.compiled import compiled_core
from socketio_trace_proxy.tracking.record_json import schema_text
from socketio_trace_proxy.tracking.views import SessionView

SESSION_STATES = ("open", "closed", "all")


class TrackerApi:
    def __init__(
        self,
        source: MonitorSource,
        settings: AdminSettings,
        *,
        hub: LiveHub,
        info: DashboardInfo,
        counters: Callable[[], Mapping[str, int]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._settings = settings
        self._hub = hub
        self._closed: ClosedSessions = hub.closed
        self._info = info
        self._counters = counters
        self._clock = clock
        self._limit_max = settings.api_max_items

    def routes(self) -> list[web.RouteDef]:
        tracked = self._needs_tracking
        return [
            web.get("/api/info", self.info),
            web.get("/api/metrics", self.metrics),
            web.get("/api/pending", tracked(self.pending)),
            web.get("/api/sessions", tracked(self.sessions)),
            web.get("/api/sessions/{sid}", tracked(self.session)),
            web.get("/api/events", tracked(self.events)),
            web.get("/api/stream", self.stream),
            web.get("/api/schema/record", record_schema),
        ]

    def _needs_tracking(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self._source.tracking_enabled:
                return tracking_off()
            return await handler(request)

        return guarded

    async def info(self, request: web.Request) -> web.StreamResponse:
        link = self._info.trace_link
        return json_response(
            {
                "version": version(),
                "compiled_core": compiled_core(),
                "tracking": self._source.tracking_enabled,
                "auth": self._settings.token is not None,
                "capture": self._info.capture,
                "trace_link": to_jsonable(link) if link is not None else None,
                "closed_sessions_kept": self._settings.closed_sessions,
                "api_max_items": self._limit_max,
            }
        )

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        tracking = self._source.tracking_enabled
        return json_response(
            {
                "t": self._clock(),
                "tracking": tracking,
                "metrics": to_jsonable(self._source.get_metrics()) if tracking else None,
                "exporters": to_jsonable(self._source.sink_health()),
                "relay": to_jsonable(self._source.relay_counters()),
                "admin": dict(self._counters()),
            }
        )

    async def pending(self, request: web.Request) -> web.StreamResponse:
        limit = int_param(request, "limit", min(500, self._limit_max), 1, self._limit_max)
        session = session_query(request.query.get("session"))
        pending = [
            p
            for p in self._source.get_pending_requests()
            if session is None or p.session_id.lower().startswith(session)
        ]
        oldest = heapq.nsmallest(limit, pending, key=lambda p: p.started_wall)
        return json_response(
            {"t": self._clock(), "total": len(pending), "items": to_jsonable(oldest)}
        )

    async def sessions(self, request: web.Request) -> web.StreamResponse:
        """``state`` open (default), closed or all (open first); ``q`` matches a part of the
        id (any case) or of the address; newest first."""
        limit = int_param(request, "limit", min(100, self._limit_max), 1, self._limit_max)
        offset = int_param(request, "offset", 0, 0, 10**9)
        state = choice_param(request, "state", "open", SESSION_STATES)
        query = session_query(request.query.get("q"))
        transport = (request.query.get("transport") or "").strip() or None
        found: list[JSON] = []
        if state != "closed":
            views = [s for s in self._source.get_sessions() if _matches(s, query, transport)]
            views.sort(key=lambda s: s.opened_wall, reverse=True)
            found.extend(_open_json(v) for v in views)
        if state != "open":
            await self._closed.settle(self._source)
            closed = self._closed.newest_first()
            found.extend(c.json() for c in closed if c.matches(query, transport))
        return json_response(
            {
                "t": self._clock(),
                "state": state,
                "total": len(found),
                "offset": offset,
                "limit": limit,
                "items": found[offset : offset + limit],
            }
        )

    async def session(self, request: web.Request) -> web.StreamResponse:
        """A session (open or recently closed) and its timeline, completed with the
        lifecycle records the tracker's timeline lacks (still in the activity ring)."""
        sid = request.match_info["sid"]
        try:
            timeline = self._source.get_session_timeline(sid)
        except KeyError:
            timeline = None
        ring = (await lifecycles_in_ring(self._source, {sid})).get(sid, [])
        items = merged_timeline(getattr(timeline, "items", None) or (), ring)
        view = await self._session_json(sid, getattr(timeline, "session", None))
        if timeline is None and view is None and not items:
            return json_response({"error": f"no session {sid!r}"}, status=404)
        timeline_json = {"session_id": sid, "session": None} | (to_jsonable(timeline) or {})
        timeline_json["items"] = to_jsonable(items)
        return json_response({"t": self._clock(), "session": view, "timeline": timeline_json})

    async def _session_json(self, sid: str, live: object) -> JSON:
        """The session's view while open (the tracker's timeline carries it), else its
        closed-session entry (never a scan of every open session)."""
        if isinstance(live, SessionView):
            return _open_json(live)
        await self._closed.settle(self._source)
        closed = self._closed.get(sid)
        return closed.json() if closed is not None else None

    async def events(self, request: web.Request) -> web.StreamResponse:
        flt = activity_filter(request)
        limit = int_param(request, "limit", min(200, self._limit_max), 1, self._limit_max)
        since_raw = request.query.get("since")
        since = int_param(request, "since", 0, 0, 2**62) if since_raw else None
        items, lost = scan_activity(self._source, since or 0)
        matching = filter_items(items, flt)
        # With a cursor: the oldest items after it (tail -f); without: the newest ones.
        page = matching[:limit] if since is not None else matching[-limit:]
        more = since is not None and len(matching) > limit
        last = page[-1] if more else (items[-1] if items else None)
        next_seq = last.seq if last is not None else (since or 0)
        head = f'{{"t":{dumps(self._clock())},"items":['
        tail = (
            f'],"next":{next_seq},"more":{dumps(more)},"lost":{lost if since is not None else 0}}}'
        )
        return await stream_json(request, head, chunks(page), item_text, tail)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``hello`` (backlog and latency history), then ``update``."""
        flt = activity_filter(request)
        client = self._hub.connect(flt)
        if client is None:
            return json_response({"error": "too many live-stream clients"}, status=503)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            hello = self._hub.hello(client)
            await response.write(f"retry: 2000\nevent: hello\ndata: {hello}\n\n".encode())
            while not client.closed:
                await client.wake.wait()
                client.wake.clear()
                while client.queue and not client.closed:
                    update = client.queue.popleft()
                    await response.write(f"event: update\ndata: {update}\n\n".encode())
        except (ConnectionResetError, OSError):
            pass  # the browser went away
        finally:
            self._hub.disconnect(client)
        return response


async def record_schema(request: web.Request) -> web.StreamResponse:
    """The JSON Schema of a record (``tracking/trace-record-v1.schema.json``), as shipped."""
    return web.Response(
        text=schema_text(),
        content_type="application/schema+json",
        headers={"Cache-Control": "no-store"},
    )


def _matches(view: SessionView, query: str | None, transport: str | None) -> bool:
    if transport and view.transport != transport:
        return False
    if not query:
        return True
    return query in view.session_id.lower() or (view.remote is not None and query in view.remote)


def _open_json(view: SessionView) -> JSON:
    out: dict[str, JSON] = to_jsonable(view)
    out["state"] = "open"
    return out

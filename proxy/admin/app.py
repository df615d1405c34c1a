"""The admin listener's aiohttp application: health, Prometheus, JSON API, live stream,
dashboard.

:func:`build_admin_app` is the only entry point; the CLI runs the app on its own
``AppRunner``/``TCPSite`` at ``AdminSettings.listen``, apart from the relayed traffic.
"""

from __future__ import annotations

import csv
import heapq
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.live import LiveHub, scan_activity
from socketio_trace_proxy.proxy.admin.metrics import DurationHistograms, MonitorCollector
from socketio_trace_proxy.proxy.admin.record import record_routes
from socketio_trace_proxy.proxy.admin.security import (
    auth_middleware,
    check_admin_binding,
    login_handlers,
)
from socketio_trace_proxy.proxy.admin.serialize import (
    CSV_COLUMNS,
    JSON,
    ActivityFilter,
    csv_row,
    filter_items,
    item_json,
    to_jsonable,
)
from socketio_trace_proxy.proxy.admin.source import MonitorSource
from socketio_trace_proxy.tracking.recording.recorder import Recorder

log = logging.getLogger(__name__)

HUB_KEY = web.AppKey("admin_live_hub", LiveHub)
REGISTRY_KEY = web.AppKey("admin_prometheus_registry", CollectorRegistry)

_STATIC = ("index.html", "dashboard.js", "dashboard.css")
_CONTENT_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"


def _dumps(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json(value: JSON, status: int = 200) -> web.Response:
    return web.Response(
        text=_dumps(value),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=_dumps({"error": message}), content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise _bad_request(f"{name} must be between {low} and {high}")
    return value


def _filter(request: web.Request) -> ActivityFilter:
    try:
        return ActivityFilter.from_query(request.query)
    except ValueError as exc:
        raise _bad_request(str(exc)) from None


def build_admin_app(
    source: MonitorSource,
    settings: AdminSettings,
    readiness: Callable[[], Awaitable[bool]],
    *,
    clock: Callable[[], float] = time.time,
    recorder: Recorder | None = None,
) -> web.Application:
    """The admin application.  ``readiness`` answers "is the upstream reachable?"; ``/readyz``
    also requires every exporter to be healthy.  Raises
    :class:`~proxy.admin.security.AdminBindError` when ``settings`` bind a non-loopback
    address without a token."""
    check_admin_binding(settings)
    token = settings.token.get_secret_value() if settings.token is not None else None
    middlewares = [auth_middleware(token)] if token is not None else []
    app = web.Application(middlewares=middlewares)

    histograms = DurationHistograms(settings.duration_buckets_s, settings.max_histogram_series)
    hub = LiveHub(source, settings, histograms, clock=clock)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(source, histograms, hub.counters))
    app[HUB_KEY] = hub
    app[REGISTRY_KEY] = registry
    limit_max = settings.api_max_items

    async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
        hub.start()
        yield
        await hub.stop()

    async def close_streams(app: web.Application) -> None:
        hub.close_clients()

    app.cleanup_ctx.append(hub_ctx)
    app.on_shutdown.append(close_streams)

    async def healthz(request: web.Request) -> web.StreamResponse:
        return _json({"status": "alive"})

    async def readyz(request: web.Request) -> web.StreamResponse:
        try:
            upstream = bool(await readiness())
        except Exception as exc:  # readiness probes must answer, not crash
            log.warning("readiness check failed: %s", type(exc).__name__)
            upstream = False
        sinks = source.sink_health()
        ready = upstream and all(s.healthy for s in sinks)
        body = {
            "ready": ready,
            "upstream": upstream,
            "exporters": [
                {"name": s.name, "healthy": s.healthy, "last_error": s.last_error} for s in sinks
            ],
        }
        return _json(body, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.StreamResponse:
        body = generate_latest(registry)
        return web.Response(
            body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
        )

    async def api_metrics(request: web.Request) -> web.StreamResponse:
        return _json(
            {
                "t": clock(),
                "metrics": to_jsonable(source.get_metrics()),
                "exporters": to_jsonable(source.sink_health()),
                "relay": to_jsonable(source.relay_counters()),
                "admin": to_jsonable(hub.counters()),
            }
        )

    async def api_pending(request: web.Request) -> web.StreamResponse:
        limit = _int_param(request, "limit", min(500, limit_max), 1, limit_max)
        session = request.query.get("session") or None
        pending = [
            p
            for p in source.get_pending_requests()
            if session is None or p.session_id.startswith(session)
        ]
        oldest = heapq.nsmallest(limit, pending, key=lambda p: p.started_wall)
        return _json({"t": clock(), "total": len(pending), "items": to_jsonable(oldest)})

    async def api_sessions(request: web.Request) -> web.StreamResponse:
        limit = _int_param(request, "limit", min(100, limit_max), 1, limit_max)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        query = (request.query.get("q") or "").strip()
        transport = (request.query.get("transport") or "").strip()
        sessions = [
            s
            for s in source.get_sessions()
            if (not query or query in s.session_id or (s.remote is not None and query in s.remote))
            and (not transport or s.transport == transport)
        ]
        sessions.sort(key=lambda s: s.opened_wall, reverse=True)
        return _json(
            {
                "t": clock(),
                "total": len(sessions),
                "offset": offset,
                "items": to_jsonable(sessions[offset : offset + limit]),
            }
        )

    async def api_session(request: web.Request) -> web.StreamResponse:
        sid = request.match_info["sid"]
        try:
            timeline = source.get_session_timeline(sid)
        except KeyError:
            timeline = None
        view = getattr(timeline, "session", None)
        if timeline is None:
            view = next((s for s in source.get_sessions() if s.session_id == sid), None)
        if timeline is None and view is None:
            return _json({"error": f"no session {sid!r}"}, status=404)
        return _json(
            {"t": clock(), "session": to_jsonable(view), "timeline": to_jsonable(timeline)}
        )

    async def api_events(request: web.Request) -> web.StreamResponse:
        flt = _filter(request)
        limit = _int_param(request, "limit", min(200, limit_max), 1, limit_max)
        since_raw = request.query.get("since")
        since = _int_param(request, "since", 0, 0, 2**62) if since_raw else None
        items, lost = scan_activity(source, since or 0)
        matching = filter_items(items, flt)
        # With a cursor: the oldest items after it (tail -f); without: the newest ones.
        page = matching[:limit] if since is not None else matching[-limit:]
        if since is not None and len(matching) > limit:
            next_seq = page[-1].seq
        else:
            next_seq = items[-1].seq if items else (since or 0)
        return _json(
            {
                "t": clock(),
                "items": [item_json(i) for i in page],
                "next": next_seq,
                "more": since is not None and len(matching) > limit,
                "lost": lost if since is not None else 0,
            }
        )

    async def api_export(request: web.Request) -> web.StreamResponse:
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv", "ndjson"):
            raise _bad_request("format must be json, csv or ndjson")
        flt = _filter(request)
        items = filter_items(scan_activity(source, 0)[0], flt)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
        filename = f"socketio-trace-{stamp}.{fmt}"
        headers = {
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
        if fmt == "json":
            body = {
                "exported_at": clock(),
                "filter": to_jsonable(flt),
                "metrics": to_jsonable(source.get_metrics()),
                "pending": to_jsonable(source.get_pending_requests()),
                "items": [item_json(i) for i in items],
            }
            return web.Response(text=_dumps(body), content_type="application/json", headers=headers)
        if fmt == "ndjson":
            text = "".join(_dumps(item_json(i)) + "\n" for i in items)
            return web.Response(text=text, content_type="application/x-ndjson", headers=headers)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(i) for i in items)
        return web.Response(text=out.getvalue(), content_type="text/csv", headers=headers)

    async def api_stream(request: web.Request) -> web.StreamResponse:
        flt = _filter(request)
        client = hub.connect(flt)
        if client is None:
            return _json({"error": "too many live-stream clients"}, status=503)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            await response.write(
                f"retry: 2000\nevent: hello\ndata: {hub.hello(client)}\n\n".encode()
            )
            while not client.closed:
                await client.wake.wait()
                client.wake.clear()
                while client.queue and not client.closed:
                    await response.write(
                        f"event: update\ndata: {client.queue.popleft()}\n\n".encode()
                    )
        except (ConnectionResetError, OSError):
            pass  # the browser went away
        finally:
            hub.disconnect(client)
        return response

    def static_handler(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        data = resources.files(__package__ or "").joinpath("static", name).read_bytes()
        content_type = _CONTENT_TYPES[name.rsplit(".", 1)[1]]

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(
                body=data,
                content_type=content_type,
                charset="utf-8",
                headers={
                    **_SECURITY_HEADERS,
                    "Content-Security-Policy": _CSP,
                    "Cache-Control": "no-cache",
                },
            )

        return handler

    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
            web.get("/api/metrics", api_metrics),
            web.get("/api/pending", api_pending),
            web.get("/api/sessions", api_sessions),
            web.get("/api/sessions/{sid}", api_session),
            web.get("/api/events", api_events),
            web.get("/api/export", api_export),
            web.get("/api/stream", api_stream),
            web.get("/", static_handler("index.html")),
            web.get("/static/dashboard.js", static_handler("dashboard.js")),
            web.get("/static/dashboard.css", static_handler("dashboard.css")),
            *login_handlers(token),
            *(record_routes(recorder) if recorder is not None else ()),
        ]
    )
    return app

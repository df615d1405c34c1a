"""The admin listener's aiohttp application: health, Prometheus, JSON API, live stream,
dashboard.

:func:`build_admin_app` is the only entry point; the CLI runs the app on its own
``AppRunner``/``TCPSite`` at ``AdminSettings.listen``, apart from the relayed traffic (but on
the same event loop, which is why long answers are encoded in chunks that yield).  It puts
the parts together: the access rules (:mod:`.security`, :mod:`.auth`), the live stream
(:mod:`.live`), the API (:mod:`.api`), exports (:mod:`.export`), health and metrics
(:mod:`.health`, :mod:`.metrics`), the recorder's routes (:mod:`.record`) and the static
dashboard.  Routes of other features are added here, next to these.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.api import TrackerApi
from socketio_trace_proxy.proxy.admin.auth import Auth, open_routes
from socketio_trace_proxy.proxy.admin.export import Exports
from socketio_trace_proxy.proxy.admin.health import health_routes
from socketio_trace_proxy.proxy.admin.info import DashboardInfo
from socketio_trace_proxy.proxy.admin.live import LiveHub
from socketio_trace_proxy.proxy.admin.metrics import DurationHistograms, MonitorCollector
from socketio_trace_proxy.proxy.admin.record import record_routes, unavailable_record_routes
from socketio_trace_proxy.proxy.admin.security import HostGuard, check_admin_binding
from socketio_trace_proxy.proxy.admin.source import MonitorSource
from socketio_trace_proxy.tracking.recording.recorder import Recorder

HUB_KEY = web.AppKey("admin_live_hub", LiveHub)
REGISTRY_KEY = web.AppKey("admin_prometheus_registry", CollectorRegistry)

_CONTENT_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    ),
    "Cache-Control": "no-cache",
}


def build_admin_app(
    source: MonitorSource,
    settings: AdminSettings,
    readiness: Callable[[], Awaitable[bool]],
    *,
    clock: Callable[[], float] = time.time,
    info: DashboardInfo | None = None,
    recorder: Recorder | None = None,
) -> web.Application:
    """The admin application.  ``readiness`` answers "is the upstream reachable?"; ``/readyz``
    also requires every exporter to be healthy.  Raises
    :class:`~proxy.admin.security.AdminBindError` when ``settings`` bind a non-loopback
    address without a token."""
    check_admin_binding(settings)
    token = settings.token.get_secret_value() if settings.token is not None else None
    auth = Auth(token, settings) if token is not None else None
    hosts = HostGuard(settings) if token is None else None
    middlewares: list[Middleware] = [hosts.middleware()] if hosts is not None else []
    if auth is not None:
        middlewares.append(auth.middleware())
    app = web.Application(middlewares=middlewares)

    histograms = DurationHistograms(settings.duration_buckets_s, settings.max_histogram_series)
    hub = LiveHub(source, settings, histograms, clock=clock)
    exports = Exports(source, settings, clock)

    def counters() -> dict[str, int]:
        out = asdict(hub.counters()) | exports.counters()
        out["hosts_refused"] = hosts.refused if hosts is not None else 0
        return out | (auth.counters() if auth is not None else {})

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(source, histograms, counters))
    app[HUB_KEY] = hub
    app[REGISTRY_KEY] = registry
    app.cleanup_ctx.append(_hub_running(hub))
    app.on_shutdown.append(_closing_streams(hub))

    api = TrackerApi(
        source, settings, hub=hub, info=info or DashboardInfo(), counters=counters, clock=clock
    )
    app.add_routes(
        [
            *health_routes(source, readiness, registry),
            *api.routes(),
            web.get("/api/export", exports.handle),
            *_static_routes(),
            *(auth.routes() if auth is not None else open_routes()),
            *(record_routes(recorder) if recorder is not None else unavailable_record_routes()),
        ]
    )
    return app


def _hub_running(hub: LiveHub) -> Callable[[web.Application], AsyncIterator[None]]:
    async def running(app: web.Application) -> AsyncIterator[None]:
        hub.start()
        yield
        await hub.stop()

    return running


def _closing_streams(hub: LiveHub) -> Callable[[web.Application], Awaitable[None]]:
    async def close_streams(app: web.Application) -> None:
        hub.close_clients()

    return close_streams


_ASSETS = ("common.js", "sessions.js", "detail.js", "dashboard.js", "dashboard.css")


def _static_routes() -> list[web.RouteDef]:
    return [
        web.get("/", _static("index.html")),
        *(web.get(f"/static/{name}", _static(name)) for name in _ASSETS),
    ]


def _static(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    data = resources.files(__package__ or "").joinpath("static", name).read_bytes()
    content_type = _CONTENT_TYPES[name.rsplit(".", 1)[1]]

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=data, content_type=content_type, charset="utf-8", headers=_SECURITY_HEADERS
        )

    return handler

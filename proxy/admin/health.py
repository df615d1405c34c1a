"""Health and scraping: ``/healthz`` (the process answers), ``/readyz`` (the upstream is
reachable and every exporter healthy) and Prometheus ``/metrics``.

They work with tracking on or off: a plain relay has no exporters, so its readiness is the
upstream's, and its ``/metrics`` carries the relay's and the admin listener's counters.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from socketio_trace_proxy.proxy.admin.responses import json_response
from socketio_trace_proxy.proxy.admin.source import MonitorSource

log = logging.getLogger(__name__)


def health_routes(
    source: MonitorSource,
    readiness: Callable[[], Awaitable[bool]],
    registry: CollectorRegistry,
) -> list[web.RouteDef]:
    async def healthz(request: web.Request) -> web.StreamResponse:
        return json_response({"status": "alive"})

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
            "tracking": source.tracking_enabled,
            "exporters": [
                {"name": s.name, "healthy": s.healthy, "last_error": s.last_error} for s in sinks
            ],
        }
        return json_response(body, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.StreamResponse:
        body = generate_latest(registry)
        return web.Response(
            body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
        )

    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
    ]

"""Fixtures: an admin app over a FakeSource, served on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin import DashboardInfo, MonitorSource, build_admin_app
from tests.proxy.admin.fakes import FakeSource

MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(
        source: FakeSource | MonitorSource,
        settings: AdminSettings | None = None,
        ready: bool | Exception = True,
        clock: Callable[[], float] | None = None,
        info: DashboardInfo | None = None,
    ) -> TestClient[web.Request, web.Application]:
        async def readiness() -> bool:
            if isinstance(ready, Exception):
                raise ready
            return ready

        kwargs = {"clock": clock} if clock is not None else {}
        app = build_admin_app(source, settings or AdminSettings(), readiness, info=info, **kwargs)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()

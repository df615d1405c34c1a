"""Fixtures of the end-to-end tests: one AetherTerm-like backend and one proxy (composed as
the CLI does, tracking on, local records only) per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.e2e.aetherterm import serve_backend
from tests.e2e.stack import Proxy, e2e_settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend_url() -> AsyncIterator[str]:
    runner, url = await serve_backend()
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Proxy]:
    """The proxy in front of :func:`backend_url`, no exporter but the local NDJSON file."""
    settings = e2e_settings(tmp_path_factory.mktemp("proxy"), backend_url, {})
    running = await Proxy.start(settings, {})
    try:
        yield running
    finally:
        await running.stop()

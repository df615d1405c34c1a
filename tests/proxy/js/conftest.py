"""Fixtures for the node socket.io-client tests: backends (aiohttp, ASGI+recorder) with the relay
in front, one pair per test module.  Every test here is skipped, with the reason, when node or
tests/js/node_modules is missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import socketio

from tests.proxy.js.js_backend import RecordingASGI, build_sio, runner_port, serve_aiohttp
from tests.proxy.js.js_harness import (
    Front,
    TapObserver,
    missing_requirement,
    relay_in_front_of,
    uvicorn_serving,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_requirement()
    if reason is None:
        return
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aiohttp_front() -> AsyncIterator[Front]:
    """python-socketio served by aiohttp, the relay in front."""
    runner = await serve_aiohttp(0)
    backend = f"http://127.0.0.1:{runner_port(runner)}"
    try:
        async with relay_in_front_of(backend) as url:
            yield Front(url, backend)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def asgi_front() -> AsyncIterator[Front]:
    """python-socketio as ASGI under uvicorn, wrapped in the wire recorder; the relay in front,
    with an observer attached (the tracking-on path) that records what it is told."""
    recorder = RecordingASGI(socketio.ASGIApp(build_sio("asgi")))
    observer = TapObserver()
    async with uvicorn_serving(recorder) as backend, relay_in_front_of(backend, observer) as url:
        yield Front(url, backend, recorder, observer)

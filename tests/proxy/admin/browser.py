"""Driving the dashboard in Debian's chromium with Playwright (no browser download).

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright
install``).  :func:`shot` saves a screenshot in the test's tmp dir, and also in
``$DASHBOARD_SCREENSHOTS`` when that is set (how the closing note's screenshots are made).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin import DashboardInfo, MonitorSource, build_admin_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - depends on the environment
    async_playwright = None  # type: ignore[assignment]

needs_browser = [
    pytest.mark.skipif(async_playwright is None, reason="playwright is not installed (pip)"),
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

WIDTH = 1280


async def _ready() -> bool:
    return True


@contextlib.asynccontextmanager
async def dashboard(
    source: MonitorSource,
    settings: AdminSettings | None = None,
    info: DashboardInfo | None = None,
    height: int = 1000,
) -> AsyncIterator[tuple[Any, str, list[str]]]:
    """(page, base URL, page errors) for the admin app over ``source``, 1280 px wide."""
    settings = settings or AdminSettings(listen="127.0.0.1:0", stream_interval_s=0.1)
    app = build_admin_app(source, settings, _ready, info=info)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": WIDTH, "height": height})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                yield page, str(server.make_url("")).rstrip("/"), errors
            finally:
                await browser.close()
    finally:
        await server.close()


async def shot(page: Any, tmp_path: Path, name: str, *, full_page: bool = False, **kw: Any) -> Path:
    """Screenshot ``name``.png (1280 px wide) into tmp_path and $DASHBOARD_SCREENSHOTS."""
    target = tmp_path / f"{name}.png"
    await page.screenshot(path=str(target), full_page=full_page, **kw)
    keep = os.environ.get("DASHBOARD_SCREENSHOTS")
    if keep:
        _keep(target, Path(keep))
    return target


def _keep(target: Path, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(target, directory / target.name)

"""The dashboard in a real browser (Debian's chromium, driven by Playwright) over real traffic.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright
install``: its browser download does not work here).  The screenshot is saved as
``live-traffic.png`` in the test's tmp dir (and in ``$DASHBOARD_SCREENSHOTS``).
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from socketio_trace_proxy.config.admin import AdminSettings
from tests.proxy.admin.browser import CHROMIUM, CHROMIUM_ARGS, WIDTH, needs_browser, shot
from tests.proxy.admin.stack import live_stack

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - depends on the environment
    async_playwright = None  # type: ignore[assignment]

pytestmark = needs_browser


async def test_dashboard_live(tmp_path: Path) -> None:
    async with live_stack() as stack, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        client = await stack.client()
        try:
            page = await browser.new_page(viewport={"width": WIDTH, "height": 1500})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(stack.admin_url + "/")
            await expect(page.locator("#conn-status")).to_have_text("live")

            # a request appears as pending, its age ticking, then resolves
            await client.emit("create_terminal", {"session": "t1", "delay": 2.0})
            pending_row = page.locator("#pending-table tr.pending-row", has_text="create_terminal")
            await expect(pending_row).to_have_count(1)
            age = pending_row.locator("td.age")
            first_age = await age.text_content()
            await expect(age).not_to_have_text(first_age or "")  # it ticks
            await expect(pending_row).to_have_count(0, timeout=15_000)
            ok_row = page.locator(
                "#activity-table tr.act-row.outcome-ok", has_text="create_terminal"
            )
            await expect(ok_row).to_have_count(1)
            await expect(
                page.locator("#rules-table tr.rule-row", has_text="create_terminal")
            ).to_have_count(1)

            # a timeout is highlighted, in the pending table and in the log
            await client.emit("never", {})
            await expect(
                page.locator("#pending-table tr.timed-out", has_text="never")
            ).to_have_count(1)
            await expect(
                page.locator("#activity-table tr.outcome-timeout", has_text="never")
            ).to_have_count(1)

            # more traffic, then filter the log by event
            for i in range(5):
                await client.call("echo", {"i": i}, timeout=10)
            await client.emit("open_file", {"path": "/nope"})
            rows = page.locator("#activity-table tr.act-row")
            await expect(
                page.locator("#activity-table tr.outcome-error", has_text="open_file")
            ).to_have_count(1)
            await page.fill("#f-event", "echo")
            await expect(rows.filter(has_text="never")).to_have_count(0)
            await expect(rows.filter(has_text="echo").first).to_be_visible()
            assert await rows.count() == await rows.filter(has_text="echo").count()

            # pause: new items are held back and counted, resume shows them
            await page.click("#pause-btn")
            await expect(page.locator("#pause-btn")).to_have_text("Resume")
            shown_before = await rows.count()
            top_seq = await rows.first.get_attribute("data-seq")
            for i in range(3):
                await client.call("echo", {"late": i}, timeout=10)
            await expect(page.locator("#paused-count")).to_contain_text("3 new")
            assert await rows.first.get_attribute("data-seq") == top_seq
            assert await rows.count() == shown_before
            await page.click("#pause-btn")
            await expect(rows).to_have_count(shown_before + 3)
            await expect(page.locator("#paused-count")).to_have_text("")

            # the export follows the filter and downloads a CSV
            async with page.expect_download() as info:
                await page.click("#export-csv")
            download = await info.value
            target = tmp_path / download.suggested_filename
            await download.save_as(target)
            with target.open(newline="") as fh:
                exported = list(csv.DictReader(fh))
            assert exported and all(r["event"] == "echo" for r in exported)
            assert len(exported) == shown_before + 3

            # clear the filter, pick a session: its waterfall shows the pairs
            await page.fill("#f-event", "")
            await expect(rows.filter(has_text="create_terminal")).not_to_have_count(0)
            await page.locator("#sessions-table tr.session-row").first.click()
            await expect(page.locator("#waterfall .wf-bar.outcome-timeout")).to_have_count(1)
            await expect(page.locator("#waterfall .wf-bar.outcome-ok").first).to_be_visible()
            for lane in ("handshake", "upgrade", "namespace_connect", "packets"):
                lane_row = page.locator(f"#waterfall .wf-row.lane[data-lane='{lane}']")
                await expect(lane_row).to_have_count(1)
            await _wait_for_chart(page)
            await shot(page, tmp_path, "live-traffic", full_page=True)
            assert not errors, errors
        finally:
            await client.disconnect()
            await browser.close()


async def _wait_for_chart(page: Any) -> None:
    """The latency canvas has drawn something other than its empty message."""
    for _ in range(100):
        painted = await page.evaluate(
            """() => { const c = document.getElementById('latency-chart');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
                return n; }"""
        )
        if painted > 2000:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("latency chart never drew")


async def test_dashboard_behind_a_token(tmp_path: Path) -> None:
    token = "browser-test-token"
    settings = AdminSettings(listen="0.0.0.0:0", token=SecretStr(token), stream_interval_s=0.1)
    async with live_stack(settings) as stack, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            admin = stack.admin_url  # served on loopback; the settings only claim 0.0.0.0
            resp = await page.request.get(admin + "/api/metrics")
            assert resp.status == 401
            await page.goto(admin + "/")
            assert page.url.endswith("/login")
            await page.fill("#token", "wrong")
            await page.click("button[type=submit]")
            await expect(page.locator(".err")).to_be_visible()
            await page.fill("#token", token)
            await page.click("button[type=submit]")
            await expect(page.locator("#conn-status")).to_have_text("live")  # SSE with the cookie
            client = await stack.client()
            try:
                await client.call("echo", {"x": 1}, timeout=10)
                row = page.locator("#activity-table tr.act-row", has_text="echo")
                await expect(row).to_have_count(1)
            finally:
                await client.disconnect()
            await page.click("#logout-form button")
            assert (await page.request.get(admin + "/api/metrics")).status == 401
        finally:
            await browser.close()

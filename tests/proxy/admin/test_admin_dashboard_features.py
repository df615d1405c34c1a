"""The dashboard's features in headless chromium at 1280 px, over busy, realistic data
(issue 15, "Dashboard"; issue 14, tracking off).

Each test saves a screenshot of the feature (see ``browser.shot``): run with
``DASHBOARD_SCREENSHOTS=/some/dir`` to keep them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin import DashboardInfo, RelayOnlySource, TraceLink
from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome
from socketio_trace_proxy.tracking.traffic import Transport
from tests.proxy.admin.browser import dashboard, needs_browser, shot
from tests.proxy.admin.fakes import FakeSource, lifecycle, metrics_snapshot, pair
from tests.proxy.admin.scenes import LONG_RULE, MIXED_CASE_SID, REDACTED_REQUEST, busy_source

try:
    from playwright.async_api import expect
except ImportError:  # pragma: no cover - depends on the environment
    expect = None

pytestmark = needs_browser

DASH = "\u2013"  # the pager's en dash
OPENOBSERVE = DashboardInfo(
    capture=True, trace_link=TraceLink.openobserve("http://127.0.0.1:5080", "default", "default")
)


def fast(**changes: Any) -> AdminSettings:
    return AdminSettings(listen="127.0.0.1:0", stream_interval_s=0.1, **changes)


async def open_dashboard(page: Any, url: str) -> None:
    await page.goto(url + "/")
    await expect(page.locator("#conn-status")).to_have_text("live")


async def test_session_ids_keep_their_case_and_a_copied_id_finds_its_session(
    tmp_path: Path,
) -> None:
    async with dashboard(busy_source()) as (page, url, errors):
        await open_dashboard(page, url)
        row = page.locator(f"#sessions-table tr.session-row[data-sid='{MIXED_CASE_SID}']")
        await row.click()
        title = page.locator("#waterfall-sid")
        await expect(title).to_have_attribute("class", "mono sid")
        await expect(title).not_to_have_text("(click a session)")
        copied = await title.inner_text()  # the rendered text, CSS applied: what a user copies
        assert copied == MIXED_CASE_SID
        for cell in (
            row.locator("td").first,
            page.locator("#pending-live tr.pending-row td.mono").first,
            page.locator("#activity-table tr.act-row td:last-child").first,
        ):
            assert await cell.inner_text() == MIXED_CASE_SID

        rows = page.locator("#sessions-table tr.session-row")
        for query in (copied, copied.upper(), copied.lower(), copied[:12] + "…", " " + copied):
            await page.fill("#sessions-search", query)
            await expect(rows).to_have_count(1)
            await expect(rows.first).to_have_attribute("data-sid", MIXED_CASE_SID)
        await page.fill("#f-session", copied.upper())  # the activity filter too
        activity = page.locator("#activity-table tr.act-row")
        await expect(activity.first).to_be_visible()
        sessions_shown = await activity.locator("td:last-child").all_inner_texts()
        assert sessions_shown and all(t == MIXED_CASE_SID for t in sessions_shown)
        await page.fill("#sessions-search", copied.lower())
        await shot(page, tmp_path, "session-id-case-and-search")
        assert not errors, errors


async def test_pending_live_first_and_recent_timeouts_in_their_own_collapsed_group(
    tmp_path: Path,
) -> None:
    now = time.time()
    source = busy_source(now)
    async with dashboard(source, fast()) as (page, url, errors):
        await open_dashboard(page, url)
        live = page.locator("#pending-live tr.pending-row")
        await expect(live).to_have_count(3)
        await expect(page.locator("#pending-total")).to_have_text("3")
        await expect(page.locator("#pending-timedout-head")).to_be_hidden()  # none yet

        for i, event in enumerate(("ai_get_info", "never_answered")):
            source.emit(
                pair(
                    MIXED_CASE_SID,
                    event,
                    response=None,
                    outcome=Outcome.TIMEOUT,
                    start_wall=now - 5.0,
                    duration_s=5.0,
                    span=f"{0xE0 + i:016x}",
                )
            )
        timed_out = page.locator("#pending-timedout tr.timeout-row")
        await expect(page.locator("#timedout-count")).to_have_text("2")
        await expect(timed_out).to_have_count(2)
        await expect(timed_out.first).to_be_hidden()  # the group starts collapsed
        await expect(live).to_have_count(3)  # timed-out requests are not counted as pending
        await expect(page.locator("#pending-total")).to_have_text("3")
        classes = await page.eval_on_selector_all(
            "#pending-table tbody tr", "rows => rows.map(r => r.className)"
        )
        last_live = max(i for i, c in enumerate(classes) if "pending-row" in c)
        first_timeout = min(i for i, c in enumerate(classes) if "timeout-row" in c)
        assert last_live < first_timeout  # live ones first
        await page.click("#timedout-toggle")
        await expect(timed_out.first).to_be_visible()
        await expect(page.locator("#timedout-toggle")).to_have_attribute("aria-expanded", "true")
        await shot(
            page,
            tmp_path,
            "pending-live-and-timed-out",
            full_page=True,
            clip=await _box(page, "#pending-panel"),
        )

        source.pending = source.pending[:2]  # one was answered
        source.metrics = replace(source.metrics, pending=2)
        await expect(live).to_have_count(2)
        await expect(page.locator("#pending-total")).to_have_text("2")
        await expect(page.locator("#stat-pending")).to_have_text("2")
        assert not errors, errors


async def test_pending_count_and_rows_agree_when_the_list_is_capped(tmp_path: Path) -> None:
    async with dashboard(busy_source(), fast(stream_pending_items=2)) as (page, url, errors):
        await open_dashboard(page, url)
        await expect(page.locator("#pending-live tr.pending-row")).to_have_count(2)
        await expect(page.locator("#pending-total")).to_have_text("3")
        more = page.locator("#pending-live tr.more-row")
        await expect(more).to_have_text("… and 1 younger ones (the 2 oldest are shown)")
        assert not errors, errors


TABLES = ("#pending-table", "#rules-table", "#echo-table", "#sessions-table", "#activity-table")


async def test_no_table_is_clipped_at_1280_px(tmp_path: Path) -> None:
    source = busy_source()
    async with dashboard(source, fast(), info=OPENOBSERVE, height=900) as (page, url, errors):
        await open_dashboard(page, url)
        await expect(page.locator("#rules-table tr.rule-row", has_text=LONG_RULE)).to_be_visible()
        await expect(page.locator("#sessions-table tr.session-row").first).to_be_visible()
        await expect(page.locator("#activity-table tr.act-row").first).to_be_visible()
        for table in TABLES:
            assert await _unclipped(page, table), table
        _close(source, "sess0001aaaaaaaaaaaa", "websocket_closed")
        await page.click("#sessions-closed")
        await expect(page.locator("#sessions-table tr.session-row.closed")).to_have_count(1)
        assert await _unclipped(page, "#sessions-table"), "closed sessions"
        await page.click("#sessions-open")
        await shot(page, tmp_path, "layout-1280", full_page=True)
        assert not errors, errors


async def test_echo_latency_rejections_and_estimated_percentiles(tmp_path: Path) -> None:
    async with dashboard(busy_source(), fast(), height=900) as (page, url, errors):
        await open_dashboard(page, url)
        echo = page.locator("#echo-table tr.echo-row")
        await expect(echo).to_have_count(2)
        exact = echo.filter(has_text="terminal echo").first
        cells = await exact.locator("td").all_inner_texts()
        assert cells[1:] == ["180", "12", "3", "3.10 ms", "12.3 ms", "310.0 ms", "520.0 ms"]
        estimated = await page.locator(
            "#echo-table tr.echo-row[data-rule='terminal:input echo'] td"
        ).all_inner_texts()
        # estimates: "≈" and two significant digits; the max is exact either way
        assert estimated[4:] == ["≈4.0 ms", "≈25 ms", "≈320 ms", "2.50 s"]
        rule = page.locator("#rules-table tr.rule-row[data-rule='create_terminal'] td")
        texts = await rule.all_inner_texts()
        assert texts[3] == "2345"  # rejected, apart from errors
        assert texts[7:] == ["≈12 ms", "≈1.2 s", "≈12 s", "2 min 3 s"]
        title = await rule.nth(7).get_attribute("title")
        assert title is not None and "estimate" in title
        await page.locator("#rules-panel").scroll_into_view_if_needed()
        await shot(page, tmp_path, "echo-and-rules", clip=await _box(page, "#rules-panel"))
        assert not errors, errors


async def test_activity_in_the_order_of_its_times_and_a_row_opens_a_detail_view(
    tmp_path: Path,
) -> None:
    source = busy_source()
    async with dashboard(source, fast(), info=OPENOBSERVE) as (page, url, errors):
        await open_dashboard(page, url)
        rows = page.locator("#activity-table tr.act-row")
        await expect(rows).to_have_count(len(source.activity))
        ends = [float(e or 0) for e in await rows.evaluate_all("rs => rs.map(r => r.dataset.end)")]
        assert ends == sorted(ends, reverse=True)
        shown = [t.strip() for t in await rows.locator("td:nth-child(2)").all_inner_texts()]
        assert shown == sorted(shown, reverse=True)  # HH:MM:SS.mmm of one day sort as text
        seqs = [int(s or 0) for s in await rows.evaluate_all("rs => rs.map(r => r.dataset.seq)")]
        assert seqs != sorted(seqs, reverse=True)  # the data is a real test: seq order differs

        await rows.filter(has_text="create_terminal -> terminal_ready").click()
        detail = page.locator("#detail")
        await expect(detail).to_be_visible()
        record = next(i.record for i in source.activity if "create_terminal" in str(i.record))
        text = await detail.inner_text()
        for expected in (
            "started", "ended", "350.0 ms", "create_terminal (c2s)", "terminal_ready", "t-1",
            "polling → websocket", REDACTED_REQUEST, '["terminal_ready",{"session":"t-1"}]',
            record.trace_id, record.span_id, MIXED_CASE_SID,  # type: ignore[union-attr]
        ):  # fmt: skip
            assert expected in text, (expected, text)
        href = await page.locator("#trace-link").get_attribute("href")
        parts = urlsplit(href or "")
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
            "http://127.0.0.1:5080/web/traces/trace-details"
        )
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert query["trace_id"] == record.trace_id  # type: ignore[union-attr]
        assert query["span_id"] == record.span_id  # type: ignore[union-attr]
        assert query["stream"] == "default" and query["org_identifier"] == "default"
        start = record.start_wall * 1e6  # type: ignore[union-attr]
        assert int(query["from"]) < start < int(query["to"])
        await shot(page, tmp_path, "activity-detail-view")
        await page.keyboard.press("Escape")
        await expect(detail).to_be_hidden()
        assert not errors, errors


async def test_detail_view_without_capture_or_a_trace_ui(tmp_path: Path) -> None:
    async with dashboard(busy_source(), fast(), info=DashboardInfo()) as (page, url, errors):
        await open_dashboard(page, url)
        await page.locator("#activity-table tr.act-row", has_text="resize -> ack").click()
        detail = page.locator("#detail")
        await expect(detail).to_contain_text("Payload capture is off")
        await expect(page.locator("#trace-link")).to_have_count(0)
        await page.click("#detail-close")
        await expect(detail).to_be_hidden()  # a click while it closes may not reach the row
        await page.locator("#activity-table tr.act-row", has_text="upgrade").click()
        await expect(detail).to_contain_text("polling -> websocket")  # a lifecycle record
        assert not errors, errors


def _close(source: FakeSource, sid: str, reason: str, ok: bool = True) -> None:
    if sid not in source.timelines:
        source.emit(lifecycle(sid, LifecycleKind.HANDSHAKE, time.time() - 30, detail="EIO=4"))
    source.emit(
        lifecycle(
            sid,
            LifecycleKind.CLOSE,
            time.time(),
            ok=ok,
            error=None if ok else reason,
            detail=reason,
            transport=Transport.WEBSOCKET,
        )
    )
    source.sessions = [s for s in source.sessions if s.session_id != sid]


async def test_closed_sessions_stay_browsable_with_their_close_reason(tmp_path: Path) -> None:
    source = busy_source()
    async with dashboard(source, fast(closed_sessions=2)) as (page, url, errors):
        await open_dashboard(page, url)
        _close(source, "sess0001aaaaaaaaaaaa", "close_packet")
        _close(source, "sess0002aaaaaaaaaaaa", "websocket_closed")
        _close(source, MIXED_CASE_SID, "heartbeat_timeout", ok=False)
        await page.click("#sessions-closed")
        closed = page.locator("#sessions-table tr.session-row.closed")
        await expect(closed).to_have_count(2)  # the most recent 2 are kept
        sids = await closed.evaluate_all("rs => rs.map(r => r.dataset.sid)")
        assert sids == [MIXED_CASE_SID, "sess0002aaaaaaaaaaaa"]  # newest first
        await expect(closed.first.locator(".pill.error")).to_have_text("heartbeat_timeout")
        await expect(page.locator("#sessions-table thead")).to_contain_text("reason")
        await expect(page.locator("#sessions-page")).to_have_text(f"1{DASH}2 of 2")
        await closed.first.click()
        await expect(page.locator("#waterfall .wf-row.lane[data-lane='close']")).to_have_count(1)
        await expect(page.locator("#waterfall-meta")).to_contain_text("heartbeat_timeout")
        await shot(
            page,
            tmp_path,
            "closed-sessions",
            full_page=True,
            clip=await _box(page, "#sessions-panel", "#waterfall-panel"),
        )
        assert not errors, errors


async def test_waterfall_has_a_time_axis_lifecycle_lanes_and_zooms(tmp_path: Path) -> None:
    async with dashboard(busy_source(), fast()) as (page, url, errors):
        await open_dashboard(page, url)
        await page.click(f"#sessions-table tr.session-row[data-sid='{MIXED_CASE_SID}']")
        lanes = page.locator("#waterfall .wf-row.lane")
        await expect(lanes).to_have_count(4)
        assert await lanes.evaluate_all("rs => rs.map(r => r.dataset.lane)") == [
            "handshake", "namespace_connect", "upgrade", "heartbeat",
        ]  # fmt: skip
        await expect(lanes.nth(3).locator(".wf-bar")).to_have_count(3)  # heartbeat records
        await expect(page.locator("#waterfall-panel")).to_contain_text(
            "echo avg 4.00 ms max 31.0 ms (42)"
        )
        ticks = page.locator("#waterfall .wf-axis .wf-tick")
        assert await ticks.count() >= 3
        assert all(t.startswith("+") for t in await ticks.all_inner_texts())
        requests = page.locator("#waterfall .wf-row[data-span]")
        await expect(requests).to_have_count(5)
        await expect(page.locator("#waterfall-reset")).to_be_disabled()
        await shot(
            page, tmp_path, "waterfall", full_page=True, clip=await _box(page, "#waterfall-panel")
        )

        axis = page.locator(".wf-axis")
        full = await _axis_span(axis)
        await page.locator("#waterfall-panel").scroll_into_view_if_needed()
        box = await page.locator("#wf-axis-track").bounding_box()
        assert box is not None
        y = box["y"] + box["height"] * 3  # across the lanes below the axis
        await page.mouse.move(box["x"] + box["width"] * 0.40, y)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=5)
        await page.mouse.up()
        await expect(page.locator("#waterfall-reset")).to_be_enabled()
        zoomed = await _axis_span(axis)
        assert zoomed < full * 0.25
        assert await requests.count() < 5  # requests outside the range are left out
        await expect(page.locator("#detail")).to_be_hidden()  # a drag is not a click
        await shot(
            page,
            tmp_path,
            "waterfall-zoomed",
            full_page=True,
            clip=await _box(page, "#waterfall-panel"),
        )
        await page.click("#waterfall-reset")
        await expect(requests).to_have_count(5)
        assert await _axis_span(axis) == pytest.approx(full)
        await page.locator("#waterfall .wf-row[data-span] .wf-bar").first.click()
        await expect(page.locator("#detail")).to_contain_text("create_terminal")
        assert not errors, errors


async def test_empty_states_and_paging_that_stops_at_the_ends(tmp_path: Path) -> None:
    empty = FakeSource(metrics=metrics_snapshot(rules=(), pending=0, sessions_by_transport={}))
    async with dashboard(empty, fast()) as (page, url, errors):
        await open_dashboard(page, url)
        await expect(page.locator("#sessions-empty")).to_have_text("No open sessions.")
        await expect(page.locator("#activity-empty")).to_have_text("No activity yet.")
        await expect(page.locator("#rules-empty")).to_be_visible()
        await expect(page.locator("#pending-empty")).to_be_visible()
        await expect(page.locator("#sessions-prev")).to_be_disabled()
        await expect(page.locator("#sessions-next")).to_be_disabled()
        await expect(page.locator("#logout-form")).to_be_hidden()  # no token, no log out
        await page.click("#sessions-closed")
        await expect(page.locator("#sessions-empty")).to_contain_text("No session has closed yet")
        await page.fill("#f-event", "nothing-like-this")
        await expect(page.locator("#activity-empty")).to_have_text("Nothing matches these filters.")
        await shot(page, tmp_path, "empty-states", full_page=True)
        assert not errors, errors

    async with dashboard(busy_source(), fast()) as (page, url, errors):
        await open_dashboard(page, url)
        pager, prev, nxt = (page.locator(f"#sessions-{n}") for n in ("page", "prev", "next"))
        await expect(pager).to_have_text(f"1{DASH}50 of 121")
        await expect(prev).to_be_disabled()
        await nxt.click()
        await expect(pager).to_have_text(f"51{DASH}100 of 121")
        await expect(prev).to_be_enabled()
        await nxt.click()
        await expect(pager).to_have_text(f"101{DASH}121 of 121")
        await expect(nxt).to_be_disabled()
        await expect(page.locator("#sessions-table tr.session-row")).to_have_count(21)
        await page.fill("#sessions-search", "no-such-session")
        await expect(page.locator("#sessions-empty")).to_have_text(
            "No sessions match “no-such-session”."
        )
        await expect(pager).to_have_text("0 of 0")
        await page.fill("#sessions-search", "")
        await expect(pager).to_have_text(f"1{DASH}50 of 121")
        await shot(
            page,
            tmp_path,
            "sessions-paging",
            full_page=True,
            clip=await _box(page, "#sessions-panel"),
        )
        assert not errors, errors


async def test_log_out_is_offered_only_with_a_token(tmp_path: Path) -> None:
    token = "dashboard-token"
    settings = fast(token=SecretStr(token))
    async with dashboard(busy_source(), settings) as (page, url, errors):
        await page.goto(url + "/")
        await page.fill("#token", token)
        await page.click("button[type=submit]")
        await expect(page.locator("#conn-status")).to_have_text("live")
        await expect(page.locator("#logout-form")).to_be_visible()
        assert not errors, errors
        await page.click("#logout-form button")
        await expect(page.locator("#token")).to_be_visible()
        assert (await page.request.get(url + "/api/metrics")).status == 401


async def test_with_tracking_off_the_dashboard_says_so_and_shows_the_relay(
    tmp_path: Path,
) -> None:
    relay = {"http_requests": 1234.0, "ws_active": 3.0, "polling_requests": 99.0}
    async with dashboard(RelayOnlySource(lambda: relay), fast()) as (page, url, errors):
        await open_dashboard(page, url)
        await expect(page.locator("#tracking-badge")).to_be_visible()
        notes = page.locator(".needs-tracking .tracking-off-note")
        await expect(notes).to_have_count(6)
        for note in await notes.all():
            await expect(note).to_be_visible()
            await expect(note).to_contain_text("Tracking is off")
        await expect(page.locator("#sessions-table")).to_be_hidden()
        counter = page.locator("#relay-counters .counter[data-counter='http_requests']")
        await expect(counter).to_contain_text("1234")
        relay["http_requests"] = 1300.0
        await expect(counter).to_contain_text("1300")  # live
        await shot(page, tmp_path, "tracking-off", full_page=True)
        assert not errors, errors


async def _unclipped(page: Any, table: str) -> bool:
    """Nothing of ``table`` is cut off: it fits its scroll box, which fits its panel, and no
    numeric cell is truncated."""
    return bool(
        await page.evaluate(
            """(sel) => {
                const t = document.querySelector(sel), box = t.closest('.scroll');
                const panel = t.closest('.panel').getBoundingClientRect();
                const cellsFit = [...t.querySelectorAll('td.num, th')]
                    .every(c => c.scrollWidth <= c.clientWidth + 1);
                return box.scrollWidth <= box.clientWidth + 1 &&
                    t.getBoundingClientRect().right <= panel.right + 1 && cellsFit;
            }""",
            table,
        )
    )


async def _axis_span(axis: Any) -> float:
    attrs = await axis.evaluate("a => [Number(a.dataset.from), Number(a.dataset.to)]")
    return float(attrs[1] - attrs[0])


async def _box(page: Any, *selectors: str) -> dict[str, float]:
    """A clip rectangle around the given panels (page coordinates), 1280 px wide."""
    boxes = [await page.locator(s).bounding_box() for s in selectors]
    top = min(b["y"] for b in boxes if b)
    bottom = max(b["y"] + b["height"] for b in boxes if b)
    scroll = await page.evaluate("() => window.scrollY")
    return {"x": 0, "y": top + scroll, "width": 1280, "height": bottom - top + 8}

"""python-socketio AsyncClient -> proxy (as the CLI composes it) -> AetherTerm-like backend,
on polling only and on WebSocket only: every request of the scenario is paired (or timed out,
or answered late) in one Engine.IO session."""

from __future__ import annotations

import pytest

from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome
from socketio_trace_proxy.tracking.traffic import Transport
from tests.e2e.stack import (
    Proxy,
    check_scenario,
    closed,
    eventually,
    lifecycle,
    pairs,
    python_scenario,
    session_records,
    traceparent,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("transport", [Transport.POLLING, Transport.WEBSOCKET])
async def test_scenario_pairs_on_a_single_transport(proxy: Proxy, transport: Transport) -> None:
    parent = "00f067aa0ba902b7" if transport is Transport.POLLING else "b7ad6b7169203331"
    run = await python_scenario(proxy.url, [transport.value], traceparent(parent))
    tracker = proxy.tracker
    await eventually(closed(tracker, run.sid), "the session's close record")
    records = session_records(tracker, run.sid)
    check_scenario(
        records,
        run,
        terminal_transports=(transport, transport),
        single_transport=transport,
        parent_span=parent,
    )
    assert not lifecycle(records, LifecycleKind.UPGRADE)
    # Nothing was left pending, so the close abandoned nothing.
    assert all(p.outcome is not Outcome.ABANDONED for p in pairs(records))
    assert not [p for p in tracker.get_pending_requests() if p.session_id == run.sid]
    assert run.sid not in {s.session_id for s in tracker.get_sessions()}


async def test_metrics_count_the_scenarios_outcomes(proxy: Proxy) -> None:
    """After the scenarios above (module-scoped proxy), the rule metrics agree with them."""
    before = {r.rule: dict(r.outcomes) for r in proxy.tracker.get_metrics().rules}
    run = await python_scenario(proxy.url, ["websocket"])
    await eventually(closed(proxy.tracker, run.sid), "the session's close record")
    after = {r.rule: dict(r.outcomes) for r in proxy.tracker.get_metrics().rules}

    def grew(rule: str, outcome: str) -> int:
        return after.get(rule, {}).get(outcome, 0) - before.get(rule, {}).get(outcome, 0)

    assert grew("create_terminal", "ok") == 1
    assert grew("create_terminal", "error") == 1
    assert grew("ai_get_info", "timeout") == 1
    assert grew("wrapper_session_sync", "timeout") == 1
    assert grew("wrapper_session_sync", "late") == 1
    assert grew("ai_chat_message", "ok") == 1
    assert grew("workspace:tab:{tab}:pane:{pane}:terminal:create", "ok") == 1
    health = proxy.tracker.sink_health()
    assert [h.name for h in health] == ["ndjson"]
    assert health[0].failed == 0
    assert health[0].dropped == 0

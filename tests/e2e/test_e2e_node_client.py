"""The official node socket.io-client (default transports: polling, then the upgrade) ->
proxy (as the CLI composes it) -> AetherTerm-like backend.

The client emits ``create_terminal`` the moment it is connected, so the request goes out by a
polling POST while the upgrade is under way, and the backend answers ``terminal_ready`` once
the session is on WebSocket: the tracker must pair the two in one session.  The same scenario
covers acks both ways, a templated rule, a stream, an error reply, a timeout and a late reply.
Skipped, with the reason, when node or tests/js/node_modules is missing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from socketio_trace_proxy.tracking.records import LifecycleKind
from socketio_trace_proxy.tracking.traffic import Transport
from tests.e2e.stack import (
    CHUNKS,
    LATE_DELAY,
    MESSAGE_ID,
    SYNC_TIMESTAMP,
    TEMPLATED_REQUEST,
    TEMPLATED_RESPONSE,
    TERMINAL_ID,
    Proxy,
    ScenarioRun,
    check_scenario,
    closed,
    eventually,
    lifecycle,
    session_records,
    traceparent,
)
from tests.proxy.js.js_harness import missing_requirement, run_node

SCRIPT = Path(__file__).resolve().parent / "scenario.js"
SLOW_UPGRADE_S = 0.5  # the backend holds the WebSocket upgrade request this long

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(missing_requirement() is not None, reason=str(missing_requirement())),
]


async def node_scenario(url: str, parent: str) -> tuple[ScenarioRun, dict[str, Any]]:
    started = time.time()
    # run_node resolves scripts under tests/proxy/js; an absolute path replaces that prefix.
    result = await run_node(
        str(SCRIPT),
        {
            "url": url,
            "traceparent": traceparent(parent),
            "slow_upgrade": SLOW_UPGRADE_S,
            "terminal_id": TERMINAL_ID,
            "templated_request": TEMPLATED_REQUEST,
            "templated_response": TEMPLATED_RESPONSE,
            "message_id": MESSAGE_ID,
            "chunks": CHUNKS,
            "sync_timestamp": SYNC_TIMESTAMP,
            "late_delay": LATE_DELAY,
        },
        limit_s=40.0,
    )
    run = ScenarioRun(result["sid"], result["terminal_session"], started, time.time())
    return run, result


async def test_request_sent_by_polling_during_the_upgrade_pairs_with_its_websocket_reply(
    proxy: Proxy,
) -> None:
    # Two clients at once: pairing is per Engine.IO session, never across sessions.
    parents = ("a1a2a3a4a5a6a7a8", "b1b2b3b4b5b6b7b8")
    (run_a, result_a), (run_b, result_b) = await asyncio.gather(
        *(node_scenario(proxy.url, parent) for parent in parents)
    )
    assert run_a.sid != run_b.sid
    tracker = proxy.tracker
    for run, result, parent in ((run_a, result_a, parents[0]), (run_b, result_b, parents[1])):
        # What the client saw: it emitted on polling, then upgraded, and got every answer.
        assert result["transport_at_emit"] == "polling"
        assert result["transport_at_ready"] == "websocket"
        assert result["upgrades"] == ["websocket"]
        assert result["echo"] == [{"n": 1}]
        assert result["ask"] == [{"client_said": {"answer": 42}}]
        assert result["created"]["terminalId"] == TERMINAL_ID
        assert result["chunks"] == CHUNKS
        assert result["late"]["timestamp"] == SYNC_TIMESTAMP

        await eventually(closed(tracker, run.sid), f"close record of {run.sid}")
        records = session_records(tracker, run.sid)
        found = check_scenario(
            records,
            run,
            terminal_transports=(Transport.POLLING, Transport.WEBSOCKET),
            single_transport=None,
            parent_span=parent,
        )
        assert found["terminal"].session.session_id == run.sid
        upgrades = lifecycle(records, LifecycleKind.UPGRADE)
        assert [(u.ok, u.transport) for u in upgrades] == [(True, Transport.WEBSOCKET)]
        # The upgrade finished between the request (polling) and its reply (WebSocket).
        terminal = found["terminal"]
        assert terminal.start_wall <= upgrades[0].start_wall + upgrades[0].duration_s
        assert upgrades[0].start_wall <= terminal.start_wall + terminal.duration_s
    assert tracker.get_metrics().decode_errors == 0

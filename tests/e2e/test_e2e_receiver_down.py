"""The trace receiver is down (connection refused), failing (503) or stalled (never answers):
traffic through the proxy keeps flowing and is still tracked, the exporters count what they
could not deliver, nothing hangs, and the shutdown flush gives up at its deadline.  No timing
is asserted: only completion and counters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
import socketio

from socketio_trace_proxy.tracking.sink import SinkHealth
from socketio_trace_proxy.tracking.traffic import Transport
from tests.doubles.openobserve import OpenObserveDouble, start_openobserve
from tests.e2e.stack import (
    Proxy,
    ServedDouble,
    check_scenario,
    closed,
    e2e_settings,
    eventually,
    exportable_count,
    python_scenario,
    session_records,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER, PASSWORD = "down@example.com", "down-Pa55"
ECHOES = 40  # round trips on top of the scenario: more records than the exporters queue
QUEUE = 5
SHUTDOWN_S = 0.5
HANG_GUARD_S = 30.0  # far beyond any deadline involved: only catches a hang


def _batch(request_timeout_s: float) -> dict[str, object]:
    return {
        "max_batch_size": 2,
        "flush_interval_s": 0.05,
        "max_queue_size": QUEUE,
        "max_retries": 1,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.1,
        "request_timeout_s": request_timeout_s,
    }


async def _echoes(client: socketio.AsyncClient) -> None:
    for n in range(ECHOES):
        assert await client.call("echo", {"n": n}, timeout=10) == {"n": n}


def _openobserve(tracker_health: list[SinkHealth]) -> list[SinkHealth]:
    health = [h for h in tracker_health if h.name.startswith("openobserve")]
    assert sorted(h.name for h in health) == ["openobserve-json", "openobserve-traces"]
    return health


@dataclass(frozen=True)
class RunResult:
    """What a run through a proxy with a broken receiver left behind."""

    health: list[SinkHealth]  # the OpenObserve sinks', after the proxy stopped
    submitted: int  # records the tracker handed each of them
    double: OpenObserveDouble


async def _run(mode: str, backend_url: str, tmp_path: Path, *, scenario: bool = True) -> RunResult:
    """Drive traffic through a proxy exporting to a receiver in ``mode``, then stop it."""
    # "stalled": the double never answers and the exporter would wait a minute per request:
    # only the shutdown deadline can end the flush.
    stalled = mode == "stalled"
    served = await ServedDouble.start(USER, PASSWORD, delay_s=3600.0 if stalled else 0.0)
    double = served.double
    if mode == "refused":
        await served.close()
    elif mode == "503":
        double.fail_next(503, times=100_000)
    environ = {
        "OPENOBSERVE_ENDPOINT": double.url,
        "OPENOBSERVE_USER": USER,
        "OPENOBSERVE_PASS": PASSWORD,
    }
    extra = {
        "proxy": {"shutdown_timeout_s": SHUTDOWN_S},
        "exporters": {"openobserve": {"batch": _batch(60.0 if stalled else 0.5)}},
    }
    settings = e2e_settings(tmp_path, backend_url, environ, extra)
    try:
        proxy = await Proxy.start(settings, environ)
        tracker = proxy.tracker
        try:
            if scenario:
                run = await python_scenario(proxy.url, ["websocket"], before_disconnect=_echoes)
                await eventually(closed(tracker, run.sid), "the session's close record")
                # Tracking is unaffected by the receiver's state.
                check_scenario(
                    session_records(tracker, run.sid),
                    run,
                    terminal_transports=(Transport.WEBSOCKET, Transport.WEBSOCKET),
                    single_transport=Transport.WEBSOCKET,
                    parent_span=None,
                    extra_echoes=ECHOES,
                )
            else:
                client = socketio.AsyncClient(reconnection=False)
                await client.connect(proxy.url, transports=["websocket"], wait_timeout=10)
                try:
                    await _echoes(client)
                finally:
                    await client.disconnect()
            if stalled:
                # All that traffic went through while the receiver sat on its first requests.
                await eventually(lambda: double.started >= 1, "the first export request")
                assert not double.requests
            await eventually(
                lambda: all(h.failed + h.dropped > 0 for h in _openobserve(tracker.sink_health())),
                "the exporters count failures or drops",
            )
        finally:
            await asyncio.wait_for(proxy.stop(), HANG_GUARD_S)  # completes: nothing hangs
        return RunResult(_openobserve(tracker.sink_health()), exportable_count(tracker), double)
    finally:
        await served.close()


@pytest.mark.parametrize("mode", ["refused", "503", "stalled"])
async def test_traffic_flows_and_losses_are_counted(
    mode: str, backend_url: str, tmp_path: Path
) -> None:
    out = await _run(mode, backend_url, tmp_path)
    assert out.submitted > QUEUE + ECHOES
    for h in out.health:
        # Every record handed to the exporter is accounted for: none sent, none hidden.
        assert h.sent == 0, h
        assert h.failed + h.dropped + h.queued == out.submitted, h
        assert h.dropped > 0, h  # the queue overflowed
        if mode != "stalled":
            assert h.queued == 0, h
            assert not h.healthy, h
            assert h.failed > 0, h
            assert h.last_error is not None
        if mode == "503":
            assert h.last_error is not None
            assert "503" in h.last_error, h
    requests = out.double.requests
    if mode == "503":
        assert requests
        assert {r.status for r in requests} == {503}
        assert all(r.authorized for r in requests)
    if mode == "stalled":
        assert not requests  # nothing was ever answered


async def test_shutdown_deadline_accounts_for_a_stalled_request(
    backend_url: str, tmp_path: Path
) -> None:
    out = await _run("stalled", backend_url, tmp_path, scenario=False)
    for h in out.health:
        assert h.queued == 0, h
        assert h.failed + h.dropped == out.submitted, h


async def test_records_made_before_the_receiver_starts_arrive_once_it_does(
    backend_url: str, tmp_path: Path
) -> None:
    """compose starts OpenObserve beside the proxy and its first start takes a while: what
    the proxy records meanwhile is retried (not given up after a few tries) and arrives."""
    probe = await start_openobserve(USER, PASSWORD)
    url = probe.url
    await probe.close()  # nothing listens there yet
    environ = {"OPENOBSERVE_ENDPOINT": url, "OPENOBSERVE_USER": USER, "OPENOBSERVE_PASS": PASSWORD}
    batch = {"flush_interval_s": 0.05, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}
    extra = {"exporters": {"openobserve": {"batch": batch}}}
    settings = e2e_settings(tmp_path, backend_url, environ, extra)
    proxy = await Proxy.start(settings, environ)
    late: OpenObserveDouble | None = None
    try:
        run = await python_scenario(proxy.url, ["websocket"], before_disconnect=_echoes)
        await eventually(closed(proxy.tracker, run.sid), "the session's close record")
        await eventually(
            lambda: all(h.state == "retrying" for h in _openobserve(proxy.tracker.sink_health())),
            "the exporters retrying",
        )
        late = await start_openobserve(USER, PASSWORD, port=int(url.rsplit(":", 1)[1]))
        submitted = exportable_count(proxy.tracker)
        await eventually(
            lambda: all(h.sent == submitted for h in _openobserve(proxy.tracker.sink_health())),
            "every record exported once the receiver answered",
            limit_s=HANG_GUARD_S,
        )
        for h in _openobserve(proxy.tracker.sink_health()):
            assert (h.failed, h.dropped, h.state, h.healthy) == (0, 0, "ok", True), h
        assert {s.attributes["messaging.socket.io.sid"] for s in late.spans} == {run.sid}
    finally:
        await asyncio.wait_for(proxy.stop(), HANG_GUARD_S)
        if late is not None:
            await late.close()

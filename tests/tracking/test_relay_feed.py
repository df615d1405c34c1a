"""What the real relay tells the tracker (issue 13, tracking side), with real clients.

The relay reports each Socket.IO-path request as its head arrives
(``TrafficObserver.request_arrived``), so the handshake record lasts from the handshake
request to the OPEN packet; and the ``traceparent`` of every request (polling, or the
WebSocket upgrade) reaches the pairs its packets open.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
import socketio

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.records import LifecycleKind, LifecycleRecord, PairRecord
from socketio_trace_proxy.tracking.runtime import Tracker
from tests.proxy.peers import build_sio, relay_in_front_of, runner_port, serve_aiohttp
from tests.tracking.runtime_kit import RecordingSink

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_handshake_duration_and_traceparent_through_the_relay(transport: str) -> None:
    runner = await serve_aiohttp(build_sio("aiohttp"))
    sink = RecordingSink()
    tracker = Tracker(TrackingSettings(), [sink])
    await tracker.start()
    try:
        backend = f"http://127.0.0.1:{runner_port(runner)}"
        async with relay_in_front_of(backend, tracker) as relay:
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                relay.url,
                transports=[transport],
                headers={"traceparent": f"00-{TRACE}-{SPAN}-01"},
                wait_timeout=5,
            )
            assert await client.call("echo", "hi", timeout=5) == "hi"
            await client.disconnect()
    finally:
        await tracker.stop(1.0)
        await runner.cleanup()
    (handshake,) = [
        r
        for r in sink.records
        if isinstance(r, LifecycleRecord) and r.kind is LifecycleKind.HANDSHAKE
    ]
    # From the request's arrival to the OPEN packet: more than nothing, less than forever.
    assert 0.0 < handshake.duration_s < 5.0
    assert (handshake.trace_id, handshake.parent_span_id) == (TRACE, SPAN)
    # the handshake request's peer: the client's own socket, as the relay accepted it
    assert handshake.session.client_address == "127.0.0.1"
    assert isinstance(handshake.session.client_port, int) and handshake.session.client_port > 0
    (echo,) = [r for r in sink.records if isinstance(r, PairRecord)]
    assert echo.operation == "echo -> ack"
    if transport == "websocket":  # the upgrade request carried the header: its pairs too
        assert (echo.trace_id, echo.parent_span_id) == (TRACE, SPAN)
    else:  # python-engineio sends custom headers on the handshake only, not on its POSTs
        assert echo.trace_id != TRACE and echo.parent_span_id is None


async def test_a_later_polling_request_with_a_traceparent_parents_its_pairs() -> None:
    runner = await serve_aiohttp(build_sio("aiohttp"))
    sink = RecordingSink()
    tracker = Tracker(TrackingSettings(), [sink])
    await tracker.start()
    other_trace, other_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    try:
        backend = f"http://127.0.0.1:{runner_port(runner)}"
        async with relay_in_front_of(backend, tracker) as relay, aiohttp.ClientSession() as http:
            base = f"{relay.url}/socket.io/?EIO=4&transport=polling"
            async with http.get(base) as r:
                sid = json.loads((await r.text())[1:])["sid"]
            polling = f"{base}&sid={sid}"
            async with http.post(polling, data=b"40") as r:
                assert r.status == 200
            async with http.get(polling) as r:
                assert (await r.text()).startswith("40")
            headers = {"traceparent": f"00-{other_trace}-{other_span}-01"}
            async with http.post(polling, data=b'421["echo","hi"]', headers=headers) as r:
                assert r.status == 200
            async with http.get(polling) as r:
                assert '431["hi"]' in await r.text()
    finally:
        await tracker.stop(1.0)
        await runner.cleanup()
    (echo,) = [r for r in sink.records if isinstance(r, PairRecord)]
    assert (echo.operation, echo.trace_id, echo.parent_span_id) == (
        "echo -> ack",
        other_trace,
        other_span,
    )

"""Head-based session sampling (``tracking.session_sample_rate``, issue 12 decision 4).

The decision is a function of the sid alone (stable, the configured share), made once at
the handshake; an unsampled session is relayed undecoded (the WebSocket tunnel gets no
observer) and only counted.
"""

from __future__ import annotations

import json
import random
import string
from hashlib import blake2b
from typing import Any

import pytest
import socketio

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.events import SessionEvent
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.records import LifecycleRecord, PairRecord
from socketio_trace_proxy.tracking.runtime import Tracker
from socketio_trace_proxy.tracking.sampling import SessionSampler, session_sampled, sid_fraction
from socketio_trace_proxy.tracking.traffic import Direction
from tests.proxy.peers import build_sio, relay_in_front_of, runner_port, serve_aiohttp
from tests.tracking.runtime_kit import FakeClock, RecordingSink

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
SID_CHARS = string.ascii_letters + string.digits + "-_"


def sids(n: int, seed: int = 12) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(SID_CHARS, k=20)) for _ in range(n)]


def test_the_decision_is_a_stable_function_of_the_sid() -> None:
    for sid in sids(200):
        # BLAKE2b-64 of the sid over 2**64, computed independently here.
        expected = int.from_bytes(blake2b(sid.encode(), digest_size=8).digest(), "big") / 2**64
        assert sid_fraction(sid) == expected
        decisions = {session_sampled(sid, 0.3) for _ in range(3)}
        assert decisions == {expected < 0.3}
        # Two samplers (two replicas, or before and after a restart) agree.
        assert SessionSampler(0.3).decide(sid) == SessionSampler(0.3).decide(sid)
        # A session kept at some rate is kept at every higher rate.
        if session_sampled(sid, 0.1):
            assert session_sampled(sid, 0.5)
    assert all(session_sampled(s, 1.0) for s in sids(50))
    assert not any(session_sampled(s, 0.0) for s in sids(50))


def test_remembered_decisions_are_bounded_and_equal_the_computed_ones() -> None:
    sampler = SessionSampler(0.3, max_remembered=16)
    every = sids(100)
    for _ in range(2):  # the second pass asks again for decisions long forgotten
        assert [sampler.keeps(s) for s in every] == [session_sampled(s, 0.3) for s in every]
    assert sampler.forgotten == 200 - 16
    assert [sampler.keeps(s) for s in every[-16:]] == [session_sampled(s, 0.3) for s in every[-16:]]
    assert sampler.forgotten == 200 - 16  # the last 16 were remembered


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5, 0.9])
def test_roughly_the_configured_share_of_10_000_sids(rate: float) -> None:
    sampler = SessionSampler(rate)
    kept = sum(sampler.decide(sid) for sid in sids(10_000))
    # Binomial: 5 standard deviations either way.
    spread = 5 * (10_000 * rate * (1 - rate)) ** 0.5
    assert abs(kept - 10_000 * rate) < spread
    info = sampler.info()
    assert (info.sessions, info.sampled_sessions, info.rate) == (10_000, kept, rate)


def _open(sid: str) -> str:
    return "0" + json.dumps(
        {"sid": sid, "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000}
    )


def _split(rate: float) -> tuple[str, str]:
    """A sid kept at ``rate`` and one left out."""
    kept = next(s for s in sids(1000) if session_sampled(s, rate))
    left = next(s for s in sids(1000) if not session_sampled(s, rate))
    return kept, left


def _tracker(rate: float) -> tuple[Tracker, RecordingSink, list[SessionEvent]]:
    events: list[SessionEvent] = []
    sink = RecordingSink()
    settings = TrackingSettings(session_sample_rate=rate)
    tracker = Tracker(settings, [sink], clock=FakeClock(10.0), on_session_event=events.append)
    return tracker, sink, events


def test_an_unsampled_websocket_session_is_counted_never_decoded() -> None:
    kept, left = _split(0.5)
    tracker, sink, events = _tracker(0.5)
    for sid in (kept, left):
        ws = tracker.websocket_opened(RequestInfo("GET", {"EIO": "4", "transport": "websocket"}))
        assert ws is not None  # no sid yet: the OPEN packet names the session
        ws.message(S2C, _open(sid))
        ws.message(C2S, "40")
        ws.message(S2C, '40{"sid":"x"}')
        ws.message(C2S, '421["echo","hi"]')
        ws.message(S2C, '431["hi"]')
        ws.closed(C2S, 1000)
    # Only the kept session produced events and records.
    assert {e.session_id for e in events if e.session_id is not None} == {kept}
    assert {r.session.session_id for r in sink.records} == {kept}
    assert [r.operation for r in sink.records if isinstance(r, PairRecord)] == ["echo -> ack"]
    snap = tracker.get_metrics()
    assert snap.sampling is not None
    assert (snap.sampling.sessions, snap.sampling.sampled_sessions) == (2, 1)
    assert snap.sampling.unsampled_messages == {"c2s": 2, "s2c": 3}
    assert snap.sampling.unsampled_bytes["c2s"] == len("40") + len('421["echo","hi"]')
    # The kept session only (Socket.IO messages: its OPEN is no message).
    assert snap.messages_by_direction == {"c2s": 2, "s2c": 2}


def test_unsampled_polling_traffic_and_upgrades_are_skipped_by_sid() -> None:
    kept, left = _split(0.5)
    tracker, sink, events = _tracker(0.5)
    for sid in (kept, left):
        hs = RequestInfo("GET", {"EIO": "4", "transport": "polling"})
        tracker.polling_response(hs, 200, "text/plain", None, _open(sid).encode())
        q = {"EIO": "4", "transport": "polling", "sid": sid}
        tracker.polling_request(RequestInfo("POST", q), b'40\x1e421["echo","hi"]')
        tracker.polling_response(RequestInfo("POST", q), 200, "text/html", None, b"ok")
        tracker.polling_response(
            RequestInfo("GET", q), 200, None, None, b'40{"sid":"y"}\x1e431["hi"]'
        )
        upgrade = tracker.websocket_opened(RequestInfo("GET", {**q, "transport": "websocket"}))
        # The relay tunnels an unsampled session's WebSocket without an observer.
        assert (upgrade is None) == (sid == left)
    assert {e.session_id for e in events if e.session_id is not None} == {kept}
    assert [r.session.session_id for r in sink.records if isinstance(r, PairRecord)] == [kept]
    info = tracker.get_metrics().sampling
    assert info is not None
    assert (info.sessions, info.sampled_sessions) == (2, 1)
    assert info.unsampled_messages == {"c2s": 2, "s2c": 3}  # OPEN, 40 and the ack; "ok" is not
    stats = tracker._sessions.stats()  # type: ignore[attr-defined]
    assert stats.unattributed == 0 and stats.unconfirmed == 0


def test_default_rate_has_no_sampling_info() -> None:
    tracker, _, _ = _tracker(1.0)
    assert tracker.get_metrics().sampling is None


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"], ["polling"]])
async def test_unsampled_sessions_through_the_relay(transports: list[str]) -> None:
    """Real python-socketio peers: every message of an unsampled session arrives intact,
    the relay counts it, the tracker decodes nothing of it."""
    runner = await serve_aiohttp(build_sio("aiohttp"))
    tracker, sink, events = _tracker(0.0)
    await tracker.start()
    payloads: list[Any] = ["hi", {"n": 1, "s": "é" * 50}, b"\x00\x01binary\xff"]
    try:
        backend = f"http://127.0.0.1:{runner_port(runner)}"
        async with relay_in_front_of(backend, tracker) as relay:
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(relay.url, transports=transports, wait_timeout=5)
            for payload in payloads:
                assert await client.call("echo", payload, timeout=5) == payload
            await client.disconnect()
            counters = relay.counters
            if "websocket" in transports:
                assert counters.ws_messages_c2s >= len(payloads)
                assert counters.ws_messages_s2c >= len(payloads)
            else:
                assert counters.polling_bytes_c2s > 0 and counters.polling_bytes_s2c > 0
            assert counters.observer_errors == 0
    finally:
        await tracker.stop(1.0)
        await runner.cleanup()
    assert events == [] and sink.records == []
    snap = tracker.get_metrics()
    assert snap.messages_by_direction == {} and snap.sampling is not None
    assert (snap.sampling.sessions, snap.sampling.sampled_sessions) == (1, 0)
    stats = tracker._sessions.stats()  # type: ignore[attr-defined]
    assert (stats.packets, stats.opened, stats.unattributed, stats.internal_errors) == (0, 0, 0, 0)
    if transports == ["websocket"]:
        # A direct WebSocket is observed until its OPEN packet names the session; then the
        # tunnel stops showing the tracker its messages (none of the echos reached it).
        assert snap.sampling.unsampled_messages == {"c2s": 0, "s2c": 1}
    if transports[0] == "polling":
        assert snap.sampling.unsampled_bytes["s2c"] > 0
    assert not any(isinstance(r, LifecycleRecord) for r in sink.records)

"""Heartbeat RTT and upgrade duration as records (spans), not only metrics."""

from __future__ import annotations

import pytest

from socketio_trace_proxy.exporters.openobserve_json import lifecycle_json
from socketio_trace_proxy.exporters.spans import lifecycle_span
from socketio_trace_proxy.tracking.events import HeartbeatObserved, SessionUpgraded
from socketio_trace_proxy.tracking.records import (
    HEARTBEATS_PER_RECORD,
    LifecycleKind,
    LifecycleRecord,
)
from tests.tracking.engine_kit import C2S, S2C, WALL0, Harness
from tests.tracking.transcript_kit import Transcript, open_packet


def heartbeat(h: Harness, rtt: float, sid: str = "sid1") -> None:
    h.advance(rtt)
    h.feed(HeartbeatObserved(sid, rtt, h.now, h.wall))


def test_heartbeats_are_aggregated_per_session_into_records() -> None:
    h = Harness()
    h.open()
    first_ping = h.wall
    for i in range(HEARTBEATS_PER_RECORD + 2):
        heartbeat(h, 0.001 * (1 + i % 4))  # 1, 2, 3, 4 ms ...
        h.advance(25.0)
    (rec,) = [r for r in h.lifecycle() if r.kind is LifecycleKind.HEARTBEAT]
    assert rec.rtt_count == HEARTBEATS_PER_RECORD
    assert rec.rtt_min_s == pytest.approx(0.001) and rec.rtt_max_s == pytest.approx(0.004)
    assert rec.rtt_avg_s == pytest.approx(0.0025)
    assert rec.start_wall == pytest.approx(first_ping) and rec.ok
    assert rec.duration_s == pytest.approx(HEARTBEATS_PER_RECORD * 25.0 + 0.05 - 25.0, abs=0.01)
    assert rec.detail == "20 heartbeats, RTT min/avg/max 1.0/2.5/4.0 ms"
    assert rec.session.session_id == "sid1" and rec.parent_span_id == rec.session.span_id
    h.close()  # the two since then: one more record, before the close record
    kinds = [r.kind for r in h.lifecycle()]
    assert kinds[-2:] == [LifecycleKind.HEARTBEAT, LifecycleKind.CLOSE]
    last = h.lifecycle()[-2]
    assert last.rtt_count == 2 and last.rtt_max_s == pytest.approx(0.002)
    # the metrics still see every round trip
    assert h.engine.snapshot().heartbeat_rtt.count == HEARTBEATS_PER_RECORD + 2


def test_no_heartbeat_no_record_and_other_kinds_carry_no_rtt() -> None:
    h = Harness()
    h.open()
    h.feed(SessionUpgraded("sid1", 0.02, h.now, h.wall))
    h.close()
    assert [r.kind for r in h.lifecycle()] == [
        LifecycleKind.HANDSHAKE,
        LifecycleKind.UPGRADE,
        LifecycleKind.CLOSE,
    ]
    upgrade = h.lifecycle()[1]
    assert upgrade.duration_s == pytest.approx(0.02) and upgrade.rtt_count is None
    assert upgrade.start_wall == pytest.approx(WALL0 + h.now - 0.02)


def test_heartbeat_records_are_exported_as_spans_and_json() -> None:
    h = Harness()
    h.open()
    heartbeat(h, 0.003)
    h.close()
    rec = next(r for r in h.lifecycle() if r.kind is LifecycleKind.HEARTBEAT)
    span = lifecycle_span(rec)
    attrs = dict(span.attributes)
    assert span.name == "engine.io heartbeat"
    assert attrs["messaging.socket.io.heartbeat.count"] == 1
    assert attrs["messaging.socket.io.heartbeat.rtt_max_ms"] == pytest.approx(3.0)
    row = lifecycle_json(rec, "svc")
    assert row["operation_name"] == "socket:heartbeat" and row["socket.heartbeats"] == 1
    assert row["socket.rtt_avg_ms"] == pytest.approx(3.0)


def test_timelines_show_upgrade_and_heartbeat_records() -> None:
    t = Transcript()
    t.get(None, open_packet("P1"))
    t.post("P1", "40")
    t.get("P1", '40{"sid":"x"}')
    t.at(0.1)
    ws = t.websocket("P1")
    ws.message(C2S, "2probe")
    ws.message(S2C, "3probe")
    t.at(0.15)
    ws.message(C2S, "5")
    t.at(25.0)
    ws.message(S2C, "2")
    t.at(25.004)
    ws.message(C2S, "3")
    t.at(30.0)
    ws.closed(C2S, 1000)
    timeline = t.tracker.get_session_timeline("P1")
    assert timeline is not None and timeline.session is None  # closed, still browsable
    kinds = [i.kind for i in timeline.items if isinstance(i, LifecycleRecord)]
    assert LifecycleKind.UPGRADE in kinds
    assert kinds[-2:] == [LifecycleKind.HEARTBEAT, LifecycleKind.CLOSE]
    (hb,) = [i for i in timeline.items if getattr(i, "kind", None) is LifecycleKind.HEARTBEAT]
    assert hb.rtt_count == 1 and hb.rtt_max_s == pytest.approx(0.004)

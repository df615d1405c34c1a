"""The typed receivers of session events and records (tracking.events): found only when
the emit given is the receiver's own method, so that a tap or any other callable keeps the
generic path."""

from __future__ import annotations

from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.correlation.engine import CorrelationEngine
from socketio_trace_proxy.tracking.events import (
    PacketObserved,
    SessionEvent,
    packet_sink,
    record_target,
)
from socketio_trace_proxy.tracking.ids import SequentialIds
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.records import PairRecord, Record
from socketio_trace_proxy.tracking.runtime.intake import EventIntake, RecordIntake
from socketio_trace_proxy.tracking.runtime.timelines import Timelines
from socketio_trace_proxy.tracking.sessions.table import SessionTable
from socketio_trace_proxy.tracking.traffic import Direction

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
SETTINGS = TrackingSettings()
OPEN = '0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1}'


def _rig(
    out: list[Record] | None = None,
) -> tuple[RecordIntake, CorrelationEngine, EventIntake, Timelines]:
    records = RecordIntake()
    engine = CorrelationEngine(SETTINGS, records.record, SequentialIds())
    timelines = Timelines(16, 10, 2, engine.metrics.drops)
    fan_out = (lambda batch: None) if out is None else out.extend
    records.attach(timelines, fan_out, lambda: None, lambda: None)
    return records, engine, EventIntake(engine, timelines, lambda where: None), timelines


def test_the_receivers_are_found_from_their_own_methods_only() -> None:
    records, _, intake, _ = _rig()
    assert record_target(records.record) is records
    assert packet_sink(intake.event) is intake
    assert record_target(records.attach) is None and packet_sink(intake.packet_observed) is None
    assert record_target(print) is None and packet_sink(lambda event: None) is None


def _ack_round_trip(emit: object, table_emit: object) -> None:
    table = SessionTable(table_emit)  # type: ignore[arg-type]
    leg = table.websocket_opened(RequestInfo("GET", {"EIO": "4"}), 1.0, 1001.0)
    table.websocket_message(leg, S2C, OPEN, 1.0, 1001.0)
    table.websocket_message(leg, C2S, "40", 1.0, 1001.0)
    table.websocket_message(leg, S2C, '40{"sid":"x"}', 1.0, 1001.0)
    table.websocket_message(leg, C2S, '421["echo",1]', 2.0, 1002.0)
    table.websocket_message(leg, S2C, "431[1]", 2.5, 1002.5)


def test_packets_and_records_take_the_typed_path_and_a_tap_the_generic_one() -> None:
    """The same frames through the intake's own ``event`` (typed: ``packet_observed``) and
    through a tap in front of it (generic): the same timeline rows and the same pair."""
    seen: list[list[object]] = []
    for tapped in (False, True):
        out: list[Record] = []
        _, engine, intake, timelines = _rig(out)
        tap: list[SessionEvent] = []

        def tapping(
            event: SessionEvent, intake: EventIntake = intake, tap: list[SessionEvent] = tap
        ) -> None:
            tap.append(event)
            intake.event(event)

        _ack_round_trip(intake, tapping if tapped else intake.event)
        pairs = [r for r in out if isinstance(r, PairRecord)]
        rows = timelines.live["abc"].items()
        packets = [e for e in tap if isinstance(e, PacketObserved)]
        assert len(packets) == (4 if tapped else 0)
        seen.append([len(rows), engine.metrics.rules["echo -> ack"].ok, pairs])
    assert seen[0] == seen[1] and seen[0][1] == 1 and len(pairs) == 1

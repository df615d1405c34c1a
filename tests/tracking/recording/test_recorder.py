"""The recorder: bounded queue (drops counted, gaps marked), the writer thread, rotation
within ``max_bytes`` x (``keep`` + 1), stop closing open sessions."""

from __future__ import annotations

from pathlib import Path

from socketio_trace_proxy.config.record import RecordSettings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.recording.format import (
    CloseLine,
    GapLine,
    Header,
    PacketLine,
    SessionLine,
    read_lines,
)
from socketio_trace_proxy.tracking.recording.recorder import Recorder, part_paths
from socketio_trace_proxy.tracking.replay.script import load_sessions
from socketio_trace_proxy.tracking.traffic import Direction

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
OPEN = '0{"sid":"SID","upgrades":[],"pingTimeout":20000,"pingInterval":25000}'


def recorder(path: Path, **settings: object) -> Recorder:
    values = {"path": str(path), "flush_interval": 3600, **settings}
    return Recorder(RecordSettings.model_validate(values), TrackingSettings(), version="t")


def ws_session(rec: Recorder, sid: str, messages: int, size: int = 10, close: bool = False) -> None:
    leg = rec.websocket_opened(RequestInfo("GET", {"EIO": "4", "transport": "websocket"}))
    leg.message(S2C, OPEN.replace("SID", sid))
    for i in range(messages):
        leg.message(C2S, f'42["e",{{"i":{i},"pad":"{"x" * size}"}}]')
    if close:
        leg.closed(C2S, 1000)


def lines_of(paths: list[Path]) -> list[object]:
    out: list[object] = []
    for p in paths:
        out += list(read_lines(p.read_text().splitlines(), str(p)))
    return out


def test_idle_recorder_costs_nothing_and_writes_nothing(tmp_path: Path) -> None:
    rec = recorder(tmp_path / "r.jsonl")
    ws_session(rec, "A", 3)
    rec.polling_request(RequestInfo("POST", {"sid": "A"}), b"40")
    assert rec.status().queued == 0 and not (tmp_path / "r.jsonl").exists()


def test_records_flushes_and_stop_closes_open_sessions(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = recorder(path)
    rec.start()
    try:
        ws_session(rec, "A", 3)
        rec.flush()
        lines = lines_of([path])
        assert isinstance(lines[0], Header) and lines[0].proxy == "t"
        assert isinstance(lines[1], SessionLine) and lines[1].session == "A"
        assert sum(isinstance(line, PacketLine) for line in lines) == 4
        assert rec.status().sessions == 1 and rec.status().open_sessions == 1
    finally:
        rec.stop()
    last = lines_of([path])[-1]
    assert isinstance(last, CloseLine) and last.reason == "stopped"
    assert not rec.active


def test_full_queue_drops_counts_and_marks_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = recorder(path, queue=5)
    rec.start()
    try:
        ws_session(rec, "A", 2)  # open + OPEN + 2 messages: 4 queued
        ws_session(rec, "B", 3)  # 1 more fits, 4 dropped (B's OPEN is one of them)
        assert rec.dropped == 4
        rec.flush()
    finally:
        rec.stop()
    lines = lines_of([path])
    gaps = [line for line in lines if isinstance(line, GapLine)]
    assert gaps == [GapLine(gaps[0].wall, 4, ("A",))]
    _, sessions = load_sessions(lines)  # type: ignore[arg-type]
    assert [(s.session, s.incomplete is not None) for s in sessions] == [("A", True)]


def test_rotation_keeps_the_size_bound_and_parts_stand_alone(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = recorder(path, max_bytes=4096, keep=2)
    rec.start()
    try:
        for i in range(40):
            ws_session(rec, f"S{i}", 5, size=30, close=i % 8 != 0)  # a few stay open
            rec.flush()
    finally:
        rec.stop()
    parts = part_paths(path, 2)
    assert parts == [tmp_path / "r.jsonl.2", tmp_path / "r.jsonl.1", path]
    assert not (tmp_path / "r.jsonl.3").exists()
    # a part holds max_bytes, plus the session lines announcing the sessions still open
    assert all(p.stat().st_size <= 4096 + 5 * 120 for p in parts)
    assert rec.status().rotations > 3
    for p in parts:  # each part starts with a header; continued sessions are announced
        lines = lines_of([p])
        assert isinstance(lines[0], Header)
    _, sessions = load_sessions(lines_of(parts))  # type: ignore[arg-type]
    whole = [s for s in sessions if s.incomplete is None]
    assert whole and all(len(s.packets) == 6 for s in whole)


def test_restart_keeps_the_previous_recording_as_a_part(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for name in ("A", "B"):
        rec = recorder(path)
        rec.start()
        ws_session(rec, name, 1)
        rec.stop()
    assert [p.name for p in part_paths(path, 3)] == ["r.jsonl.1", "r.jsonl"]


def test_write_error_stops_recording_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = recorder(path)
    rec.start()
    assert rec._file is not None
    rec._file.close()  # the next write fails as a full disk would
    rec._file._file = open(path, "rb")  # noqa: SIM115 - read-only handle: writes raise
    ws_session(rec, "A", 2)
    rec.flush()
    status = rec.status()
    assert not status.active and status.write_errors == 1 and status.last_error
    ws_session(rec, "B", 2)  # the relay goes on calling: nothing queued
    assert rec.status().queued == 0
    rec.stop()

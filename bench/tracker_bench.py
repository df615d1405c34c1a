"""Tracker benchmark (issue 3 "Benchmark"): cost per frame and per pair, memory per pending request.

Feeds AetherTerm-like WebSocket and polling frames (shapes taken from ../shared/recordings)
through ``tracking.sessions.SessionTable`` (decoder + Engine.IO sessions) and the
``tracking.correlation.CorrelationEngine`` configured with the AetherTerm default config,
exactly as the relay's observer would, but in one process with no I/O. Times are this
thread's CPU time (``time.thread_time_ns``), so other processes on a shared machine inflate
them less than wall-clock time would. Each workload is
timed twice: decode only (the session table's events dropped) and decode + correlate, so
the correlation share is visible. Memory per pending request and per tracked idle session
is measured with tracemalloc. Every loop is bounded by a frame count and a time budget.

Usage: ``.venv/bin/python bench/tracker_bench.py [--quick] [--config FILE]``
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from socketio_trace_proxy.config.loader import load_settings  # noqa: E402
from socketio_trace_proxy.config.tracking import TrackingSettings  # noqa: E402
from socketio_trace_proxy.tracking.correlation import CorrelationEngine  # noqa: E402
from socketio_trace_proxy.tracking.events import SessionEvent  # noqa: E402
from socketio_trace_proxy.tracking.ids import SequentialIds  # noqa: E402
from socketio_trace_proxy.tracking.observer import RequestInfo  # noqa: E402
from socketio_trace_proxy.tracking.records import Outcome, PairRecord, Record  # noqa: E402
from socketio_trace_proxy.tracking.sessions import SessionTable, WebSocketLeg  # noqa: E402
from socketio_trace_proxy.tracking.traffic import Direction  # noqa: E402

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
WALL0 = 1_700_000_000.0
WS_QUERY = {"EIO": "4", "transport": "websocket"}

Frame = tuple[Direction, str]


@dataclass(frozen=True, slots=True)
class Workload:
    """A repeatable frame sequence on one WebSocket session; ``pairs`` per repetition."""

    name: str
    frames: Callable[[int], list[Frame]]  # repetition index -> frames of that repetition
    pairs: int
    transport: str = "websocket"


@dataclass(frozen=True, slots=True)
class Timing:
    ns_per_frame: float
    frames: int
    records: int
    ok_pairs: int


def _ev(name: str, arg: object, ack: int | None = None) -> str:
    return f"42{'' if ack is None else ack}{json.dumps([name, arg], separators=(',', ':'))}"


def _ack(ack: int, arg: object) -> str:
    return f"43{ack}{json.dumps([arg], separators=(',', ':'))}"


def workloads(payload_kib: int) -> list[Workload]:
    big = "x" * (payload_kib * 1024)
    small = "x" * 100
    return [
        Workload(
            "keystroke + echo terminal_input/terminal_output (aggregated, echo rule)",
            lambda i: [
                (C2S, _ev("terminal_input", {"session": "session_1", "data": "e"})),
                (S2C, _ev("terminal_output", {"session": "session_1", "data": "e"})),
            ],
            pairs=0,
        ),
        Workload(
            "keystroke + echo + 3 more outputs (terminal_output, aggregated)",
            lambda i: [
                (C2S, _ev("terminal_input", {"session": "session_1", "data": "e"})),
                *[(S2C, _ev("terminal_output", {"session": "session_1", "data": small}))] * 4,
            ],
            pairs=0,
        ),
        Workload(
            "keystroke + echo ...:pane:{pane}:terminal:input/terminal:data (branch)",
            lambda i: [
                (
                    C2S,
                    _ev(
                        f"workspace:tab:t{i % 3}:pane:p{i % 2}:terminal:input",
                        {"terminalId": f"term{i % 6}", "data": "e", "_requestId": "noop"},
                    ),
                ),
                (S2C, _ev("terminal:data", {"terminalId": f"term{i % 6}", "data": "e"})),
            ],
            pairs=0,
        ),
        Workload(
            "one-way unconfigured event (message record)",
            lambda i: [(S2C, _ev("bench_push", {"n": i, "data": small}))],
            pairs=0,
        ),
        Workload(
            "ack pair, 100 B",
            lambda i: [(C2S, _ev("echo", small, ack=i)), (S2C, _ack(i, small))],
            pairs=1,
        ),
        Workload(
            f"ack pair, {payload_kib} KiB",
            lambda i: [(C2S, _ev("echo", big, ack=i)), (S2C, _ack(i, big))],
            pairs=1,
        ),
        Workload(
            "keyed pair create_terminal -> terminal_ready",
            lambda i: [
                (C2S, _ev("create_terminal", {"session": f"s{i}", "user": "", "path": ""})),
                (S2C, _ev("terminal_ready", {"session": f"s{i}", "status": "ready"})),
            ],
            pairs=1,
        ),
        Workload(
            "templated pair workspace:tab:{tab}:pane:{pane}:terminal:create",
            lambda i: [
                (
                    C2S,
                    _ev(
                        f"workspace:tab:t{i % 7}:pane:p{i % 3}:terminal:create",
                        {"terminalId": f"term{i}", "_requestId": f"r{i}"},
                    ),
                ),
                (
                    S2C,
                    _ev(
                        f"workspace:tab:t{i % 7}:pane:p{i % 3}:terminal:created",
                        {"terminalId": f"term{i}", "_requestId": f"r{i}", "status": "ok"},
                    ),
                ),
            ],
            pairs=1,
        ),
        Workload(
            "stream ai_chat_message -> 3 chunks -> complete",
            lambda i: [
                (C2S, _ev("ai_chat_message", {"message_id": f"m{i}", "message": "hi"})),
                (S2C, _ev("ai_chat_chunk", {"message_id": f"m{i}", "chunk": "a"})),
                (S2C, _ev("ai_chat_chunk", {"message_id": f"m{i}", "chunk": "b"})),
                (S2C, _ev("ai_chat_chunk", {"message_id": f"m{i}", "chunk": "c"})),
                (S2C, _ev("ai_chat_complete", {"message_id": f"m{i}", "status": "done"})),
            ],
            pairs=1,
        ),
        Workload(
            "engine.io ping/pong",
            lambda i: [(S2C, "2"), (C2S, "3")],
            pairs=0,
        ),
    ]


class Rig:
    """A session table feeding (or not) a correlation engine, on a fake clock."""

    def __init__(self, settings: TrackingSettings, correlate: bool) -> None:
        self.records = 0
        self.ok_pairs = 0
        self.now = 100.0
        self.engine: CorrelationEngine | None = None
        emit: Callable[[SessionEvent], None]
        if correlate:
            self.engine = CorrelationEngine(settings, self._record, SequentialIds())
            emit = self.engine.handle
        else:
            emit = _drop
        self.table = SessionTable(emit, max_sessions=settings.limits.max_sessions)
        self._sid = 0

    def _record(self, record: Record) -> None:
        self.records += 1
        if isinstance(record, PairRecord) and record.outcome is Outcome.OK:
            self.ok_pairs += 1

    def open_ws(self) -> WebSocketLeg:
        """A WebSocket-only session, handshake and namespace connect included."""
        self._sid += 1
        sid = f"bench{self._sid:08d}AAAA"
        leg = self.table.websocket_opened(RequestInfo("GET", WS_QUERY, "127.0.0.1"), 1.0, WALL0)
        open_packet = json.dumps(
            {
                "sid": sid,
                "upgrades": [],
                "pingInterval": 25000,
                "pingTimeout": 20000,
                "maxPayload": 1000000,
            }
        )
        self.send(leg, S2C, "0" + open_packet)
        self.send(leg, C2S, "40")
        self.send(leg, S2C, '40{"sid":"ns' + sid + '"}')
        return leg

    def send(self, leg: WebSocketLeg, direction: Direction, frame: str) -> None:
        self.table.websocket_message(leg, direction, frame, self.now, WALL0 + self.now)


def _drop(event: SessionEvent) -> None:
    return None


def build_frames(workload: Workload, max_frames: int) -> list[Frame]:
    reps = max(1, max_frames // max(1, len(workload.frames(0))))
    frames: list[Frame] = []
    for i in range(reps):
        frames.extend(workload.frames(i))
    return frames


def time_workload(
    settings: TrackingSettings,
    frames: list[Frame],
    *,
    correlate: bool,
    budget_s: float,
) -> Timing:
    """Feeds pre-built ``frames`` in batches until they or the time budget run out."""
    rig = Rig(settings, correlate)
    leg = rig.open_ws()
    base_records = rig.records
    base_ok = rig.ok_pairs
    table_message = rig.table.websocket_message
    batch = 1000
    done = 0
    elapsed_ns = 0
    deadline = time.perf_counter() + budget_s
    gc.collect()
    while done < len(frames) and time.perf_counter() < deadline:
        chunk = frames[done : done + batch]
        now = rig.now
        wall = WALL0 + now
        t0 = time.thread_time_ns()
        for direction, data in chunk:
            table_message(leg, direction, data, now, wall)
        elapsed_ns += time.thread_time_ns() - t0
        done += len(chunk)
        rig.now += 0.001  # time moves on between batches, far from any timeout
    return Timing(
        ns_per_frame=elapsed_ns / max(1, done),
        frames=done,
        records=rig.records - base_records,
        ok_pairs=rig.ok_pairs - base_ok,
    )


def time_polling(settings: TrackingSettings, *, correlate: bool, max_bodies: int) -> Timing:
    """A polling session: POST bodies of 4 batched EVENTs with acks, GET replies with 4 ACKs."""
    rig = Rig(settings, correlate)
    sid = "pollbench0000AAAA"
    query = {"EIO": "4", "transport": "polling"}
    rig.table.polling_reply(
        RequestInfo("GET", query),
        200,
        None,
        (
            '0{"sid":"' + sid + '","upgrades":["websocket"],"pingInterval":25000,'
            '"pingTimeout":20000,"maxPayload":1000000}'
        ).encode(),
        1.0,
        WALL0,
    )
    info = RequestInfo("POST", {**query, "sid": sid})
    get = RequestInfo("GET", {**query, "sid": sid})
    rig.table.polling_request(info, b"40", 1.0, WALL0)
    rig.table.polling_reply(get, 200, None, b'40{"sid":"x"}', 1.0, WALL0)
    small = "x" * 100
    bodies: list[tuple[bytes, bytes]] = []
    for i in range(max_bodies):
        ids = range(i * 4, i * 4 + 4)
        req = "\x1e".join(_ev("echo", small, ack=a) for a in ids).encode()
        resp = "\x1e".join(_ack(a, small) for a in ids).encode()
        bodies.append((req, resp))
    base_ok = rig.ok_pairs
    gc.collect()
    t0 = time.thread_time_ns()
    for req, resp in bodies:
        rig.table.polling_request(info, req, rig.now, WALL0)
        rig.table.polling_reply(get, 200, None, resp, rig.now, WALL0)
    elapsed = time.thread_time_ns() - t0
    frames = len(bodies) * 8
    return Timing(elapsed / frames, frames, rig.records, rig.ok_pairs - base_ok)


def measure_pending_memory(
    settings: TrackingSettings, kind: str, sessions: int, per_session: int
) -> tuple[float, int]:
    """tracemalloc bytes per pending request of ``kind`` (ack, keyed, fifo); and how many."""
    rig = Rig(settings, correlate=True)
    legs = [rig.open_ws() for _ in range(sessions)]
    frames: list[list[str]] = []
    for s in range(sessions):
        if kind == "ack":
            frames.append([_ev("echo", "x" * 100, ack=i) for i in range(per_session)])
        elif kind == "keyed":
            frames.append(
                [
                    _ev("create_terminal", {"session": f"k{s}-{i}", "user": "", "path": ""})
                    for i in range(per_session)
                ]
            )
        else:
            frames.append([_ev("ai_get_info", {}) for _ in range(per_session)])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for leg, batch in zip(legs, frames, strict=True):
        for data in batch:
            rig.send(leg, C2S, data)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    pending = len(rig.engine.pending_views(rig.now)) if rig.engine is not None else 0
    return (after - before) / max(1, pending), pending


def measure_session_memory(settings: TrackingSettings, sessions: int) -> float:
    """tracemalloc bytes per idle tracked session (table + engine), handshake included."""
    rig = Rig(settings, correlate=True)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    legs = [rig.open_ws() for _ in range(sessions)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(legs) == sessions
    return (after - before) / sessions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer frames (a few seconds)")
    p.add_argument("--config", type=Path, help="config file (default: the packaged default)")
    p.add_argument("--frames", type=int, help="frames per measurement (default 100000)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds per measurement at most")
    p.add_argument("--repeat", type=int, help="repetitions, best kept (default 3)")
    p.add_argument("--payload-kib", type=int, default=10)
    args = p.parse_args(argv)
    frames = args.frames or (20_000 if args.quick else 100_000)
    repeat = args.repeat or (1 if args.quick else 3)
    settings = load_settings(args.config, {}).tracking

    print(f"Tracker CPU time per frame (best of {repeat}, up to {frames} frames each)")
    header = (
        f"{'workload':<64}{'decode':>10}{'+correlate':>12}{'per pair':>11}"
        f"{'frames/s':>11}{'ok pairs':>10}"
    )
    print(header)
    print("-" * len(header))
    for w in workloads(args.payload_kib):
        # Warm-up: first use compiles rule regexes, fills caches, grows the heap.
        warm = build_frames(w, 2000)
        for correlate in (False, True):
            time_workload(settings, warm, correlate=correlate, budget_s=args.budget)
        frame_list = build_frames(w, frames)
        decode = min(
            (
                time_workload(settings, frame_list, correlate=False, budget_s=args.budget)
                for _ in range(repeat)
            ),
            key=lambda t: t.ns_per_frame,
        )
        full = min(
            (
                time_workload(settings, frame_list, correlate=True, budget_s=args.budget)
                for _ in range(repeat)
            ),
            key=lambda t: t.ns_per_frame,
        )
        per_rep = len(w.frames(0))
        per_pair = (
            f"{full.ns_per_frame * per_rep / w.pairs / 1000:>8.2f} us" if w.pairs else f"{'-':>11}"
        )
        expected = full.frames // per_rep * w.pairs
        check = f"{full.ok_pairs}" + ("" if full.ok_pairs == expected else f" (!={expected})")
        print(
            f"{w.name:<64}{decode.ns_per_frame / 1000:>7.2f} us{full.ns_per_frame / 1000:>9.2f} us"
            f"{per_pair}{1e9 / full.ns_per_frame:>11.0f}{check:>10}"
        )
    bodies = max(1, frames // 8)
    decode_p = min(
        (time_polling(settings, correlate=False, max_bodies=bodies) for _ in range(repeat)),
        key=lambda t: t.ns_per_frame,
    )
    full_p = min(
        (time_polling(settings, correlate=True, max_bodies=bodies) for _ in range(repeat)),
        key=lambda t: t.ns_per_frame,
    )
    print(
        f"{'polling: 4 acked echos per POST, 4 ACKs per GET reply':<64}"
        f"{decode_p.ns_per_frame / 1000:>7.2f} us{full_p.ns_per_frame / 1000:>9.2f} us"
        f"{full_p.ns_per_frame * 2 / 1000:>8.2f} us{1e9 / full_p.ns_per_frame:>11.0f}"
        f"{full_p.ok_pairs:>10}"
    )
    print(
        "decode: SessionTable only (events dropped); +correlate: SessionTable feeding the "
        "CorrelationEngine (AetherTerm default config), records counted, not exported."
    )

    print()
    sessions, per_session = (10, 100) if args.quick else (50, 200)
    print(f"Memory (tracemalloc), {sessions} sessions x {per_session} unanswered requests:")
    for kind, label in (
        ("ack", "pending ack (echo with ack id, 100 B)"),
        ("keyed", "pending keyed rule request (create_terminal)"),
        ("fifo", "pending FIFO rule request (ai_get_info)"),
    ):
        per, count = measure_pending_memory(settings, kind, sessions, per_session)
        print(f"  {label:<50}{per:>8.0f} B per request ({count} pending)")
    idle = statistics.median(
        measure_session_memory(settings, 200 if args.quick else 2000) for _ in range(repeat)
    )
    print(f"  {'idle tracked WebSocket session (table + engine)':<50}{idle:>8.0f} B per session")
    return 0


if __name__ == "__main__":
    sys.exit(main())

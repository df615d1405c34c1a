"""Fakes for tracker tests: a settable clock and a sink that records what it is given."""

from __future__ import annotations

from dataclasses import dataclass, field

from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.sink import SinkHealth

WALL0 = 1_700_000_000.0


@dataclass
class FakeClock:
    mono: float = 0.0

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return WALL0 + self.mono

    def set(self, at: float) -> None:
        self.mono = at

    def advance(self, seconds: float) -> None:
        self.mono += seconds


@dataclass
class RecordingSink:
    name: str = "recording"
    records: list[Record] = field(default_factory=list)
    started: bool = False
    shutdown_deadline: float | None = None
    fail_submit: bool = False

    def submit(self, record: Record) -> None:
        if self.fail_submit:
            raise RuntimeError("sink is broken")
        self.records.append(record)

    async def start(self) -> None:
        self.started = True

    async def shutdown(self, deadline_s: float) -> None:
        self.shutdown_deadline = deadline_s

    def health(self) -> SinkHealth:
        return SinkHealth(self.name, True, len(self.records), 0, 3, 0, None)

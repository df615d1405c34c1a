"""Live metrics of the tracker: counters and fixed-bucket latency histograms, all bounded.

Histograms use fixed logarithmic buckets (10 per decade, 10 us .. 1000 s), so memory does
not depend on traffic and quantiles are answered to within one bucket (about 26 %).
Event names are capped: past ``max_event_names`` distinct names, new ones fold into
``(other)``.  The per-frame counters are keyed by plain strings and split by direction with
an identity test: hashing an ``Enum`` member runs Python code.
"""

from __future__ import annotations

from bisect import bisect_left as _bisect_left
from collections import Counter

from socketio_trace_proxy.tracking.records import Outcome
from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.views import (
    EventStats,
    LatencySummary,
    MetricsSnapshot,
    RuleStats,
)

OTHER = "(other)"
_BOUNDS: tuple[float, ...] = tuple(10 ** (e / 10) for e in range(-50, 31))  # 1e-5 .. 1e3 s


class Histogram:
    """Counts per fixed log bucket, plus count, sum and max."""

    __slots__ = ("count", "counts", "max", "sum")
    bounds: tuple[float, ...] = _BOUNDS  # upper bounds; one overflow bucket after them

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def observe(self, value: float) -> None:
        value = max(value, 0.0)
        self.counts[_bisect_left(_BOUNDS, value)] += 1
        self.count += 1
        self.sum += value
        self.max = max(self.max, value)

    def quantile(self, q: float) -> float | None:
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                upper = _BOUNDS[i] if i < len(_BOUNDS) else self.max
                return min(upper, self.max)
        return self.max

    def summary(self) -> LatencySummary:
        return LatencySummary(
            count=self.count,
            p50_s=self.quantile(0.50),
            p95_s=self.quantile(0.95),
            p99_s=self.quantile(0.99),
            max_s=self.max if self.count else None,
        )


class RuleMetrics:
    __slots__ = ("latency", "outcomes", "slow")

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.slow = 0
        self.latency = Histogram()


_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT
_OK = Outcome.OK
_ERROR = Outcome.ERROR
_LATE = Outcome.LATE


class Metrics:
    """Everything counted; the engine and the runtime update it, views read it."""

    def __init__(self, max_event_names: int) -> None:
        self._max_names = max_event_names
        self.rules: dict[str, RuleMetrics] = {}
        # event name -> [messages, bytes], one table per direction
        self._events_c2s: dict[str, list[int]] = {}
        self._events_s2c: dict[str, list[int]] = {}
        self._names: set[str] = set()
        # [messages, bytes] per direction
        self._c2s = [0, 0]
        self._s2c = [0, 0]
        self.heartbeat = Histogram()
        self.upgrade = Histogram()
        self.decode_errors = 0
        self.evictions: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.extra: Counter[str] = Counter()

    def event_name(self, name: str) -> str:
        """``name`` itself while under the cap (or already known), else ``(other)``."""
        if name in self._names:
            return name
        if len(self._names) < self._max_names:
            self._names.add(name)
            return name
        self.extra["event_names_folded"] += 1
        return OTHER

    @property
    def events(self) -> dict[tuple[str, Direction], list[int]]:
        """``(event name, direction) -> [messages, bytes]`` (a copy)."""
        out = {(name, _C2S): list(v) for name, v in self._events_c2s.items()}
        out.update({(name, _S2C): list(v) for name, v in self._events_s2c.items()})
        return out

    @property
    def event_slots(self) -> int:
        return len(self._events_c2s) + len(self._events_s2c)

    def message(self, label: str, direction: Direction, size: int) -> None:
        if direction is _C2S:
            totals = self._c2s
            table = self._events_c2s
        else:
            totals = self._s2c
            table = self._events_s2c
        totals[0] += 1
        totals[1] += size
        slot = table.get(label)
        if slot is None:
            # A name seen for the first time in this direction (or a folded one).
            name = self.event_name(label)
            slot = table.get(name)
            if slot is None:
                table[name] = [1, size]
                return
        slot[0] += 1
        slot[1] += size

    def pair(self, rule: str, outcome: Outcome, duration_s: float, slow: bool) -> None:
        rm = self.rules.get(rule)
        if rm is None:
            rm = self.rules[rule] = RuleMetrics()
        rm.outcomes[outcome._value_] += 1
        if slow:
            rm.slow += 1
        if outcome is _OK or outcome is _ERROR or outcome is _LATE:
            rm.latency.observe(duration_s)

    def snapshot(
        self,
        pending: int,
        sessions_by_transport: dict[str, int],
        drops: dict[str, int] | None = None,
    ) -> MetricsSnapshot:
        all_drops = dict(self.drops)
        for k, v in (drops or {}).items():
            all_drops[k] = all_drops.get(k, 0) + v
        return MetricsSnapshot(
            rules=tuple(
                RuleStats(
                    rule=name,
                    outcomes=dict(rm.outcomes),
                    slow=rm.slow,
                    latency=rm.latency.summary(),
                )
                for name, rm in sorted(self.rules.items())
            ),
            events=tuple(
                EventStats(event=name, direction=d.value, messages=v[0], bytes=v[1])
                for (name, d), v in sorted(
                    self.events.items(), key=lambda i: (i[0][0], i[0][1].value)
                )
            ),
            pending=pending,
            sessions_by_transport=sessions_by_transport,
            messages_by_direction={d.value: totals[0] for d, totals in self._totals() if totals[0]},
            bytes_by_direction={d.value: totals[1] for d, totals in self._totals() if totals[0]},
            heartbeat_rtt=self.heartbeat.summary(),
            upgrade_duration=self.upgrade.summary(),
            decode_errors=self.decode_errors,
            evictions=dict(self.evictions),
            drops=all_drops,
            extra=dict(self.extra),
        )

    def _totals(self) -> tuple[tuple[Direction, list[int]], ...]:
        return ((_C2S, self._c2s), (_S2C, self._s2c))

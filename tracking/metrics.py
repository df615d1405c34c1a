"""Live metrics of the tracker: counters and fixed-bucket latency histograms, all bounded.

Histograms use fixed logarithmic buckets (:data:`LOG_BOUNDS`), so memory does
not depend on traffic.  While a histogram has seen at most :data:`EXACT_SAMPLES` values it
keeps them and its quantiles are exact; beyond, they are bucket estimates (the bucket's
upper bound, within one bucket: about 26 %), and its summary says so (``exact``).
:meth:`Histogram.with_bounds` makes the same histogram over other fixed bounds (the admin
listener's Prometheus buckets, :data:`ECHO_BOUNDS`).  Every bounded name table folds what
is past its cap into one label, :data:`OTHER`.  Event names are capped: past
``max_event_names`` distinct names, new ones fold into it.  The per-frame counters are
keyed by plain strings and split by direction with an identity test: hashing an ``Enum``
member runs Python code.  The compiled build compiles this module (``tracking.compiled``):
the engine calls it per frame and per pair.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from typing import Final

from socketio_trace_proxy.tracking.records import Outcome, PairRecord
from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.views import (
    EchoStats,
    EventStats,
    LatencySummary,
    MetricsSnapshot,
    RuleStats,
)

OTHER = "(other)"
"""The one label that names everything folded away by a bounded table (events, series)."""
LOG_BOUNDS: tuple[float, ...] = tuple(10 ** (e / 10) for e in range(-50, 31))
"""The tracker's buckets: 10 per decade, 1e-5 .. 1e3 s."""
ECHO_BOUNDS: tuple[float, ...] = (
    *(
        round(m * 10.0**e, 9)
        for e in range(-4, 1)
        for m in (1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.3, 8.0)
    ),
    10.0,
)
"""Input-to-echo buckets: 10 per decade (0.1 ms .. 10 s) at round values, so that the
Prometheus histogram of an echo rule is exactly the tracker's."""
EXACT_SAMPLES = 256
"""Values a histogram keeps for exact quantiles; past that many, quantiles are estimates."""


class Histogram:
    """Counts per fixed bucket (upper bounds ``bounds``, one overflow bucket after them),
    plus count, sum, max and the first ``keep`` values (exact quantiles while they last)."""

    __slots__ = ("bounds", "count", "counts", "keep", "max", "samples", "sum")

    def __init__(self, bounds: tuple[float, ...] = LOG_BOUNDS, keep: int = EXACT_SAMPLES) -> None:
        self.bounds = bounds  # upper bounds (inclusive); one overflow bucket after them
        self.keep = keep
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0
        self.max = 0.0
        self.samples: list[float] = []

    @staticmethod
    def with_bounds(bounds: Sequence[float], keep: int = 0) -> HistogramKind:
        """Histograms over ``bounds`` (positive, strictly increasing) instead of the log
        buckets, keeping ``keep`` values for exact quantiles: call the result for one."""
        return HistogramKind(bounds, keep)

    def observe(self, value: float) -> None:
        if value < 0.0:  # noqa: PLR1730 - clock oddities; max() would cost a call per pair
            value = 0.0
        # bisect_left(bounds, value), natively: the same comparisons, no call out
        bounds = self.bounds
        lo = 0
        hi = len(bounds)
        while lo < hi:
            mid = (lo + hi) >> 1
            if bounds[mid] < value:
                lo = mid + 1
            else:
                hi = mid
        self.counts[lo] += 1
        self.count += 1
        self.sum += value
        if value > self.max:  # noqa: PLR1730 - as above
            self.max = value
        if self.count <= self.keep:
            self.samples.append(value)

    @property
    def exact(self) -> bool:
        """Whether quantiles come from every value seen (not from the buckets)."""
        return self.count <= self.keep

    def quantile(self, q: float) -> float | None:
        if self.count == 0:
            return None
        if self.count <= self.keep:
            return _nearest_rank(sorted(self.samples), q)
        bounds = self.bounds
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                upper = bounds[i] if i < len(bounds) else self.max
                return min(upper, self.max)
        return self.max

    def summary(self) -> LatencySummary:
        p50: float | None
        p95: float | None
        p99: float | None
        if self.count and self.count <= self.keep:
            ranked = sorted(self.samples)
            p50, p95, p99 = (_nearest_rank(ranked, q) for q in (0.50, 0.95, 0.99))
        else:
            p50, p95, p99 = (self.quantile(q) for q in (0.50, 0.95, 0.99))
        return LatencySummary(
            count=self.count,
            p50_s=p50,
            p95_s=p95,
            p99_s=p99,
            max_s=self.max if self.count else None,
            exact=self.count <= self.keep,
        )


def _nearest_rank(ranked: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values by the nearest-rank method."""
    return ranked[max(0, math.ceil(q * len(ranked)) - 1)]


class HistogramKind:
    """Histograms over one set of checked bounds (:meth:`Histogram.with_bounds`): calling
    it makes a new, empty one."""

    __slots__ = ("bounds", "keep")

    def __init__(self, bounds: Sequence[float], keep: int) -> None:
        upper = tuple(float(b) for b in bounds)
        if not upper or upper[0] <= 0 or any(a >= b for a, b in pairwise(upper)):
            raise ValueError("histogram bounds must be positive and strictly increasing")
        self.bounds = upper
        self.keep = keep

    def __call__(self) -> Histogram:
        return Histogram(self.bounds, self.keep)


EchoHistogram = Histogram.with_bounds(ECHO_BOUNDS, keep=EXACT_SAMPLES)


class EchoMetrics:
    """One echo rule: its latency histogram, slow echoes, inputs never (or too late)
    answered, and measurements evicted to keep a session's slots bounded."""

    __slots__ = ("evicted", "latency", "slow", "unanswered")

    def __init__(self) -> None:
        self.latency = EchoHistogram()
        self.slow = 0
        self.unanswered = 0
        self.evicted = 0


class RuleMetrics:
    """One rule's (or ack label's) outcomes, slow count and latency.  Ok pairs, nearly all
    of them, are counted in ``ok`` (an integer slot, no dict update per pair); ``outcomes``
    holds the others, and ``"ok"``'s place in its order (see :meth:`outcome_counts`)."""

    __slots__ = ("latency", "ok", "outcomes", "slow")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.ok = 0
        self.slow = 0
        self.latency = Histogram()

    def outcome_counts(self) -> dict[str, int]:
        """Outcome value -> count, in the order the outcomes were first seen."""
        ok = self.ok
        return {name: ok if name == "ok" else n for name, n in self.outcomes.items()}


_C2S: Final = Direction.CLIENT_TO_SERVER
_S2C: Final = Direction.SERVER_TO_CLIENT
_OK: Final = Outcome.OK
_ERROR: Final = Outcome.ERROR
_LATE: Final = Outcome.LATE
_REJECTED: Final = Outcome.REJECTED
_TIMEOUT: Final = Outcome.TIMEOUT
_PAIR_RECORD: Final = PairRecord  # a C static in the compiled build


class Metrics:
    """Everything counted; the engine and the runtime update it, views read it."""

    def __init__(self, max_event_names: int, echo_rules: Iterable[str] = ()) -> None:
        self._max_names = max_event_names
        self.rules: dict[str, RuleMetrics] = {}
        self.echo: dict[str, EchoMetrics] = {name: EchoMetrics() for name in echo_rules}
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
        if outcome is _OK:
            rm.ok += 1
            if rm.ok == 1:
                rm.outcomes["ok"] = 0  # its place in the order; counted in ``ok``
        else:
            name = outcome._value_
            rm.outcomes[name] = rm.outcomes.get(name, 0) + 1
        if slow:
            rm.slow += 1
        if outcome is _OK or outcome is _ERROR or outcome is _LATE or outcome is _REJECTED:
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
                    outcomes=rm.outcome_counts(),
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
            echo=tuple(
                EchoStats(
                    rule=name,
                    slow=em.slow,
                    unanswered=em.unanswered,
                    evicted=em.evicted,
                    latency=em.latency.summary(),
                    buckets=tuple(em.latency.counts),
                    sum_s=em.latency.sum,
                )
                for name, em in self.echo.items()
            ),
            heartbeat_rtt=self.heartbeat.summary(),
            upgrade_duration=self.upgrade.summary(),
            decode_errors=self.decode_errors,
            evictions=dict(self.evictions),
            drops=all_drops,
            extra=dict(self.extra),
        )

    def _totals(self) -> tuple[tuple[Direction, list[int]], ...]:
        return ((_C2S, self._c2s), (_S2C, self._s2c))


class DurationSeries:
    """Request duration histograms per (rule, outcome) over fixed ``bounds`` (the admin
    listener's Prometheus buckets), bounded in series count.

    Each series is a :class:`Histogram` over ``bounds``.  Past ``max_series`` new (rule,
    outcome) pairs are folded into rule :data:`OTHER` and counted in ``folded``.  Here, not
    in the admin listener, so that the compiled build compiles the per-record work.
    """

    __slots__ = ("_count", "_histogram", "_max_series", "_series", "bounds", "folded")

    def __init__(self, bounds: Sequence[float], max_series: int) -> None:
        self._histogram = Histogram.with_bounds(bounds)
        self.bounds = self._histogram.bounds
        self._max_series = max_series
        # rule -> outcome -> histogram: two lookups of interned strings per record, no
        # (rule, outcome) tuple built, hashed and compared
        self._series: dict[str, dict[str, Histogram]] = {}
        self._count = 0
        self.folded = 0

    def observe(self, record: PairRecord) -> None:
        self.add(record.rule, record.outcome._value_, record.duration_s)

    def add(self, rule: str, outcome: str, duration_s: float) -> None:
        by_outcome = self._series.get(rule)
        series = by_outcome.get(outcome) if by_outcome is not None else None
        if series is None:
            series = self._new_series(rule, outcome)
        series.observe(duration_s)

    def _new_series(self, rule: str, outcome: str) -> Histogram:
        """The series of a (rule, outcome) not seen yet: a new one, or past
        ``max_series`` the one of (:data:`OTHER`, outcome)."""
        if self._count >= self._max_series:
            self.folded += 1
            rule = OTHER
            other = self._series.get(OTHER)
            series = other.get(outcome) if other is not None else None
            if series is not None:
                return series
        by_outcome = self._series.get(rule)
        if by_outcome is None:
            by_outcome = self._series[rule] = {}
        series = by_outcome[outcome] = self._histogram()
        self._count += 1
        return series

    def series(self) -> list[tuple[str, str, list[int], float]]:
        """(rule, outcome, per-bucket counts incl. +Inf, sum) for every series."""
        return [
            (r, o, list(h.counts), h.sum)
            for r, by_outcome in sorted(self._series.items())
            for o, h in sorted(by_outcome.items())
        ]

    def __len__(self) -> int:
        return self._count


class LatencyBucket:
    """One rule's finished requests in the current live-stream interval: how many, how
    many errors and timeouts, and a bounded reservoir of ok durations."""

    __slots__ = ("count", "errors", "samples", "timeouts")

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.count = 0
        self.errors = 0
        self.timeouts = 0


class LatencyWindow:
    """What the live stream takes from each finished request (the admin listener's per-record
    work, compiled): the duration histograms, and per rule a :class:`LatencyBucket` for the
    current interval (:meth:`roll` starts the next); timed-out pairs also go to
    ``timeouts``.  Reservoir sampling (``random``: uniform in [0, 1)) keeps each
    interval's percentiles bounded in cost."""

    __slots__ = ("_random", "buckets", "histograms", "samples_per_rule", "timeouts")

    def __init__(
        self,
        histograms: DurationSeries,
        samples_per_rule: int,
        random: Callable[[], float],
        timeouts: deque[PairRecord],
    ) -> None:
        self.histograms = histograms
        self.samples_per_rule = samples_per_rule
        self._random = random
        self.timeouts = timeouts
        self.buckets: dict[str, LatencyBucket] = {}

    def roll(self) -> dict[str, LatencyBucket]:
        """The interval's buckets; the next interval starts empty."""
        buckets = self.buckets
        self.buckets = {}
        return buckets

    def take(self, records: Sequence[object], other: Callable[[object], None]) -> int:
        """Take the records of one tracker flush, in order (anything but a pair goes to
        ``other``); returns how many failed (counted by the caller, never raised)."""
        failed = 0
        histograms = self.histograms
        buckets = self.buckets
        keep = self.samples_per_rule
        for record in records:
            try:
                if type(record) is not _PAIR_RECORD:
                    other(record)
                    continue
                pair = record
                rule = pair.rule
                outcome = pair.outcome
                duration = pair.duration_s
                histograms.add(rule, outcome._value_, duration)
                bucket = buckets.get(rule)
                if bucket is None:
                    bucket = buckets[rule] = LatencyBucket()
                bucket.count += 1
                if outcome is _ERROR:
                    bucket.errors += 1
                elif outcome is _TIMEOUT:
                    bucket.timeouts += 1
                    self.timeouts.append(pair)
                    continue
                elif outcome is not _OK:
                    continue
                samples = bucket.samples
                if len(samples) < keep:
                    samples.append(duration)
                else:
                    slot = int(self._random() * bucket.count)  # uniform in [0, count)
                    if slot < keep:
                        samples[slot] = duration
            except Exception:
                failed += 1
        return failed

"""What a replay run came to: per-rule counts and latencies, the summary table, JSON.

:class:`Summary` takes :class:`~tracking.replay.session.SessionResult` values as sessions
finish and keeps bounded state: counts per rule and status, latency samples per rule
(reservoir-sampled past ``max_samples``), and the first ``max_kept`` failing sessions in
full.  Rendering is plain text (a table) or a JSON object.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from socketio_trace_proxy.tracking.replay.diff import jsonable
from socketio_trace_proxy.tracking.replay.session import FAILING, SessionResult, Status


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Reservoir:
    """At most ``limit`` samples, uniformly chosen among all offered (Algorithm R)."""

    def __init__(self, limit: int, rng: random.Random) -> None:
        self.limit = limit
        self.values: list[float] = []
        self.seen = 0
        self._rng = rng

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.limit:
            self.values.append(value)
            return
        j = self._rng.randrange(self.seen)
        if j < self.limit:
            self.values[j] = value


@dataclass(slots=True)
class RuleStats:
    counts: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    then: Reservoir | None = None
    now: Reservoir | None = None


class Summary:
    def __init__(self, *, max_samples: int = 100_000, max_kept: int = 200) -> None:
        self._rng = random.Random(0)
        self._max_samples = max_samples
        self._max_kept = max_kept
        self.rules: dict[str, RuleStats] = {}
        self.sessions = 0
        self.failed_sessions = 0
        self.errors = 0
        self.extra = 0
        self.skipped = 0
        self.kept: list[SessionResult] = []
        self.not_kept = 0
        self.elapsed_s = 0.0

    def add(self, result: SessionResult) -> None:
        self.sessions += 1
        self.extra += result.extra
        self.skipped += result.skipped
        if result.error is not None:
            self.errors += 1
        for r in result.replies:
            stats = self.rules.get(r.rule)
            if stats is None:
                stats = self.rules[r.rule] = RuleStats(
                    then=Reservoir(self._max_samples, self._rng),
                    now=Reservoir(self._max_samples, self._rng),
                )
            stats.counts[r.status] += 1
            if r.then_s is not None and stats.then is not None:
                stats.then.add(r.then_s)
            if r.now_s is not None and stats.now is not None:
                stats.now.add(r.now_s)
        if result.failed:
            self.failed_sessions += 1
            if len(self.kept) < self._max_kept:
                self.kept.append(result)
            else:
                self.not_kept += 1

    @property
    def replies(self) -> int:
        return sum(sum(s.counts.values()) for s in self.rules.values())

    @property
    def ok(self) -> bool:
        return self.failed_sessions == 0

    def count(self, status: Status) -> int:
        return sum(s.counts[status] for s in self.rules.values())

    # --- rendering ----------------------------------------------------------------------

    def table(self) -> str:
        """The per-rule summary table (latencies in milliseconds)."""
        head = ("rule", "match", "differ", "missing", "unexp", "then p50", "now p50", "p95", "p99")
        rows: list[tuple[str, ...]] = [head]
        for name in sorted(self.rules):
            s = self.rules[name]
            then = sorted(s.then.values) if s.then else []
            now = sorted(s.now.values) if s.now else []
            rows.append(
                (
                    name,
                    *(str(s.counts[st]) for st in Status),
                    _ms(percentile(then, 50)),
                    _ms(percentile(now, 50)),
                    _ms(percentile(now, 95)),
                    _ms(percentile(now, 99)),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        rate = self.replies / self.elapsed_s if self.elapsed_s > 0 else 0.0
        lines.append("")
        lines.append(
            f"{self.sessions} sessions ({self.failed_sessions} with problems, {self.errors} "
            f"errors) in {self.elapsed_s:.1f} s: {self.replies} replies, {rate:.1f} replies/s, "
            f"{self.sessions / self.elapsed_s if self.elapsed_s > 0 else 0.0:.2f} sessions/s"
        )
        if self.extra or self.skipped:
            lines.append(
                f"{self.extra} live replies to requests the recording saw unanswered, "
                f"{self.skipped} client acks skipped (the server did not ask)"
            )
        return "\n".join(lines)

    def problems(self, limit: int = 20) -> str:
        """Per-session lines for the sessions with problems (the first ``limit``)."""
        out: list[str] = []
        for result in self.kept[:limit]:
            out.append(f"session {result.session} (copy {result.copy}, live {result.live_sid}):")
            if result.error is not None:
                out.append(f"  error: {result.error}")
            for r in result.replies:
                if r.status not in FAILING:
                    continue
                note = f" ({r.note})" if r.note else ""
                out.append(f"  {r.rule} [{r.request_event}]: {r.status.value}{note}")
                out.extend(f"    {d.describe()}" for d in r.differences)
        more = len(self.kept) - limit + self.not_kept
        if more > 0:
            out.append(f"... and {more} more sessions with problems")
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        rules = {}
        for name, s in sorted(self.rules.items()):
            then = sorted(s.then.values) if s.then else []
            now = sorted(s.now.values) if s.now else []
            rules[name] = {
                **{st.value: s.counts[st] for st in Status},
                "then_p50_s": percentile(then, 50),
                "now_p50_s": percentile(now, 50),
                "now_p95_s": percentile(now, 95),
                "now_p99_s": percentile(now, 99),
            }
        return {
            "ok": self.ok,
            "sessions": self.sessions,
            "failed_sessions": self.failed_sessions,
            "errors": self.errors,
            "replies": self.replies,
            "elapsed_s": self.elapsed_s,
            "extra": self.extra,
            "skipped": self.skipped,
            "rules": rules,
            "problems": [_session_json(r) for r in self.kept],
        }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _session_json(result: SessionResult) -> dict[str, Any]:
    return {
        "session": result.session,
        "copy": result.copy,
        "live_sid": result.live_sid,
        "error": result.error,
        "replies": [
            {
                "rule": r.rule,
                "request_event": r.request_event,
                "status": r.status.value,
                "then_s": r.then_s,
                "now_s": r.now_s,
                "note": r.note,
                "differences": [
                    {
                        "path": d.path,
                        "kind": d.kind,
                        "then": jsonable(d.then),
                        "now": jsonable(d.now),
                    }
                    for d in r.differences
                ],
            }
            for r in result.replies
        ],
    }

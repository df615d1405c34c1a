"""Read-only views the tracker answers queries with (monitor, admin API, embedding code).

All are frozen dataclasses of plain values, so ``dataclasses.asdict`` turns them into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from socketio_trace_proxy.tracking.records import Record, fast_constructor


@dataclass(frozen=True, slots=True)
class PendingView:
    """A request still waiting for its reply."""

    span_id: str
    session_id: str
    namespace: str
    rule: str
    operation: str
    request_event: str
    initiator: str  # Direction.value
    ack_id: int | None
    match_key: str | None
    started_wall: float
    age_s: float
    timeout_s: float


@dataclass(frozen=True, slots=True)
class SessionView:
    session_id: str
    transport: str  # Transport.value
    remote: str | None
    opened_wall: float
    upgraded: bool
    namespaces: tuple[str, ...]
    pending: int
    messages_in: int  # client -> server
    messages_out: int  # server -> client
    bytes_in: int
    bytes_out: int
    heartbeat_rtt_s: float | None
    echo_count: int = 0
    echo_avg_s: float | None = None
    echo_max_s: float | None = None


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Quantiles of a latency: ``exact`` while computed from every value seen, else bucket
    estimates (each the upper bound of its bucket, capped at the max)."""

    count: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    exact: bool = True


@dataclass(frozen=True, slots=True)
class EchoStats:
    """An echo rule: input -> first output latency; ``unanswered`` inputs saw no output
    within the rule's timeout; ``evicted`` were dropped to bound a session's slots;
    ``buckets`` and ``sum_s`` are the histogram behind ``latency`` (for Prometheus)."""

    rule: str
    slow: int
    unanswered: int
    evicted: int
    latency: LatencySummary
    buckets: tuple[int, ...] = ()  # per bucket of tracking.metrics.ECHO_BOUNDS, then +Inf
    sum_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RuleStats:
    rule: str
    outcomes: dict[str, int]  # Outcome.value -> count
    slow: int
    latency: LatencySummary


@dataclass(frozen=True, slots=True)
class EventStats:
    event: str  # rule template or concrete one-way event name (folded when too many)
    direction: str
    messages: int
    bytes: int


@dataclass(frozen=True, slots=True)
class SamplingInfo:
    """Head-based session sampling (``tracking.session_sample_rate``): metrics, pending
    requests and records cover ``sampled_sessions`` of the ``sessions`` whose handshake was
    seen; the unsampled ones are only counted (messages and bytes by direction, as the
    tracker saw them: WebSocket messages of upgraded unsampled sessions are not shown to it
    and are counted by the relay)."""

    rate: float
    sessions: int
    sampled_sessions: int
    unsampled_messages: dict[str, int]  # Direction.value -> count
    unsampled_bytes: dict[str, int]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    rules: tuple[RuleStats, ...]
    events: tuple[EventStats, ...]
    pending: int
    sessions_by_transport: dict[str, int]
    messages_by_direction: dict[str, int]
    bytes_by_direction: dict[str, int]
    heartbeat_rtt: LatencySummary
    upgrade_duration: LatencySummary
    decode_errors: int
    evictions: dict[str, int]  # what -> count (sessions, pending, ...)
    drops: dict[str, int]  # what -> count (activity buffer, sink queues, ...)
    extra: dict[str, int] = field(default_factory=dict)
    echo: tuple[EchoStats, ...] = ()
    sampling: SamplingInfo | None = None  # None: every session is traced


@dataclass(frozen=True, slots=True)
class ActivityItem:
    """One entry of the recent-activity ring; ``seq`` increases by one per item."""

    seq: int
    record: Record


new_activity_item = fast_constructor(ActivityItem)

"""The correlation engine's state: sessions, pending requests, remembered timeouts.

Plain mutable slots dataclasses, changed only by the modules of :mod:`tracking.correlation`.
A :class:`Pending` request is indexed three ways at once: in the engine-wide table (by id,
oldest first), in its session (by id), and by what answers it (the session's ``acks`` map
for acks, a :class:`Group` per rule and namespace for configured pairs).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from socketio_trace_proxy.tracking.records import PairKind, SessionRef
from socketio_trace_proxy.tracking.rules import Rule
from socketio_trace_proxy.tracking.traffic import Direction, Transport


class Pending:
    """A request waiting for its reply.

    ``label`` is its metrics name (the rule's name, or ``"<event> -> ack"``); ``operation``
    the name every record of it carries whatever its outcome (the rule's
    ``"<request> -> <first response>"``, or the ack label).  ``parent`` is the trace
    context (trace id, span id) of the request that carried it, if the client sent one.
    ``rule`` is ``None`` for acks.  A plain class with its own ``__init__`` (not a
    dataclass): one is made per request, and the compiled build makes a dataclass's
    generated ``__init__`` an interpreted function setting each field one by one.
    """

    __slots__ = (
        "ack_id",
        "ack_key",
        "at",
        "captures",
        "chunks",
        "deadline",
        "first_chunk_at",
        "id",
        "initiator",
        "key",
        "kind",
        "label",
        "namespace",
        "operation",
        "parent",
        "payload",
        "request_event",
        "rule",
        "session",
        "size",
        "slow_s",
        "span_id",
        "timeout_s",
        "transport",
        "wall",
    )

    def __init__(  # noqa: PLR0917 - built positionally, once per request
        self,
        id: int,
        span_id: str,
        session: SessionState,
        namespace: str,
        kind: PairKind,
        rule: Rule | None,
        label: str,
        operation: str,
        request_event: str,
        initiator: Direction,
        ack_id: int | None,
        key: str | None,
        captures: Mapping[str, str],
        at: float,
        wall: float,
        deadline: float,
        timeout_s: float,
        slow_s: float,
        transport: Transport,
        size: int,
        payload: str | None,
        parent: tuple[str, str] | None,
    ) -> None:
        self.id = id
        self.span_id = span_id
        self.session = session
        self.namespace = namespace
        self.kind = kind
        self.rule = rule
        self.label = label
        self.operation = operation
        self.request_event = request_event
        self.initiator = initiator
        self.ack_id = ack_id
        self.key = key
        self.captures = captures
        self.at = at
        self.wall = wall
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.slow_s = slow_s
        self.transport = transport
        self.size = size
        self.payload = payload
        self.parent = parent
        self.first_chunk_at: float | None = None
        self.chunks = 0
        # an ack's key in its session's ``acks`` (the same object: removing it there finds
        # it by identity, without comparing tuples)
        self.ack_key: tuple[str, int, bool] | None = None

    def __repr__(self) -> str:
        return f"Pending(id={self.id!r}, label={self.label!r}, session={self.session.ref!r})"

    def fits(self, captures: tuple[tuple[str, str], ...]) -> bool:
        return not captures or all(self.captures.get(n) == v for n, v in captures)


@dataclass(slots=True, eq=False)
class Group:
    """Pending requests of one rule in one (session, namespace): FIFO order plus key index."""

    order: OrderedDict[int, Pending] = field(default_factory=OrderedDict)
    by_key: dict[str, deque[Pending]] = field(default_factory=dict)

    def add(self, p: Pending) -> None:
        self.order[p.id] = p
        if p.key is not None:
            self.by_key.setdefault(p.key, deque()).append(p)

    def remove(self, p: Pending) -> None:
        self.order.pop(p.id, None)
        if p.key is not None:
            dq = self.by_key.get(p.key)
            if dq is not None:
                dq.remove(p)
                if not dq:
                    del self.by_key[p.key]

    def find(self, key: str | None, captures: tuple[tuple[str, str], ...]) -> Pending | None:
        if key is not None:
            for p in self.by_key.get(key, ()):
                if p.fits(captures):
                    return p
            # A keyed reply answers a request that carried no key, first in first out.
            for p in self.order.values():
                if p.key is None and p.fits(captures):
                    return p
            return None
        for p in self.order.values():
            if p.fits(captures):
                return p
        return None


class EchoStart(NamedTuple):
    """An input of an echo rule waiting for its first output (the earliest unanswered one
    of its slot: typing ahead does not restart the measurement)."""

    at: float
    wall: float
    event: str
    transport: Transport
    size: int
    traceparent: str | None


EchoSlot = tuple[int, str, str | None]
"""(rule index, namespace, match-key value or None) of an echo measurement."""


class TimedOut(NamedTuple):
    """A timed-out request remembered so that its late reply can be linked to it: the
    request itself (no longer pending) and the trace its timeout record went to."""

    trace_id: str
    request: Pending


@dataclass(slots=True, eq=False)
class SessionState:
    """One Engine.IO session as the engine sees it."""

    ref: SessionRef
    transport: Transport
    remote: str | None
    opened_wall: float
    upgraded: bool = False
    namespaces: dict[str, None] = field(default_factory=dict)
    connecting: OrderedDict[str, float] = field(default_factory=OrderedDict)
    pending: dict[int, Pending] = field(default_factory=dict)  # oldest first
    # (namespace, ack id, initiated by the client?) -> request
    acks: dict[tuple[str, int, bool], Pending] = field(default_factory=dict)
    groups: dict[tuple[str, int], Group] = field(default_factory=dict)
    timed_out: OrderedDict[int, TimedOut] = field(default_factory=OrderedDict)
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    heartbeat_rtt_s: float | None = None
    # echo rules: the inputs awaiting their first output (bounded per session), and the
    # session's own echo latency (count, sum, max)
    echoes: dict[EchoSlot, EchoStart] | None = None  # made at the first echo-rule input
    echo_count: int = 0
    echo_sum_s: float = 0.0
    echo_max_s: float = 0.0
    # heartbeats since the last HEARTBEAT record: count, RTT sum/min/max, first PING wall
    hb_count: int = 0
    hb_sum_s: float = 0.0
    hb_min_s: float = 0.0
    hb_max_s: float = 0.0
    hb_start_wall: float = 0.0
    hb_last_wall: float = 0.0  # the latest PONG

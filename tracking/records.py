"""Records the correlation engine emits: what exporters and the monitor consume.

Ids follow W3C trace context sizes (``trace_id`` 32 hex digits, ``span_id`` 16) so that
exporters never have to invent them; the tracker draws them from an injectable generator.

Records are frozen slots dataclasses.  The engine builds them with :func:`fast_constructor`
(``new_pair_record`` and friends): the same objects, built about eight times faster than a
frozen dataclass's own ``__init__`` (which pays a Python-level ``object.__setattr__`` per
field; a ``PairRecord`` has 27).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from enum import Enum
from typing import Any, TypeVar, cast

from socketio_trace_proxy.tracking.traffic import Direction, Transport

_T = TypeVar("_T")


def fast_constructor(cls: type[_T]) -> type[_T]:
    """A drop-in constructor for the frozen slots dataclass ``cls``: same signature, and it
    returns genuine ``cls`` instances (frozen from then on, equal to ``cls(...)``).

    It is a mutable twin of ``cls``: a subclass that adds no slots (so the very same
    layout) and sets attributes as ``object`` does (not frozen), whose ``__init__``
    (generated, like a dataclass's own) stores the fields and then switches the
    instance's class to ``cls``, which CPython allows between classes of identical
    layout.  As a subclass adding nothing, the switch finds both classes share their
    layout's base at once (a twin beside ``cls`` makes CPython compare the two slot
    lists, every record).  Both ``__setattr__`` and ``__delattr__`` are ``object``'s: with
    only one of them the type's attribute slot would call Python code per store.  The
    switch is the ``__init__``'s last line, not a ``__post_init__``: one Python frame per
    record, not two.
    """
    slots = getattr(cls, "__slots__", None)
    names: list[str] = []
    params: list[str] = []
    defaults: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not MISSING or not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain positional fields")
        names.append(f.name)
        if f.default is MISSING:
            params.append(f.name)
        else:
            defaults[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
    if slots is None or tuple(slots) != tuple(names):
        raise TypeError(f"{cls.__name__} is not a slots dataclass")
    body = "".join(f"    self.{n} = {n}\n" for n in names)
    source = f"def __init__(self, {', '.join(params)}):\n{body}    self.__class__ = _cls\n"
    namespace: dict[str, Any] = {"_cls": cls, **defaults}
    exec(source, namespace)  # field names only, as dataclasses does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    twin = type(
        cls.__name__,
        (cls,),
        {
            "__slots__": (),
            "__init__": init,
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__module__": cls.__module__,
        },
    )
    return cast(type[_T], twin)


class Outcome(Enum):
    """How a request ended (issue 3, "Outcomes")."""

    OK = "ok"
    ERROR = "error"
    REJECTED = "rejected"  # answered by one of the rule's configured negative replies
    TIMEOUT = "timeout"
    LATE = "late"  # a reply that arrived after its request had timed out
    ABANDONED = "abandoned"  # the session closed while the request was pending
    EVICTED = "evicted"  # dropped to keep the pending tables within their limits


class PairKind(Enum):
    ACK = "ack"  # EVENT with ack id N -> ACK with id N
    EVENT_PAIR = "event_pair"  # configured request event -> response event
    STREAM = "stream"  # configured request -> chunk events ... -> completion event
    ECHO = "echo"  # an input -> the first following output (recorded only when slow)


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Identifies the Engine.IO session a record belongs to, and its handshake span;
    ``client_address``/``client_port``: the client as the proxy's TCP peer when its
    handshake request arrived (``None`` when not known)."""

    session_id: str
    trace_id: str
    span_id: str
    client_address: str | None = None
    client_port: int | None = None


@dataclass(frozen=True, slots=True)
class PairRecord:
    """A request and what became of it.

    ``operation`` is the low-cardinality name, the same for every record of one operation
    whatever its outcome: ``"<request> -> <first configured response>"`` for a rule (its
    templates; the request alone for a rule that configures only error events), or
    ``"<event> -> ack"`` for acks.  The outcome and ``error_type`` are fields of their own.
    ``request_event``/``response_event`` are the concrete names seen.  ``duration_s`` runs
    from the request frame to the response frame as seen at the proxy, or to the timeout
    deadline.  ``linked_span_id`` on a LATE record is the span of the TIMEOUT record it
    answers.  ``parent_span_id`` (and ``trace_id``) come from the ``traceparent`` of the
    HTTP request that carried the request packet (a polling request, or the WebSocket's
    upgrade request) when the client sent one; otherwise each pair has a trace of its own.
    """

    trace_id: str
    span_id: str
    session: SessionRef
    namespace: str
    kind: PairKind
    rule: str
    operation: str
    initiator: Direction
    request_event: str
    response_event: str | None
    ack_id: int | None
    match_key: str | None
    outcome: Outcome
    error_type: str | None
    slow: bool
    start_wall: float
    duration_s: float
    first_chunk_s: float | None
    chunk_count: int
    request_transport: Transport
    response_transport: Transport | None
    request_size: int
    response_size: int
    request_payload: str | None = None
    response_payload: str | None = None
    linked_span_id: str | None = None
    sampled: bool = True
    parent_span_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A one-way event that no rule or ack pairs (client push or server push)."""

    session: SessionRef
    namespace: str
    direction: Direction
    transport: Transport
    event: str
    size: int
    wall: float
    payload: str | None = None


class LifecycleKind(Enum):
    HANDSHAKE = "handshake"  # Engine.IO OPEN
    NAMESPACE_CONNECT = "namespace_connect"  # Socket.IO CONNECT answered (ok or error)
    UPGRADE = "upgrade"  # polling -> websocket
    HEARTBEAT = "heartbeat"  # PING/PONG round trips of a session, aggregated
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class LifecycleRecord:
    """A short span per handshake, namespace connect and upgrade; a point at close.

    For HANDSHAKE, ``span_id`` equals ``session.span_id``, ``parent_span_id`` is taken
    from the client's ``traceparent`` when it sent one, and the span runs from the
    handshake request's arrival to the OPEN packet.  For CLOSE, ``close_code`` and
    ``close_initiator`` say how a WebSocket ended (the code of the first close frame and
    the side that sent it; ``None``: the proxy gave up on a vanished leg) or which side
    sent the Engine.IO CLOSE packet.  A HEARTBEAT record aggregates a session's PING ->
    PONG round trips (up to :data:`HEARTBEATS_PER_RECORD`, and the rest at its close): it
    spans from the first PING to the last PONG, ``rtt_count`` round trips whose RTT is
    ``rtt_min_s``/``rtt_avg_s``/``rtt_max_s`` (all ``None`` for the other kinds).
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    session: SessionRef
    kind: LifecycleKind
    namespace: str | None
    transport: Transport
    ok: bool
    error: str | None
    start_wall: float
    duration_s: float
    detail: str | None = None
    close_code: int | None = None
    close_initiator: Direction | None = None
    rtt_count: int | None = None
    rtt_min_s: float | None = None
    rtt_avg_s: float | None = None
    rtt_max_s: float | None = None


Record = PairRecord | MessageRecord | LifecycleRecord

HEARTBEATS_PER_RECORD = 20
"""Round trips one HEARTBEAT record aggregates (about 8 minutes at Engine.IO's default
25 s ping interval); a closing session's remaining ones make one more."""


new_pair_record = fast_constructor(PairRecord)
new_message_record = fast_constructor(MessageRecord)
new_lifecycle_record = fast_constructor(LifecycleRecord)

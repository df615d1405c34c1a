"""Records built by the engine's fast constructors are the same frozen records."""

from __future__ import annotations

import dataclasses

import pytest

from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairKind,
    PairRecord,
    SessionRef,
    fast_constructor,
    new_lifecycle_record,
    new_message_record,
    new_pair_record,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport

REF = SessionRef("sid", "a" * 32, "b" * 16)
PAIR_ARGS = (
    "c" * 32,
    "d" * 16,
    REF,
    "/",
    PairKind.ACK,
    "echo -> ack",
    "echo -> ack",
    Direction.CLIENT_TO_SERVER,
    "echo",
    "ack",
    7,
    None,
    Outcome.OK,
    None,
    False,
    1.5,
    0.25,
    None,
    0,
    Transport.WEBSOCKET,
    Transport.WEBSOCKET,
    10,
    12,
)


def test_fast_pair_record_equals_the_dataclass_and_stays_frozen() -> None:
    fast = new_pair_record(*PAIR_ARGS, response_payload="[1]")
    slow = PairRecord(*PAIR_ARGS, response_payload="[1]")
    assert type(fast) is PairRecord and fast == slow and hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert fast.sampled is True and fast.linked_span_id is None  # defaults kept
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.outcome = Outcome.ERROR  # type: ignore[misc]
    assert dataclasses.replace(fast, ack_id=8).ack_id == 8 and fast.ack_id == 7


def test_fast_message_and_lifecycle_records() -> None:
    args = (REF, "/", Direction.SERVER_TO_CLIENT, Transport.POLLING, "push", 5, 2.0)
    assert new_message_record(*args) == MessageRecord(*args)
    assert type(new_message_record(*args)) is MessageRecord
    kw = dict(
        trace_id=REF.trace_id,
        span_id=REF.span_id,
        parent_span_id=None,
        session=REF,
        kind=LifecycleKind.HANDSHAKE,
        namespace=None,
        transport=Transport.POLLING,
        ok=True,
        error=None,
        start_wall=1.0,
        duration_s=0.0,
    )
    fast = new_lifecycle_record(**kw)  # type: ignore[arg-type]
    assert type(fast) is LifecycleRecord and fast == LifecycleRecord(**kw)  # type: ignore[arg-type]


def test_fast_constructor_refuses_what_it_cannot_copy() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        x: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError):
        fast_constructor(NoSlots)
    with pytest.raises(TypeError):
        fast_constructor(Factory)


def test_the_fast_constructors_twin_adds_nothing_to_the_records_layout() -> None:
    """The twin is a subclass of the record class with no slots of its own, setting
    attributes as ``object`` does (see ``fast_constructor``): the class switch then needs
    no slot comparison, and stores are plain slot stores."""
    for fast, cls in (
        (new_pair_record, PairRecord),
        (new_message_record, MessageRecord),
        (new_lifecycle_record, LifecycleRecord),
    ):
        assert fast.__mro__[1] is cls and fast.__dict__["__slots__"] == ()
        assert fast.__basicsize__ == cls.__basicsize__
        assert fast.__setattr__ is object.__setattr__ and fast.__delattr__ is object.__delattr__

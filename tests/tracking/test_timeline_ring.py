"""The timeline ring holds what a bounded deque of rows and records would, in order."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from socketio_trace_proxy.tracking.records import PairRecord, Record
from socketio_trace_proxy.tracking.runtime.ring import TimelineItem, TimelineRing
from socketio_trace_proxy.tracking.runtime.timelines import Timelines
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.packets import SocketPacketType
from tests.tracking.test_records import PAIR_ARGS

_ROWS = st.tuples(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(Direction),
    st.sampled_from(Transport),
    st.sampled_from(SocketPacketType),
    st.sampled_from(["/", "/admin"]),
    st.none() | st.text(max_size=5),
    st.none() | st.integers(0, 2**40),
    st.integers(0, 2**40),
)
_RECORD = PairRecord(*PAIR_ARGS)  # type: ignore[arg-type]


@given(st.integers(1, 6), st.lists(st.none() | _ROWS, max_size=40))
def test_ring_equals_a_bounded_deque(capacity: int, items: list[object]) -> None:
    ring = TimelineRing(capacity)
    reference: deque[TimelineItem] = deque(maxlen=capacity)
    for n, item in enumerate(items):
        if item is None:
            record: Record = PairRecord(str(n), *PAIR_ARGS[1:])  # type: ignore[arg-type]
            ring.record(record)
            reference.append(record)
        else:
            assert isinstance(item, tuple)
            ring.packet(*item)
            reference.append(item)  # type: ignore[arg-type]
        assert ring.count == len(reference)
    assert ring.items() == list(reference)


def test_a_retired_ring_keeps_its_items() -> None:
    drops: dict[str, int] = {}
    timelines = Timelines(2, 4, 1, drops)  # type: ignore[arg-type]
    ring = timelines.open("sid")
    row = (
        1.0,
        Direction.CLIENT_TO_SERVER,
        Transport.WEBSOCKET,
        SocketPacketType.EVENT,
        "/",
        "e",
        3,
        9,
    )
    for _ in range(3):
        ring.packet(*row)
    ring.record(_RECORD)
    timelines.retire("sid")
    closed = timelines.get("sid", None)
    assert closed is not None and len(closed.items) == 2
    assert closed.items[0].ack_id == 3 and closed.items[1] is _RECORD  # type: ignore[union-attr]

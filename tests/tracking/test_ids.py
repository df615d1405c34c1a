"""Trace and span ids (tracking.ids): W3C sizes, lowercase hex, never all zero."""

from __future__ import annotations

import random
import re

from socketio_trace_proxy.tracking.ids import RandomIds, SequentialIds

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_random_ids_are_the_seeded_bits_as_w3c_hex() -> None:
    ids = RandomIds(seed=7)
    bits = random.Random(7).getrandbits
    for _ in range(200):
        trace_id, span_id = ids.trace_id(), ids.span_id()
        assert HEX32.match(trace_id) and trace_id == f"{bits(128) or 1:032x}"
        assert HEX16.match(span_id) and span_id == f"{bits(64) or 1:016x}"


def test_a_zero_draw_is_never_an_id() -> None:
    ids = RandomIds(seed=1)
    ids._bits = lambda k: 0  # the all-zero draw
    assert ids.trace_id() == "0" * 31 + "1" and ids.span_id() == "0" * 15 + "1"


def test_sequential_ids_count_up() -> None:
    ids = SequentialIds()
    assert (ids.trace_id(), ids.span_id()) == ("0" * 31 + "1", "0" * 15 + "2")

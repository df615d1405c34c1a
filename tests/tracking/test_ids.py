"""Trace and span ids (tracking.ids): W3C sizes, lowercase hex, never all zero."""

from __future__ import annotations

import random
import re

from socketio_trace_proxy.tracking.ids import POOL_BYTES, RandomIds, SequentialIds

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_random_ids_are_the_seeded_bits_as_w3c_hex() -> None:
    """Consecutive hex digits of the seeded bits, drawn POOL_BYTES at a time (big-endian);
    an id never straddles two draws (a tail too short for it is skipped).  The loop
    crosses many draws."""
    ids = RandomIds(seed=7)
    bits = random.Random(7).getrandbits
    pool = ""

    def take(n: int) -> str:
        nonlocal pool
        if len(pool) < n:
            pool = bits(POOL_BYTES * 8).to_bytes(POOL_BYTES, "big").hex()
        out, pool = pool[:n], pool[n:]
        return out

    for _ in range(300):
        trace_id, span_id = ids.trace_id(), ids.span_id()
        assert HEX32.match(trace_id) and trace_id == take(32)
        assert HEX16.match(span_id) and span_id == take(16)


def test_a_zero_draw_is_never_an_id() -> None:
    ids = RandomIds(seed=1)
    ids._bits = lambda k: 0  # the all-zero draw
    for _ in range(100):
        assert ids.trace_id() == "0" * 31 + "1" and ids.span_id() == "0" * 15 + "1"


def test_random_ids_are_distinct_over_many_pool_refills() -> None:
    ids = RandomIds(seed=3)
    drawn = [ids.trace_id() for _ in range(5000)] + [ids.span_id() for _ in range(5000)]
    assert len(set(drawn)) == len(drawn)
    assert all(HEX32.match(t) for t in drawn[:5000]) and all(HEX16.match(s) for s in drawn[5000:])


def test_sequential_ids_count_up() -> None:
    ids = SequentialIds()
    assert (ids.trace_id(), ids.span_id()) == ("0" * 31 + "1", "0" * 15 + "2")

"""Trace and span ids, and the W3C ``traceparent`` a client may send.

Ids follow W3C trace context sizes (``trace_id`` 32 lowercase hex digits, ``span_id`` 16,
never all zero) so that exporters never have to invent them; the tracker draws them from
an injectable :class:`IdSource` (random in production, sequential in tests).
"""

from __future__ import annotations

import os
import random
import re
from functools import lru_cache
from typing import Final, Protocol

POOL_BYTES: Final = 1024
"""Random bytes :class:`RandomIds` draws at once (64 trace ids' worth)."""
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16
_ONE_TRACE: Final = "0" * 31 + "1"
_ONE_SPAN: Final = "0" * 15 + "1"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class IdSource(Protocol):
    """Where trace and span ids come from (W3C sizes, lowercase hex, never all zero)."""

    def trace_id(self) -> str: ...

    def span_id(self) -> str: ...


class RandomIds:
    """Random ids from a PRNG seeded from the OS (ids need to be unique, not secret).

    The ids are consecutive hex digits of one stream of random bits, drawn
    :data:`POOL_BYTES` at a time (its big-endian bytes as lowercase hex): a trace id takes
    the next 32 digits, a span id the next 16.  Two ids are drawn per pair; a slice of a
    ready string costs a tenth of drawing, converting and formatting each id on its own.
    An all-zero slice (invalid in W3C) becomes the id 1.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._bits = random.Random(seed if seed is not None else os.urandom(16)).getrandbits
        self._pool = ""
        self._next = 0

    def _take(self, n: int) -> str:
        pool = self._pool
        i = self._next
        if i + n > len(pool):
            pool = self._pool = self._bits(POOL_BYTES * 8).to_bytes(POOL_BYTES, "big").hex()
            i = 0
        self._next = i + n
        return pool[i : i + n]

    def trace_id(self) -> str:
        tid = self._take(32)
        return tid if tid != _ZERO_TRACE else _ONE_TRACE

    def span_id(self) -> str:
        sid = self._take(16)
        return sid if sid != _ZERO_SPAN else _ONE_SPAN


class SequentialIds:
    """Deterministic ids for tests: 1, 2, 3, ... rendered at W3C sizes."""

    def __init__(self) -> None:
        self._n = 0

    def trace_id(self) -> str:
        self._n += 1
        return f"{self._n:032x}"

    def span_id(self) -> str:
        self._n += 1
        return f"{self._n:016x}"


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` from a valid W3C ``traceparent``, else None."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace_id, span_id = m.group(2), m.group(3)
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id


@lru_cache(maxsize=1024)
def cached_traceparent(value: str) -> tuple[str, str] | None:
    """:func:`parse_traceparent`, remembered for the last 1024 distinct headers (a
    header is parsed per request that opens a pair, and a client sends the same one for a
    whole page load)."""
    return parse_traceparent(value)

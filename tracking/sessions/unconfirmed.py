"""Polling bodies for sids the table does not know yet, held until the backend answers.

A POST naming a sid the table has never seen may belong to a session whose handshake the
proxy missed (it started mid-session), or to a sid somebody made up.  Only the backend
knows: its reply to the request (200 accepted, 400 ``Session ID unknown`` refused), any
other 200 polling reply for that sid, or a 101 for a WebSocket naming it.  Until then the
body is held here (a reference to the bytes the relay already holds, not a copy) and
nothing is decoded or tracked for it; accepted, the bodies are replayed in arrival order
with their own stamps; refused, they are dropped and counted.  Bounded by count and bytes
(oldest dropped first) and by age (see :meth:`UnconfirmedBodies.expire`), all counted.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.sessions.state import SessionCounters


class HeldBody(NamedTuple):
    """A POST body waiting for the backend's verdict on its sid, with its own stamp."""

    info: RequestInfo
    body: bytes
    at: float
    wall: float


class UnconfirmedBodies:
    """See the module docstring."""

    def __init__(
        self, counters: SessionCounters, *, max_bodies: int, max_bytes: int, max_age_s: float
    ) -> None:
        self._counters = counters
        self._max_bodies = max(0, max_bodies)
        self._max_bytes = max_bytes
        self._max_age = max_age_s
        self._held: OrderedDict[int, tuple[str, HeldBody]] = OrderedDict()
        self._bytes = 0
        self._seq = 0

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, sid: str, request: HeldBody) -> None:
        size = len(request.body)
        if size > self._max_bytes or self._max_bodies == 0:
            self._counters.unconfirmed_dropped += 1
            return
        self._seq += 1
        self._held[self._seq] = (sid, request)
        self._bytes += size
        while len(self._held) > self._max_bodies or self._bytes > self._max_bytes:
            self._drop_oldest()

    def take(self, sid: str) -> list[HeldBody]:
        """The held bodies of ``sid`` (the backend accepted it), oldest first."""
        if not self._held:
            return []
        keys = [k for k, (held_sid, _) in self._held.items() if held_sid == sid]
        out = []
        for k in keys:
            _, request = self._held.pop(k)
            self._bytes -= len(request.body)
            out.append(request)
        return out

    def refuse(self, info: RequestInfo) -> bool:
        """The backend refused the request ``info`` describes: drop its body, if held."""
        for k, (_, request) in self._held.items():
            if request.info is info or request.info == info:
                del self._held[k]
                self._bytes -= len(request.body)
                return True
        return False

    def expire(self, at: float) -> None:
        """Drop what waited longer than ``max_age_s`` (the relay saw no reply to it: the
        upstream failed, or the client went away)."""
        horizon = at - self._max_age
        while self._held:
            _, request = next(iter(self._held.values()))
            if request.at > horizon:
                break
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, (_, request) = self._held.popitem(last=False)
        self._bytes -= len(request.body)
        self._counters.unconfirmed_dropped += 1

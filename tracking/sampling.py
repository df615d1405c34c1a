"""Head-based session sampling (``tracking.session_sample_rate``): which Engine.IO sessions
the tracker decodes at all.

Owns the decision and the counts of what was left out.  The decision is made once per
session, at its handshake, from the sid alone (the first 64 bits of BLAKE2b over the sid,
as a fraction of 2**64, below the rate), so that every replica and every restart of the
proxy agrees on it without shared state.  An unsampled session is relayed with no decoding:
its later requests are recognised by the same function of their sid, and only counted
(messages and bytes per direction).  Separate from ``tracking.sample_rate``, which thins
out the *exported* ok pairs of sessions that are tracked.
"""

from __future__ import annotations

from hashlib import blake2b

from socketio_trace_proxy.tracking.traffic import Direction
from socketio_trace_proxy.tracking.views import SamplingInfo

_C2S = Direction.CLIENT_TO_SERVER
_SCALE = float(2**64)
MAX_REMEMBERED = 4096
"""Decisions :meth:`SessionSampler.keeps` remembers (the oldest forgotten first; a
forgotten one is recomputed, never lost)."""


def sid_fraction(sid: str) -> float:
    """Where ``sid`` falls in [0, 1): BLAKE2b-64 of its UTF-8 bytes over 2**64."""
    digest = blake2b(sid.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def session_sampled(sid: str, rate: float) -> bool:
    """Whether the session ``sid`` is traced at ``rate`` (0.0-1.0)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return sid_fraction(sid) < rate


class SessionSampler:
    """The decision at ``rate`` plus the counts of sessions and of unsampled traffic."""

    __slots__ = (
        "_bytes_c2s",
        "_bytes_s2c",
        "_known",
        "_max_known",
        "_messages_c2s",
        "_messages_s2c",
        "forgotten",
        "rate",
        "sampled_sessions",
        "sessions",
    )

    def __init__(self, rate: float, max_remembered: int = MAX_REMEMBERED) -> None:
        self.rate = min(1.0, max(0.0, rate))
        # sid -> decision: a polling session asks per request, and BLAKE2b costs more
        # than the rest of an unsampled request's bookkeeping
        self._known: dict[str, bool] = {}
        self._max_known = max(1, max_remembered)
        self.forgotten = 0  # decisions dropped from ``_known`` (recomputed when asked again)
        self.sessions = 0  # handshakes decided
        self.sampled_sessions = 0
        self._messages_c2s = self._messages_s2c = 0
        self._bytes_c2s = self._bytes_s2c = 0

    @property
    def everything(self) -> bool:
        """Every session is sampled (the default): callers may skip the checks."""
        return self.rate >= 1.0

    def keeps(self, sid: str) -> bool:
        """Whether traffic of the session ``sid`` is decoded (no counting)."""
        known = self._known
        keep = known.get(sid)
        if keep is None:
            keep = session_sampled(sid, self.rate)
            if len(known) >= self._max_known:
                del known[next(iter(known))]
                self.forgotten += 1
            known[sid] = keep
        return keep

    def decide(self, sid: str) -> bool:
        """A handshake named ``sid``: count the session and say whether it is traced."""
        self.sessions += 1
        keep = session_sampled(sid, self.rate)
        if keep:
            self.sampled_sessions += 1
        return keep

    def unsampled(self, direction: Direction, messages: int, size: int) -> None:
        """``messages`` messages of ``size`` bytes of an unsampled session were relayed."""
        if direction is _C2S:
            self._messages_c2s += messages
            self._bytes_c2s += size
        else:
            self._messages_s2c += messages
            self._bytes_s2c += size

    def unsampled_body(self, direction: Direction, body: bytes) -> None:
        """A polling body of an unsampled session (its packets counted by their separators,
        Engine.IO v4 section 4.3; a v3 body counts as one)."""
        messages = body.count(b"\x1e") + 1 if body else 0
        if direction is _C2S:
            self._messages_c2s += messages
            self._bytes_c2s += len(body)
        else:
            self._messages_s2c += messages
            self._bytes_s2c += len(body)

    def info(self) -> SamplingInfo:
        return SamplingInfo(
            rate=self.rate,
            sessions=self.sessions,
            sampled_sessions=self.sampled_sessions,
            unsampled_messages={"c2s": self._messages_c2s, "s2c": self._messages_s2c},
            unsampled_bytes={"c2s": self._bytes_c2s, "s2c": self._bytes_s2c},
        )

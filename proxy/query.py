"""The decoded query of a request target, as the observer gets it with each Socket.IO request.

Owns :func:`query_of`: what ``parse_qsl(keep_blank_values=True)`` reads; Engine.IO's own
queries (no escapes) are not split at all but read in place (``tracking.query.EngineQuery``).
Typed and sans-IO, so the compiled build compiles it (:mod:`tracking.compiled`): it runs
once per relayed Socket.IO request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast
from urllib.parse import parse_qsl

from multidict import MultiDict, MultiDictProxy

from socketio_trace_proxy.tracking.query import EngineQuery


def query_of(target: str) -> Mapping[str, str]:
    """The decoded query parameters of a request target in origin form (what
    ``parse_qsl(keep_blank_values=True)`` reads; a repeated name: its first value first).

    Engine.IO's own queries (``EIO=4&transport=polling&t=...&sid=...``) are plain ASCII
    without escapes: those are read in place (``EngineQuery``), anything else goes to
    ``parse_qsl``."""
    mark = target.find("?")
    start = len(target) if mark < 0 else mark + 1
    if target.find("%", start) < 0 and target.find("+", start) < 0:
        return cast("Mapping[str, str]", EngineQuery(target, start))
    return MultiDictProxy(MultiDict(parse_qsl(target[start:], keep_blank_values=True)))

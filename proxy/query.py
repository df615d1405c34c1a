"""The decoded query of a request target, as the observer gets it with each Socket.IO request.

Owns :func:`query_of`: what ``parse_qsl(keep_blank_values=True)`` reads, split without it for
Engine.IO's own queries.  Typed and sans-IO, so the compiled build compiles it
(:mod:`tracking.compiled`): it runs once per relayed Socket.IO request.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from multidict import MultiDict, MultiDictProxy


def query_of(target: str) -> Mapping[str, str]:
    """The decoded query parameters of a request target in origin form (what
    ``parse_qsl(keep_blank_values=True)`` reads; a repeated name: its first value first).

    Engine.IO's own queries (``EIO=4&transport=polling&t=...&sid=...``) are plain ASCII
    without escapes or repeats: those are split here, anything else goes to ``parse_qsl``."""
    _, _, qs = target.partition("?")
    if "%" not in qs and "+" not in qs:
        params: dict[str, str] = {}
        for part in qs.split("&"):
            if part:
                name, _, value = part.partition("=")
                if name in params:
                    break  # a repeated name: the multi-valued form below
                params[name] = value
        else:
            return params
    return MultiDictProxy(MultiDict(parse_qsl(qs, keep_blank_values=True)))

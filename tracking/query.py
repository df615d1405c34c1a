"""Engine.IO's own queries read where they stand: the relay's query of a Socket.IO request.

Owns :class:`EngineQuery`, the mapping the relay (``proxy.query.query_of``) hands the
observer for a query without escapes, and :func:`query_value`, the tracker's way to read
one name of any query (a native call for an :class:`EngineQuery` in the compiled build).
Typed and sans-IO, so the compiled build compiles it (:mod:`tracking.compiled`): the
tracker reads two or three names of every relayed Socket.IO request.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from urllib.parse import parse_qsl

from multidict import MultiDict, MultiDictProxy


def _split(qs: str) -> Mapping[str, str]:
    """A query without escapes as ``parse_qsl`` reads it: a dict, or the multi-valued form
    when a name repeats."""
    params: dict[str, str] = {}
    for part in qs.split("&"):
        if part:
            name, _, value = part.partition("=")
            if name in params:
                return MultiDictProxy(MultiDict(parse_qsl(qs, keep_blank_values=True)))
            params[name] = value
    return params


class EngineQuery:
    """A query without escapes (no ``%``, no ``+``), read where it stands in its target.

    A read-only mapping (registered as a ``collections.abc.Mapping``) equal to what
    ``parse_qsl`` reads: ``get``, ``[]`` and ``in`` find a name's first value by scanning
    the query (no dict built: the tracker reads two or three names of each request);
    iterating, ``len``, ``items()`` and comparing split it once on first use.
    """

    def __init__(self, target: str, start: int) -> None:
        self._target = target
        self._start = start  # the query's first character in ``target``
        self._split: Mapping[str, str] | None = None
        self._sid: str | None = None  # "sid" once read (a POST's body and its reply read it)

    def value(self, name: str) -> str | None:
        """The first value of ``name`` (``""`` for a part without ``=``), or ``None``: the
        first place ``name`` starts a part and ends its name (C-speed ``find`` calls, no
        per-part work)."""
        if not name or "=" in name or "&" in name:
            # Never a name found this way: "" (an empty part is no parameter), or never the
            # name of any part.
            return self.mapping().get(name) if not name else None
        target = self._target
        start = self._start
        end = len(target)
        pos = start
        while True:
            at = target.find(name, pos)
            if at < 0:
                return None
            after = at + len(name)
            if at == start or target[at - 1] == "&":
                if after == end:
                    return ""
                follows = target[after]
                if follows == "=":
                    amp = target.find("&", after)
                    return target[after + 1 : end if amp < 0 else amp]
                if follows == "&":
                    return ""
            pos = at + 1

    def sid(self) -> str | None:
        """``value("sid")``, kept once found."""
        sid = self._sid
        if sid is None:
            sid = self._sid = self.value("sid")
        return sid

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.value(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> str:
        value = self.value(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.value(key) is not None

    def mapping(self) -> Mapping[str, str]:
        """The whole query as ``parse_qsl`` reads it (split once, then kept)."""
        split = self._split
        if split is None:
            split = self._split = _split(self._target[self._start :])
        return split

    def __iter__(self) -> Iterator[str]:
        return iter(self.mapping())

    def __len__(self) -> int:
        return len(self.mapping())

    def keys(self) -> KeysView[str]:
        return self.mapping().keys()

    def items(self) -> ItemsView[str, str]:
        return self.mapping().items()

    def values(self) -> ValuesView[str]:
        return self.mapping().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EngineQuery):
            other = other.mapping()
        return self.mapping() == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        raise TypeError("unhashable type: 'EngineQuery'")  # as a dict

    def __repr__(self) -> str:
        return repr(self.mapping())


Mapping.register(EngineQuery)


def query_value(query: Mapping[str, str], name: str) -> str | None:
    """``query.get(name)``; for an :class:`EngineQuery`, its native :meth:`EngineQuery.value`
    (no Python-level ``get`` call)."""
    q: object = query
    if type(q) is EngineQuery:
        return q.sid() if name == "sid" else q.value(name)
    return query.get(name)

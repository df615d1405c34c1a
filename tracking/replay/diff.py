"""Structural diff of JSON replies, with ignored fields and remapped ids.

A replay compares what the server answered then (the recording) with what it answers now.
Values at an ignored field (a key name at any depth, or a dotted path of an event's first
argument) never count as differences; when such a value is a string that changed, the pair
(then -> now) is learnt as a remapping (:class:`Remap`): an id the server issued, which the
client will send back, so later client packets carry the new value.  A string equal to a
known remapping's new value is not a difference either.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_MAX_REMAPS = 10_000
_MAX_DIFFERENCES = 50


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the replies differ.  ``path`` addresses the arguments array
    (``[0].status``); ``(event)`` is the reply's event name."""

    path: str
    kind: str  # changed, added, removed, type
    then: Any
    now: Any

    def describe(self) -> str:
        if self.kind == "added":
            return f"{self.path}: added {_show(self.now)}"
        if self.kind == "removed":
            return f"{self.path}: removed (was {_show(self.then)})"
        return f"{self.path}: {_show(self.then)} -> {_show(self.now)}"


def _show(value: Any, limit: int = 60) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def jsonable(value: Any) -> Any:
    """``value`` with bytes as ``{"base64": ...}`` (for JSON reports)."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


class Remap:
    """Strings the server issued then -> what it issues now (bounded)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.dropped = 0

    def learn(self, then: str, now: str) -> None:
        if then == now or then in self.values:
            return
        if len(self.values) >= _MAX_REMAPS:
            self.dropped += 1
            return
        self.values[then] = now

    def apply(self, value: Any) -> tuple[Any, bool]:
        """``value`` with every remapped string replaced; and whether anything was."""
        if not self.values:
            return value, False
        if isinstance(value, str):
            new = self.values.get(value)
            return (value, False) if new is None else (new, True)
        if isinstance(value, list):
            items = [self.apply(v) for v in value]
            return ([v for v, _ in items], True) if any(c for _, c in items) else (value, False)
        if isinstance(value, dict):
            pairs = {k: self.apply(v) for k, v in value.items()}
            if any(c for _, c in pairs.values()):
                return {k: v for k, (v, _) in pairs.items()}, True
        return value, False


class Comparer:
    """Compares reply arguments; see the module docstring."""

    def __init__(
        self, ignore: Iterable[str] = (), ignore_paths: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        self._keys = frozenset(ignore)
        self._paths = {
            event: tuple(tuple(p.split(".")) for p in paths)
            for event, paths in (ignore_paths or {}).items()
        }

    def compare(
        self, labels: Iterable[str | None], then: list[Any], now: list[Any], remap: Remap
    ) -> list[Difference]:
        """Differences between two argument lists (``labels``: the reply's event name and
        rule template, for ``ignore_paths``); learns remappings into ``remap``."""
        paths: tuple[tuple[str, ...], ...] = ()
        for label in labels:
            if label is not None:
                paths += self._paths.get(label, ())
        ignored = frozenset(("0", *p) for p in paths)
        out: list[Difference] = []
        self._walk(then, now, (), "", ignored, remap, out)
        return out[:_MAX_DIFFERENCES]

    def _walk(  # noqa: PLR0917 - recursion state
        self,
        then: Any,
        now: Any,
        at: tuple[str, ...],
        shown: str,
        ignored: frozenset[tuple[str, ...]],
        remap: Remap,
        out: list[Difference],
    ) -> None:
        if at in ignored or (at and at[-1] in self._keys and not at[-1].isdigit()):
            if isinstance(then, str) and isinstance(now, str):
                remap.learn(then, now)
            return
        if isinstance(then, dict) and isinstance(now, dict):
            for k, v in then.items():
                where = f"{shown}.{k}" if shown else k
                if k not in now:
                    if k not in self._keys and (*at, k) not in ignored:
                        out.append(Difference(where, "removed", v, None))
                    continue
                self._walk(v, now[k], (*at, k), where, ignored, remap, out)
            for k, v in now.items():
                if k not in then and k not in self._keys and (*at, k) not in ignored:
                    out.append(Difference(f"{shown}.{k}" if shown else k, "added", None, v))
            return
        if isinstance(then, list) and isinstance(now, list):
            for i, (a, b) in enumerate(zip(then, now, strict=False)):
                self._walk(a, b, (*at, str(i)), f"{shown}[{i}]", ignored, remap, out)
            for i in range(len(now), len(then)):
                out.append(Difference(f"{shown}[{i}]", "removed", then[i], None))
            for i in range(len(then), len(now)):
                out.append(Difference(f"{shown}[{i}]", "added", None, now[i]))
            return
        if then == now and type(then) is type(now):
            return
        if isinstance(then, str) and remap.values.get(then) == now:
            return
        same_kind = isinstance(then, type(now)) or isinstance(now, type(then))
        out.append(Difference(shown or "(value)", "changed" if same_kind else "type", then, now))

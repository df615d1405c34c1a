"""Payload access for the correlation engine: lazy argument parsing, field paths, match-key
values, error predicates, and redacted, truncated payload capture.

Nothing here runs for an event no rule asks about unless capture is on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from socketio_trace_proxy.config.tracking import CaptureSettings, Predicate
from socketio_trace_proxy.tracking.wire.packets import SocketPacket, SocketPacketType

REDACTED = "[REDACTED]"
_MISSING = object()
_EVENT_TYPES = (SocketPacketType.EVENT, SocketPacketType.BINARY_EVENT)


def event_args(packet: SocketPacket) -> list[Any] | None:
    """The arguments of an EVENT/ACK packet (without the event name), or None if the
    payload is not a JSON array.  Binary attachments stay as their placeholders, so the
    result can be serialised again for capture."""
    try:
        value = json.loads(packet.payload) if packet.payload else []
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if packet.type in _EVENT_TYPES and value and value[0] == packet.event:
        return value[1:]
    return value


def lookup(value: Any, path: Sequence[str]) -> Any:
    """Follow a dotted path (already split) through dicts and lists; ``_MISSING`` if absent."""
    if type(value) is dict and len(path) == 1:  # the common case: a top-level field
        return value.get(path[0], _MISSING)
    for part in path:
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def key_value(arg: Any, path: Sequence[str] | None, ignored: Iterable[str]) -> str | None:
    """The match-key value at ``path`` as a string, or None when the key is unusable
    (absent, null, empty, not a scalar, or one of the ignored values such as ``"noop"``)."""
    if path is None:
        return None
    value = lookup(arg, path)
    if value is _MISSING or value is None or isinstance(value, dict | list):
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if not text or text in ignored:
        return None
    return text


def first_error(
    arg: Any,
    predicates: Sequence[Predicate],
    paths: Sequence[Sequence[str]] | None = None,
) -> Predicate | None:
    """The first predicate that holds on the response's first argument, if any;
    ``paths``: each predicate's path already split (see :attr:`tracking.rules.Rule`)."""
    if paths is None:
        paths = [p.path.split(".") for p in predicates]
    simple = type(arg) is dict
    for p, path in zip(predicates, paths, strict=True):
        value = arg.get(path[0], _MISSING) if simple and len(path) == 1 else lookup(arg, path)
        if p.present is not None:
            present = value is not _MISSING and value is not None
            if present == p.present:
                return p
        elif value is not _MISSING and value == p.equals and type(value) is type(p.equals):
            return p
    return None


def describe_predicate(p: Predicate) -> str:
    if p.present is not None:
        return f"{p.path} {'present' if p.present else 'absent'}"
    return f"{p.path}={json.dumps(p.equals)}"


class Capturer:
    """Turns a packet payload into the string a record carries (or None when off)."""

    def __init__(self, settings: CaptureSettings) -> None:
        self.enabled = settings.enabled
        self._max = settings.max_bytes
        self._keys = tuple(k.lower() for k in settings.redact_keys)
        self._paths = {
            event: tuple(tuple(p.split(".")) for p in paths)
            for event, paths in settings.redact_paths.items()
        }

    def capture(self, packet: SocketPacket, event: str | None, label: str | None) -> str | None:
        if not self.enabled:
            return None
        args = event_args(packet)
        if args is None:  # not a JSON array: nothing we can redact field by field
            return REDACTED
        redacted = [self._redact_keys(a) for a in args]
        paths = self._paths.get(event or "", ()) + (
            self._paths.get(label, ()) if label and label != event else ()
        )
        if paths and redacted:
            for path in paths:
                redacted[0] = _mask_path(redacted[0], path)
        return self._truncate(json.dumps(redacted, ensure_ascii=False, separators=(",", ":")))

    def _redact_keys(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: (REDACTED if self._secret(k) else self._redact_keys(v)) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._redact_keys(v) for v in value]
        return value

    def _secret(self, key: str) -> bool:
        low = key.lower()
        return any(k in low for k in self._keys)

    def _truncate(self, text: str) -> str:
        raw = text.encode()
        if len(raw) <= self._max:
            return text
        return raw[: self._max].decode(errors="ignore") + "…"


def _mask_path(value: Any, path: Sequence[str]) -> Any:
    if not path:
        return REDACTED
    head, rest = path[0], path[1:]
    if isinstance(value, dict) and head in value:
        return {**value, head: _mask_path(value[head], rest)}
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        i = int(head)
        return [*value[:i], _mask_path(value[i], rest), *value[i + 1 :]]
    return value

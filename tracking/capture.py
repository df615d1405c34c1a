"""Payload access for the correlation engine: lazy argument parsing, field paths, match-key
values, error predicates, and redacted, truncated payload capture.

Nothing here runs for an event no rule asks about unless capture is on.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from socketio_trace_proxy.config.tracking import CaptureSettings, Predicate
from socketio_trace_proxy.tracking.wire.packets import SocketPacket, SocketPacketType

REDACTED = "[REDACTED]"
#: Containers nested deeper than this in a captured payload are cut and marked.
MAX_DEPTH = 32
DEPTH_CUT = f"[CUT: nested deeper than {MAX_DEPTH} levels]"
#: Payloads longer than this (characters) are never parsed: no match key, no error
#: predicate, no capture (so that one message costs bounded work).
MAX_PARSE = 1024 * 1024
#: Match keys longer than this are cut (with a checksum of the whole, to keep them apart).
MAX_KEY = 256
# ``Authorization: <credentials>`` (also Proxy-Authorization, ``=``) up to the end of the
# header value, and a bare ``Bearer <token>``: the names are kept, the credentials masked.
_CREDENTIAL_HINT = re.compile(r"authorization|bearer", re.IGNORECASE)
_AUTHORIZATION = re.compile(r"""((?:proxy-)?authorization\s*[:=]\s*)[^\r\n"',;]+""", re.IGNORECASE)
_BEARER = re.compile(r"(\bbearer\s+)(?!\[REDACTED\])[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_MISSING = object()
_EVENT_TYPES = (SocketPacketType.EVENT, SocketPacketType.BINARY_EVENT)


def event_args(packet: SocketPacket) -> list[Any] | None:
    """The arguments of an EVENT/ACK packet (without the event name), or None if the
    payload is not a JSON array.  Binary attachments stay as their placeholders, so the
    result can be serialised again for capture.  Raises ``RecursionError`` on nesting too
    deep for the JSON parser."""
    try:
        value = json.loads(packet.payload) if packet.payload else []
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if packet.type in _EVENT_TYPES and value and packet.event is not None:
        return value[1:]  # the event name (which the packet may carry cut short)
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
    if len(text) > MAX_KEY:
        # A key is held by every pending request and record that carries it.
        crc = zlib.crc32(text.encode("utf-8", "surrogatepass"))
        return f"{text[: MAX_KEY - 9]}…{crc:08x}"
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
    """Turns a packet payload into the string a record carries (or None when off).

    Redaction: object keys containing any of ``redact_keys`` (case-insensitive substrings,
    at any depth), the configured per-event paths of the first argument, and credentials
    inside any string (``Authorization: ...``, ``Bearer ...``).  Bounded: a payload over
    :data:`MAX_PARSE` bytes is not parsed, nesting deeper than :data:`MAX_DEPTH`
    is cut and marked (never recursing on the payload's own depth), and the result is cut
    at ``max_bytes``.
    """

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
        if len(packet.payload) > MAX_PARSE:
            return f"[NOT CAPTURED: payload of {len(packet.payload)} characters]"
        try:
            args = event_args(packet)
        except RecursionError:
            return f"[NOT CAPTURED: {DEPTH_CUT}]"
        if args is None:  # not a JSON array: nothing we can redact field by field
            return REDACTED
        redacted = self.redact(args, event, label)
        return self._truncate(json.dumps(redacted, ensure_ascii=False, separators=(",", ":")))

    def redact(self, args: list[Any], event: str | None, label: str | None) -> list[Any]:
        """``args`` (an event's or ack's arguments) with the configured keys masked at any
        depth, credentials inside strings masked, nesting deeper than :data:`MAX_DEPTH`
        cut, and the configured paths of ``event``/``label`` masked in the first argument;
        whether capture is enabled or not (recordings redact with the same rules)."""
        redacted = [self._redact(a, 1) for a in args]
        paths = self._paths.get(event or "", ()) + (
            self._paths.get(label, ()) if label and label != event else ()
        )
        if paths and redacted:
            for path in paths:
                redacted[0] = _mask_path(redacted[0], path)
        return redacted

    def might_redact(self, text: str, event: str | None, label: str | None) -> bool:
        """False only when :meth:`redact` certainly leaves the arguments in ``text`` (a
        packet's JSON) unchanged: no configured key and no credential pattern occurs in it
        (JSON escapes aside), it has too few brackets to nest past :data:`MAX_DEPTH`, and
        no path is configured for ``event``/``label``."""
        if event in self._paths or (label is not None and label in self._paths):
            return True
        low = text.lower()
        return (
            "\\u" in low
            or any(k in low for k in self._keys)
            or _CREDENTIAL_HINT.search(low) is not None
            or low.count("[") + low.count("{") >= MAX_DEPTH
        )

    def _redact(self, value: Any, depth: int) -> Any:
        """``value`` with secret keys and credentials in strings masked; containers nested
        deeper than :data:`MAX_DEPTH` cut (the recursion is bounded by it)."""
        if isinstance(value, str):
            return _scrub(value)
        if not isinstance(value, dict | list):
            return value
        if depth >= MAX_DEPTH:
            return DEPTH_CUT
        if isinstance(value, list):
            return [self._redact(v, depth + 1) for v in value]
        return {
            k: (REDACTED if self._secret(k) else self._redact(v, depth + 1))
            for k, v in value.items()
        }

    def _secret(self, key: str) -> bool:
        low = key.lower()
        return any(k in low for k in self._keys)

    def _truncate(self, text: str) -> str:
        # "replace": a lone surrogate (``"\\ud800"`` in the JSON) must not reach a record
        raw = text.encode("utf-8", "replace")
        if len(raw) <= self._max:
            return raw.decode()
        return raw[: self._max].decode(errors="ignore") + "…"


def _scrub(text: str) -> str:
    """``text`` with the credentials of ``Authorization: ...`` and ``Bearer ...`` masked."""
    if _CREDENTIAL_HINT.search(text) is None:
        return text
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


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

"""The record file format, version 1: JSON Lines, one object per line, UTF-8.

Every file (and every rotated part) starts with a ``header`` line; then, in the order the
proxy saw them, ``session`` lines (a session began, or continues from the previous part),
``packet`` lines (one per Engine.IO packet), ``close`` lines and ``gap`` lines (the recorder
dropped observations under load: the sessions named are incomplete).  Concatenated parts
(oldest first) are a valid recording too.  ``record-v1.schema.json`` beside this module is
the normative description; :func:`schema` loads it.

A packet is the Engine.IO packet as sent, after redaction: ``text`` is a text packet
(``<type digit><data>``, e.g. ``42["event",{}]``), ``binary`` the base64 of a binary
MESSAGE's data.  ``t`` is seconds since the session's first packet, ``body`` numbers the
polling HTTP bodies of a session (packets sent in one body share it).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from socketio_trace_proxy.tracking.traffic import Direction, Transport

FORMAT = "socketio-trace-proxy/record"
VERSION = 1
SCHEMA_FILE = "record-v1.schema.json"


class RecordFormatError(ValueError):
    """A line is not valid record format; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Header:
    created: float  # Unix epoch seconds
    path: str = "/socket.io/"  # the Socket.IO path the proxy relayed
    redact_keys: tuple[str, ...] = ()
    redact_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    proxy: str = ""  # the recording proxy's version


@dataclass(frozen=True, slots=True)
class SessionLine:
    session: str
    wall: float  # Unix epoch seconds at the session's t = 0
    eio: int
    transport: Transport  # the transport it opened on (or is on, when continued)
    continued: bool = False  # carried over from the previous part of a rotated file


@dataclass(frozen=True, slots=True)
class PacketLine:
    session: str
    t: float
    direction: Direction
    transport: Transport
    data: str | bytes  # str: a text packet; bytes: a binary MESSAGE's data
    body: int | None = None  # polling only: which HTTP body of the session carried it


@dataclass(frozen=True, slots=True)
class CloseLine:
    session: str
    t: float
    reason: str  # close_packet, websocket_closed, evicted, shutdown, stopped
    by: Direction | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class GapLine:
    wall: float
    dropped: int
    sessions: tuple[str, ...]


Line = Header | SessionLine | PacketLine | CloseLine | GapLine


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _time(value: float) -> float:
    return round(value, 6)


def encode(line: Line) -> str:
    """One line of the format, without the newline."""
    if isinstance(line, PacketLine):
        obj: dict[str, Any] = {
            "type": "packet",
            "session": line.session,
            "t": _time(line.t),
            "dir": line.direction.value,
            "transport": line.transport.value,
        }
        if line.body is not None:
            obj["body"] = line.body
        if isinstance(line.data, str):
            obj["text"] = line.data
        else:
            obj["binary"] = base64.b64encode(line.data).decode("ascii")
        return _dumps(obj)
    if isinstance(line, SessionLine):
        obj = {
            "type": "session",
            "session": line.session,
            "wall": _time(line.wall),
            "eio": line.eio,
            "transport": line.transport.value,
        }
        if line.continued:
            obj["continued"] = True
        return _dumps(obj)
    if isinstance(line, CloseLine):
        obj = {"type": "close", "session": line.session, "t": _time(line.t), "reason": line.reason}
        if line.by is not None:
            obj["by"] = line.by.value
        if line.code is not None:
            obj["code"] = line.code
        return _dumps(obj)
    if isinstance(line, GapLine):
        return _dumps(
            {
                "type": "gap",
                "wall": _time(line.wall),
                "dropped": line.dropped,
                "sessions": list(line.sessions),
            }
        )
    return _dumps(
        {
            "type": "header",
            "format": FORMAT,
            "version": VERSION,
            "created": _time(line.created),
            "path": line.path,
            "redact": {"keys": list(line.redact_keys), "paths": dict(line.redact_paths)},
            "proxy": line.proxy,
        }
    )


class _Fields:
    """Typed access to one decoded line's fields; errors name the field."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        self._obj = obj

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if name not in self._obj:
            if default is ...:
                raise RecordFormatError(f"missing field {name!r}")
            return default
        value = self._obj[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise RecordFormatError(f"field {name!r} has the wrong type ({value!r})")
        return value

    def number(self, name: str) -> float:
        value = self.get(name, (int, float))
        if isinstance(value, bool) or value < 0:
            raise RecordFormatError(f"field {name!r} must be a non-negative number")
        return float(value)

    def enum(self, name: str, kind: type[Direction] | type[Transport]) -> Any:
        raw = self.get(name, str)
        try:
            return kind(raw)
        except ValueError:
            raise RecordFormatError(f"field {name!r}: unknown value {raw!r}") from None


def decode(text: str) -> Line:
    """One line (without its newline); raises :class:`RecordFormatError`."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise RecordFormatError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RecordFormatError("a line must be a JSON object")
    f = _Fields(obj)
    kind = f.get("type", str)
    if kind == "packet":
        return _packet(f)
    if kind == "session":
        eio = f.get("eio", int)
        if eio not in (3, 4):
            raise RecordFormatError(f"field 'eio' must be 3 or 4 (got {eio!r})")
        return SessionLine(
            f.get("session", str),
            f.number("wall"),
            eio,
            f.enum("transport", Transport),
            bool(f.get("continued", bool, False)),
        )
    if kind == "close":
        by = f.enum("by", Direction) if "by" in obj else None
        return CloseLine(
            f.get("session", str), f.number("t"), f.get("reason", str), by, f.get("code", int, None)
        )
    if kind == "gap":
        sessions = f.get("sessions", list)
        return GapLine(f.number("wall"), f.get("dropped", int), tuple(str(s) for s in sessions))
    if kind == "header":
        return _header(f)
    raise RecordFormatError(f"unknown line type {kind!r}")


def _packet(f: _Fields) -> PacketLine:
    text = f.get("text", str, None)
    raw = f.get("binary", str, None)
    if (text is None) == (raw is None):
        raise RecordFormatError("a packet has exactly one of 'text' or 'binary'")
    data: str | bytes
    if text is not None:
        if not text:
            raise RecordFormatError("field 'text' is empty")
        data = text
    else:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise RecordFormatError("field 'binary' is not base64") from None
    return PacketLine(
        f.get("session", str),
        f.number("t"),
        f.enum("dir", Direction),
        f.enum("transport", Transport),
        data,
        f.get("body", int, None),
    )


def _header(f: _Fields) -> Header:
    if f.get("format", str) != FORMAT:
        raise RecordFormatError(f"not a {FORMAT} file")
    version = f.get("version", int)
    if version > VERSION:
        raise RecordFormatError(
            f"format version {version} is newer than this program reads ({VERSION}): upgrade"
        )
    if version < 1:
        raise RecordFormatError(f"invalid format version {version}")
    redact = _Fields(f.get("redact", dict, {}))
    paths = redact.get("paths", dict, {})
    return Header(
        created=f.number("created"),
        path=f.get("path", str, "/socket.io/"),
        redact_keys=tuple(str(k) for k in redact.get("keys", list, [])),
        redact_paths={str(k): tuple(str(p) for p in v) for k, v in paths.items()},
        proxy=f.get("proxy", str, ""),
    )


def read_lines(lines: Iterable[str], name: str) -> Iterator[Line]:
    """The lines of a recording (``name`` for messages: usually the file name).  The first
    non-blank line must be a header; blank lines are skipped."""
    seen_header = False
    for number, raw in enumerate(lines, 1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            line = decode(text)
        except RecordFormatError as exc:
            raise RecordFormatError(f"{name}:{number}: {exc}") from None
        if not seen_header and not isinstance(line, Header):
            raise RecordFormatError(f"{name}:{number}: the file must start with a header line")
        seen_header = True
        yield line


def schema() -> dict[str, Any]:
    """The JSON Schema of one line (draft 2020-12)."""
    text = resources.files(__package__ or "").joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded

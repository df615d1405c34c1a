"""The local default: an NDJSON file of all records and concise console lines.

Console lines read like ``create_terminal -> terminal_ready ok 11 ms [sid]``; the NDJSON file
holds one JSON object per record (``"type"``: ``pair``/``message``/``lifecycle``, enums as
their values) and rotates to ``<path>.1`` beyond a size limit.  Both run on the batching
core's worker thread, so file and terminal I/O never block the event loop.

NDJSON lines are what ``json.dumps(record_dict(record), ensure_ascii=False)`` gives, made
cheaply: each record type has a line function compiled from its fields' types, one f-string
whose values are written by the C string encoder or by ``repr`` as ``json`` would; a value
its field's type does not allow takes the general path (one C encoder, made once).

The console is rate limited for plain ok pairs (ok, not slow): at most
``local.console_ok_per_s`` lines per second; the ok pairs beyond that are counted and
reported as one ``... and K more ok pairs`` line, printed with the next console output once
that second is over (at the latest when the exporter shuts down).  Errors, timeouts, slow,
late, abandoned and evicted pairs and lifecycle lines are always printed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import fields
from enum import Enum
from operator import attrgetter
from typing import Any, TextIO

from socketio_trace_proxy.exporters.plugin import Encoded, SendResult, Verdict, utf8
from socketio_trace_proxy.exporters.spans import pair_error_type
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairRecord,
    Record,
)

#: Plain ok pair lines per second on the console unless configured otherwise.
DEFAULT_CONSOLE_OK_PER_S = 20


def _one_encoder() -> Callable[[object], str]:
    """``json.dumps(obj, ensure_ascii=False)``, with the C encoder made once rather than per
    call (``JSONEncoder.encode`` builds a new one every time)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(ensure_ascii=False).encode
    # (markers, default, string encoder, indent, key sep, item sep, sort_keys, skipkeys,
    # allow_nan): the arguments JSONEncoder.iterencode passes for json.dumps's defaults.
    chunks = make(
        None, _no_default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True
    )
    return lambda obj: "".join(chunks(obj, 0))


def _no_default(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode = _one_encoder()
_SESSION_KEYS = (
    ("session_id", "session.session_id"),
    ("session_trace_id", "session.trace_id"),
    ("session_span_id", "session.span_id"),
)


def _is_enum_type(hint: Any) -> bool:
    """``hint`` is an Enum subclass, or an optional one (``X | None``)."""
    if isinstance(hint, type):
        return issubclass(hint, Enum)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_is_enum_type(arg) for arg in typing.get_args(hint))
    return False


class _Layout:
    """How one record type becomes a JSON object: keys in order, one getter for all the
    values, the positions of the values that are enums (or None), and ``line``, a function
    compiled for the type that writes the JSON text directly (see :func:`ndjson_line`)."""

    __slots__ = ("enums", "get", "keys", "line")

    def __init__(self, cls: type, kind: str) -> None:
        hints = typing.get_type_hints(cls)
        keys: list[str] = []
        paths: list[str] = []
        enums: list[int] = []
        values: list[str] = []  # the compiled line's expression for each value
        for f in fields(cls):
            if f.name == "session":
                for key, path in _SESSION_KEYS:
                    keys.append(key)
                    paths.append(path)
                    values.append(_value_expression(f"s.{path.partition('.')[2]}", str))
                continue
            if _is_enum_type(hints[f.name]):
                enums.append(len(paths))
            keys.append(f.name)
            paths.append(f.name)
            values.append(_value_expression(f"r.{f.name}", hints[f.name]))
        self.keys = ("type", *keys)
        getter = attrgetter(*paths)
        self.get: Callable[[Any], tuple[Any, ...]] = lambda record: (kind, *getter(record))
        # positions in the (type, *values) tuple
        self.enums = tuple(i + 1 for i in enums)
        self.line = _compile_line(kind, keys, values)


def _value_expression(attr: str, hint: Any) -> str:
    """The expression a compiled line writes ``attr`` (e.g. ``r.kind``) of type ``hint``
    with: inline for the types the fields have, :func:`_scalar` for other values; a value
    its type does not allow raises (a non-str for ``str``) or goes to :func:`_scalar`."""
    args = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
    present = [a for a in args if a is not type(None)]
    base = present[0] if len(present) == 1 else object
    if base is str:
        expr = f"_str({attr})"
    elif isinstance(base, type) and issubclass(base, Enum):
        expr = f"_str({attr}._value_)"
    elif base is bool:
        expr = f'("true" if {attr} is True else "false" if {attr} is False else _scalar({attr}))'
    elif base is int:
        expr = f"(_int_repr({attr}) if type({attr}) is int else _scalar({attr}))"
    elif base is float:
        # x - x is 0.0 for finite floats only: json writes inf and nan its own way
        finite = f"type({attr}) is float and {attr} - {attr} == 0.0"
        expr = f"(_float_repr({attr}) if {finite} else _scalar({attr}))"
    else:
        expr = f"_scalar({attr})"
    if len(present) < len(args):
        expr = f'("null" if {attr} is None else {expr})'
    return expr


def _compile_line(kind: str, keys: Sequence[str], values: Sequence[str]) -> Callable[[Any], str]:
    """``def line(r)`` returning one f-string, ``{"type": kind, "key": value, ...}`` as
    ``json.dumps`` writes it, from the record ``r`` and its session ``s``."""
    items = [f"{_str(key)}: {{{value}}}" for key, value in zip(keys, values, strict=True)]
    body = ", ".join([f'"type": {_str(kind)}', *items])
    source = f"def line(r):\n    s = r.session\n    return f'''{{{{{body}}}}}'''\n"
    namespace: dict[str, Any] = {
        "_str": _str,
        "_int_repr": int.__repr__,
        "_float_repr": float.__repr__,
        "_scalar": _scalar,
    }
    exec(compile(source, f"<ndjson line: {kind}>", "exec"), namespace)
    line: Callable[[Any], str] = namespace["line"]
    return line


_UNIONS = (types.UnionType, typing.Union)
_str: Callable[[str], str] = json.encoder.encode_basestring


def _scalar(value: object) -> str:
    """Any value as the C encoder writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _encode(value)


_LAYOUTS: dict[type, _Layout] = {
    PairRecord: _Layout(PairRecord, "pair"),
    LifecycleRecord: _Layout(LifecycleRecord, "lifecycle"),
    MessageRecord: _Layout(MessageRecord, "message"),
}


def record_dict(record: Record) -> dict[str, Any]:
    """A record as plain JSON values (nested SessionRef flattened to ``session_*``)."""
    layout = _LAYOUTS[type(record)]
    values = layout.get(record)
    if layout.enums:
        converted = list(values)
        for i in layout.enums:
            value = converted[i]
            if value is not None:
                converted[i] = value._value_
        return dict(zip(layout.keys, converted, strict=True))
    return dict(zip(layout.keys, values, strict=True))


def ndjson_line(record: Record) -> str:
    """One NDJSON line (without the newline): the record's compiled line, or, for a value
    its field's type does not allow, the C encoder over :func:`record_dict`."""
    try:
        return _LAYOUTS[type(record)].line(record)
    except Exception:
        return _encode(record_dict(record))


def console_line(record: Record) -> str | None:
    """One concise line, or None for records the console leaves out (one-way messages)."""
    sid = record.session.session_id
    if isinstance(record, PairRecord):
        error_type = pair_error_type(record)
        status = "ok" if error_type is None else error_type
        where = sid if record.namespace == "/" else f"{sid} {record.namespace}"
        extra = " slow" if record.slow else ""
        if record.outcome is Outcome.LATE:
            extra += " late"
        return f"{record.operation} {status} {record.duration_s * 1000:.0f} ms{extra} [{where}]"
    if isinstance(record, LifecycleRecord):
        words = [record.kind.value]
        if record.namespace is not None and record.kind is LifecycleKind.NAMESPACE_CONNECT:
            words.append(record.namespace)
        if record.kind in (LifecycleKind.HANDSHAKE, LifecycleKind.UPGRADE):
            words.append(record.transport.value)
        words.append("ok" if record.ok else f"error: {record.error or 'failed'}")
        if record.kind is LifecycleKind.UPGRADE:
            words.append(f"{record.duration_s * 1000:.0f} ms")
        if record.detail:
            words.append(f"({record.detail})")
        return f"{' '.join(words)} [{sid}]"
    if isinstance(record, MessageRecord):
        return None
    return None  # pragma: no cover - Record has no other members


class NdjsonFilePlugin:
    """Appends records to a file, one JSON object per line; rotates at ``max_bytes``."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._file: typing.BinaryIO | None = None
        self.rotations = 0

    def encode(self, records: Sequence[Record]) -> Encoded:
        lines: list[bytes] = []
        skipped = replaced = 0
        error: str | None = None
        for record in records:  # line by line: an unencodable text costs that line only
            try:
                text = ndjson_line(record)
            except Exception as exc:
                skipped += 1
                error = repr(exc)
                continue
            line, repaired = utf8(text)
            lines.append(line)
            replaced += repaired
        lines.append(b"")
        payload = b"\n".join(lines) if len(lines) > 1 else b""
        return Encoded(payload, len(lines) - 1, skipped, error, replaced)

    def send(self, batch: Encoded, timeout_s: float) -> SendResult:
        try:
            handle = self._open()
            if handle.tell() + len(batch.payload) > self._max_bytes and handle.tell() > 0:
                handle.close()
                self._file = None
                os.replace(self.path, f"{self.path}.1")
                self.rotations += 1
                handle = self._open()
            handle.write(batch.payload)
            handle.flush()
        except OSError as exc:
            return SendResult(
                Verdict.REJECT, error=f"cannot write {self.path}: {exc}", key="file-error"
            )
        return SendResult(Verdict.OK)

    def _open(self) -> typing.BinaryIO:
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open
        return self._file

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None


class ConsolePlugin:
    """Writes :func:`console_line` lines to a text stream (stdout by default), at most
    ``ok_per_s`` plain ok pairs per second (see the module docstring)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        ok_per_s: int = DEFAULT_CONSOLE_OK_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._ok_per_s = ok_per_s
        self._clock = clock
        self._window = -1.0  # start of the current one-second window (-1: none yet)
        self._shown = 0  # ok pair lines printed in the window
        self.held = 0  # ok pairs not printed since the last summary line

    def encode(self, records: Sequence[Record]) -> Encoded:
        now = self._clock()
        lines: list[str] = []
        if self._window >= 0.0 and now - self._window >= 1.0:
            self._roll(lines)
        for record in records:
            if type(record) is PairRecord and record.outcome is Outcome.OK and not record.slow:
                if self._window < 0.0:
                    self._window = now
                if self._shown >= self._ok_per_s:
                    self.held += 1
                    continue
                self._shown += 1
            line = console_line(record)
            if line is not None:
                lines.append(line)
        encoded = [utf8(line) for line in lines]
        replaced = sum(repaired for _, repaired in encoded)
        data = b"".join(line + b"\n" for line, _ in encoded)
        return Encoded(data, len(lines), replaced=replaced)

    def _roll(self, lines: list[str]) -> None:
        """The window is over: report what it held back, start afresh."""
        if self.held:
            lines.append(self._summary())
            self.held = 0
        self._window = -1.0
        self._shown = 0

    def _summary(self) -> str:
        return f"... and {self.held} more ok pair{'s' if self.held != 1 else ''}"

    def send(self, batch: Encoded, timeout_s: float) -> SendResult:
        stream = self._stream or sys.stdout
        try:
            stream.write(batch.payload.decode())
            stream.flush()
        except (OSError, ValueError) as exc:
            return SendResult(Verdict.REJECT, error=f"cannot write console: {exc}", key="console")
        return SendResult(Verdict.OK)

    def close(self) -> None:
        if self.held:
            summary = self._summary()
            self.held = 0
            stream = self._stream or sys.stdout
            try:
                stream.write(f"{summary}\n")
                stream.flush()
            except (OSError, ValueError):
                pass

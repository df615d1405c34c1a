"""The one JSON form of a record: ``trace-record-v1.schema.json`` beside this module.

Owns how a record becomes JSON wherever it leaves the tracker as JSON: the NDJSON file
exporter, ``/api/events``, ``/api/export`` (its NDJSON lines are the file's lines), the live
stream and session timelines.  A record is an object whose first key, ``type``, names it
(``pair``, ``message``, ``lifecycle``; a record class added later, ``HeartbeatRecord`` say,
is ``heartbeat``), followed by every field of the record class in declaration order, the
``session`` nested as ``{"session_id", "trace_id", "span_id"}``, enums as their values,
absent values as ``null``.  OpenObserve's JSON stream keeps the in-app tracker's names on
top of this (``exporters/openobserve_json.py``).

Encoded by msgspec's JSON encoder straight from the record objects (it reads dataclasses
and msgspec Structs field by field in C): ~1.3-1.6 us for a pair record against ~5 us for
the exec-compiled f-string lines it replaces (``bench/record_json_bench.py``).  A text
msgspec cannot write as UTF-8 (a lone surrogate, which a JSON ``"\\ud800"`` escape in the
traffic decodes to) takes the general path, which writes U+FFFD in its place.

:func:`ndjson_lines` writes a batch of records as NDJSON (the NDJSON file exporter's batch)
with msgspec's ``encode_into`` into one buffer: ~1.0 us per pair record, against ~1.5 us
plus ~0.5 us of page faults for a line per record joined afterwards (two joins made two
copies of a ~400 KB batch, each in memory fresh from the kernel).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

import msgspec

from socketio_trace_proxy.tracking.records import (
    LifecycleRecord,
    MessageRecord,
    PairRecord,
    Record,
)

SCHEMA_VERSION = 1
SCHEMA_FILE = "trace-record-v1.schema.json"

_RECORD_TYPES: dict[type, str] = {
    PairRecord: "pair",
    MessageRecord: "message",
    LifecycleRecord: "lifecycle",
}
_ENCODER: Final = msgspec.json.Encoder()
_encode = _ENCODER.encode
_encode_into = _ENCODER.encode_into
_COMMA: Final = ord(",")
_NEWLINE: Final = ord("\n")


def record_type(cls: type) -> str:
    """The ``type`` of a record class: its registered name, else the class name without
    ``Record``, lower case."""
    kind = _RECORD_TYPES.get(cls)
    if kind is None:
        kind = cls.__name__.removesuffix("Record").lower() or cls.__name__.lower()
    return kind


_PREFIXES: dict[type, bytes] = {}


def _prefix(cls: type) -> bytes:
    """``{"type":"<record_type>",``: what a record's encoding starts with."""
    prefix = _PREFIXES.get(cls)
    if prefix is None:
        prefix = _PREFIXES[cls] = b'{"type":' + _encode(record_type(cls)) + b","
    return prefix


def record_json(record: Record) -> bytes:
    """The record as one JSON object, UTF-8, no newline (see the module docstring)."""
    try:
        return _prefix(type(record)) + _encode(record)[1:]
    except UnicodeEncodeError:
        return _repaired(record)


def record_json_checked(record: Record) -> tuple[bytes, bool]:
    """:func:`record_json`, and whether a text had to be repaired (U+FFFD written for a
    lone surrogate); exporters count those."""
    try:
        body = _encode(record)
    except UnicodeEncodeError:
        return _repaired(record), True
    return _prefix(type(record)) + body[1:], False


@dataclass(frozen=True, slots=True)
class NdjsonLines:
    """Records as NDJSON lines: ``data`` holds ``count`` lines, ``replaced`` of them with text
    replaced (see :func:`record_json_checked`); ``skipped`` records could not be encoded at
    all (``error`` says why, for the last of them) and have no line."""

    data: bytes
    count: int
    replaced: int = 0
    skipped: int = 0
    error: str | None = None


def ndjson_lines(records: Iterable[Record]) -> NdjsonLines:
    """``record_json(record) + b"\\n"`` for each record, in order, in one buffer: each record
    is encoded into it right behind its ``{"type":"...",`` prefix, its own opening brace
    landing on the prefix's comma, which is then put back.  A record msgspec cannot encode
    takes :func:`record_json_checked` (a lone surrogate: repaired and counted) or is skipped
    and counted (any other failure), leaving no partial line behind."""
    buf = bytearray()
    count = replaced = skipped = 0
    error: str | None = None
    last: type | None = None
    prefix = b""
    brace = 0  # where the record's own "{" lands: on the prefix's trailing comma
    for record in records:
        cls = type(record)
        if cls is not last:
            last = cls
            prefix = _prefix(cls)
            brace = len(prefix) - 1
        start = len(buf)
        try:
            buf += prefix
            _encode_into(record, buf, start + brace)
        except Exception:
            del buf[start:]
            try:
                line, repaired = record_json_checked(record)
            except Exception as exc:
                skipped += 1
                error = repr(exc)
                continue
            buf += line
            buf.append(_NEWLINE)
            replaced += repaired
            count += 1
            continue
        buf[start + brace] = _COMMA
        buf.append(_NEWLINE)
        count += 1
    return NdjsonLines(bytes(buf), count, replaced, skipped, error)


def _repaired(record: Record) -> bytes:
    return _prefix(type(record)) + _encode(without_surrogates(msgspec.to_builtins(record)))[1:]


def without_surrogates(value: Any) -> Any:
    """``value`` (plain JSON values) with every lone surrogate in its texts made U+FFFD:
    UTF-16 with ``surrogatepass`` keeps one as a code unit that decoding with ``replace``
    turns into U+FFFD, while every valid character survives the round trip."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


def record_builtins(record: Record) -> dict[str, Any]:
    """The record's JSON object as Python values (what ``json.loads`` of
    :func:`record_json` gives)."""
    decoded: dict[str, Any] = msgspec.json.decode(record_json(record))
    return decoded


def item_json(seq: int, record: Record) -> bytes:
    """An activity item as the admin API writes it: ``{"seq": N, "record": {...}}``."""
    return b'{"seq":%d,"record":%b}' % (seq, record_json(record))


@cache
def schema_text() -> str:
    """The JSON Schema document (``trace-record-v1.schema.json``) as shipped."""
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    """The JSON Schema of a record, parsed (a new dict on every call)."""
    parsed: dict[str, Any] = json.loads(schema_text())
    return parsed

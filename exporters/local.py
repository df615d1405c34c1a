"""The local default: an NDJSON file of all records and concise console lines.

Console lines read like ``create_terminal -> terminal_ready ok 11 ms [sid]``; the NDJSON file
holds one JSON object per record (``"type"``: ``pair``/``message``/``lifecycle``, enums as
their values) and rotates to ``<path>.1`` beyond a size limit.  Both run on the batching
core's worker thread, so file and terminal I/O never block the event loop.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from enum import Enum
from typing import Any, TextIO

from exporters.batching import Encoded, SendResult, Verdict
from exporters.spans import pair_error_type
from tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairRecord,
    Record,
)


def record_dict(record: Record) -> dict[str, Any]:
    """A record as plain JSON values (nested SessionRef flattened to ``session_*``)."""
    if isinstance(record, PairRecord):
        kind = "pair"
    elif isinstance(record, LifecycleRecord):
        kind = "lifecycle"
    else:
        kind = "message"
    data: dict[str, Any] = {"type": kind}
    for field in fields(record):
        value = getattr(record, field.name)
        if field.name == "session":
            data["session_id"] = value.session_id
            data["session_trace_id"] = value.trace_id
            data["session_span_id"] = value.span_id
        elif isinstance(value, Enum):
            data[field.name] = value.value
        else:
            data[field.name] = value
    return data


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
        self._file: TextIO | None = None
        self.rotations = 0

    def encode(self, records: Sequence[Record]) -> Encoded:
        lines: list[str] = []
        skipped = 0
        error: str | None = None
        for record in records:
            try:
                lines.append(json.dumps(record_dict(record), ensure_ascii=False))
            except Exception as exc:
                skipped += 1
                error = repr(exc)
        payload = "".join(f"{line}\n" for line in lines).encode()
        return Encoded(payload, len(lines), skipped, error)

    def send(self, batch: Encoded, timeout_s: float) -> SendResult:
        try:
            handle = self._open()
            if handle.tell() + len(batch.payload) > self._max_bytes and handle.tell() > 0:
                handle.close()
                self._file = None
                os.replace(self.path, f"{self.path}.1")
                self.rotations += 1
                handle = self._open()
            handle.write(batch.payload.decode())
            handle.flush()
        except OSError as exc:
            return SendResult(
                Verdict.REJECT, error=f"cannot write {self.path}: {exc}", key="file-error"
            )
        return SendResult(Verdict.OK)

    def _open(self) -> TextIO:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        return self._file

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None


class ConsolePlugin:
    """Writes :func:`console_line` lines to a text stream (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def encode(self, records: Sequence[Record]) -> Encoded:
        lines = [line for line in map(console_line, records) if line is not None]
        return Encoded("".join(f"{line}\n" for line in lines).encode(), len(lines))

    def send(self, batch: Encoded, timeout_s: float) -> SendResult:
        stream = self._stream or sys.stdout
        try:
            stream.write(batch.payload.decode())
            stream.flush()
        except (OSError, ValueError) as exc:
            return SendResult(Verdict.REJECT, error=f"cannot write console: {exc}", key="console")
        return SendResult(Verdict.OK)

    def close(self) -> None:
        return None

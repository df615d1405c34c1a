"""The local default: an NDJSON file of all records and concise console lines.

Console lines read like ``create_terminal -> terminal_ready ok 11 ms [sid]``; the NDJSON file
holds one JSON object per record and rotates to ``<path>.1`` beyond a size limit.  Both run
on the batching core's worker thread, so file and terminal I/O never block the event loop.

NDJSON lines are records in their one JSON form (:mod:`tracking.record_json`, schema
``tracking/trace-record-v1.schema.json``), the same lines ``/api/export?format=ndjson`` serves.

The console is rate limited for plain ok pairs (ok, not slow): at most
``local.console_ok_per_s`` lines per second; the ok pairs beyond that are counted and
reported as one ``... and K more ok pairs`` line, printed with the next console output once
that second is over (at the latest when the exporter shuts down).  Errors, timeouts, slow,
late, abandoned and evicted pairs and lifecycle lines are always printed.
"""

from __future__ import annotations

import os
import sys
import time
import typing
from collections.abc import Callable, Sequence
from typing import TextIO

from socketio_trace_proxy.exporters.plugin import Encoded, SendResult, Verdict, utf8
from socketio_trace_proxy.exporters.spans import pair_error_type
from socketio_trace_proxy.tracking.record_json import ndjson_lines
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
        lines = ndjson_lines(records)
        return Encoded(lines.data, lines.count, lines.skipped, lines.error, lines.replaced)

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

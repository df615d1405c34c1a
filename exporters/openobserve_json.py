"""OpenObserve's JSON stream: records under the in-app tracker's field names.

Owns the one JSON form that differs from the record schema (``tracking/trace-record-v1.schema
.json``): AetherTerm's in-app tracker (design doc, "データ送信形式") already writes records
to an OpenObserve stream with its own keys (``operation_name``, ``duration_ms``,
``socket.request.event``...), and dashboards and saved queries use them, so this stream keeps
them.  :data:`SCHEMA_MAPPING` is the documented mapping from the record schema to those
keys (README.md, "What you find in OpenObserve", reproduces it; a test keeps the two equal
and checks every key the encoder writes against it).

:class:`OpenObserveJsonPlugin` posts a JSON array per batch to
``{base}/api/{org}/{stream}/_json`` and checks each reply's per-stream ``failed`` count.
Rows are encoded by msgspec (one C call per row); a row with a lone surrogate is written with
U+FFFD in its place and counted.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from socketio_trace_proxy.config.about import user_agent
from socketio_trace_proxy.exporters.http import HttpPoster, post_batch
from socketio_trace_proxy.exporters.openobserve import (
    AUTH_HINTS,
    OPENOBSERVE_RETRYABLE,
    memtable_full,
    stored_field,
)
from socketio_trace_proxy.exporters.plugin import Encoded, SendResult, encode_each
from socketio_trace_proxy.exporters.spans import pair_error_type
from socketio_trace_proxy.tracking.record_json import without_surrogates
from socketio_trace_proxy.tracking.records import (
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairRecord,
    Record,
)


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """One key of a JSON stream row: the record types (schema ``type``) that carry it and
    where its value comes from in the record schema; ``optional`` keys are left out when
    their source is null."""

    key: str
    types: tuple[str, ...]
    source: str
    optional: bool = False

    @property
    def stored(self) -> str:
        """The column OpenObserve stores the key under."""
        return stored_field(self.key)


_ALL = ("pair", "lifecycle", "message")
_P, _L, _M = ("pair",), ("lifecycle",), ("message",)
_PL = ("pair", "lifecycle")

#: Record schema -> JSON stream row.
SCHEMA_MAPPING: tuple[FieldMapping, ...] = (
    FieldMapping("_timestamp", _ALL, "`start_wall` (message: `wall`) in µs"),
    FieldMapping("timestamp", _ALL, "the same"),
    FieldMapping(
        "message",
        _ALL,
        '`"Socket.IO Event: " + operation` (message: `event`); lifecycle: '
        '`"Socket.IO <kind> [<namespace>][ failed: <error>]"`',
    ),
    FieldMapping("level", _ALL, "`ERROR` on failure, `WARN` if `slow`, else `INFO`"),
    FieldMapping("service", _ALL, "`service.name` of the proxy (not in the record)"),
    FieldMapping("trace_id", _ALL, "`trace_id` (message: `session.trace_id`)"),
    FieldMapping("span_id", _PL, "`span_id`"),
    FieldMapping(
        "operation_name", _ALL, "`operation`; lifecycle: `socket:<kind>`; message: `event`"
    ),
    FieldMapping("duration_ms", _PL, "`duration_s` * 1000"),
    FieldMapping(
        "status",
        _ALL,
        "`ok`, `timeout` or `error` (pair: from `outcome` and `error_type`; lifecycle: `ok`)",
    ),
    FieldMapping("socket.request.event", _P, "`request_event`"),
    FieldMapping("socket.response.event", _P, "`response_event`"),
    FieldMapping("socket.event", _M, "`event`"),
    FieldMapping(
        "socket.success", _PL, "the pair did not fail (see `error_type`); lifecycle: `ok`"
    ),
    FieldMapping("socket.sid", _ALL, "`session.session_id`"),
    FieldMapping("socket.namespace", _ALL, "`namespace` (lifecycle: when not null)"),
    FieldMapping("socket.rule", _P, "`rule`"),
    FieldMapping("socket.outcome", _P, "`outcome`"),
    FieldMapping("socket.slow", _P, "`slow`"),
    FieldMapping("socket.direction", ("pair", "message"), "`initiator` (message: `direction`)"),
    FieldMapping("socket.transport", _ALL, "`request_transport` (others: `transport`)"),
    FieldMapping("socket.request_size", _P, "`request_size`"),
    FieldMapping("socket.response_size", _P, "`response_size`"),
    FieldMapping("socket.size", _M, "`size`"),
    FieldMapping("session_trace_id", _P, "`session.trace_id`"),
    FieldMapping("socket.ack_id", _P, "`ack_id`", optional=True),
    FieldMapping("socket.match_key", _P, "`match_key`", optional=True),
    FieldMapping(
        "error_type",
        _P,
        "`error_type`, else from `outcome` (`timeout`, `abandoned`, `evicted`; `error`: the "
        "response event); a late reply is not an error",
        optional=True,
    ),
    FieldMapping("error", _L, "`error`", optional=True),
    FieldMapping("detail", _L, "`detail`", optional=True),
    FieldMapping("socket.heartbeats", _L, "`rtt_count` (heartbeat records)", optional=True),
    FieldMapping("socket.rtt_min_ms", _L, "`rtt_min_s` * 1000", optional=True),
    FieldMapping("socket.rtt_avg_ms", _L, "`rtt_avg_s` * 1000", optional=True),
    FieldMapping("socket.rtt_max_ms", _L, "`rtt_max_s` * 1000", optional=True),
    FieldMapping("socket.request.payload", _P, "`request_payload`", optional=True),
    FieldMapping("socket.response.payload", _P, "`response_payload`", optional=True),
    FieldMapping("socket.payload", _M, "`payload`", optional=True),
)


def mapping_table() -> str:
    """:data:`SCHEMA_MAPPING` as the Markdown table README.md shows."""
    rows = [
        "| JSON stream key | OpenObserve column | records | from the record (schema v1) |",
        "|---|---|---|---|",
    ]
    for m in SCHEMA_MAPPING:
        source = m.source + (" (left out when null)" if m.optional else "")
        types = ", ".join(m.types) if m.types != _ALL else "all"
        rows.append(f"| `{m.key}` | `{m.stored}` | {types} | {source} |")
    return "\n".join(rows)


_STATUS = {Outcome.OK: "ok", Outcome.TIMEOUT: "timeout"}


def pair_json(record: PairRecord, service: str) -> dict[str, Any]:
    """The in-app tracker's record (same field names), plus what the proxy knows more."""
    error_type = pair_error_type(record)
    ok = error_type is None
    status = "ok" if ok else _STATUS.get(record.outcome, "error")
    level = "ERROR" if not ok else ("WARN" if record.slow else "INFO")
    micros = round(record.start_wall * 1_000_000)
    data: dict[str, Any] = {
        "_timestamp": micros,
        "timestamp": micros,
        "message": f"Socket.IO Event: {record.operation}",
        "level": level,
        "service": service,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "operation_name": record.operation,
        "duration_ms": round(record.duration_s * 1000.0, 3),
        "status": status,
        "socket.request.event": record.request_event,
        "socket.response.event": record.response_event,
        "socket.success": ok,
        "socket.sid": record.session.session_id,
        "socket.namespace": record.namespace,
        "socket.rule": record.rule,
        "socket.outcome": record.outcome._value_,
        "socket.slow": record.slow,
        "socket.direction": record.initiator._value_,
        "socket.transport": record.request_transport._value_,
        "socket.request_size": record.request_size,
        "socket.response_size": record.response_size,
        "session_trace_id": record.session.trace_id,
    }
    if record.ack_id is not None:
        data["socket.ack_id"] = record.ack_id
    if record.match_key is not None:
        data["socket.match_key"] = record.match_key
    if error_type is not None:
        data["error_type"] = error_type
    if record.request_payload is not None:
        data["socket.request.payload"] = record.request_payload
    if record.response_payload is not None:
        data["socket.response.payload"] = record.response_payload
    return data


def lifecycle_json(record: LifecycleRecord, service: str) -> dict[str, Any]:
    name = f"socket:{record.kind._value_}"
    micros = round(record.start_wall * 1_000_000)
    data: dict[str, Any] = {
        "_timestamp": micros,
        "timestamp": micros,
        "message": f"Socket.IO {record.kind._value_}"
        + (f" {record.namespace}" if record.namespace else "")
        + ("" if record.ok else f" failed: {record.error}"),
        "level": "INFO" if record.ok else "ERROR",
        "service": service,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "operation_name": name,
        "duration_ms": round(record.duration_s * 1000.0, 3),
        "status": "ok" if record.ok else "error",
        "socket.success": record.ok,
        "socket.sid": record.session.session_id,
        "socket.transport": record.transport._value_,
    }
    if record.namespace is not None:
        data["socket.namespace"] = record.namespace
    if record.error is not None:
        data["error"] = record.error
    if record.detail is not None:
        data["detail"] = record.detail
    if record.rtt_count is not None:
        data["socket.heartbeats"] = record.rtt_count
        for key, value in (
            ("socket.rtt_min_ms", record.rtt_min_s),
            ("socket.rtt_avg_ms", record.rtt_avg_s),
            ("socket.rtt_max_ms", record.rtt_max_s),
        ):
            if value is not None:
                data[key] = round(value * 1000.0, 3)
    return data


def message_json(record: MessageRecord, service: str) -> dict[str, Any]:
    micros = round(record.wall * 1_000_000)
    data: dict[str, Any] = {
        "_timestamp": micros,
        "timestamp": micros,
        "message": f"Socket.IO Event: {record.event}",
        "level": "INFO",
        "service": service,
        "trace_id": record.session.trace_id,
        "operation_name": record.event,
        "status": "ok",
        "socket.event": record.event,
        "socket.sid": record.session.session_id,
        "socket.namespace": record.namespace,
        "socket.direction": record.direction._value_,
        "socket.transport": record.transport._value_,
        "socket.size": record.size,
    }
    if record.payload is not None:
        data["socket.payload"] = record.payload
    return data


def record_json(record: Record, service: str) -> dict[str, Any]:
    """A JSON stream row (see :data:`SCHEMA_MAPPING`)."""
    if isinstance(record, PairRecord):
        return pair_json(record, service)
    if isinstance(record, LifecycleRecord):
        return lifecycle_json(record, service)
    return message_json(record, service)


_encode = msgspec.json.Encoder().encode


def row_bytes(record: Record, service: str) -> tuple[bytes, bool]:
    """One row as compact JSON, and whether a text had to be repaired (U+FFFD)."""
    row = record_json(record, service)
    try:
        return _encode(row), False
    except UnicodeEncodeError:
        return _encode(without_surrogates(row)), True


class OpenObserveJsonPlugin:
    """POSTs a JSON array per batch to ``/api/{org}/{stream}/_json``."""

    def __init__(
        self,
        url: str,
        stream: str,
        service: str,
        headers: Mapping[str, str],
        *,
        gzip: bool,
        secrets: Collection[str] = (),
    ) -> None:
        all_headers = {"Content-Type": "application/json", "User-Agent": user_agent(), **headers}
        if gzip:
            all_headers["Content-Encoding"] = "gzip"
        self._gzip = gzip
        self.stream = stream
        self._service = service
        self._poster = HttpPoster(url, all_headers, secrets)

    @property
    def url(self) -> str:
        return self._poster.safe_url

    def encode(self, records: Sequence[Record]) -> Encoded:
        """The batch's rows as one JSON array, encoded in one call; when that fails (a text
        UTF-8 cannot carry, ...) row by row, so that only the odd row is repaired or lost."""
        service = self._service
        try:
            rows = [record_json(record, service) for record in records]
            return Encoded(_encode(rows), len(rows))
        except Exception:
            return encode_each(records, lambda record: row_bytes(record, service), _array)

    def send(self, batch: Encoded, timeout_s: float) -> SendResult:
        return post_batch(
            self._poster,
            batch.payload,
            batch.count,
            timeout_s,
            compress=self._gzip,
            rejected_in=lambda reply: _failed_records(reply.body),
            what="records",
            hints=AUTH_HINTS,
            retryable=OPENOBSERVE_RETRYABLE,
            transient=memtable_full,
        )

    def close(self) -> None:
        self._poster.close()


def _array(rows: list[bytes]) -> bytes:
    return b"[" + b",".join(rows) + b"]"


def _failed_records(body: bytes) -> tuple[int, str | None]:
    """Sum of ``failed`` in ``{"code":200,"status":[{"name":..,"successful":n,"failed":m}]}``."""
    try:
        data = json.loads(body)
    except ValueError:
        return 0, None
    if not isinstance(data, dict):
        return 0, None
    failed = 0
    error: str | None = None
    for entry in data.get("status") or []:
        if not isinstance(entry, dict):
            continue
        count = entry.get("failed")
        if isinstance(count, int) and count > 0:
            failed += count
            reason = entry.get("error")
            if isinstance(reason, str) and reason:
                error = reason
    return failed, error

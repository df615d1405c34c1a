"""OpenObserve: where to send (URL building, Basic auth), what it stores, and its JSON stream
exporter.

Traces go over OTLP/HTTP (:class:`exporters.otlp.OtlpTracesPlugin`) to
``{base}/api/{org}/v1/traces`` with the ``stream-name`` header.  The JSON stream exporter
posts AetherTerm's in-app tracker records (design doc, "データ送信形式") to
``{base}/api/{org}/{stream}/_json`` and checks each reply's per-stream ``failed`` count.

What OpenObserve does with it (read from its source, v0.14.4: ``config/src/utils/schema.rs``,
``config/src/utils/flatten.rs``, ``service/traces/mod.rs``, ``service/logs/ingest.rs``,
``handler/http/auth/validator.rs``; the same in later versions): a stream name is stored
normalized (:func:`stored_stream_name`: ``socket-io-traces`` is ``socket_io_traces``), every
record key is flattened and formatted (:func:`stored_field`: ``socket.request.event`` is
``socket_request_event``; span attributes become columns of the span, resource attributes
``service_<key>``), and nulls are not stored.

Which replies are transient there: 429, 502, 503, 504 as in OTLP, and 500 (a write that
failed: "error while writing trace data"; the same request succeeds once the write path
works again), and, on v0.14.4's ``_json``, a 400 whose message is ``MemoryTableOverflowError``
(the memtable is full until it is flushed; newer versions say 503).  Everything else (400 for
the body, 401, 403, 404) is permanent for the batch and explained by :data:`AUTH_HINTS`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from socketio_trace_proxy.config.about import user_agent
from socketio_trace_proxy.config.exporters import OpenObserveSettings
from socketio_trace_proxy.exporters.http import RETRYABLE, HttpPoster, Reply, post_batch
from socketio_trace_proxy.exporters.plugin import Encoded, SendResult, utf8
from socketio_trace_proxy.exporters.spans import pair_error_type
from socketio_trace_proxy.tracking.records import (
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairRecord,
    Record,
)

_API_ORG = re.compile(r"^(?P<base>.*?)/api/(?P<org>[^/]+)$")

#: What each refusal means on OpenObserve (its auth validator and ingestion handlers).
AUTH_HINTS = {
    400: "OpenObserve refused the request itself, not single records: for traces a "
    "Content-Type other than exactly application/x-protobuf or a body it cannot decode, for "
    "_json a body that is not JSON or an array element that is not an object; this batch is "
    "dropped",
    401: "OpenObserve did not accept the credentials: OPENOBSERVE_USER is the user's e-mail, "
    "OPENOBSERVE_PASS its password or its ingestion passcode (Basic, case-sensitive); a user "
    "who is not a member of OPENOBSERVE_ORG (or an organisation that does not exist for a "
    "non-root user) is refused the same way",
    403: "OpenObserve refused this organisation: in the open-source edition 403 means its "
    "ingestion quota is exhausted (a blocked organisation); with Enterprise permissions, the "
    "user may not ingest into this stream",
    404: "no OpenObserve ingestion API at this URL: check OPENOBSERVE_ENDPOINT (scheme, host, "
    "port and any base path such as ZO_BASE_URI); an unknown organisation is answered 401 or "
    "created, never 404",
}

#: Statuses OpenObserve answers for failures that pass (see the module docstring).
OPENOBSERVE_RETRYABLE = frozenset({*RETRYABLE, 500})

_STREAM_NAME_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")


def stored_stream_name(name: str) -> str:
    """The name OpenObserve stores, lists and queries a stream under: every run of characters
    outside ``[a-zA-Z0-9_:]`` becomes one ``_``, then lower case (``format_stream_name`` in
    ``config/src/utils/schema.rs``)."""
    return _STREAM_NAME_INVALID.sub("_", name).lower()


def stored_stream_notes(settings: OpenObserveSettings) -> list[str]:
    """For ``check-config``: each configured stream OpenObserve will store under another name."""
    notes = []
    for field, name in (
        ("traces_stream", settings.traces_stream if settings.traces else None),
        ("json_stream", settings.json_stream),
    ):
        if name and stored_stream_name(name) != name:
            notes.append(
                f"exporters.openobserve.{field} {name!r} is stored by OpenObserve as "
                f"{stored_stream_name(name)!r}: look for that name in its UI and queries"
            )
    return notes


def stored_field(key: str) -> str:
    """The column name OpenObserve stores a record key under (``format_key`` in
    ``config/src/utils/flatten.rs``): ASCII upper case lowered, every other character that is
    not ``[a-z0-9_]`` (each one) becomes ``_``; a key with non-ASCII letters keeps its lower
    case letters and digits."""
    if key.isascii():
        return "".join(
            c.lower() if c.isupper() else c if c.islower() or c.isdigit() or c == "_" else "_"
            for c in key
        )
    return "".join(
        c if c.islower() or c.isnumeric() else c.lower()[0] if c.isupper() else "_" for c in key
    )


def memtable_full(reply: Reply) -> bool:
    """v0.14.4's ``_json`` answers a full memtable with 400 ``MemoryTableOverflowError``."""
    return reply.status == 400 and b"MemoryTableOverflow" in reply.body


@dataclass(frozen=True, slots=True)
class OpenObserveTarget:
    base: str  # scheme://host:port[/prefix], no trailing slash
    org: str

    @property
    def traces_url(self) -> str:
        return f"{self.base}/api/{quote(self.org, safe='')}/v1/traces"

    def json_url(self, stream: str) -> str:
        return f"{self.base}/api/{quote(self.org, safe='')}/{quote(stream, safe='')}/_json"


def openobserve_target(endpoint: str, org: str) -> OpenObserveTarget:
    """Base URL plus org; an endpoint already ending in ``/api/{org}`` supplies the org."""
    endpoint = endpoint.strip().rstrip("/")
    match = _API_ORG.match(endpoint)
    if match:
        return OpenObserveTarget(match.group("base"), match.group("org"))
    return OpenObserveTarget(endpoint, org)


def basic_auth(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


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
        "socket.outcome": record.outcome.value,
        "socket.slow": record.slow,
        "socket.direction": record.initiator.value,
        "socket.transport": record.request_transport.value,
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
    name = f"socket:{record.kind.value}"
    micros = round(record.start_wall * 1_000_000)
    data: dict[str, Any] = {
        "_timestamp": micros,
        "timestamp": micros,
        "message": f"Socket.IO {record.kind.value}"
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
        "socket.transport": record.transport.value,
    }
    if record.namespace is not None:
        data["socket.namespace"] = record.namespace
    if record.error is not None:
        data["error"] = record.error
    if record.detail is not None:
        data["detail"] = record.detail
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
        "socket.direction": record.direction.value,
        "socket.transport": record.transport.value,
        "socket.size": record.size,
    }
    if record.payload is not None:
        data["socket.payload"] = record.payload
    return data


def record_json(record: Record, service: str) -> dict[str, Any]:
    if isinstance(record, PairRecord):
        return pair_json(record, service)
    if isinstance(record, LifecycleRecord):
        return lifecycle_json(record, service)
    return message_json(record, service)


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
        rows: list[bytes] = []
        skipped = replaced = 0
        error: str | None = None
        for record in records:  # one by one: a record that cannot be encoded is that one only
            try:
                text = json.dumps(
                    record_json(record, self._service), separators=(",", ":"), ensure_ascii=False
                )
            except Exception as exc:
                skipped += 1
                error = repr(exc)
                continue
            row, repaired = utf8(text)
            rows.append(row)
            replaced += repaired
        payload = b"[" + b",".join(rows) + b"]"
        return Encoded(payload, len(rows), skipped, error, replaced)

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

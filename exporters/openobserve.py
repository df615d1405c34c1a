"""OpenObserve: where to send (URL building, Basic auth) and its JSON stream exporter.

Traces go over OTLP/HTTP (:class:`exporters.otlp.OtlpTracesPlugin`) to
``{base}/api/{org}/v1/traces`` with the ``stream-name`` header.  The JSON stream exporter
posts AetherTerm's in-app tracker records (design doc, "データ送信形式") to
``{base}/api/{org}/{stream}/_json`` and checks each reply's per-stream ``failed`` count.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from socketio_trace_proxy.exporters.batching import Encoded, SendResult
from socketio_trace_proxy.exporters.http import HttpPoster, post_batch
from socketio_trace_proxy.exporters.spans import pair_error_type
from socketio_trace_proxy.tracking.records import (
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairRecord,
    Record,
)

_API_ORG = re.compile(r"^(?P<base>.*?)/api/(?P<org>[^/]+)$")

AUTH_HINTS = {
    401: "check OPENOBSERVE_USER / OPENOBSERVE_PASS",
    403: "the user may not ingest into this organisation",
    404: "check OPENOBSERVE_ENDPOINT and OPENOBSERVE_ORG",
    400: "OpenObserve refused the request body",
}


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
    ) -> None:
        all_headers = {"Content-Type": "application/json", **headers}
        if gzip:
            all_headers["Content-Encoding"] = "gzip"
        self._gzip = gzip
        self.stream = stream
        self._service = service
        self._poster = HttpPoster(url, all_headers)

    @property
    def url(self) -> str:
        return self._poster.safe_url

    def encode(self, records: Sequence[Record]) -> Encoded:
        rows: list[dict[str, Any]] = []
        skipped = 0
        error: str | None = None
        for record in records:
            try:
                rows.append(record_json(record, self._service))
            except Exception as exc:
                skipped += 1
                error = repr(exc)
        payload = json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()
        return Encoded(payload, len(rows), skipped, error)

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

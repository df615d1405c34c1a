"""OTLP/HTTP protobuf trace export (to OpenObserve or any OTLP/HTTP receiver).

Behaves on the wire like opentelemetry-exporter-otlp-proto-http's ``OTLPSpanExporter``: the
same ``Content-Type``, configured extra headers, ``Content-Encoding: gzip``, the same
retryable statuses and ``Retry-After`` handling (in :mod:`exporters.batching` /
:mod:`exporters.http`), with this project's own ``User-Agent``
(``socketio-trace-proxy/<version>``).  It does not call the library's ``export()``, which only
takes SDK ``ReadableSpan`` objects; spans are encoded directly (:mod:`exporters.otlp_wire`).
A partial success (``rejected_spans``) counts those spans as failed.

The resource names the service (``service.name``, ``service.version``,
``service.instance.id``: one id per process) and this project as the telemetry SDK
(``telemetry.sdk.name/language/version``); resource and scope carry the semantic conventions'
``schema_url`` (:data:`exporters.spans.SCHEMA_URL`).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from socketio_trace_proxy.config.about import DISTRIBUTION, user_agent, version
from socketio_trace_proxy.exporters import otlp_wire
from socketio_trace_proxy.exporters.http import RETRYABLE, HttpPoster, Reply, post_batch
from socketio_trace_proxy.exporters.otlp_pairs import PairSpanEncoder
from socketio_trace_proxy.exporters.plugin import Encoded, SendResult, replace_unencodable
from socketio_trace_proxy.exporters.spans import SCHEMA_URL, AttrValue, SpanSpec, record_span
from socketio_trace_proxy.tracking.records import PairRecord, Record

# OTLP/HTTP (OTLP spec, "Binary Protobuf Encoding"): the exact content type, which
# OpenObserve also requires to the byte; the User-Agent names this project, not the library.
PROTOBUF_HEADERS: Final = {"Content-Type": "application/x-protobuf"}

SCOPE_NAME = DISTRIBUTION
# The worker hands the GIL to the event loop thread after at most this much encoding (a
# hand-over costs both threads a context switch and their caches: by time, not per N spans).
YIELD_AFTER_S = 0.001
CHUNK = 32  # spans encoded between two looks at the clock
INSTANCE_ID: Final = str(uuid.uuid4())  # service.instance.id: stable for this process


def default_resource(service_name: str) -> dict[str, AttrValue]:
    return {
        "service.name": service_name,
        "service.version": version(),
        "service.instance.id": INSTANCE_ID,
        "host.name": socket.gethostname(),
        "telemetry.sdk.name": DISTRIBUTION,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": version(),
    }


def sanitized(spec: SpanSpec) -> SpanSpec:
    """``spec`` with every text that UTF-8 cannot encode (lone surrogates) replaced."""

    def clean(attrs: tuple[tuple[str, AttrValue], ...]) -> tuple[tuple[str, AttrValue], ...]:
        return tuple(
            (replace_unencodable(k), replace_unencodable(v) if isinstance(v, str) else v)
            for k, v in attrs
        )

    message = spec.status_message
    return spec._replace(
        name=replace_unencodable(spec.name),
        status_message=None if message is None else replace_unencodable(message),
        attributes=clean(spec.attributes),
        shared=clean(spec.shared),
    )


class OtlpTracesPlugin:
    """Encodes records as one ExportTraceServiceRequest per batch and POSTs it."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        resource: Mapping[str, AttrValue],
        *,
        gzip: bool,
        hints: Mapping[int, str] | None = None,
        retryable: Collection[int] = RETRYABLE,
        span_attributes: Mapping[str, AttrValue] | None = None,
        secrets: Collection[str] = (),
    ) -> None:
        all_headers = {**PROTOBUF_HEADERS, "User-Agent": user_agent()}
        all_headers.update(headers)
        if gzip:
            all_headers["Content-Encoding"] = "gzip"
        self._gzip = gzip
        self._poster = HttpPoster(url, all_headers, secrets)
        self._hints = dict(hints or {})
        self._retryable = frozenset(retryable)
        self._encoder = otlp_wire.SpanEncoder(constant=span_attributes)
        self._pairs = PairSpanEncoder(otlp_wire.attributes(span_attributes or {}, b"\x4a"))
        self._resource = otlp_wire.resource(resource)
        self._scope = otlp_wire.scope(SCOPE_NAME, version())

    @property
    def url(self) -> str:
        return self._poster.safe_url

    def encode(self, records: Sequence[Record]) -> Encoded:
        fields: list[bytes] = []  # ScopeSpans.spans fields, in parts
        size = count = skipped = replaced = 0
        error: str | None = None
        pair_parts = self._pairs.parts
        span_head = otlp_wire.span_head
        clock = time.perf_counter
        yield_at = clock() + YIELD_AFTER_S
        for begin in range(0, len(records), CHUNK):
            if begin and clock() >= yield_at:
                time.sleep(0)  # let the relay's thread take the GIL
                yield_at = clock() + YIELD_AFTER_S
            for record in records[begin : begin + CHUNK]:
                if type(record) is PairRecord:
                    try:
                        body_size, parts = pair_parts(record)
                    except Exception:  # the general path below reports or repairs it
                        pass
                    else:
                        head = span_head(body_size)
                        fields.append(head)
                        fields.extend(parts)
                        size += len(head) + body_size
                        count += 1
                        continue
                try:
                    body, repaired = self._general(record)
                except Exception as exc:  # one bad record must not sink its batch
                    skipped += 1
                    error = repr(exc)
                    continue
                head = span_head(len(body))
                fields.append(head)
                fields.append(body)
                size += len(head) + len(body)
                count += 1
                replaced += repaired
        payload = otlp_wire.framed_request(self._resource, self._scope, fields, size, SCHEMA_URL)
        return Encoded(payload, count, skipped, error, replaced)

    def _general(self, record: Record) -> tuple[bytes, bool]:
        """A span through the span model; whether text had to be replaced."""
        spec = record_span(record)
        otlp_wire.check_ids(spec)
        try:
            return self._encoder.span(spec), False
        except UnicodeEncodeError:
            return self._encoder.span(sanitized(spec)), True

    def send(self, batch: Encoded, timeout_s: float) -> SendResult:
        return post_batch(
            self._poster,
            batch.payload,
            batch.count,
            timeout_s,
            compress=self._gzip,
            rejected_in=partial_success,
            what="spans",
            hints=self._hints,
            retryable=self._retryable,
        )

    def close(self) -> None:
        self._poster.close()


def partial_success(reply: Reply) -> tuple[int, str]:
    """``(rejected_spans, error_message)`` from an OTLP success reply (protobuf or JSON)."""
    if not reply.body:
        return 0, ""
    content_type = reply.header("Content-Type")
    try:
        if "json" in content_type:
            data: Any = json.loads(reply.body)
            partial = data.get("partialSuccess") if isinstance(data, dict) else None
            if not isinstance(partial, dict):
                return 0, ""
            return int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or "")
        response = ExportTraceServiceResponse.FromString(reply.body)
    except Exception:
        return 0, ""
    return int(response.partial_success.rejected_spans), response.partial_success.error_message

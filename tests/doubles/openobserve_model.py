"""What OpenObserve does to what it ingests, as pure functions (the test double's model).

Each function follows one piece of OpenObserve's source at v0.14.4 (the version compose
pins; file paths under ``src/``), written again here rather than imported from the product,
so that the double can disagree with the exporters:

- :func:`stream_name` - ``config/src/utils/schema.rs`` ``format_stream_name``;
- :func:`format_key`, :func:`flatten` - ``config/src/utils/flatten.rs`` (``flatten_with_level``,
  ``format_key``: nested objects joined with ``_``, arrays kept as JSON text, nulls dropped,
  a non-object record refused);
- :func:`timestamp_micros` - ``config/src/utils/time.rs`` ``parse_i64_to_timestamp_micros``
  (seconds, ms, us or ns told apart against 1971-01-01);
- :func:`span_row` - ``service/traces/mod.rs`` ``handle_otlp_request`` with ``common/meta/
  traces.rs`` ``Span`` (attribute values stored as strings by ``service/ingestion/grpc.rs``
  ``get_val``, resource attributes as ``service_<key>``, ``_timestamp``/``duration``/
  ``start_time``/``end_time`` attributes renamed ``attr_<key>``).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_STREAM_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")
BASE_TIME_S = 31_536_000  # 1971-01-01T00:00:00Z
BLOCK_FIELDS = frozenset({"_timestamp", "duration", "start_time", "end_time"})
SPAN_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


class NotAnObject(ValueError):
    """``flatten value must be an object`` (the whole ``_json`` request fails with 400)."""

    def __init__(self) -> None:
        super().__init__("flatten value must be an object")


def stream_name(name: str) -> str:
    return _STREAM_INVALID.sub("_", name).lower()


def _check_key(key: str) -> bool:
    return all(c.islower() or c.isnumeric() or c == "_" for c in key)


def format_key(key: str) -> str:
    if _check_key(key):
        return key
    if key.isascii():
        return "".join(
            c.lower() if c.isupper() else c if c.islower() or c.isdigit() or c == "_" else "_"
            for c in key
        )
    return "".join(
        c if c.islower() or c.isnumeric() else c.lower()[0] if c.isupper() else "_" for c in key
    )


def _rust_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def flatten(value: Any, max_level: int = 3) -> dict[str, Any]:
    """A record as stored (``ZO_INGEST_FLATTEN_LEVEL`` defaults to 3)."""
    if not isinstance(value, dict):
        raise NotAnObject
    out: dict[str, Any] = {}
    _flatten_object(value, "", max_level, 0, out)
    return out


def _flatten_value(value: Any, key: str, max_level: int, depth: int, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        _flatten_object(value, key, max_level, depth, out)
    elif isinstance(value, list):
        if value:
            out[key] = _rust_json(value)
    elif value is not None:
        out[key] = value


def _flatten_object(
    obj: dict[str, Any], parent: str, max_level: int, depth: int, out: dict[str, Any]
) -> None:
    if not obj:
        return
    if max_level > 0 and depth >= max_level:
        out[parent] = _rust_json(obj)
        return
    for key, value in obj.items():
        name = format_key(key)
        _flatten_value(value, f"{parent}_{name}" if depth > 0 else name, max_level, depth + 1, out)


def timestamp_micros(value: Any, now_us: int) -> int:
    """``_timestamp`` in microseconds; ValueError when it cannot be parsed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError("Can't parse timestamp") from None
        else:
            raise ValueError("Can't parse timestamp")
    number = int(value)
    if number == 0:
        return now_us
    if number > BASE_TIME_S * 10**9:
        return number // 1000
    if number > BASE_TIME_S * 10**6:
        return number
    if number > BASE_TIME_S * 10**3:
        return number * 1000
    return number * 1_000_000


def attribute_value(value: AnyValue) -> Any:
    """``get_val``: scalars as strings, as OpenObserve stores span attributes."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        number = value.double_value
        return str(int(number)) if number.is_integer() else repr(number)
    if kind == "array_value":
        return [attribute_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: attribute_value(kv.value) for kv in value.kvlist_value.values}
    return value.bytes_value.decode("utf-8", "replace")


def span_row(span: Span, resource: list[tuple[str, AnyValue]], default_service: str) -> Any:
    """The stored row of one span (keys as OpenObserve's columns)."""
    service: dict[str, Any] = {}
    service_name = default_service
    for key, raw in resource:
        value = attribute_value(raw)
        if key == "service.name":
            if isinstance(value, str):
                service_name = value
                service[key] = value
        else:
            service[f"service.{key}"] = value
    attributes: dict[str, Any] = {}
    for kv in span.attributes:
        key = f"attr_{kv.key}" if kv.key in BLOCK_FIELDS else kv.key
        attributes[key] = attribute_value(kv.value)
    if span.HasField("status"):
        attributes["status_code"] = span.status.code
        attributes["status_message"] = span.status.message
    row: dict[str, Any] = {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "flags": 1,
        "span_status": SPAN_STATUS.get(span.status.code, "UNSET")
        if span.HasField("status")
        else "UNSET",
        "span_kind": str(span.kind),
        "operation_name": span.name,
        "start_time": span.start_time_unix_nano,
        "end_time": span.end_time_unix_nano,
        "duration": (span.end_time_unix_nano - span.start_time_unix_nano) // 1000,
    }
    if len(span.parent_span_id) == 8:
        row["reference.parent_trace_id"] = span.trace_id.hex()
        row["reference.parent_span_id"] = span.parent_span_id.hex()
        row["reference.ref_type"] = "ChildOf"
    row["service_name"] = service_name
    row.update(attributes)
    row.update(service)
    row["events"] = "[]"
    row["links"] = _rust_json(
        [
            {
                "context": {
                    "traceId": link.trace_id.hex(),
                    "spanId": link.span_id.hex(),
                    "traceFlags": link.flags,
                    "traceState": link.trace_state,
                },
                "attributes": {},
                "dropped_attributes_count": link.dropped_attributes_count,
            }
            for link in span.links
            if len(link.span_id) == 8 and len(link.trace_id) == 16
        ]
    )
    row["_timestamp"] = span.start_time_unix_nano // 1000
    return flatten(row, max_level=0)


def plain_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def hex_to_b64(value: Any) -> Any:
    if isinstance(value, str) and value:
        return base64.b64encode(bytes.fromhex(value)).decode()
    return value


def parse_otlp_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON: like protobuf's JSON mapping, but trace/span ids are hex, not base64."""
    data = json.loads(body)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = hex_to_b64(span[key])
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        if key in link:
                            link[key] = hex_to_b64(link[key])
    message = ExportTraceServiceRequest()
    json_format.ParseDict(data, message, ignore_unknown_fields=True)
    return message

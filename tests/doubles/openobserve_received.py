"""What the OpenObserve test double keeps of each request and span (its records), and its
scripted faults and users."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.doubles.openobserve_model import plain_value, span_row


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    org: str
    stream: str  # as stored (normalized)
    encoding: str  # "protobuf" | "json"
    resource: dict[str, Any]
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    links: tuple[tuple[str, str], ...]
    raw: bytes  # the Span message, and the resource's attributes, as received:
    raw_resource: bytes  # ``stored`` is worked out from them when asked for (cheap ingest)
    resource_schema_url: str = ""
    scope_schema_url: str = ""
    scope_version: str = ""

    @property
    def stored(self) -> dict[str, Any]:
        """The row OpenObserve stores for this span (its column names and values)."""
        span = Span.FromString(self.raw)
        resource = Resource.FromString(self.raw_resource)
        attrs = [(kv.key, kv.value) for kv in resource.attributes]
        row: dict[str, Any] = span_row(span, attrs, self.stream)
        return row

    def shown(self) -> dict[str, Any]:
        """As ``GET /_double/received`` lists it (JSON: no raw bytes, the stored row)."""
        fields = {k: v for k, v in asdict(self).items() if not k.startswith("raw")}
        return {**fields, "stored": self.stored}

    @property
    def service_name(self) -> str | None:
        value = self.resource.get("service.name")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    status: int
    content_type: str | None
    content_encoding: str | None
    stream_name: str | None
    authorized: bool
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted reply: ``status`` None means answer normally (after ``delay_s``)."""

    status: int | None
    retry_after: str | None = None
    delay_s: float = 0.0
    body: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """A user of an org (``orgs`` None: the root user, a member of every org)."""

    password: str
    passcode: str | None = None
    orgs: frozenset[str] | None = None


def span_fields(
    where: tuple[str, str, str], resource: dict[str, Any], scope: Any, span: Any
) -> Any:
    """The fields of a :class:`ReceivedSpan` (``where``: org, stream, encoding)."""
    org, stream, encoding = where
    return {
        "org": org,
        "stream": stream,
        "encoding": encoding,
        "resource": resource,
        "scope": scope.scope.name,
        "scope_version": scope.scope.version,
        "scope_schema_url": scope.schema_url,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "kind": span.kind,
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": {kv.key: plain_value(kv.value) for kv in span.attributes},
        "status_code": span.status.code,
        "status_message": span.status.message,
        "links": tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
    }

"""OTLP protobuf encoding of :class:`exporters.spans.SpanSpec`, written straight to the wire.

Encodes ``opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`` (field numbers
from opentelemetry-proto's ``trace.proto``/``common.proto``/``resource.proto``) without
building message objects: the OTel SDK path costs ~60 us per span and even filling upb
messages ~15 us, the budget is 20 us including gzip and sending.  Attribute key/value pairs
that repeat (event names, transports, sids, ...) are memoised as finished bytes in a bounded
cache.  Tests decode the output with opentelemetry-proto to prove it is the same message.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from socketio_trace_proxy.exporters.spans import AttrValue, SpanSpec, StatusCode

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_U64 = (1 << 64) - 1


def varint(value: int) -> bytes:
    if value < 0:  # int64 two's complement, ten bytes (protobuf encoding spec)
        value &= _U64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((n,)) for n in range(128)]


def _len_prefix(size: int) -> bytes:
    return _SMALL[size] if size < 128 else varint(size)


def _ld(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: tag, length varint, body."""
    size = len(body)
    return tag + (_SMALL[size] if size < 128 else varint(size)) + body


# Span field tags: (field_number << 3) | wire_type
_T_TRACE_ID = b"\x0a\x10"  # 1, bytes(16)
_T_SPAN_ID = b"\x12\x08"  # 2, bytes(8)
_T_PARENT = b"\x22\x08"  # 4, bytes(8)
_T_NAME = b"\x2a"  # 5
_T_KIND = b"\x30"  # 6, varint
_T_START = b"\x39"  # 7, fixed64
_T_END = b"\x41"  # 8, fixed64
_T_ATTR = b"\x4a"  # 9
_T_LINK = b"\x6a"  # 13
_T_STATUS = b"\x7a"  # 15
# KeyValue: key=1, value=2; AnyValue: string=1, bool=2, int=3, double=4
_T_KEY = b"\x0a"
_T_VALUE = b"\x12"


def _any_value(value: AttrValue) -> bytes:
    if isinstance(value, str):
        return _ld(b"\x0a", value.encode())
    if isinstance(value, bool):  # before int: bool is an int
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    return b"\x21" + _pack_double(float(value))


def key_value(key: str, value: AttrValue) -> bytes:
    """A KeyValue message body (no outer tag)."""
    return _ld(_T_KEY, key.encode()) + _ld(_T_VALUE, _any_value(value))


def attributes(attrs: Mapping[str, AttrValue], tag: bytes) -> bytes:
    return b"".join(_ld(tag, key_value(k, v)) for k, v in attrs.items())


class SpanEncoder:
    """Encodes spans; memoises repeated string/bool attributes (bounded, counted)."""

    def __init__(
        self, cache_limit: int = 8192, constant: Mapping[str, AttrValue] | None = None
    ) -> None:
        # attributes every span carries (the upstream's server.address/port): encoded once
        self._constant = attributes(constant or {}, _T_ATTR)
        self._cache: dict[tuple[str, AttrValue], bytes] = {}
        self._ints: dict[tuple[str, AttrValue], bytes] = {}
        self._key_prefix: dict[str, bytes] = {}
        self._links: dict[tuple[str, str], bytes] = {}  # the session link repeats per session
        self._groups: dict[int, tuple[tuple[tuple[str, AttrValue], ...], bytes]] = {}
        self._limit = cache_limit
        self.cache_resets = 0

    def _prefix(self, key: str) -> bytes:
        """``KeyValue.key`` field, encoded."""
        prefix = self._key_prefix.get(key)
        if prefix is None:
            if len(self._key_prefix) >= self._limit:
                self._key_prefix.clear()
            prefix = self._key_prefix[key] = _ld(_T_KEY, key.encode())
        return prefix

    def _attr(self, key: str, value: AttrValue) -> bytes:
        """A whole ``Span.attributes`` field."""
        return _ld(_T_ATTR, self._prefix(key) + _ld(_T_VALUE, _any_value(value)))

    def _attributes(self, attrs: tuple[tuple[str, AttrValue], ...]) -> bytes:
        """``Span.attributes`` fields for ``attrs``."""
        cache = self._cache
        ints = self._ints
        parts: list[bytes] = []
        for item in attrs:
            value = item[1]
            kind = type(value)
            if kind is bool or (kind is str and len(value) <= 64):  # type: ignore[arg-type]
                encoded = cache.get(item)
                if encoded is None:
                    if len(cache) >= self._limit:
                        cache.clear()
                        self.cache_resets += 1
                    encoded = cache[item] = self._attr(item[0], value)
                parts.append(encoded)
            elif kind is int:  # sizes and counts repeat too; own cache (1 == True in a dict)
                encoded = ints.get(item)
                if encoded is None:
                    if len(ints) >= self._limit:
                        ints.clear()
                        self.cache_resets += 1
                    number = b"\x18" + varint(value)  # type: ignore[arg-type]
                    inner = self._prefix(item[0]) + b"\x12" + _SMALL[len(number)] + number
                    encoded = ints[item] = _T_ATTR + _len_prefix(len(inner)) + inner
                parts.append(encoded)
            elif kind is float:
                inner = self._prefix(item[0]) + b"\x12\x09\x21" + _pack_double(value)
                parts.append(_T_ATTR + _len_prefix(len(inner)) + inner)
            else:
                parts.append(self._attr(item[0], value))
        return b"".join(parts)

    def span(self, spec: SpanSpec) -> bytes:
        """One ``Span`` message body."""
        parts = [
            _T_TRACE_ID,
            bytes.fromhex(spec.trace_id),
            _T_SPAN_ID,
            bytes.fromhex(spec.span_id),
        ]
        if spec.parent_span_id:
            parts.append(_T_PARENT)
            parts.append(bytes.fromhex(spec.parent_span_id))
        name = spec.name.encode()
        parts.append(_T_NAME + _len_prefix(len(name)) + name)
        parts.append(_T_KIND + _SMALL[spec.kind])
        parts.append(_T_START + _pack_fixed64(spec.start_ns))
        parts.append(_T_END + _pack_fixed64(spec.end_ns))
        shared = spec.shared
        if shared:
            # interned by the span model: keyed by identity (the entry keeps the tuple alive,
            # so its id cannot be reused while cached)
            entry = self._groups.get(id(shared))
            if entry is None or entry[0] is not shared:
                if len(self._groups) >= self._limit:
                    self._groups.clear()
                    self.cache_resets += 1
                entry = self._groups[id(shared)] = (shared, self._attributes(shared))
            parts.append(entry[1])
        parts.append(self._attributes(spec.attributes))
        if self._constant:
            parts.append(self._constant)
        links = self._links
        for link in spec.links:
            encoded = links.get(link)
            if encoded is None:
                if len(links) >= self._limit:
                    links.clear()
                    self.cache_resets += 1
                body = _T_TRACE_ID + bytes.fromhex(link[0]) + _T_SPAN_ID + bytes.fromhex(link[1])
                encoded = links[link] = _ld(_T_LINK, body)
            parts.append(encoded)
        if spec.status is not StatusCode.UNSET:
            status = b"\x18" + _SMALL[spec.status]  # Status.code = 3
            if spec.status_message:
                status = _ld(b"\x12", spec.status_message.encode()) + status  # message = 2
            parts.append(_ld(_T_STATUS, status))
        return b"".join(parts)


def check_ids(spec: SpanSpec) -> None:
    """Raise ValueError unless the ids have W3C sizes (hex of 16 and 8 bytes)."""
    if len(spec.trace_id) != 32 or len(spec.span_id) != 16:
        raise ValueError(f"bad ids {spec.trace_id!r}/{spec.span_id!r}")
    if spec.parent_span_id and len(spec.parent_span_id) != 16:
        raise ValueError(f"bad parent span id {spec.parent_span_id!r}")
    for trace_id, span_id in spec.links:
        if len(trace_id) != 32 or len(span_id) != 16:
            raise ValueError(f"bad link ids {trace_id!r}/{span_id!r}")


def resource(attrs: Mapping[str, AttrValue]) -> bytes:
    """A ``Resource`` message body (attributes = field 1)."""
    return attributes(attrs, b"\x0a")


def scope(name: str, version: str) -> bytes:
    """An ``InstrumentationScope`` message body (name = 1, version = 2)."""
    return _ld(b"\x0a", name.encode()) + _ld(b"\x12", version.encode())


_SPAN_HEADS = [b"\x12" + size for size in _SMALL]
_pack_head2 = struct.Struct("<BH").pack  # a tag and a two-byte varint (low 7 bits first)


def span_head(size: int) -> bytes:
    """The tag and length of a ``ScopeSpans.spans`` (2) field of ``size`` bytes."""
    if size < 0x80:
        return _SPAN_HEADS[size]
    if size < 0x4000:  # a two-byte length varint: most spans
        return _pack_head2(0x12, (size & 0x7F) | 0x80 | (size >> 7) << 8)
    return b"\x12" + varint(size)


def export_request(
    resource_body: bytes, scope_body: bytes, spans: Sequence[bytes], schema_url: str = ""
) -> bytes:
    """``ExportTraceServiceRequest{resource_spans: [ResourceSpans{resource, scope_spans:
    [ScopeSpans{scope, spans, schema_url}], schema_url}]}``."""
    fields: list[bytes] = []
    size = 0
    for body in spans:
        head = span_head(len(body))
        fields.append(head)
        fields.append(body)
        size += len(head) + len(body)
    return framed_request(resource_body, scope_body, fields, size, schema_url)


def framed_request(
    resource_body: bytes, scope_body: bytes, fields: list[bytes], size: int, schema_url: str = ""
) -> bytes:
    """:func:`export_request` of spans given as ``ScopeSpans.spans`` fields (each
    :func:`span_head` and the span's body, possibly in parts) of ``size`` bytes in all,
    joined once (spans are large: no intermediate copies)."""
    # ScopeSpans.schema_url = 3 and ResourceSpans.schema_url = 3
    schema = _ld(b"\x1a", schema_url.encode()) if schema_url else b""
    scope_field = _ld(b"\x0a", scope_body)  # ScopeSpans.scope = 1
    scope_spans_len = len(scope_field) + size + len(schema)
    resource_field = _ld(b"\x0a", resource_body)  # ResourceSpans.resource = 1
    scope_spans_head = b"\x12" + _len_prefix(scope_spans_len)  # ResourceSpans.scope_spans = 2
    resource_spans_len = len(resource_field) + len(scope_spans_head) + scope_spans_len + len(schema)
    head = b"\x0a" + _len_prefix(resource_spans_len)  # ExportTraceServiceRequest.resource_spans
    return b"".join([head, resource_field, scope_spans_head, scope_field, *fields, schema, schema])

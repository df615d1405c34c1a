"""The hand-written OTLP encoding decodes, with opentelemetry-proto, to the intended message."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from socketio_trace_proxy.exporters import otlp_wire
from socketio_trace_proxy.exporters.spans import (
    AttrValue,
    SpanKind,
    SpanSpec,
    StatusCode,
    pair_span,
)
from tests.exporters.kit import pair

hex16 = st.binary(min_size=16, max_size=16).map(bytes.hex)
hex8 = st.binary(min_size=8, max_size=8).map(bytes.hex)
values: st.SearchStrategy[AttrValue] = st.one_of(
    st.text(max_size=300),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
specs = st.builds(
    SpanSpec,
    trace_id=hex16,
    span_id=hex8,
    parent_span_id=st.none() | hex8,
    name=st.text(max_size=200),
    kind=st.sampled_from(SpanKind),
    start_ns=st.integers(min_value=0, max_value=2**63),
    end_ns=st.integers(min_value=0, max_value=2**63),
    attributes=st.lists(st.tuples(st.text(max_size=80), values), max_size=25).map(tuple),
    status=st.sampled_from(StatusCode),
    status_message=st.none() | st.text(max_size=50),
    links=st.lists(st.tuples(hex16, hex8), max_size=3).map(tuple),
    shared=st.sampled_from([(), (("shared.a", "x"), ("shared.b", True))]),
)


def plain(value: AnyValue) -> AttrValue:
    kind = value.WhichOneof("value")
    result: AttrValue = getattr(value, kind)
    return result


def decode(payload: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(payload)


@settings(max_examples=150, deadline=None)
@given(st.lists(specs, min_size=1, max_size=4), st.integers(min_value=0, max_value=2))
def test_round_trip(batch: list[SpanSpec], cache_limit: int) -> None:
    encoder = otlp_wire.SpanEncoder(cache_limit=cache_limit + 1)  # tiny caches reset often
    resource = otlp_wire.resource({"service.name": "svc", "n": 3})
    scope = otlp_wire.scope("scope", "1.2")
    # encode twice: the second pass is served from the caches and must be identical
    first = otlp_wire.export_request(resource, scope, [encoder.span(s) for s in batch])
    second = otlp_wire.export_request(resource, scope, [encoder.span(s) for s in batch])
    assert first == second
    message = decode(first)
    (resource_spans,) = message.resource_spans
    assert {kv.key: plain(kv.value) for kv in resource_spans.resource.attributes} == {
        "service.name": "svc",
        "n": 3,
    }
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("scope", "1.2")
    assert len(scope_spans.spans) == len(batch)
    for spec, span in zip(batch, scope_spans.spans, strict=True):
        assert span.trace_id.hex() == spec.trace_id
        assert span.span_id.hex() == spec.span_id
        assert span.parent_span_id.hex() == (spec.parent_span_id or "")
        assert span.name == spec.name
        assert span.kind == spec.kind
        assert (span.start_time_unix_nano, span.end_time_unix_nano) == (spec.start_ns, spec.end_ns)
        decoded = [(kv.key, plain(kv.value)) for kv in span.attributes]
        assert decoded == list(spec.all_attributes)
        for (_, got), (_, want) in zip(decoded, spec.all_attributes, strict=True):
            assert type(got) is type(want)
        assert [(ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links] == list(spec.links)
        assert span.status.code == spec.status
        expected_message = spec.status_message if spec.status is not StatusCode.UNSET else None
        assert span.status.message == (expected_message or "")


def test_pair_record_encodes_with_official_decoder() -> None:
    record = pair(ack_id=5)
    encoder = otlp_wire.SpanEncoder()
    payload = otlp_wire.export_request(b"", b"", [encoder.span(pair_span(record))])
    span = decode(payload).resource_spans[0].scope_spans[0].spans[0]
    attrs = {kv.key: plain(kv.value) for kv in span.attributes}
    assert span.name == record.operation
    assert attrs["messaging.message.id"] == "5"
    assert attrs["messaging.socket.io.sid"] == record.session.session_id
    assert not span.HasField("status")  # success: Status left Unset (not even sent)
    assert span.kind == 1  # INTERNAL


def test_schema_url_and_constant_attributes() -> None:
    encoder = otlp_wire.SpanEncoder(constant={"server.address": "backend", "server.port": 5000})
    url = "https://opentelemetry.io/schemas/1.27.0"
    specs = [pair_span(pair()), pair_span(pair(ack_id=1))]
    payload = otlp_wire.export_request(
        otlp_wire.resource({"service.name": "s"}),
        otlp_wire.scope("scope", "1"),
        [encoder.span(spec) for spec in specs],
        url,
    )
    (resource_spans,) = decode(payload).resource_spans
    assert resource_spans.schema_url == url
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.schema_url == url
    assert len(scope_spans.spans) == 2
    for span in scope_spans.spans:
        attrs = {kv.key: plain(kv.value) for kv in span.attributes}
        assert (attrs["server.address"], attrs["server.port"]) == ("backend", 5000)


def test_check_ids_rejects_wrong_sizes() -> None:
    spec = pair_span(pair())
    otlp_wire.check_ids(spec)
    for bad in (spec._replace(trace_id="abc"), spec._replace(links=(("1" * 32, "2"),))):
        try:
            otlp_wire.check_ids(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


@given(st.integers(0, 2**21))
def test_span_head_is_the_spans_tag_and_the_size_varint(size: int) -> None:
    assert otlp_wire.span_head(size) == b"\x12" + otlp_wire.varint(size)

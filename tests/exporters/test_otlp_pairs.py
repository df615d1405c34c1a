"""Golden equality: the pair fast path (:mod:`exporters.otlp_pairs`) writes the very span the
span model and the general wire encoder make (``SpanEncoder.span(pair_span(record))``), for
every kind of pair; whole batches through the plugin decode, with opentelemetry-proto, to the
same ``ExportTraceServiceRequest`` as the general path's, lifecycle and message records
included; odd records still take the general path's way out (skipped or repaired)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from socketio_trace_proxy.config.about import version
from socketio_trace_proxy.exporters import otlp, otlp_wire
from socketio_trace_proxy.exporters.otlp import SCOPE_NAME, OtlpTracesPlugin
from socketio_trace_proxy.exporters.otlp_pairs import PairSpanEncoder
from socketio_trace_proxy.exporters.spans import (
    MESSAGE_SPAN,
    SCHEMA_URL,
    AttrValue,
    pair_span,
    record_span,
)
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    Outcome,
    PairKind,
    PairRecord,
    Record,
    SessionRef,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.exporters.kit import lifecycle, message, pair, session, span_id, trace_id

CONSTANT: dict[str, AttrValue] = {"server.address": "backend", "server.port": 5000}
LONG = "x" * 200  # lengths past one varint byte


def reference(records: Sequence[Record], constant: dict[str, AttrValue] = CONSTANT) -> bytes:
    """The general path: span model, then the attribute-by-attribute wire encoder."""
    encoder = otlp_wire.SpanEncoder(constant=constant)
    return otlp_wire.export_request(
        b"", b"", [encoder.span(record_span(r)) for r in records], SCHEMA_URL
    )


def fast(records: Sequence[PairRecord], encoder: PairSpanEncoder | None = None) -> bytes:
    encoder = encoder or PairSpanEncoder(otlp_wire.attributes(CONSTANT, b"\x4a"))
    return otlp_wire.export_request(b"", b"", [encoder.encode(r) for r in records], SCHEMA_URL)


def every_pair_kind() -> list[PairRecord]:
    """Each branch of ``pair_span``: kinds, outcomes, error types, ack id / match key,
    stream fields, captured payloads, client address, traceparent parent, LATE link."""
    ref = session("sid-" + LONG)
    client = SessionRef("sid-C", trace_id(), span_id(), "10.1.2.3", 50123)
    address_only = SessionRef("sid-D", trace_id(), span_id(), "::1", None)
    records = [pair(kind=kind) for kind in PairKind]
    records += [pair(outcome=o) for o in Outcome]
    records += [
        pair(ack_id=0),
        pair(ack_id=5, kind=PairKind.ACK, operation="echo -> ack", response_event=None),
        pair(ack_id=2**40, match_key="term-1"),
        pair(match_key="é" * 70),
        pair(outcome=Outcome.ERROR, error_type="boom"),
        pair(outcome=Outcome.ERROR, response_event="create_failed"),
        pair(outcome=Outcome.REJECTED, error_type=""),
        pair(outcome=Outcome.TIMEOUT, slow=True, response_transport=None, response_event=None),
        pair(outcome=Outcome.LATE, linked_span_id=span_id()),
        pair(kind=PairKind.STREAM, chunk_count=4, first_chunk_s=0.0125),
        pair(kind=PairKind.STREAM, chunk_count=0),
        pair(request_payload='{"a":1}', response_payload=LONG),
        pair(response_payload=""),
        pair(request_payload="π" * 3),
        pair(session_ref=client),
        pair(session_ref=address_only),
        pair(session_ref=ref, parent_span_id=span_id()),
        pair(operation=LONG, rule=LONG, request_event=LONG, namespace="/" + LONG),
        pair(request_size=0, response_size=2**35, duration_s=0.0, start_wall=0.0),
        pair(duration_s=3600.123456, initiator=Direction.SERVER_TO_CLIENT),
        pair(request_transport=Transport.POLLING, response_transport=Transport.WEBSOCKET),
        pair(sampled=False),
    ]
    return records


def test_every_pair_kind_is_the_general_paths_span_byte_for_byte() -> None:
    constant = otlp_wire.attributes(CONSTANT, b"\x4a")
    for record in every_pair_kind():
        general = otlp_wire.SpanEncoder(constant=CONSTANT).span(pair_span(record))
        encoder = PairSpanEncoder(constant)
        assert encoder.encode(record) == general, record
        assert encoder.encode(record) == general, record  # the second time from the caches


def test_a_batch_decodes_to_the_general_paths_message() -> None:
    records = every_pair_kind()
    mine = ExportTraceServiceRequest.FromString(fast(records))
    theirs = ExportTraceServiceRequest.FromString(reference(records))
    assert mine == theirs
    spans = mine.resource_spans[0].scope_spans[0].spans
    assert len(spans) == len(records)
    assert {span.name for span in spans} >= {"create_terminal -> terminal_ready", "echo -> ack"}


def test_the_plugin_sends_what_the_general_path_would_for_every_record_kind() -> None:
    ref = session("sid-P")
    records: list[Record] = [lifecycle(LifecycleKind.HANDSHAKE, ref)]
    records += [
        lifecycle(kind, ref) for kind in LifecycleKind if kind is not LifecycleKind.HANDSHAKE
    ]
    records += [lifecycle(LifecycleKind.CLOSE, ref, ok=False, error="gone", close_code=1006)]
    records += [message(ref), message(ref, payload='{"k":"v"}')]
    records += [dataclasses.replace(r, session=ref) for r in every_pair_kind()]
    resource = {"service.name": "svc"}
    plugin = OtlpTracesPlugin(
        "http://o:4318/v1/traces", {}, resource, gzip=False, span_attributes=CONSTANT
    )
    encoded = plugin.encode(records)
    assert (encoded.count, encoded.skipped, encoded.replaced) == (len(records), 0, 0)
    encoder = otlp_wire.SpanEncoder(constant=CONSTANT)
    expected = otlp_wire.export_request(
        otlp_wire.resource(resource),
        otlp_wire.scope(SCOPE_NAME, version()),
        [encoder.span(record_span(r)) for r in records],
        SCHEMA_URL,
    )
    mine, theirs = (ExportTraceServiceRequest.FromString(p) for p in (encoded.payload, expected))
    for request in (mine, theirs):  # a one-way message's span id is drawn at random
        for span in request.resource_spans[0].scope_spans[0].spans:
            if span.name == MESSAGE_SPAN:
                span.span_id = b"\0" * 8
    assert mine == theirs
    assert len(mine.resource_spans[0].scope_spans[0].spans) == len(records)


def test_one_shape_under_two_operation_names() -> None:
    """The span name is cached with the shape; a shape seen under another operation name
    (the same rule renamed, say) must not keep the first one's."""
    records = [pair(operation=name) for name in ("a -> b", "c -> d", "a -> b")]
    assert fast(records) == reference(records)


def test_tiny_caches_change_nothing_and_stay_bounded() -> None:
    sessions = [session(f"sid-{n}") for n in range(5)]
    records = [
        pair(session_ref=s, ack_id=n % 7, request_size=n, outcome=o)
        for (n, s), o in zip(
            enumerate(itertools.islice(itertools.cycle(sessions), 60)),
            itertools.cycle(Outcome),
            strict=False,
        )
    ]
    encoder = PairSpanEncoder(otlp_wire.attributes(CONSTANT, b"\x4a"), cache_limit=2)
    assert fast(records, encoder) == reference(records)
    assert fast(records, encoder) == reference(records)
    assert encoder.cache_resets > 0
    caches = [v for v in vars(encoder).values() if isinstance(v, dict)]
    assert caches and all(len(cache) <= 2 for cache in caches)


@pytest.mark.parametrize(
    "bad",
    [
        {"trace_id": "abc"},
        {"span_id": "0" * 15},
        {"parent_span_id": "1"},
        {"linked_span_id": "12"},
        {"session": SessionRef("sid", "0" * 31, "1" * 16)},
        {"session": SessionRef("sid", "0" * 32, "1" * 17)},
    ],
)
def test_bad_ids_are_skipped_as_the_general_path_skips_them(bad: dict[str, object]) -> None:
    record = dataclasses.replace(pair(), **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PairSpanEncoder().encode(record)
    plugin = OtlpTracesPlugin("http://o:4318/v1/traces", {}, {"service.name": "s"}, gzip=False)
    encoded = plugin.encode([pair(), record, pair()])
    assert (encoded.count, encoded.skipped) == (2, 1)
    assert "bad" in (encoded.skip_error or "")


def test_text_utf8_cannot_carry_goes_the_general_way_and_is_replaced() -> None:
    for odd in (
        pair(match_key="k\udc80"),
        pair(request_payload="\ud800"),
        pair(session_ref=session("sid\udfff")),
    ):
        with pytest.raises(UnicodeEncodeError):
            PairSpanEncoder().encode(odd)
        plugin = OtlpTracesPlugin("http://o:4318/v1/traces", {}, {"service.name": "s"}, gzip=False)
        encoded = plugin.encode([pair(), odd])
        assert (encoded.count, encoded.skipped, encoded.replaced) == (2, 0, 1)
        assert "\ufffd".encode() in encoded.payload


pairs = st.builds(
    pair,
    session_ref=st.builds(
        SessionRef,
        session_id=st.text(min_size=1, max_size=80),
        trace_id=st.binary(min_size=16, max_size=16).map(bytes.hex),
        span_id=st.binary(min_size=8, max_size=8).map(bytes.hex),
        client_address=st.none() | st.text(max_size=40),
        client_port=st.none() | st.integers(0, 65535),
    ),
    kind=st.sampled_from(PairKind),
    operation=st.sampled_from(["create_terminal -> terminal_ready", "echo -> ack", LONG]),
    outcome=st.sampled_from(Outcome),
    error_type=st.none() | st.text(max_size=30),
    response_event=st.none() | st.text(max_size=30),
    ack_id=st.none() | st.integers(0, 2**53),
    match_key=st.none() | st.text(max_size=150),
    slow=st.booleans(),
    start_wall=st.floats(0, 4e9),
    duration_s=st.floats(0, 1e5),
    first_chunk_s=st.none() | st.floats(0, 1e3),
    chunk_count=st.integers(0, 2**31),
    request_size=st.integers(0, 2**40),
    response_size=st.integers(0, 2**40),
    request_payload=st.none() | st.text(max_size=300),
    response_payload=st.none() | st.text(max_size=300),
    linked_span_id=st.none() | st.binary(min_size=8, max_size=8).map(bytes.hex),
    parent_span_id=st.none() | st.binary(min_size=8, max_size=8).map(bytes.hex),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(pairs, min_size=1, max_size=5))
def test_any_pair_is_the_general_paths_span(records: list[PairRecord]) -> None:
    """Property: random pairs (any text, sizes and ids) encode alike on both paths, or both
    refuse them the same way."""
    constant = otlp_wire.attributes(CONSTANT, b"\x4a")
    encoder = PairSpanEncoder(constant, cache_limit=3)
    for record in records:
        try:
            general = otlp_wire.SpanEncoder(constant=CONSTANT).span(pair_span(record))
        except UnicodeEncodeError:
            with pytest.raises(UnicodeEncodeError):
                encoder.encode(record)
            continue
        assert encoder.encode(record) == general


@pytest.mark.parametrize(("after_s", "yields"), [(0.0, 3), (3600.0, 0)])
def test_encoding_hands_the_gil_over_by_time_not_per_span(
    monkeypatch: pytest.MonkeyPatch, after_s: float, yields: int
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(otlp, "YIELD_AFTER_S", after_s)
    monkeypatch.setattr(otlp.time, "sleep", slept.append)
    plugin = OtlpTracesPlugin("http://o:4318/v1/traces", {}, {"service.name": "s"}, gzip=False)
    records = [pair(ack_id=n) for n in range(4 * otlp.CHUNK)]
    assert plugin.encode(records).count == len(records)
    assert slept == [0] * yields  # between chunks only, never before the first

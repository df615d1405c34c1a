"""The one JSON form of a record against its JSON Schema (tracking/trace-record-v1.schema.json).

Records come from a real tracker fed real traffic (every record type, every outcome it can
reach here) and from the exporter kit (every optional field set).  A record class, field or
enum value added without the schema following fails here, naming what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from socketio_trace_proxy.tracking.record_json import (
    SCHEMA_FILE,
    ndjson_lines,
    record_builtins,
    record_json,
    record_json_checked,
    record_type,
    schema,
)
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairKind,
    Record,
)
from socketio_trace_proxy.tracking.traffic import Direction
from tests.exporters.kit import lifecycle, message, pair, session
from tests.tracking.transcript_kit import C2S, S2C, Transcript, open_packet

RECORD_CLASSES: tuple[type, ...] = typing.get_args(Record)
VALIDATOR = Draft202012Validator(schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _tracker_records() -> list[Record]:
    """Every record type from a real tracker: handshakes, namespace connects (ok and
    refused), an upgrade, acks, an event pair, a timeout and its late reply, an abandoned
    request, one-way messages, closes by packet and by close frame."""
    t = Transcript(
        capture={"enabled": True},
        rules=[
            {"request": "create_terminal", "responses": ["terminal_ready"], "timeout": "1s"},
            {"request": "get_block_status", "responses": ["ok"], "rejections": ["no"]},
            {
                "kind": "echo",
                "request": "terminal_input",
                "responses": ["terminal_output"],
                "match": "session",
                "slow": "10ms",
            },
        ],
    )
    t.get(None, open_packet("P1"))
    t.at(0.1)
    t.post("P1", "40")
    t.get("P1", '40{"sid":"x"}')
    t.post("P1", "40/admin,")
    t.get("P1", '44/admin,{"message":"not authorized"}')
    t.at(0.2)
    ws = t.websocket("P1")
    ws.message(C2S, "2probe")
    ws.message(S2C, "3probe")
    ws.message(C2S, "5")
    t.at(0.3)
    ws.message(C2S, '421["echo","é",{"password":"x"}]')
    ws.message(S2C, '431["é"]')
    ws.message(C2S, '42["create_terminal",{"session":"s1"}]')
    ws.message(C2S, '42["get_block_status",{}]')
    ws.message(S2C, '42["no",{}]')  # a rejection
    ws.message(C2S, '42["terminal_input",{"session":"s1","data":"x"}]')
    ws.message(S2C, "2")  # a heartbeat: its record comes at the close
    t.at(0.31)
    ws.message(C2S, "3")
    t.at(2.0)
    t.tick()  # create_terminal times out
    ws.message(S2C, '42["terminal_ready",{"session":"s1"}]')  # ... and is answered late
    ws.message(S2C, '42["terminal_output",{"session":"s1","data":"x"}]')  # a slow echo
    ws.message(S2C, '42["shell:output","\\u0000"]')
    ws.message(C2S, '422["echo",2]')  # abandoned at the close
    t.at(3.0)
    ws.closed(C2S, 1000)
    t.at(4.0)
    other = t.websocket()
    other.message(S2C, open_packet("W2"))
    other.message(C2S, "40")
    other.message(S2C, '40{"sid":"y"}')
    t.post("W2", "1")
    return list(t.sink.records)


TRACKER_RECORDS = _tracker_records()
KIT_RECORDS: list[Record] = [
    pair(),
    pair(
        kind=PairKind.ACK,
        ack_id=7,
        match_key="k",
        outcome=Outcome.LATE,
        error_type="late",
        linked_span_id="ab" * 8,
        parent_span_id="cd" * 8,
        first_chunk_s=0.5,
        chunk_count=3,
        request_payload='["é"]',
        response_payload="[1]",
        sampled=False,
        response_transport=None,
        response_event=None,
    ),
    lifecycle(),
    lifecycle(
        LifecycleKind.CLOSE,
        ok=False,
        error="transport_error",
        detail="ping_timeout",
        close_code=1006,
        close_initiator=Direction.SERVER_TO_CLIENT,
        parent_span_id="ef" * 8,
    ),
    lifecycle(
        LifecycleKind.HEARTBEAT,
        detail="2 heartbeats",
        rtt_count=2,
        rtt_min_s=0.001,
        rtt_avg_s=0.0015,
        rtt_max_s=0.002,
    ),
    message(),
    message(payload='{"a":1}', direction=Direction.CLIENT_TO_SERVER),
]


def test_the_shipped_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(schema())
    assert SCHEMA_FILE == "trace-record-v1.schema.json"


def test_the_tracker_makes_every_record_type_here() -> None:
    assert {type(r) for r in TRACKER_RECORDS} == set(RECORD_CLASSES)
    outcomes = {
        r.outcome for r in TRACKER_RECORDS if not isinstance(r, MessageRecord | LifecycleRecord)
    }
    assert {Outcome.OK, Outcome.TIMEOUT, Outcome.LATE, Outcome.ABANDONED} <= outcomes
    kinds = {r.kind for r in TRACKER_RECORDS if isinstance(r, LifecycleRecord)}
    assert kinds == set(LifecycleKind)


@pytest.mark.parametrize(
    "record", TRACKER_RECORDS + KIT_RECORDS, ids=lambda r: record_type(type(r))
)
def test_every_record_validates_against_the_schema(record: Record) -> None:
    data = json.loads(record_json(record))
    errors = sorted(VALIDATOR.iter_errors(data), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert data["type"] == record_type(type(record))
    assert record_builtins(record) == data


def _fields(cls: type) -> list[str]:
    return (
        [f.name for f in dataclasses.fields(cls)]
        if dataclasses.is_dataclass(cls)
        else list(
            cls.__struct_fields__  # type: ignore[attr-defined]  # a msgspec Struct
        )
    )


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
def test_the_schema_names_every_field_of_every_record_class(cls: type) -> None:
    defs = schema()["$defs"]
    kind = record_type(cls)
    assert kind in defs, f"add $defs/{kind} to {SCHEMA_FILE} for {cls.__name__}"
    assert {"$ref": f"#/$defs/{kind}"} in schema()["oneOf"]
    described = defs[kind]
    missing = set(_fields(cls)) - set(described["properties"])
    assert not missing, f"{SCHEMA_FILE}: $defs/{kind} lacks {sorted(missing)}"
    assert list(described["properties"]) == ["type", *_fields(cls)]  # the order written
    assert described["required"] == ["type", *_fields(cls)]
    assert described["additionalProperties"] is False


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _kinds(node: dict[str, Any], root: dict[str, Any]) -> set[str]:
    """The JSON values a property allows, as type names and ``enum:<value>`` entries."""
    node = _resolve(node, root)
    out: set[str] = set()
    for alternative in node.get("anyOf", []):
        out |= _kinds(alternative, root)
    if "enum" in node:
        out |= {f"enum:{v}" for v in node["enum"]}
    if "const" in node:
        out.add(f"enum:{node['const']}")
    types = node.get("type", [])
    out |= {types} if isinstance(types, str) else set(types)
    if "properties" in node:  # a nested object (the session): its fields, recursively
        out |= {f"{k}={sorted(_kinds(v, root))}" for k, v in node["properties"].items()}
    return out


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.__name__)
def test_each_field_allows_what_its_annotation_allows(cls: type) -> None:
    """msgspec derives a JSON Schema from the record class's annotations (enums with their
    values): each property of ours allows the same JSON types and enum values."""
    (derived,), components = msgspec.json.schema_components([cls])
    derived_props = _resolve(derived, {"$defs": components})["properties"]
    ours = schema()
    props = ours["$defs"][record_type(cls)]["properties"]
    for name, node in derived_props.items():
        expected = _kinds(node, {"$defs": components})
        assert _kinds(props[name], ours) == expected, f"{record_type(cls)}.{name}"


def test_every_enum_value_is_in_the_schema() -> None:
    """The enums a record carries, value by value (``Outcome.REJECTED`` added later fails
    here until the schema lists it)."""
    defs = schema()["$defs"]
    assert defs["pair"]["properties"]["outcome"]["enum"] == [o.value for o in Outcome]
    assert defs["pair"]["properties"]["kind"]["enum"] == [k.value for k in PairKind]
    assert defs["lifecycle"]["properties"]["kind"]["enum"] == [k.value for k in LifecycleKind]
    assert defs["direction"]["enum"] == [d.value for d in Direction]


def test_a_lone_surrogate_is_replaced_and_reported() -> None:
    record = pair(session("s\ud800x"), request_payload='["\ud800"]')
    data, repaired = record_json_checked(record)
    assert repaired
    decoded = json.loads(data)
    assert decoded["session"]["session_id"] == "s\ufffdx"
    assert decoded["request_payload"] == '["\ufffd"]'
    assert not list(VALIDATOR.iter_errors(decoded))
    plain = pair()
    assert record_json_checked(plain) == (record_json(plain), False)


def test_encoding_is_exactly_the_fields_in_order() -> None:
    record = message(payload="ü")
    assert (
        record_json(record)
        == json.dumps(
            {
                "type": "message",
                "session": dataclasses.asdict(record.session),
                "namespace": "/",
                "direction": record.direction.value,
                "transport": record.transport.value,
                "event": record.event,
                "size": record.size,
                "wall": record.wall,
                "payload": "ü",
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    )


# -- a batch as NDJSON lines (the NDJSON file exporter's encode) ------------------------------

# texts with lone surrogates (what a JSON "\ud800" escape in the traffic decodes to) among them
_texts = st.text(max_size=12) | st.sampled_from(["\ud800", "a\udfffb", "é", ""])


@st.composite
def _records(draw: st.DrawFn) -> Record:
    ref = session(draw(_texts))
    kind = draw(st.sampled_from(["pair", "message", "lifecycle"]))
    if kind == "pair":
        return pair(
            ref,
            request_event=draw(_texts),
            request_payload=draw(st.none() | _texts),
            outcome=draw(st.sampled_from(Outcome)),
            ack_id=draw(st.none() | st.integers(0, 2**53)),
        )
    if kind == "message":
        return message(ref, event=draw(_texts), payload=draw(st.none() | _texts))
    return lifecycle(draw(st.sampled_from(LifecycleKind)), ref, detail=draw(st.none() | _texts))


@given(st.lists(_records(), max_size=12))
def test_a_batch_of_lines_is_each_records_json_form(records: list[Record]) -> None:
    """Byte for byte the per-record form, whatever the mix of record types and repaired
    texts, each repair counted."""
    lines = ndjson_lines(records)
    checked = [record_json_checked(record) for record in records]
    assert lines.data == b"".join(data + b"\n" for data, _ in checked)
    assert (lines.count, lines.skipped, lines.error) == (len(records), 0, None)
    assert lines.replaced == sum(repaired for _, repaired in checked)


def test_a_record_that_cannot_be_encoded_is_skipped_without_a_partial_line() -> None:
    good = [pair(), message(), pair(request_payload='["\ud800"]'), lifecycle()]
    bad = pair(request_payload=object())  # not JSON: msgspec refuses it half way through
    lines = ndjson_lines([good[0], bad, good[1], bad, good[2], good[3]])
    assert lines.data == b"".join(record_json(record) + b"\n" for record in good)
    assert (lines.count, lines.skipped, lines.replaced) == (4, 2, 1)
    assert lines.error is not None and "TypeError" in lines.error
    assert ndjson_lines([]) == ndjson_lines(()) and ndjson_lines([]).data == b""

"""The record format: every line kind round-trips and validates against the JSON Schema;
bad lines are refused with the file and line named."""

from __future__ import annotations

import json

import jsonschema
import pytest

from socketio_trace_proxy.tracking.recording.format import (
    CloseLine,
    GapLine,
    Header,
    PacketLine,
    RecordFormatError,
    SessionLine,
    decode,
    encode,
    read_lines,
    schema,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.fixtures.record_fixtures import fixture_text
from tests.fixtures.recordings import EVENT_PROBE, MULTI_SESSION_TABS, PYTHON_CLIENT, VUE_FRONTEND

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
LINES = [
    Header(1.5, "/socket.io/", ("token",), {"login": ("password",)}, "1.0"),
    SessionLine("sid1", 1.5, 4, Transport.POLLING),
    SessionLine("sid1", 1.5, 3, Transport.WEBSOCKET, continued=True),
    PacketLine("sid1", 0.25, C2S, Transport.POLLING, '42["a",{"x":"é"}]', body=3),
    PacketLine("sid1", 0.5, S2C, Transport.WEBSOCKET, b"\x00\x01\xff"),
    CloseLine("sid1", 1.0, "websocket_closed", C2S, 1000),
    CloseLine("sid1", 1.0, "close_packet"),
    GapLine(2.0, 3, ("sid1", "sid2")),
]
VALIDATOR = jsonschema.Draft202012Validator(schema())


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.mark.parametrize("line", LINES, ids=lambda line: type(line).__name__)
def test_round_trip_and_schema(line: object) -> None:
    text = encode(line)  # type: ignore[arg-type]
    assert "\n" not in text
    assert decode(text) == line
    VALIDATOR.validate(json.loads(text))


@pytest.mark.parametrize("name", [PYTHON_CLIENT, VUE_FRONTEND, EVENT_PROBE, MULTI_SESSION_TABS])
def test_converted_recordings_validate(name: str) -> None:
    for text in fixture_text(name).splitlines():
        VALIDATOR.validate(json.loads(text))


def test_binary_is_base64() -> None:
    obj = json.loads(encode(LINES[4]))  # type: ignore[arg-type]
    assert obj["binary"] == "AAH/" and "text" not in obj


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        (
            '{"type":"packet","session":"s","t":1,"dir":"up","transport":"polling","text":"4"}',
            "'dir'",
        ),
        ('{"type":"packet","session":"s","t":1,"dir":"c2s","transport":"polling"}', "exactly one"),
        (
            '{"type":"packet","session":"s","t":-1,"dir":"c2s","transport":"polling","text":"4"}',
            "'t'",
        ),
        ('{"type":"what"}', "unknown line type"),
        (
            '{"type":"header","format":"socketio-trace-proxy/record","version":2,"created":1}',
            "newer",
        ),
    ],
)
def test_bad_lines_are_refused(text: str, message: str) -> None:
    with pytest.raises(RecordFormatError, match=message):
        decode(text)


def test_errors_name_file_and_line() -> None:
    good = encode(LINES[0])
    with pytest.raises(RecordFormatError, match=r"^rec\.jsonl:3: "):
        list(read_lines([good, "", '{"type":"gap"}'], "rec.jsonl"))
    with pytest.raises(RecordFormatError, match=r"rec\.jsonl:1: the file must start with a header"):
        list(read_lines([encode(LINES[1])], "rec.jsonl"))


def test_concatenated_parts_read_as_one() -> None:
    part = [encode(line) for line in LINES]
    assert len(list(read_lines(part + part, "x"))) == 2 * len(LINES)

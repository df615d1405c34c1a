"""OpenObserve's JSON stream rows against SCHEMA_MAPPING, and README's copy of the mapping."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from socketio_trace_proxy.exporters.openobserve_json import (
    SCHEMA_MAPPING,
    OpenObserveJsonPlugin,
    mapping_table,
    record_json,
    row_bytes,
)
from socketio_trace_proxy.tracking.record_json import record_type
from socketio_trace_proxy.tracking.records import Record
from tests.exporters.kit import pair
from tests.tracking.test_record_json import KIT_RECORDS, TRACKER_RECORDS

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("record", TRACKER_RECORDS + KIT_RECORDS, ids=lambda r: type(r).__name__)
def test_every_key_written_is_in_the_mapping(record: Record) -> None:
    kind = record_type(type(record))
    row = record_json(record, "svc")
    mapped = {m.key: m for m in SCHEMA_MAPPING if kind in m.types}
    assert set(row) <= set(mapped), f"not in SCHEMA_MAPPING for {kind}: {set(row) - set(mapped)}"
    always = {key for key, m in mapped.items() if not m.optional}
    if kind == "lifecycle" and row.get("socket.namespace") is None:
        always.discard("socket.namespace")  # documented: only when not null
    assert always <= set(row), f"{kind} lacks {always - set(row)}"


def test_readme_shows_the_mapping_table() -> None:
    assert mapping_table() in README.read_text(encoding="utf-8")


def test_rows_are_compact_json_and_a_lone_surrogate_is_replaced() -> None:
    plugin = OpenObserveJsonPlugin("http://o:5080/api/o/s/_json", "s", "svc", {}, gzip=False)
    batch = plugin.encode([KIT_RECORDS[0], KIT_RECORDS[1]])
    rows = json.loads(batch.payload)
    assert [r["span_id"] for r in rows] == [KIT_RECORDS[0].span_id, KIT_RECORDS[1].span_id]
    assert rows[1]["socket.request.payload"] == '["é"]' and rows[1]["socket.ack_id"] == 7
    assert "é".encode() in batch.payload  # UTF-8, not \\u escapes
    assert batch.replaced == 0
    odd = plugin.encode([pair(request_payload='["\ud800"]'), KIT_RECORDS[0]])
    assert odd.count == 2 and odd.replaced == 1
    assert json.loads(odd.payload)[0]["socket.request.payload"] == '["\ufffd"]'


def test_one_call_batch_is_the_row_by_row_array() -> None:
    """The batch is encoded in one msgspec call; it must be byte for byte the array of the
    rows encoded one by one (the path an odd row takes), for every record kind."""
    plugin = OpenObserveJsonPlugin("http://o:5080/api/o/s/_json", "s", "svc", {}, gzip=False)
    records = list(TRACKER_RECORDS + KIT_RECORDS)
    batch = plugin.encode(records)
    rows = [row_bytes(record, "svc")[0] for record in records]
    assert batch.payload == b"[" + b",".join(rows) + b"]"
    assert (batch.count, batch.skipped, batch.replaced) == (len(records), 0, 0)
    assert plugin.encode([]).payload == b"[]"


def test_a_row_that_cannot_be_built_costs_itself_only() -> None:
    plugin = OpenObserveJsonPlugin("http://o:5080/api/o/s/_json", "s", "svc", {}, gzip=False)
    broken = dataclasses.replace(pair(), outcome=None)  # type: ignore[arg-type]
    batch = plugin.encode([pair(), broken, pair()])
    assert (batch.count, batch.skipped) == (2, 1)
    assert len(json.loads(batch.payload)) == 2

"""Local exporters: console lines and the NDJSON file."""

from __future__ import annotations

import io
import json
from pathlib import Path

from socketio_trace_proxy.config.exporters import ExportersSettings, LocalSettings
from socketio_trace_proxy.exporters import build_sinks
from socketio_trace_proxy.exporters.batching import Encoded
from socketio_trace_proxy.exporters.local import (
    ConsolePlugin,
    NdjsonFilePlugin,
    console_line,
)
from socketio_trace_proxy.tracking.record_json import record_json
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    Outcome,
    Record,
)
from tests.exporters.kit import lifecycle, message, pair, session


def test_console_lines() -> None:
    ref = session("abc123")
    assert (
        console_line(pair(ref, duration_s=0.011))
        == "create_terminal -> terminal_ready ok 11 ms [abc123]"
    )
    timeout = pair(
        ref,
        outcome=Outcome.TIMEOUT,
        response_event=None,
        operation="create_terminal -> timeout",
        duration_s=5.0,
    )
    assert console_line(timeout) == "create_terminal -> timeout timeout 5000 ms [abc123]"
    slow = pair(ref, slow=True, namespace="/admin", duration_s=1.2)
    assert console_line(slow) == "create_terminal -> terminal_ready ok 1200 ms slow [abc123 /admin]"
    refused = lifecycle(
        LifecycleKind.NAMESPACE_CONNECT, ref, namespace="/admin", ok=False, error="denied"
    )
    assert console_line(refused) == "namespace_connect /admin error: denied [abc123]"
    assert console_line(lifecycle(LifecycleKind.HANDSHAKE, ref)) == "handshake polling ok [abc123]"
    assert console_line(message(ref)) is None


async def test_local_default_writes_console_and_ndjson(tmp_path: Path) -> None:
    path = tmp_path / "records.ndjson"
    out = io.StringIO()
    settings = ExportersSettings(local=LocalSettings(ndjson_path=str(path)))
    sinks = build_sinks(settings, {}, console=out)
    records = [lifecycle(), pair(), message()]
    for sink in sinks:
        await sink.start()
        for record in records:
            sink.submit(record)
        await sink.shutdown(5.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("create_terminal -> terminal_ready ok 11 ms")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["type"] for row in rows] == ["lifecycle", "pair"]  # messages only on request
    assert rows[1]["span_id"] == records[1].span_id
    assert rows[1]["outcome"] == "ok" and rows[1]["session"]["session_id"] == "sid-A"


def test_ndjson_rotates(tmp_path: Path) -> None:
    path = tmp_path / "r.ndjson"
    plugin = NdjsonFilePlugin(str(path), max_bytes=2000)  # a record is ~800 bytes
    for _ in range(6):
        batch = plugin.encode([pair()])
        assert plugin.send(batch, 1.0).verdict.value == "ok"
    plugin.close()
    assert plugin.rotations >= 1
    assert path.stat().st_size <= 2000
    assert Path(f"{path}.1").exists()


def test_ndjson_unwritable_is_rejected_not_raised(tmp_path: Path) -> None:
    plugin = NdjsonFilePlugin(str(tmp_path / "missing-dir" / "x.ndjson"), max_bytes=10_000)
    result = plugin.send(Encoded(b"{}\n", 1), 1.0)
    assert result.verdict.value == "reject"
    assert result.error is not None and "cannot write" in result.error


def test_ndjson_lines_are_the_records_json_form() -> None:
    """One line per record, each exactly :func:`tracking.record_json.record_json` (the form
    the schema describes), values its field's type does not allow included."""
    ref = session("sïd-ü")
    records: list[Record] = [
        pair(ref),
        pair(ref, outcome=Outcome.TIMEOUT, response_transport=None, request_payload='["é"]'),
        pair(ref, outcome=Outcome.LATE, linked_span_id="ab" * 8, first_chunk_s=0.5),
        lifecycle(LifecycleKind.UPGRADE, ref),
        lifecycle(LifecycleKind.NAMESPACE_CONNECT, ref, namespace="/x", ok=False, error="no"),
        message(ref),
        pair(ref, match_key=7, namespace=5),  # not what the fields' types allow
    ]
    batch = NdjsonFilePlugin("unused", max_bytes=10_000).encode(records)
    lines = batch.payload.split(b"\n")
    assert batch.count == len(records) and lines[-1] == b""
    for record, line in zip(records, lines, strict=False):
        assert line == record_json(record)
    assert json.loads(lines[0])["session"]["session_id"] == "sïd-ü"
    assert json.loads(lines[-2])["namespace"] == 5


def _ok_pairs(n: int) -> list[Record]:
    ref = session("s1")
    return [pair(ref) for _ in range(n)]


def test_console_rate_limits_plain_ok_pairs_and_sums_up_the_rest() -> None:
    now = [100.0]
    plugin = ConsolePlugin(io.StringIO(), ok_per_s=3, clock=lambda: now[0])
    ref = session("s1")
    slow = pair(ref, slow=True, duration_s=1.5)
    timeout = pair(ref, outcome=Outcome.TIMEOUT, operation="create_terminal -> timeout")
    batch = plugin.encode([*_ok_pairs(5), slow, timeout, *_ok_pairs(2)])
    lines = batch.payload.decode().splitlines()
    assert batch.count == len(lines) == 5  # 3 ok pairs, the slow one, the timeout
    assert sum(" ok " in line and "slow" not in line for line in lines) == 3
    assert "slow" in lines[3] and "timeout timeout" in lines[4]
    now[0] += 0.5  # same second: still limited, nothing to report yet
    assert plugin.encode(_ok_pairs(4)).count == 0
    now[0] += 0.6  # the second is over: the summary leads the next output
    lines = plugin.encode(_ok_pairs(4)).payload.decode().splitlines()
    assert lines[0] == "... and 8 more ok pairs"
    assert len(lines) == 4 and plugin.held == 1


def test_console_summary_is_written_at_close() -> None:
    out = io.StringIO()
    plugin = ConsolePlugin(out, ok_per_s=0, clock=lambda: 5.0)
    assert plugin.encode(_ok_pairs(1)).count == 0
    plugin.close()
    assert out.getvalue() == "... and 1 more ok pair\n"
    plugin.close()  # nothing held any more
    assert out.getvalue() == "... and 1 more ok pair\n"

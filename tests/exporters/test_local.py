"""Local exporters: console lines and the NDJSON file."""

from __future__ import annotations

import io
import json
from pathlib import Path

from config.exporters import ExportersSettings, LocalSettings
from exporters import build_sinks
from exporters.batching import Encoded
from exporters.local import NdjsonFilePlugin, console_line
from tests.exporters.kit import lifecycle, message, pair, session
from tracking.records import LifecycleKind, Outcome


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
    assert rows[1]["outcome"] == "ok" and rows[1]["session_id"] == "sid-A"


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

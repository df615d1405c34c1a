"""The admin JSON API, health endpoints and exports, over real views and records."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.exporters.local import NdjsonFilePlugin
from socketio_trace_proxy.proxy.admin import DashboardInfo, RelayOnlySource, TraceLink
from socketio_trace_proxy.proxy.admin.serialize import to_jsonable
from socketio_trace_proxy.tracking.record_json import record_builtins, schema_text
from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome
from socketio_trace_proxy.tracking.sink import SinkHealth
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.proxy.admin.conftest import MakeClient
from tests.proxy.admin.fakes import (
    FakeSource,
    handshake,
    lifecycle,
    message,
    pair,
    pending_view,
    session_view,
)


def healthy_sink(name: str = "ndjson", healthy: bool = True) -> SinkHealth:
    return SinkHealth(
        name=name, healthy=healthy, sent=5, failed=0, dropped=0, queued=0, last_error=None
    )


async def test_healthz_always_answers(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), ready=False)
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "alive"


async def test_readyz_needs_upstream_and_healthy_exporters(make_client: MakeClient) -> None:
    source = FakeSource(sinks=[healthy_sink()])
    ok = await make_client(source, ready=True)
    resp = await ok.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["ready"] is True

    down = await make_client(source, ready=False)
    resp = await down.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["upstream"] is False

    broken = await make_client(source, ready=OSError("refused"))
    assert (await broken.get("/readyz")).status == 503

    sick = await make_client(FakeSource(sinks=[healthy_sink("otlp", healthy=False)]), ready=True)
    resp = await sick.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert body["upstream"] is True
    assert body["exporters"][0]["healthy"] is False


async def test_pending_oldest_first_with_limit(make_client: MakeClient) -> None:
    source = FakeSource(
        pending=[
            pending_view("s1", "a" * 16, started=30.0),
            pending_view("s2", "b" * 16, started=10.0),
            pending_view("s1", "c" * 16, started=20.0),
        ]
    )
    client = await make_client(source)
    body = await (await client.get("/api/pending?limit=2")).json()
    assert body["total"] == 3
    assert [p["span_id"] for p in body["items"]] == ["b" * 16, "c" * 16]
    body = await (await client.get("/api/pending?session=s1")).json()
    assert {p["span_id"] for p in body["items"]} == {"a" * 16, "c" * 16}
    assert (await client.get("/api/pending?limit=zero")).status == 400


async def test_sessions_paged_and_searched(make_client: MakeClient) -> None:
    sessions = [session_view(f"sid{i:03d}", opened=1000.0 + i) for i in range(120)]
    sessions.append(session_view("polling-one", transport="polling", opened=5000.0))
    client = await make_client(FakeSource(sessions=sessions))
    body = await (await client.get("/api/sessions?limit=10&offset=1")).json()
    assert body["total"] == 121
    # newest first: polling-one (5000), then sid119, sid118, ...
    assert [s["session_id"] for s in body["items"][:2]] == ["sid119", "sid118"]
    assert len(body["items"]) == 10
    body = await (await client.get("/api/sessions?transport=polling")).json()
    assert [s["session_id"] for s in body["items"]] == ["polling-one"]
    body = await (await client.get("/api/sessions?q=sid00")).json()
    assert body["total"] == 10


async def test_session_timeline(make_client: MakeClient) -> None:
    source = FakeSource(sessions=[session_view("abc")])
    source.emit(handshake("abc"))
    source.emit(pair("abc", "create_terminal", response="terminal_ready", duration_s=0.2))
    source.emit(pair("other", "x"))
    client = await make_client(source)
    body = await (await client.get("/api/sessions/abc")).json()
    assert body["session"]["session_id"] == "abc"
    types = [item["type"] for item in body["timeline"]["items"]]
    assert types == ["lifecycle", "pair"]
    assert body["timeline"]["items"][1]["outcome"] == "ok"
    assert (await client.get("/api/sessions/nope")).status == 404


async def test_events_filters_and_cursor(make_client: MakeClient) -> None:
    source = FakeSource()
    source.emit(handshake("s1"))
    source.emit(pair("s1", "create_terminal", outcome=Outcome.TIMEOUT, response=None))
    source.emit(message("s2", "terminal_output", Direction.SERVER_TO_CLIENT))
    source.emit(pair("s2", "resize", outcome=Outcome.ERROR))
    source.emit(message("s1", "terminal_input", Direction.CLIENT_TO_SERVER))
    client = await make_client(source)

    async def seqs(query: str) -> list[int]:
        resp = await client.get("/api/events" + query)
        assert resp.status == 200, await resp.text()
        return [i["seq"] for i in (await resp.json())["items"]]

    assert await seqs("") == [1, 2, 3, 4, 5]
    assert await seqs("?limit=2") == [4, 5]  # newest without a cursor
    assert await seqs("?since=1&limit=2") == [2, 3]  # oldest after the cursor
    assert await seqs("?session=s2") == [3, 4]
    assert await seqs("?event=terminal") == [2, 3, 5]
    assert await seqs("?outcome=timeout") == [2]
    assert await seqs("?outcome=error") == [4]
    assert await seqs("?direction=s2c") == [3]
    assert await seqs("?direction=c2s&session=s1") == [2, 5]

    body = await (await client.get("/api/events?since=1&limit=2")).json()
    assert body["next"] == 3 and body["more"] is True
    body = await (await client.get(f"/api/events?since={body['next']}")).json()
    assert [i["seq"] for i in body["items"]] == [4, 5] and body["next"] == 5
    # a cursor moves past non-matching items too, so a filtered tail makes progress
    body = await (await client.get("/api/events?since=0&outcome=timeout")).json()
    assert body["next"] == 5

    assert (await client.get("/api/events?outcome=bogus")).status == 400
    assert (await client.get("/api/events?direction=up")).status == 400


async def test_events_report_items_lost_from_the_ring(make_client: MakeClient) -> None:
    source = FakeSource(ring_size=3)
    for i in range(6):
        source.emit(message("s", f"e{i}", Direction.CLIENT_TO_SERVER))
    client = await make_client(source)
    body = await (await client.get("/api/events?since=1")).json()
    assert [i["seq"] for i in body["items"]] == [4, 5, 6]
    assert body["lost"] == 2


async def test_export_formats(make_client: MakeClient) -> None:
    source = FakeSource()
    source.emit(pair("s1", "create_terminal", response="terminal_ready", duration_s=0.25))
    source.emit(message("s1", "=HYPERLINK(1)", Direction.SERVER_TO_CLIENT))
    source.emit(handshake("s2"))
    client = await make_client(source)

    resp = await client.get("/api/export?format=json")
    assert resp.status == 200
    assert "attachment" in resp.headers["Content-Disposition"]
    body = await resp.json()
    assert [i["record"]["type"] for i in body["items"]] == ["pair", "message", "lifecycle"]
    assert body["metrics"]["pending"] == 2

    resp = await client.get("/api/export?format=ndjson&session=s1")
    body_bytes = await resp.read()
    assert [json.loads(line)["type"] for line in body_bytes.splitlines()] == ["pair", "message"]
    # the very lines the NDJSON file exporter writes for the same records
    s1 = [i.record for i in source.activity if i.record.session.session_id == "s1"]
    assert body_bytes == NdjsonFilePlugin("unused", 1 << 20).encode(s1).payload

    resp = await client.get("/api/export?format=csv")
    assert resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert rows[0]["operation"] == "create_terminal -> terminal_ready"
    assert rows[0]["duration_ms"] == "250.0"
    assert rows[0]["outcome"] == "ok"
    assert rows[1]["event"] == "'=HYPERLINK(1)"  # neutralised for spreadsheets
    assert rows[2]["type"] == "lifecycle"

    assert (await client.get("/api/export?format=xml")).status == 400


async def test_api_metrics(make_client: MakeClient) -> None:
    source = FakeSource(sinks=[healthy_sink()], relay={"requests": 7.0})
    client = await make_client(source)
    body = await (await client.get("/api/metrics")).json()
    assert body["metrics"]["rules"][0]["rule"] == "create_terminal"
    assert body["metrics"]["rules"][0]["latency"]["p95_s"] == 0.05
    assert body["exporters"][0]["sent"] == 5
    assert body["relay"] == {"requests": 7.0}


async def test_dashboard_is_served_offline(make_client: MakeClient) -> None:
    client = await make_client(FakeSource())
    resp = await client.get("/")
    assert resp.status == 200
    page = await resp.text()
    assert "Socket.IO trace monitor" in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts[-1] == "/static/dashboard.js" and len(scripts) == 4
    for asset in (*scripts, "/static/dashboard.css"):
        resp = await client.get(asset)
        assert resp.status == 200
        assert "https://" not in await resp.text()


async def test_readyz_says_retrying_while_an_exporter_retries(make_client: MakeClient) -> None:
    retrying = SinkHealth(
        "openobserve-traces", False, 0, 0, 0, 12, "POST http://oo:5080/... refused", "retrying"
    )
    client = await make_client(FakeSource(sinks=[retrying, healthy_sink()]), ready=True)
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503
    assert [(e["name"], e["state"]) for e in body["exporters"]] == [
        ("openobserve-traces", "retrying"),
        ("ndjson", "ok"),  # a sink that reports no state: derived from healthy
    ]


def close(source: FakeSource, sid: str, wall: float, reason: str = "websocket_closed") -> None:
    """A session's handshake, namespace connect, upgrade and close, as the tracker records
    them (the tracker's session table has forgotten it then)."""
    source.emit(lifecycle(sid, LifecycleKind.HANDSHAKE, wall - 60, detail="EIO=4"))
    source.emit(lifecycle(sid, LifecycleKind.NAMESPACE_CONNECT, wall - 59, namespace="/chat"))
    source.emit(lifecycle(sid, LifecycleKind.UPGRADE, wall - 58, transport=Transport.WEBSOCKET))
    source.emit(
        lifecycle(
            sid,
            LifecycleKind.CLOSE,
            wall,
            detail=reason,
            ok=reason != "heartbeat_timeout",
            error=reason if reason == "heartbeat_timeout" else None,
            transport=Transport.WEBSOCKET,
        )
    )
    source.sessions = [s for s in source.sessions if s.session_id != sid]


async def test_closed_sessions_stay_browsable_most_recent_first(make_client: MakeClient) -> None:
    source = FakeSource(sessions=[session_view("open-one", opened=10.0)])
    client = await make_client(source, AdminSettings(closed_sessions=2))
    for i, sid in enumerate(("Gone-A", "Gone-B", "Gone-C")):
        close(source, sid, 1000.0 + i, reason="heartbeat_timeout" if i == 2 else "close_packet")
    body = await (await client.get("/api/sessions?state=closed")).json()
    assert body["state"] == "closed" and body["total"] == 2  # the most recent 2 are kept
    newest, older = body["items"]
    assert [newest["session_id"], older["session_id"]] == ["Gone-C", "Gone-B"]
    assert newest["state"] == "closed" and newest["closed_wall"] == 1002.0
    assert newest["close_reason"] == "heartbeat_timeout" and newest["close_ok"] is False
    assert older["close_reason"] == "close_packet" and older["close_ok"] is True
    assert newest["opened_wall"] == 942.0 and newest["upgraded"] is True
    assert newest["namespaces"] == ["/chat"] and newest["transport"] == "websocket"
    assert newest["close"]["type"] == "lifecycle" and newest["close"]["kind"] == "close"

    body = await (await client.get("/api/sessions?state=all")).json()
    assert [s["session_id"] for s in body["items"]] == ["open-one", "Gone-C", "Gone-B"]
    assert [s["state"] for s in body["items"]] == ["open", "closed", "closed"]
    body = await (await client.get("/api/sessions?state=closed&q=gone-b")).json()
    assert [s["session_id"] for s in body["items"]] == ["Gone-B"]

    detail = await (await client.get("/api/sessions/Gone-C")).json()
    assert detail["session"]["state"] == "closed"
    assert [i["kind"] for i in detail["timeline"]["items"]][-1] == "close"
    assert (await client.get("/api/sessions?state=gone")).status == 400
    counters = (await (await client.get("/api/metrics")).json())["admin"]
    assert counters["closed_sessions"] == 2 and counters["closed_sessions_evicted"] == 1


async def test_session_search_is_case_blind_and_takes_a_shortened_id(
    make_client: MakeClient,
) -> None:
    sessions = [session_view("AbCdEfGhIjKlMnOp"), session_view("zzzzzzzz")]
    source = FakeSource(sessions=sessions)
    source.emit(message("AbCdEfGhIjKlMnOp", "x", Direction.CLIENT_TO_SERVER))
    source.pending = [pending_view("AbCdEfGhIjKlMnOp", "a" * 16, started=1.0)]
    client = await make_client(source)
    for q in ("AbCdEfGhIjKlMnOp", "ABCDEFGHIJKLMNOP", "abcdefghijklmnop", "AbCdEfGh…", " abcd "):
        body = await (await client.get("/api/sessions", params={"q": q})).json()
        assert [s["session_id"] for s in body["items"]] == ["AbCdEfGhIjKlMnOp"], q
    body = await (await client.get("/api/events", params={"session": "ABCDEF"})).json()
    assert len(body["items"]) == 1
    body = await (await client.get("/api/pending", params={"session": "abcdef…"})).json()
    assert body["total"] == 1


async def test_info_tells_the_dashboard_what_is_configured(make_client: MakeClient) -> None:
    link = TraceLink.openobserve("http://oo.example:5080/", "acme", "traces")
    client = await make_client(FakeSource(), info=DashboardInfo(capture=True, trace_link=link))
    info = await (await client.get("/api/info")).json()
    assert info["tracking"] is True and info["auth"] is False and info["capture"] is True
    assert info["trace_link"] == {
        "name": "OpenObserve",
        "url": "http://oo.example:5080/web/traces/trace-details",
        "query": {"stream": "traces", "org_identifier": "acme"},
    }
    assert info["closed_sessions_kept"] == 200
    plain = await make_client(FakeSource())
    assert (await (await plain.get("/api/info")).json())["trace_link"] is None


async def test_relay_only_source_says_tracking_is_off(make_client: MakeClient) -> None:
    client = await make_client(RelayOnlySource(lambda: {"http_requests": 3}))
    resp = await client.get("/api/sessions/abc")
    assert resp.status == 503
    assert "tracking is off" in (await resp.json())["error"]
    body = await (await client.get("/api/metrics")).json()
    assert body["relay"] == {"http_requests": 3.0} and body["tracking"] is False
    assert (await client.get("/readyz")).status == 200


def test_a_record_type_added_later_is_named_after_its_class() -> None:
    @dataclass(frozen=True)
    class HeartbeatRecord:
        start_wall: float

    assert to_jsonable(HeartbeatRecord(1.0)) == {"type": "heartbeat", "start_wall": 1.0}


async def test_record_schema_is_served(make_client: MakeClient) -> None:
    client = await make_client(FakeSource())
    resp = await client.get("/api/schema/record")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/schema+json")
    assert await resp.text() == schema_text()
    assert json.loads(schema_text())["$id"].endswith("trace-record-v1.schema.json")


async def test_api_records_are_the_schema_form(make_client: MakeClient) -> None:
    """/api/events, the JSON export and a session's timeline carry each record exactly as
    :func:`tracking.record_json.record_builtins` gives it."""
    source = FakeSource()
    records = [
        source.emit(pair("s1", "create_terminal", response="terminal_ready")).record,
        source.emit(message("s1", "hello", Direction.CLIENT_TO_SERVER)).record,
    ]
    client = await make_client(source)
    expected = [record_builtins(r) for r in records]
    events = await (await client.get("/api/events")).json()
    assert [i["record"] for i in events["items"]] == expected
    export = await (await client.get("/api/export?format=json")).json()
    assert [i["record"] for i in export["items"]] == expected

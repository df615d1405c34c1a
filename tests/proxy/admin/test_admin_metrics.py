"""/metrics in Prometheus text format, read from snapshots at scrape time."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.proxy.admin.metrics import ADMIN_METRICS, OTHER, DurationHistograms
from socketio_trace_proxy.tracking.metrics import ECHO_BOUNDS, LatencyWindow, Metrics
from socketio_trace_proxy.tracking.metrics import OTHER as TRACKER_OTHER
from socketio_trace_proxy.tracking.records import Outcome, PairRecord
from socketio_trace_proxy.tracking.sink import SinkHealth
from tests.proxy.admin.conftest import MakeClient
from tests.proxy.admin.fakes import FakeSource, pair


async def scrape(client: object) -> dict[str, list[Sample]]:
    resp = await client.get("/metrics")  # type: ignore[attr-defined]
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    families = text_string_to_metric_families(await resp.text())
    return {f.name: f.samples for f in families}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


async def test_duration_histogram_per_rule_and_outcome(make_client: MakeClient) -> None:
    source = FakeSource()
    client = await make_client(source, AdminSettings(duration_buckets_s=(0.1, 1.0)))
    for d in (0.05, 0.1, 0.5, 3.0):
        source.emit(pair("s", "create_terminal", duration_s=d))
    source.emit(pair("s", "create_terminal", outcome=Outcome.TIMEOUT, duration_s=5.0))
    metrics = await scrape(client)
    h = metrics["socketio_proxy_request_duration_seconds"]
    name = "socketio_proxy_request_duration_seconds"
    ok = {"rule": "create_terminal", "outcome": "ok"}
    assert value(h, name + "_bucket", **ok, le="0.1") == 2  # le is inclusive
    assert value(h, name + "_bucket", **ok, le="1.0") == 3
    assert value(h, name + "_bucket", **ok, le="+Inf") == 4
    assert value(h, name + "_count", **ok) == 4
    assert abs(value(h, name + "_sum", **ok) - 3.65) < 1e-9
    assert value(h, name + "_count", rule="create_terminal", outcome="timeout") == 1


async def test_snapshot_metrics(make_client: MakeClient) -> None:
    source = FakeSource(
        sinks=[
            SinkHealth(
                name="otlp", healthy=False, sent=10, failed=2, dropped=3, queued=4, last_error="x"
            )
        ],
        relay={"requests": 12.0, "ws_messages": {"c2s": 5.0, "s2c": 6.0}},
    )
    client = await make_client(source)
    m = await scrape(client)
    p = "socketio_proxy_"
    assert value(m[p + "pending_requests"], p + "pending_requests") == 2
    assert value(m[p + "sessions"], p + "sessions", transport="polling") == 1
    assert value(m[p + "messages"], p + "messages_total", direction="s2c") == 20
    assert value(m[p + "message_bytes"], p + "message_bytes_total", direction="c2s") == 1000
    assert value(m[p + "decode_errors"], p + "decode_errors_total") == 4
    assert (
        value(m[p + "requests"], p + "requests_total", rule="create_terminal", outcome="timeout")
        == 1
    )
    q = p + "request_duration_quantile_seconds"
    assert value(m[q], q, rule="create_terminal", quantile="0.95") == 0.05
    assert (
        value(m[p + "heartbeat_rtt_seconds"], p + "heartbeat_rtt_seconds", quantile="0.5") == 0.003
    )
    assert value(m[p + "evictions"], p + "evictions_total", what="sessions") == 1
    assert value(m[p + "drops"], p + "drops_total", what="activity") == 2
    assert value(m[p + "exporter_sent"], p + "exporter_sent_total", exporter="otlp") == 10
    assert value(m[p + "exporter_failed"], p + "exporter_failed_total", exporter="otlp") == 2
    assert value(m[p + "exporter_dropped"], p + "exporter_dropped_total", exporter="otlp") == 3
    assert value(m[p + "exporter_healthy"], p + "exporter_healthy", exporter="otlp") == 0
    assert value(m[p + "relay_requests"], p + "relay_requests") == 12
    assert value(m[p + "relay_ws_messages"], p + "relay_ws_messages", key="s2c") == 6
    ev = p + "event_messages"
    assert value(m[ev], ev + "_total", event="terminal_output", direction="s2c") == 9


async def test_scrape_reads_the_current_snapshot(make_client: MakeClient) -> None:
    source = FakeSource()
    client = await make_client(source)
    first = await scrape(client)
    assert value(first["socketio_proxy_pending_requests"], "socketio_proxy_pending_requests") == 2
    source.metrics = replace(source.metrics, pending=9)
    second = await scrape(client)
    assert value(second["socketio_proxy_pending_requests"], "socketio_proxy_pending_requests") == 9


def test_histogram_series_are_bounded() -> None:
    hist = DurationHistograms((1.0,), max_series=2)
    for rule in ("a", "b", "c", "d"):
        hist.observe(pair("s", rule))
    series = {(r, o): counts for r, o, counts, _ in hist.series()}
    assert set(series) == {("a", "ok"), ("b", "ok"), (OTHER, "ok")}
    assert series[(OTHER, "ok")] == [2, 0]
    assert hist.folded == 2


def test_one_histogram_and_one_other_label_for_tracker_and_admin() -> None:
    """The admin listener's series are the tracker's Histogram over the configured bounds,
    and a folded series carries the tracker's own folding label."""
    hist = DurationHistograms((0.1, 1.0), max_series=1)
    hist.observe(pair("s", "a", duration_s=0.5))
    hist.observe(pair("s", "b", duration_s=5.0))
    assert OTHER == TRACKER_OTHER == "(other)"
    assert hist.series() == [("(other)", "ok", [0, 0, 1], 5.0), ("a", "ok", [0, 1, 0], 0.5)]


async def test_admin_counters_are_exported(make_client: MakeClient) -> None:
    client = await make_client(FakeSource())
    metrics = await scrape(client)
    for name in ADMIN_METRICS:
        family = metrics[f"socketio_proxy_admin_{name}"]
        assert [s.value for s in family] == [0.0], name


async def test_echo_histogram_per_echo_rule(make_client: MakeClient) -> None:
    tracker = Metrics(10, ["terminal echo", "terminal:input echo"])
    echo = tracker.echo["terminal echo"]
    for d in (0.002, 0.003, 0.3):
        echo.latency.observe(d)
    echo.slow, echo.unanswered = 1, 4
    source = FakeSource()
    source.metrics = replace(source.metrics, echo=tracker.snapshot(0, {}).echo)
    client = await make_client(source)
    m = await scrape(client)
    name = "socketio_proxy_echo_seconds"
    h = m[name]
    assert value(h, name + "_bucket", rule="terminal echo", le="0.002") == 1  # le inclusive
    assert value(h, name + "_bucket", rule="terminal echo", le="0.0032") == 2
    assert value(h, name + "_bucket", rule="terminal echo", le="0.25") == 2
    assert value(h, name + "_bucket", rule="terminal echo", le="+Inf") == 3
    assert value(h, name + "_count", rule="terminal echo") == 3
    assert abs(value(h, name + "_sum", rule="terminal echo") - 0.305) < 1e-9
    assert value(h, name + "_count", rule="terminal:input echo") == 0
    # one series per configured echo rule: the labels are the rules, nothing else
    assert {s.labels["rule"] for s in h} == {"terminal echo", "terminal:input echo"}
    assert len({s.labels["le"] for s in h if s.name == name + "_bucket"}) == len(ECHO_BOUNDS) + 1
    p = "socketio_proxy_"
    assert value(m[p + "echo_unanswered"], p + "echo_unanswered_total", rule="terminal echo") == 4
    assert value(m[p + "slow_echoes"], p + "slow_echoes_total", rule="terminal echo") == 1
    q = p + "echo_quantile_seconds"
    assert value(m[q], q, rule="terminal echo", quantile="0.5") == 0.003  # exact: 3 samples


def test_latency_window_takes_a_flush_in_order() -> None:
    """The live stream's per-record work (compiled with the tracker's metrics): pairs go
    into the histograms and the interval's bucket of their rule, timeouts also into the
    recent-timeouts ring, anything else to ``other``; a bad record is counted, the rest
    of the flush is still taken; the reservoir of ok durations stays bounded."""
    hist = DurationHistograms((0.1, 1.0), max_series=10)
    timeouts: deque[PairRecord] = deque(maxlen=2)
    others: list[object] = []
    window = LatencyWindow(hist, 3, random.Random(0).random, timeouts)
    slow = pair("s", "a", duration_s=0.5)
    late = pair("s", "a", outcome=Outcome.TIMEOUT, duration_s=2.0)
    failed = window.take(
        [pair("s", "a", duration_s=0.05), "not a record", slow, late, object()], others.append
    )
    assert failed == 0
    assert others[0] == "not a record" and len(others) == 2
    assert list(timeouts) == [late]
    bucket = window.buckets["a"]
    assert (bucket.count, bucket.errors, bucket.timeouts) == (3, 0, 1)
    assert sorted(bucket.samples) == [0.05, 0.5]
    assert {(r, o): c for r, o, c, _ in hist.series()} == {
        ("a", "ok"): [1, 1, 0],
        ("a", "timeout"): [0, 0, 1],
    }
    window.take([pair("s", "a", duration_s=0.01 * i) for i in range(1, 50)], others.append)
    assert len(window.buckets["a"].samples) == 3
    assert window.buckets["a"].count == 52
    rolled = window.roll()
    assert rolled["a"].count == 52 and window.buckets == {}

    def refuse(record: object) -> None:
        raise ValueError("bad record")

    assert window.take(["x", pair("s", "b")], refuse) == 1
    assert window.buckets["b"].count == 1

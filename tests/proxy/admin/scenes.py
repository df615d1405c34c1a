"""Busy, realistic admin data for the dashboard tests: real views and records, with the
long names and large numbers that test a layout (templated AetherTerm rule names, IPv6
peers, megabytes), mixed-case session ids, payloads as the capturer redacts them."""

from __future__ import annotations

import time
from dataclasses import replace

from socketio_trace_proxy.tracking.records import LifecycleKind, Outcome
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.views import EchoStats, LatencySummary, RuleStats, SessionView
from tests.proxy.admin.fakes import (
    FakeSource,
    lifecycle,
    message,
    metrics_snapshot,
    pair,
    pending_view,
)

MIXED_CASE_SID = "AbCdEfGhIj_Kl-MnOp9Q"
LONG_RULE = "workspace:tab:{tab}:pane:{pane}:terminal:input"
REDACTED_REQUEST = '["create_terminal",{"session":"t-1","cols":120,"token":"[REDACTED]"}]'


ECHO = (
    EchoStats(
        rule="terminal echo",
        slow=12,
        unanswered=3,
        evicted=0,
        latency=LatencySummary(count=180, p50_s=0.0031, p95_s=0.0123, p99_s=0.31, max_s=0.52),
    ),
    EchoStats(
        rule="terminal:input echo",
        slow=1_234,
        unanswered=56,
        evicted=7,
        latency=LatencySummary(
            count=123_456, p50_s=0.00398, p95_s=0.0251, p99_s=0.316, max_s=2.5, exact=False
        ),
    ),
)


def view(sid: str, opened: float, i: int = 0, transport: str = "websocket") -> SessionView:
    return SessionView(
        session_id=sid,
        transport=transport,
        remote=f"2001:db8:85a3::8a2e:370:{7000 + i:x}" if i % 3 == 0 else f"10.20.30.{i % 250}",
        opened_wall=opened,
        upgraded=transport == "websocket",
        namespaces=("/", "/terminal"),
        pending=i % 4,
        messages_in=1_234_567 + i,
        messages_out=9_876_543 + i,
        bytes_in=987_654_321 + i,
        bytes_out=4_321_987_654 + i,
        heartbeat_rtt_s=0.0123,
    )


def busy_source(now: float | None = None, sessions: int = 120) -> FakeSource:
    """Open sessions (one with a mixed-case id), rules with long names and big numbers,
    pending requests, and a session whose timeline has every lifecycle kind."""
    now = time.time() if now is None else now
    source = FakeSource()
    source.sessions = [view(f"sess{i:04d}aaaaaaaaaaaa", now - 600 + i, i) for i in range(sessions)]
    source.sessions.append(
        replace(view(MIXED_CASE_SID, now - 5, 1), echo_count=42, echo_avg_s=0.004, echo_max_s=0.031)
    )
    rules = [
        RuleStats(
            rule=name,
            outcomes={
                "ok": 1_234_567,
                "error": 12_345,
                "rejected": 2_345,
                "timeout": 1_234,
                "late": 123,
            },
            slow=45_678,
            latency=LatencySummary(  # past the kept samples: bucket estimates
                count=1_234_567, p50_s=0.0123, p95_s=1.2345, p99_s=12.345, max_s=123.45, exact=False
            ),
        )
        for name in (LONG_RULE, "create_terminal", "workspace:tab:{tab}:pane:{pane}:resize")
    ]
    source.metrics = metrics_snapshot(rules=tuple(rules), pending=3, echo=ECHO)
    source.pending = [
        pending_view(MIXED_CASE_SID, f"{i:016x}", started=now - 2 - i, event=ev)
        for i, ev in enumerate(("create_terminal", "open_file", "ai_get_info"))
    ]
    lifecycle_of(source, MIXED_CASE_SID, now - 5)
    return source


def lifecycle_of(source: FakeSource, sid: str, t0: float) -> None:
    """Handshake, namespace connect, upgrade, heartbeats, packets and a few requests."""
    source.emit(lifecycle(sid, LifecycleKind.HANDSHAKE, t0, detail="EIO=4", span="1" * 16))
    source.emit(
        lifecycle(sid, LifecycleKind.NAMESPACE_CONNECT, t0 + 0.01, duration_s=0.004, namespace="/")
    )
    source.emit(
        lifecycle(
            sid,
            LifecycleKind.UPGRADE,
            t0 + 0.05,
            duration_s=0.03,
            detail="polling -> websocket",
            transport=Transport.WEBSOCKET,
        )
    )
    for i in range(3):  # heartbeat records, as the tracker aggregates round trips
        hb = lifecycle(
            sid,
            LifecycleKind.HEARTBEAT,
            t0 + 1 + i,
            duration_s=0.5,
            detail="2 heartbeats, RTT min/avg/max 1.0/1.5/2.0 ms",
            transport=Transport.WEBSOCKET,
            span=f"{i + 0xC0:016x}",
        )
        source.emit(replace(hb, rtt_count=2, rtt_min_s=0.001, rtt_avg_s=0.0015, rtt_max_s=0.002))
    source.emit(message(sid, "terminal_output", Direction.SERVER_TO_CLIENT, wall=t0 + 0.2))
    requests = [
        ("create_terminal", "terminal_ready", 0.1, 0.35, Outcome.OK),
        ("resize", "ack", 0.6, 0.02, Outcome.OK),
        ("open_file", "file_error", 1.2, 0.4, Outcome.ERROR),
        ("ai_get_info", None, 1.5, 2.0, Outcome.TIMEOUT),
        ("terminal_input", "ack", 2.8, 0.01, Outcome.OK),
    ]
    for i, (request, response, start, duration, outcome) in enumerate(requests):
        record = pair(
            sid,
            request,
            response=response,
            outcome=outcome,
            start_wall=t0 + start,
            duration_s=duration,
            span=f"{i + 0xA0:016x}",
        )
        source.emit(
            replace(
                record,
                match_key="t-1" if request == "create_terminal" else None,
                request_payload=REDACTED_REQUEST if request == "create_terminal" else None,
                response_payload='["terminal_ready",{"session":"t-1"}]' if response else None,
                response_transport=Transport.WEBSOCKET if response else None,
                request_transport=Transport.POLLING if i == 0 else Transport.WEBSOCKET,
            )
        )

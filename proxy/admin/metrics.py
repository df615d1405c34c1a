"""``/metrics``: a prometheus_client collector that reads snapshots at scrape time.

Nothing here is called per frame.  The only per-record work is
:meth:`DurationHistograms.observe` (one bisect and a few additions per finished request,
compiled: :class:`~tracking.metrics.LatencyWindow` calls it);
everything else is read from the tracker's :class:`~tracking.views.MetricsSnapshot`, the
sinks' health, the relay's counters and the admin listener's own counters when Prometheus
scrapes.  With tracking off only the relay's and the admin listener's families are served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from socketio_trace_proxy.proxy.admin.source import MonitorSource
from socketio_trace_proxy.tracking.metrics import ECHO_BOUNDS, OTHER, DurationSeries
from socketio_trace_proxy.tracking.views import LatencySummary, MetricsSnapshot, SamplingInfo

__all__ = ["ADMIN_METRICS", "OTHER", "AdminCounters", "DurationHistograms", "MonitorCollector"]

PREFIX = "socketio_proxy"


DurationHistograms = DurationSeries
"""Request duration histograms per (rule, outcome), bounded in series count: the tracker's
:class:`~tracking.metrics.DurationSeries` (compiled with the tracker's metrics)."""


AdminCounters = Mapping[str, int]
"""The admin listener's own counters by name (keys of :data:`ADMIN_METRICS`)."""

ADMIN_METRICS: dict[str, tuple[bool, str]] = {  # name -> (is a gauge, help)
    "stream_clients": (True, "Connected live-stream clients"),
    "stream_updates_dropped": (
        False,
        "Live-stream updates dropped because a client read too slowly",
    ),
    "stream_clients_refused": (False, "Live-stream connections refused (too many clients)"),
    "stream_tick_errors": (False, "Live-stream updates that could not be built"),
    "subscription_errors": (False, "Records the admin listener failed to take in"),
    "histogram_series_folded": (
        False,
        f"Observations folded into rule {OTHER} (series limit reached)",
    ),
    "closed_sessions": (True, "Closed sessions kept browsable"),
    "closed_sessions_evicted": (False, "Closed sessions forgotten to keep the most recent"),
    "exports_active": (True, "/api/export downloads in progress"),
    "exports_refused": (False, "/api/export downloads refused (too many at once)"),
    "hosts_refused": (
        False,
        "Requests refused for their Host header (no token: DNS rebinding guard)",
    ),
    "login_failures": (False, "Wrong admin tokens given (login form or bearer header)"),
    "login_refused": (False, "Token checks refused by the guess rate limit"),
    "login_sessions": (True, "Live login sessions"),
    "login_sessions_evicted": (
        False,
        "Login sessions revoked early to stay within max_login_sessions",
    ),
    "login_clients_evicted": (False, "Clients forgotten by the guess rate limit (table full)"),
}


def _fmt_bound(bound: float) -> str:
    return repr(float(bound))


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Prometheus ``le`` buckets from per-bucket counts (the last one: +Inf)."""
    cumulative, buckets = 0, []
    for bound, n in zip((*map(_fmt_bound, bounds), "+Inf"), counts, strict=True):
        cumulative += n
        buckets.append((bound, float(cumulative)))
    return buckets


def _quantiles(
    name: str, doc: str, labels: list[str], rows: Sequence[tuple[list[str], LatencySummary]]
) -> Iterator[Metric]:
    gauge = GaugeMetricFamily(name, doc, labels=[*labels, "quantile"])
    count = GaugeMetricFamily(f"{name}_observations", f"{doc} (observations)", labels=labels)
    for values, summary in rows:
        for q, v in (("0.5", summary.p50_s), ("0.95", summary.p95_s), ("0.99", summary.p99_s)):
            if v is not None:
                gauge.add_metric([*values, q], v)
        if summary.max_s is not None:
            gauge.add_metric([*values, "1"], summary.max_s)
        count.add_metric(values, summary.count)
    yield gauge
    yield count


class MonitorCollector:
    """A custom collector (``prometheus_client`` calls :meth:`collect` on every scrape)."""

    def __init__(
        self,
        source: MonitorSource,
        histograms: DurationHistograms,
        admin_counters: Callable[[], AdminCounters],
    ) -> None:
        self._source = source
        self._histograms = histograms
        self._admin_counters = admin_counters

    def collect(self) -> Iterator[Metric]:
        if self._source.tracking_enabled:
            snap = self._source.get_metrics()
            yield from self._requests(snap)
            yield from self._traffic(snap)
            yield from self._exporters()
        yield from self._relay()
        yield from self._admin()

    def _requests(self, snap: MetricsSnapshot) -> Iterator[Metric]:
        hist = HistogramMetricFamily(
            f"{PREFIX}_request_duration_seconds",
            "Request -> reply duration as seen at the proxy, per rule and outcome "
            "(since the admin listener started)",
            labels=["rule", "outcome"],
        )
        bounds = self._histograms.bounds
        for rule_name, outcome, counts, total in self._histograms.series():
            hist.add_metric([rule_name, outcome], _cumulative(bounds, counts), total)
        yield hist

        requests = CounterMetricFamily(
            f"{PREFIX}_requests",
            "Finished requests per rule and outcome",
            labels=["rule", "outcome"],
        )
        slow = CounterMetricFamily(
            f"{PREFIX}_slow_requests",
            "Requests slower than their rule's threshold",
            labels=["rule"],
        )
        for rule in snap.rules:
            for outcome, n in sorted(rule.outcomes.items()):
                requests.add_metric([rule.rule, outcome], n)
            slow.add_metric([rule.rule], rule.slow)
        yield requests
        yield slow
        yield from _echo(snap)
        yield from _quantiles(
            f"{PREFIX}_request_duration_quantile_seconds",
            "Request duration quantiles per rule, from the tracker (quantile 1 is the max)",
            ["rule"],
            [([r.rule], r.latency) for r in snap.rules],
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_pending_requests", "Requests waiting for their reply", value=snap.pending
        )

    def _traffic(self, snap: MetricsSnapshot) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            f"{PREFIX}_sessions", "Open Engine.IO sessions per transport", labels=["transport"]
        )
        for transport, n in sorted(snap.sessions_by_transport.items()):
            sessions.add_metric([transport], n)
        yield sessions
        if snap.sampling is not None:
            yield from _sampling(snap.sampling)
        messages = CounterMetricFamily(
            f"{PREFIX}_messages", "Socket.IO messages per direction", labels=["direction"]
        )
        for direction, n in sorted(snap.messages_by_direction.items()):
            messages.add_metric([direction], n)
        yield messages
        nbytes = CounterMetricFamily(
            f"{PREFIX}_message_bytes", "Socket.IO message bytes per direction", labels=["direction"]
        )
        for direction, n in sorted(snap.bytes_by_direction.items()):
            nbytes.add_metric([direction], n)
        yield nbytes
        ev_msgs = CounterMetricFamily(
            f"{PREFIX}_event_messages",
            "Messages per event (rule template or folded name) and direction",
            labels=["event", "direction"],
        )
        ev_bytes = CounterMetricFamily(
            f"{PREFIX}_event_bytes", "Bytes per event and direction", labels=["event", "direction"]
        )
        for ev in snap.events:
            ev_msgs.add_metric([ev.event, ev.direction], ev.messages)
            ev_bytes.add_metric([ev.event, ev.direction], ev.bytes)
        yield ev_msgs
        yield ev_bytes
        yield from _quantiles(
            f"{PREFIX}_heartbeat_rtt_seconds",
            "Engine.IO PING -> PONG round trip as seen at the proxy",
            [],
            [([], snap.heartbeat_rtt)],
        )
        yield from _quantiles(
            f"{PREFIX}_upgrade_duration_seconds",
            "Polling -> WebSocket upgrade duration",
            [],
            [([], snap.upgrade_duration)],
        )
        yield CounterMetricFamily(
            f"{PREFIX}_decode_errors", "Frames that could not be decoded", value=snap.decode_errors
        )
        for name, doc, values in (
            ("evictions", "Entries evicted to stay within limits", snap.evictions),
            ("drops", "Items dropped by bounded buffers", snap.drops),
            ("tracker_counter", "Other tracker counters", snap.extra),
        ):
            metric = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=["what"])
            for what, n in sorted(values.items()):
                metric.add_metric([what], n)
            yield metric

    def _exporters(self) -> Iterator[Metric]:
        health = self._source.sink_health()
        families = {
            "sent": CounterMetricFamily(
                f"{PREFIX}_exporter_sent", "Records exported", labels=["exporter"]
            ),
            "failed": CounterMetricFamily(
                f"{PREFIX}_exporter_failed", "Records that failed to export", labels=["exporter"]
            ),
            "dropped": CounterMetricFamily(
                f"{PREFIX}_exporter_dropped", "Records dropped (queue full)", labels=["exporter"]
            ),
            "text_replaced": CounterMetricFamily(
                f"{PREFIX}_exporter_text_replaced",
                "Records sent with text that could not be encoded replaced (U+FFFD)",
                labels=["exporter"],
            ),
        }
        queued = GaugeMetricFamily(
            f"{PREFIX}_exporter_queued", "Records waiting to be exported", labels=["exporter"]
        )
        healthy = GaugeMetricFamily(
            f"{PREFIX}_exporter_healthy", "1 when the exporter is healthy", labels=["exporter"]
        )
        for h in health:
            families["sent"].add_metric([h.name], h.sent)
            families["failed"].add_metric([h.name], h.failed)
            families["dropped"].add_metric([h.name], h.dropped)
            families["text_replaced"].add_metric([h.name], h.text_replaced)
            queued.add_metric([h.name], h.queued)
            healthy.add_metric([h.name], 1.0 if h.healthy else 0.0)
        yield from families.values()
        yield queued
        yield healthy

    def _relay(self) -> Iterator[Metric]:
        for name, value in sorted(self._source.relay_counters().items()):
            # The relay's stats mix monotonic counters and levels (open connections), so
            # they are exposed as gauges; rate() works on either.
            metric_name = f"{PREFIX}_relay_{_sanitize(name)}"
            if isinstance(value, int | float):
                yield GaugeMetricFamily(metric_name, f"Relay counter {name}", value=value)
            else:
                gauge = GaugeMetricFamily(metric_name, f"Relay counter {name}", labels=["key"])
                for key, v in sorted(value.items()):
                    gauge.add_metric([key], v)
                yield gauge

    def _admin(self) -> Iterator[Metric]:
        counters = self._admin_counters()
        for name, (gauge, doc) in ADMIN_METRICS.items():
            family = GaugeMetricFamily if gauge else CounterMetricFamily
            yield family(f"{PREFIX}_admin_{name}", doc, value=counters.get(name, 0))


def _echo(snap: MetricsSnapshot) -> Iterator[Metric]:
    """Input -> echo latency per echo rule (one series per configured rule: bounded)."""
    hist = HistogramMetricFamily(
        f"{PREFIX}_echo_seconds",
        "Input -> first following output of the same key (echo rules), as seen at the proxy",
        labels=["rule"],
    )
    unanswered = CounterMetricFamily(
        f"{PREFIX}_echo_unanswered",
        "Echo-rule inputs with no output within the rule's timeout",
        labels=["rule"],
    )
    slow = CounterMetricFamily(
        f"{PREFIX}_slow_echoes", "Echoes slower than their rule's threshold", labels=["rule"]
    )
    for e in snap.echo:
        hist.add_metric([e.rule], _cumulative(ECHO_BOUNDS, e.buckets), e.sum_s)
        unanswered.add_metric([e.rule], e.unanswered)
        slow.add_metric([e.rule], e.slow)
    yield hist
    yield unanswered
    yield slow
    yield from _quantiles(
        f"{PREFIX}_echo_quantile_seconds",
        "Echo latency quantiles per echo rule, from the tracker (quantile 1 is the max)",
        ["rule"],
        [([e.rule], e.latency) for e in snap.echo],
    )


def _sanitize(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name).strip("_") or "x"


def _sampling(info: SamplingInfo) -> Iterator[Metric]:
    """Session sampling: the metrics above cover a sample of N / M sessions."""
    yield GaugeMetricFamily(
        f"{PREFIX}_session_sample_rate",
        "tracking.session_sample_rate: share of sessions decoded (metrics come from a sample)",
        value=info.rate,
    )
    yield CounterMetricFamily(
        f"{PREFIX}_handshakes", "Engine.IO sessions whose handshake was seen", value=info.sessions
    )
    yield CounterMetricFamily(
        f"{PREFIX}_sampled_sessions",
        "Sessions decoded and correlated (the sample the other metrics come from)",
        value=info.sampled_sessions,
    )
    messages = CounterMetricFamily(
        f"{PREFIX}_unsampled_messages",
        "Engine.IO packets of unsampled sessions seen by the tracker, per direction",
        labels=["direction"],
    )
    for direction, n in sorted(info.unsampled_messages.items()):
        messages.add_metric([direction], n)
    yield messages
    nbytes = CounterMetricFamily(
        f"{PREFIX}_unsampled_bytes",
        "Bytes of unsampled sessions seen by the tracker, per direction",
        labels=["direction"],
    )
    for direction, n in sorted(info.unsampled_bytes.items()):
        nbytes.add_metric([direction], n)
    yield nbytes

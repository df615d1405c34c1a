"""What the composition root tells the dashboard about the rest of the proxy.

``GET /api/info`` serves it with what the admin listener knows itself (is a token in use,
is tracking on, how many closed sessions are kept): whether payloads are captured (so a
detail view can say why it shows none) and how to open a record's trace in the tracing
backend's UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TraceLink:
    """A trace view URL: ``url`` with ``query``, to which the dashboard adds ``trace_id``,
    ``span_id``, ``from`` and ``to`` (Unix microseconds around the span)."""

    name: str
    url: str
    query: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def openobserve(cls, ui_url: str, org: str, stream: str) -> TraceLink:
        """OpenObserve's trace details page: ``{ui}/web/traces/trace-details`` with
        ``stream``, ``trace_id``, ``span_id``, ``from``/``to`` (microseconds) and
        ``org_identifier`` (the ``traceDetails`` route of OpenObserve's web app)."""
        return cls(
            "OpenObserve",
            f"{ui_url.rstrip('/')}/web/traces/trace-details",
            {"stream": stream, "org_identifier": org},
        )


@dataclass(frozen=True, slots=True)
class DashboardInfo:
    capture: bool = False  # tracking.capture.enabled: records carry (redacted) payloads
    trace_link: TraceLink | None = None  # None: no tracing UI to link to

"""The relay's counters: live ones incremented on the loop, and frozen snapshots of them.

:class:`RelayCounters` is what the legs increment; :class:`RelayStats` is what ``/metrics``
and the dashboard read, with the upstream pool's own counters beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from socketio_trace_proxy.proxy.lean.head import HeadBuilder
from socketio_trace_proxy.proxy.upstream import UpstreamPool


@dataclass(frozen=True, slots=True)
class RelayStats:
    """A snapshot of the relay's counters (monotonic since start, except the gauges)."""

    http_requests: int
    polling_requests: int
    upstream_errors: int
    client_disconnects: int
    malformed_requests: int  # refused by the server leg's parser with 400
    refused_connections: int  # over proxy.max_connections: closed at once
    refused_bodies: int  # polling bodies over proxy.max_bodies_in_flight: 503
    slow_heads_closed: int  # request head not complete within proxy.request_head_timeout_s
    idle_closed: int  # keep-alive connections idle for proxy.keepalive_timeout_s
    rejected_too_large: int
    ws_opened: int
    ws_active: int
    ws_refused: int
    refused_busy: int
    ws_messages_c2s: int
    ws_messages_s2c: int
    ws_bytes_c2s: int
    ws_bytes_s2c: int
    polling_bytes_c2s: int
    polling_bytes_s2c: int
    observer_errors: int
    ws_unobservable: int
    ws_protocol_errors: int
    upstream_connections_opened: int  # by the polling/upgrade client
    upstream_idle_discarded: int  # keep-alive connections closed: the idle pool was full
    # the lean leg's table of Connection values met (their drop sets) emptied, being full
    connection_values_cleared: int
    # the upstream lines known for a client connection's header lines emptied, being full
    header_lines_cleared: int


class RelayCounters:
    """The live, mutable counters behind :class:`RelayStats` (incremented on the loop)."""

    __slots__ = (
        "client_disconnects",
        "http_requests",
        "idle_closed",
        "malformed_requests",
        "observer_errors",
        "polling_bytes_c2s",
        "polling_bytes_s2c",
        "polling_requests",
        "refused_bodies",
        "refused_busy",
        "refused_connections",
        "rejected_too_large",
        "slow_heads_closed",
        "upstream_errors",
        "ws_active",
        "ws_bytes_c2s",
        "ws_bytes_s2c",
        "ws_messages_c2s",
        "ws_messages_s2c",
        "ws_opened",
        "ws_protocol_errors",
        "ws_refused",
        "ws_unobservable",
    )
    _POOL_COUNTERS: Final = ("connections_opened", "idle_discarded")

    def __init__(self) -> None:
        self.http_requests = 0
        self.polling_requests = 0
        self.upstream_errors = 0
        self.client_disconnects = 0
        self.malformed_requests = 0
        self.refused_connections = 0
        self.refused_bodies = 0
        self.slow_heads_closed = 0
        self.idle_closed = 0
        self.rejected_too_large = 0
        self.ws_opened = 0
        self.ws_active = 0
        self.ws_refused = 0
        self.refused_busy = 0  # over max_websockets or max_upstream_connections: 503
        self.ws_messages_c2s = 0
        self.ws_messages_s2c = 0
        self.ws_bytes_c2s = 0
        self.ws_bytes_s2c = 0
        self.polling_bytes_c2s = 0
        self.polling_bytes_s2c = 0
        self.observer_errors = 0
        # tunnelled directions whose observation stopped (a message that did not inflate)
        self.ws_unobservable = 0
        # tunnelled WebSockets closed 1002: a control frame over 125 bytes (RFC 6455 5.5)
        self.ws_protocol_errors = 0

    def snapshot(
        self, pool: UpstreamPool | None = None, heads: HeadBuilder | None = None
    ) -> RelayStats:
        """The counters, with the upstream pool's own and the lean leg's head builder's
        (zero without them)."""
        pooled = {f"upstream_{n}": getattr(pool, n) if pool else 0 for n in self._POOL_COUNTERS}
        return RelayStats(
            **{name: getattr(self, name) for name in self.__slots__},
            **pooled,
            connection_values_cleared=heads.cleared if heads is not None else 0,
            header_lines_cleared=heads.lines_cleared if heads is not None else 0,
        )

"""The admin listener: dashboard, JSON API, live stream and Prometheus metrics (issue 4).

It runs on its own address (``AdminSettings.listen``), reads the tracker and the relay
through :class:`MonitorSource` (a :class:`RelayOnlySource` when tracking is off), and never
touches the relayed traffic.
"""

from socketio_trace_proxy.proxy.admin.app import build_admin_app
from socketio_trace_proxy.proxy.admin.info import DashboardInfo, TraceLink
from socketio_trace_proxy.proxy.admin.security import AdminBindError, check_admin_binding
from socketio_trace_proxy.proxy.admin.source import (
    MonitorSource,
    RelayOnlySource,
    TrackerMonitorSource,
    TrackerSource,
)

__all__ = [
    "AdminBindError",
    "DashboardInfo",
    "MonitorSource",
    "RelayOnlySource",
    "TraceLink",
    "TrackerMonitorSource",
    "TrackerSource",
    "build_admin_app",
    "check_admin_binding",
]

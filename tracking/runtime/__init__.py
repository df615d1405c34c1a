"""The tracker runtime: the asyncio side of tracking (the sans-IO parts never sleep).

:class:`tracking.runtime.driver.Tracker` is what the relay observes with and what
embedding code, the admin listener and the exporters talk to: the driver (observer, clock,
timer) in :mod:`.driver`, extending the record hub (activity, subscriptions, callbacks,
sinks) in :mod:`.hub`, with per-session timelines in :mod:`.timelines` and the live feeds
in :mod:`.feeds`.
"""

from socketio_trace_proxy.tracking.runtime.driver import MAX_SLEEP_S, Clock, SystemClock, Tracker
from socketio_trace_proxy.tracking.runtime.feeds import Subscription
from socketio_trace_proxy.tracking.runtime.timelines import PacketView, SessionTimeline

__all__ = [
    "MAX_SLEEP_S",
    "Clock",
    "PacketView",
    "SessionTimeline",
    "Subscription",
    "SystemClock",
    "Tracker",
]

"""The correlation engine: session events and clock ticks in, records out (sans-IO).

It pairs, per Engine.IO session and namespace, EVENTs carrying an ack id with their ACK
(both directions) and configured request events with their response events (match key or
first in, first out; templated names; streams), and decides every request's outcome: ok,
error, timeout, late (linked to its timed-out record), abandoned, evicted.  It never
sleeps, and all its tables are bounded and count what they evict.

Ids: the handshake span of a session continues the client's ``traceparent`` when there is
one; namespace-connect, upgrade and close records share the session's trace.  Each pair gets
a trace of its own (a day-long session must not grow one giant trace), or continues the
``traceparent`` of the HTTP request that carried its request packet, and carries the
session's ``SessionRef`` so exporters can link it to the handshake span.

The entry point is :class:`tracking.correlation.engine.CorrelationEngine`; the modules
beside it own one part each (state, pending table, outcomes, lifecycle, dispatch, views).
"""

from socketio_trace_proxy.tracking.correlation.engine import CorrelationEngine
from socketio_trace_proxy.tracking.correlation.lifecycle import NAMESPACE_CONNECT_RULE

__all__ = ["NAMESPACE_CONNECT_RULE", "CorrelationEngine"]

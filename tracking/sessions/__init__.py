"""Engine.IO sessions as seen at the proxy: sans-IO state keyed by Engine.IO ``sid``.

Owns the step from raw relayed traffic (polling bodies, WebSocket messages, each stamped
once by the tracker's driver) to :mod:`tracking.events`: one session spans its polling
requests and its WebSocket, follows the polling -> WebSocket upgrade, measures heartbeats,
and ends on a CLOSE packet, the close of its active WebSocket, missed heartbeats, eviction
or shutdown, after which its state is freed.  A sid the table does not know is tracked
only once the backend accepted it.  The entry point is
:class:`tracking.sessions.table.SessionTable`; the modules beside it own one part each.
"""

from socketio_trace_proxy.tracking.sessions.state import SessionTableStats, WebSocketLeg
from socketio_trace_proxy.tracking.sessions.table import SessionTable

__all__ = ["SessionTable", "SessionTableStats", "WebSocketLeg"]

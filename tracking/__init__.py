"""Everything the proxy learns from the traffic it relays.

``tracking`` owns the sans-IO protocol core (``tracking.wire``: Engine.IO and Socket.IO
decoding), the per-Engine.IO-session state (``tracking.sessions``), the correlation engine
that pairs requests with replies (``tracking.correlation``), live metrics, and the
interfaces at both of its edges: ``tracking.observer`` (what the relay calls) and
``tracking.sink`` (what exporters implement).  Nothing here imports aiohttp; only the
runtime that drives the timers (``tracking.runtime``) imports asyncio.
"""

"""The relay: an aiohttp reverse proxy that forwards every byte unchanged.

``proxy`` owns the HTTP and WebSocket legs (``proxy.relay``), the admin listener, and the
composition root (``proxy.cli``) that wires config, relay, tracker and exporters together.
It tells ``tracking`` what it forwarded through :class:`tracking.observer.TrafficObserver`
and never decodes anything itself.
"""

"""The relay: an aiohttp reverse proxy that forwards every byte unchanged.

``proxy`` owns the HTTP and WebSocket legs (``proxy.relay`` routes each request to
``proxy.polling``, ``proxy.streaming`` or ``proxy.websocket``, which share ``proxy.core``),
the admin listener, and the composition root (``proxy.cli``, with ``proxy.options`` for its
configuration) that wires config, relay, tracker and exporters together.  It tells
``tracking`` what it forwarded through :class:`tracking.observer.TrafficObserver` and never
decodes anything itself.
"""

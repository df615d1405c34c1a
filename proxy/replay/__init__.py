"""``socketio-trace-proxy replay``, the I/O part: a raw Engine.IO client on aiohttp
(``proxy.replay.client``), the runner that drives :mod:`tracking.replay`'s per-session state
machines with it at a chosen speed and concurrency (``proxy.replay.runner``), and the
command line (``proxy.replay.command``).
"""

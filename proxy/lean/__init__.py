"""The lean server leg (``proxy.server_leg: lean``): the relay's own HTTP/1.1 server.

Each client keep-alive connection is parsed by httptools and relayed as bytes: the request
head forwarded with only the documented changes, bodies copied once, the upstream's response
head and body written back as received.  :mod:`proxy.lean.server` serves the connections,
:mod:`proxy.lean.connection` parses one, :mod:`proxy.lean.exchange` relays its requests.
"""

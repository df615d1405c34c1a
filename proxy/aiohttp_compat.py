"""Every use the relay makes of aiohttp's private or undocumented surface, in one place.

Each function names what it relies on; ``tests/proxy/test_aiohttp_compat.py`` has one test
per touch that fails loudly when an aiohttp release changes it (the project caps aiohttp
below its next major).  What is relied on:

* ``RequestHandler.set_parser`` / ``keep_alive``: the tunnel takes the client's bytes after
  the 101 (aiohttp's own WebSocket does the same).
* ``StreamWriter.output_size``: reset after the interim ``100 Continue``.
* ``BaseRunner._kwargs`` and its ``_make_server`` / ``_cleanup_server`` hooks: the relay's
  runner builds a low-level ``web.Server`` as ``ServerRunner`` does.
* ``aiohttp._websocket.helpers.websocket_mask``: the C XOR of a frame payload.
* ``ClientWebSocketResponse._response``: dropping an upstream leg without a close frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse, ClientWebSocketResponse, web
from aiohttp.abc import AbstractStreamWriter

log = logging.getLogger("socketio_trace_proxy.proxy.relay")

MaskFunction = Callable[[bytes, bytearray], None]


def take_over_client(request: web.BaseRequest, reader: Any) -> None:
    """Feed the client's further bytes to ``reader`` (``feed_data``/``feed_eof``) and never
    read another HTTP request on the connection."""
    protocol = request.protocol
    protocol.set_parser(reader)
    protocol.keep_alive(False)


def reset_output_size(writer: AbstractStreamWriter) -> None:
    """Make the final response's size count from here (after an interim response)."""
    writer.output_size = 0


def runner_kwargs(runner: web.BaseRunner) -> dict[str, Any]:
    """The keyword arguments a runner was built with (what it hands to its server)."""
    kwargs: dict[str, Any] = runner._kwargs
    return kwargs


def fast_websocket_mask() -> MaskFunction | None:
    """aiohttp's compiled XOR of a payload with its 4-byte key, or ``None``."""
    try:
        from aiohttp._websocket.helpers import websocket_mask  # noqa: PLC0415
    except ImportError:
        return None
    mask: MaskFunction = websocket_mask
    return mask


_told_about_mask = False


def log_if_no_fast_mask() -> bool:
    """Log once per process if the compiled mask is missing; whether it is there."""
    global _told_about_mask  # noqa: PLW0603 - once per process
    available = fast_websocket_mask() is not None
    if not available and not _told_about_mask:
        _told_about_mask = True
        log.warning(
            "aiohttp's compiled WebSocket mask is not available: observing masked frames "
            "uses a slower pure-Python fallback"
        )
    return available


def client_ws_response(ws: ClientWebSocketResponse[Any]) -> ClientResponse | None:
    """The HTTP response under a client WebSocket (closing it drops the connection)."""
    response: ClientResponse | None = getattr(ws, "_response", None)
    return response

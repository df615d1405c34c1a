"""Close-frame mirroring for the WebSocket relay: the few things aiohttp has no public API for.

Engine.IO closes a WebSocket with an EMPTY close frame (no status code).  aiohttp reports
that as code 0, and its ``close(code=...)`` always packs a two-byte status code, so
forwarding "code 0" would put an invalid close frame on the wire (RFC 6455 7.4.2 forbids
0).  We therefore send close frames ourselves through the public ``send_frame`` with the
exact payload the other side sent, and once both close frames have crossed we tear the
legs down without letting aiohttp append a close frame of its own.  That last step needs
a private attribute of aiohttp, reached through :mod:`proxy.aiohttp_compat`.
"""

from __future__ import annotations

import struct
from typing import Any, TypeAlias

from aiohttp import ClientWebSocketResponse, WSMsgType, web

from socketio_trace_proxy.proxy.aiohttp_compat import client_ws_response

_PACK_CODE = struct.Struct("!H").pack

AnyWebSocket: TypeAlias = "web.WebSocketResponse[Any] | ClientWebSocketResponse[Any]"


def close_payload(code: int | None, reason: bytes) -> bytes:
    """The close frame payload for ``code``/``reason``; no code (0/None) means empty."""
    if not code:
        return b""
    return _PACK_CODE(code) + reason


async def send_close_frame(ws: AnyWebSocket, code: int | None, reason: bytes) -> None:
    """Send exactly one close frame carrying ``code`` and ``reason`` (empty when no code)."""
    await ws.send_frame(close_payload(code, reason), WSMsgType.CLOSE)


def release_client_leg(request: web.BaseRequest) -> None:
    """Close the front-end TCP connection after the close handshake (RFC 6455 7.1.1: the
    server closes first).  aiohttp's own ``close()`` on handler exit then finds the
    transport closing and sends nothing more."""
    transport = request.transport
    if transport is not None:
        transport.close()


def release_upstream_leg(ws: ClientWebSocketResponse[Any]) -> None:
    """Drop the upstream connection without sending a close frame of our own.

    ``ClientWebSocketResponse.close()`` would send a fresh 1000 frame; the underlying
    ``ClientResponse.close()`` only closes the connection (never returned to the pool).
    """
    response = client_ws_response(ws)
    if response is not None:
        response.close()

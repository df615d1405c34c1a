"""The relay's settings: where to listen, which upstream, how to forward."""

from __future__ import annotations

from pydantic import Field

from config.base import Section


class ProxySettings(Section):
    listen: str = Field("127.0.0.1:8080", description="HOST:PORT the front end connects to")
    upstream: str | None = Field(
        None, description="base URL of the Socket.IO backend, e.g. http://127.0.0.1:5000"
    )
    socketio_path: str = Field("/socket.io/", description="path relayed and observed")
    forwarded_headers: bool = Field(True, description="add X-Forwarded-For/Proto/Host")
    max_message_size: int = Field(
        16 * 1024 * 1024, gt=0, description="largest WebSocket message / polling body, bytes"
    )
    websocket_compression: bool = Field(
        True, description="accept permessage-deflate from clients that offer it (client leg)"
    )
    upstream_websocket_compression: bool = Field(
        True,
        description="offer permessage-deflate to the upstream when the client offered it, as "
        "a direct connection would (false saves ~90 KiB of zlib state per session, but a "
        "backend then sees uncompressed frames, which its max message size may refuse)",
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="upstream connect timeout")
    max_websockets: int = Field(
        10_000, gt=0, description="relayed WebSockets at once; more are refused with 503"
    )
    max_upstream_connections: int = Field(
        10_000, gt=0, description="pooled upstream connections (each long-poll holds one)"
    )
    close_timeout_s: float = Field(
        5.0, gt=0, description="how long a WebSocket leg may take to answer a mirrored close"
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="graceful shutdown deadline (sessions, then sinks)"
    )

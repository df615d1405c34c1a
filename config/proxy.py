"""The relay's settings: where to listen, which upstream, how to forward."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator, model_validator

from socketio_trace_proxy.config.address import check_upstream_url, split_host_port
from socketio_trace_proxy.config.base import Section


class WebSocketRelay(Enum):
    """How a WebSocket is relayed once both sides have upgraded."""

    TUNNEL = "tunnel"  # frames forwarded as they arrive; extensions negotiated end to end
    TERMINATE = "terminate"  # one WebSocket per leg, each negotiated by the proxy


class ServerLeg(Enum):
    """What serves the client connections."""

    LEAN = "lean"  # the relay's own HTTP/1.1 server (httptools): heads and bodies relayed as bytes
    AIOHTTP = "aiohttp"  # aiohttp's web server (needed by websocket_relay: terminate)


class AddressHeaders(Enum):
    """What becomes of the client's other address headers (``Forwarded``, ``X-Real-IP``)."""

    REWRITE = "rewrite"  # Forwarded gains this hop, X-Real-IP becomes the client's address
    DROP = "drop"  # neither reaches the upstream
    PASS = "pass"  # both pass as the client sent them (spoofable)


class ProxySettings(Section):
    listen: str = Field("127.0.0.1:8080", description="HOST:PORT the front end connects to")
    upstream: str | None = Field(
        None, description="base URL of the Socket.IO backend, e.g. http://127.0.0.1:5000"
    )
    socketio_path: str = Field("/socket.io/", description="path relayed and observed")
    forwarded_headers: bool = Field(True, description="add X-Forwarded-For/Proto/Host")
    client_address_headers: AddressHeaders = Field(
        AddressHeaders.REWRITE,
        description="the client's Forwarded and X-Real-IP headers: rewrite (Forwarded gains "
        "this hop as for=/proto=/host=, X-Real-IP becomes the client's address), drop, or pass "
        "as sent; unless pass, names spelled with underscores (X_Forwarded_For, X_Real_IP), "
        "which many servers read as the dashed ones, are dropped",
    )
    max_message_size: int = Field(
        16 * 1024 * 1024, gt=0, description="largest WebSocket message / polling body, bytes"
    )
    websocket_relay: WebSocketRelay = Field(
        WebSocketRelay.TUNNEL,
        description="tunnel: every frame passes as sent, the subprotocol and permessage-"
        "deflate are negotiated between client and backend, the proxy only reads (cheapest); "
        "terminate: the proxy is the WebSocket peer of each side and relays messages",
    )
    server_leg: ServerLeg | None = Field(
        None,
        description="lean: the relay's own HTTP/1.1 server, which forwards request and "
        "response heads as received (cheapest); aiohttp: aiohttp's web server; unset: lean, "
        "or aiohttp with websocket_relay: terminate (which only aiohttp serves)",
    )
    websocket_compression: bool = Field(
        True, description="let permessage-deflate be negotiated when the client offers it"
    )
    upstream_websocket_compression: bool = Field(
        True,
        description="terminate only: offer permessage-deflate to the upstream when the client "
        "offered it, as a direct connection would (false saves ~90 KiB of zlib state per "
        "session, but a backend then sees uncompressed frames, which its max message size "
        "may refuse)",
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
    max_bodies_in_flight: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="bytes of Socket.IO-path request bodies held at once (a body's "
        "Content-Length, or max_message_size when chunked); more are refused with 503",
    )
    max_connections: int = Field(
        10_000, gt=0, description="open client connections at once; more are closed at once"
    )
    request_head_timeout_s: float = Field(
        10.0, gt=0, description="time a client has to send a whole request head (slowloris)"
    )
    keepalive_timeout_s: float = Field(
        30.0, gt=0, description="an idle keep-alive client connection is closed after this"
    )
    shutdown_timeout_s: float = Field(
        10.0, gt=0, description="graceful shutdown deadline (sessions, then sinks)"
    )

    @field_validator("listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream_url(cls, value: str | None) -> str | None:
        return check_upstream_url(value) if value else value

    @model_validator(mode="after")
    def _check(self) -> ProxySettings:
        tunnel = self.websocket_relay is WebSocketRelay.TUNNEL
        if tunnel and not self.upstream_websocket_compression:
            raise ValueError(
                "upstream_websocket_compression: false needs websocket_relay: terminate "
                "(a tunnel negotiates compression between client and backend)"
            )
        if self.server_leg is ServerLeg.LEAN and not tunnel:
            raise ValueError(
                "server_leg: lean relays WebSockets as a tunnel only; websocket_relay: "
                "terminate needs server_leg: aiohttp (or server_leg unset)"
            )
        return self

    @property
    def leg(self) -> ServerLeg:
        """The server leg in use: as set, else lean unless WebSockets are terminated."""
        if self.server_leg is not None:
            return self.server_leg
        tunnel = self.websocket_relay is WebSocketRelay.TUNNEL
        return ServerLeg.LEAN if tunnel else ServerLeg.AIOHTTP

"""A relayed WebSocket after the handshake: bytes forwarded unchanged, frames read beside.

Once the upstream has answered 101 and the same 101 has gone to the client, both TCP
connections carry one WebSocket end to end: the handshake was forwarded as the client sent
it, so the subprotocol and permessage-deflate are negotiated between the two endpoints, and
every frame (masking, fragmentation, compression, close payloads) is passed through as it
arrived.  Each direction is read by a :class:`proxy.wsframes.FrameScanner` on the side.

The proxy writes frames of its own in only three cases: a message over ``max_message_size``
(1009 to both sides, RFC 6455 7.4.1), a control frame declaring more than 125 bytes (1002 to
both sides: a protocol error, RFC 6455 5.5; nothing of it is forwarded or buffered) and
shutdown (1001).  Either side's connection ending
ends the other's; a close frame not followed by the end of the connection within
``close_timeout_s`` ends both.  Reading pauses on one side while the other's write buffer is
full, so a slow reader holds at most one transport buffer in the proxy per direction.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Final

from socketio_trace_proxy.proxy.wsframes import FrameScanner, Scanned, close_frame
from socketio_trace_proxy.tracking.observer import WebSocketObserver
from socketio_trace_proxy.tracking.traffic import Direction

if TYPE_CHECKING:
    from socketio_trace_proxy.proxy.counters import RelayCounters

C2S: Final = Direction.CLIENT_TO_SERVER
S2C: Final = Direction.SERVER_TO_CLIENT
_HIGH_WATER: Final = 256 * 1024  # client write buffer above which the upstream is not read
_DRAIN_CHECK_S: Final = 0.005
_MESSAGE_TOO_BIG: Final = 1009
_PROTOCOL_ERROR: Final = 1002
_GOING_AWAY: Final = 1001


class _ClientReader:
    """What aiohttp's server protocol feeds the client's bytes to once the 101 is sent
    (``RequestHandler.set_parser``): the same two methods as its own WebSocket reader."""

    __slots__ = ("_tunnel",)

    def __init__(self, tunnel: WebSocketTunnel) -> None:
        self._tunnel = tunnel

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._tunnel.from_client(data)
        return False, b""

    def feed_eof(self) -> None:
        self._tunnel.finish()


class _UpstreamProtocol(asyncio.Protocol):
    """The upstream connection's protocol once the tunnel takes it over."""

    __slots__ = ("_tunnel",)

    def __init__(self, tunnel: WebSocketTunnel) -> None:
        self._tunnel = tunnel

    def data_received(self, data: bytes) -> None:
        self._tunnel.from_upstream(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._tunnel.finish()

    def pause_writing(self) -> None:
        self._tunnel.client.pause_reading()

    def resume_writing(self) -> None:
        if not self._tunnel.done:
            self._tunnel.client.resume_reading()


class WebSocketTunnel:
    """Both connections of one WebSocket; :attr:`finished` resolves when both are closed."""

    __slots__ = (
        "_ask_sampling",
        "_c2s",
        "_close_timeout",
        "_close_timer",
        "_counters",
        "_drain_timer",
        "_loop",
        "_observer",
        "_s2c",
        "client",
        "close_code",
        "done",
        "finished",
        "initiator",
        "upstream",
    )

    def __init__(
        self,
        client: asyncio.Transport,
        upstream: asyncio.Transport,
        *,
        max_message: int,
        deflate: bool,
        observer: WebSocketObserver | None,
        counters: RelayCounters,
        close_timeout_s: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.client = client
        self.upstream = upstream
        observe = observer is not None
        self._c2s = FrameScanner(
            max_message=max_message,
            observe=observe,
            deflate=deflate,
            on_unobservable=self._unobservable,
        )
        self._s2c = FrameScanner(
            max_message=max_message,
            observe=observe,
            deflate=deflate,
            on_unobservable=self._unobservable,
        )
        self._observer = observer
        # Whether session sampling may still leave this WebSocket out: asked once, after the
        # upstream's first messages (a WebSocket opened without a sid learns it from its
        # OPEN packet, Engine.IO v4 section 3 "handshake"; an upgraded one knows it already).
        self._ask_sampling = observer is not None and hasattr(observer, "observing")
        self._counters = counters
        self._close_timeout = close_timeout_s
        self._close_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self.finished: asyncio.Future[None] = self._loop.create_future()
        # Not finished.done(): the handler awaiting ``finished`` cancels it when the client
        # goes away, and the connections must still be closed then.
        self.done = False
        self.initiator: Direction | None = None  # the side whose close frame came first
        self.close_code: int | None = None

    def client_reader(self) -> _ClientReader:
        return _ClientReader(self)

    def start(self, upstream_tail: bytes) -> None:
        """Take the upstream connection over; ``upstream_tail``: what it sent right after
        its 101 (a WebSocket-only Engine.IO server sends its open packet at once)."""
        upstream = self.upstream
        upstream.set_protocol(_UpstreamProtocol(self))
        if upstream_tail:
            self.from_upstream(upstream_tail)
        if upstream.is_closing():  # it closed before the takeover: no connection_lost to come
            self.finish()
        elif not self.done:
            upstream.resume_reading()

    # --- forwarding ----------------------------------------------------------------------

    # Per chunk: the scanner's result read once per attribute, messages shown to the
    # observer here (no call per chunk into a helper); the rare rest in :meth:`_ending`.

    def from_client(self, data: bytes) -> None:
        if type(data) is not bytes:  # the compiled scanner takes bytes only
            data = bytes(data)
        scanned = self._c2s.feed(data)
        forward = scanned.forward
        if forward:
            self.upstream.write(forward)
        count = scanned.message_count
        if count:
            counters = self._counters
            counters.ws_messages_c2s += count
            counters.ws_bytes_c2s += scanned.byte_count
            messages = scanned.messages
            observer = self._observer
            if messages and observer is not None:
                for message in messages:
                    try:
                        observer.message(C2S, message)
                    except Exception:
                        counters.observer_errors += 1
        if scanned.ending:
            self._ending(C2S, scanned)

    def from_upstream(self, data: bytes) -> None:
        scanned = self._s2c.feed(data)
        forward = scanned.forward
        if forward:
            client = self.client
            client.write(forward)
            if client.get_write_buffer_size() > _HIGH_WATER and self._drain_timer is None:
                self.upstream.pause_reading()
                self._drain_timer = self._loop.call_later(_DRAIN_CHECK_S, self._drained)
        count = scanned.message_count
        if count:
            counters = self._counters
            counters.ws_messages_s2c += count
            counters.ws_bytes_s2c += scanned.byte_count
            messages = scanned.messages
            observer = self._observer
            if messages and observer is not None:
                for message in messages:
                    try:
                        observer.message(S2C, message)
                    except Exception:
                        counters.observer_errors += 1
                if self._ask_sampling:
                    self._sampling_asked(observer)
        if scanned.ending:
            self._ending(S2C, scanned)

    def _drained(self) -> None:
        self._drain_timer = None
        if self.done:
            return
        if self.client.get_write_buffer_size() > _HIGH_WATER // 2:
            self._drain_timer = self._loop.call_later(_DRAIN_CHECK_S, self._drained)
        else:
            self.upstream.resume_reading()

    def _sampling_asked(self, observer: WebSocketObserver) -> None:
        """The upstream's first messages were shown: whether session sampling left this
        WebSocket's session out."""
        self._ask_sampling = False
        if not getattr(observer, "observing", True):
            # An unsampled session: tunnel on without assembling its messages.
            self._observer = None
            self._c2s.observe = self._s2c.observe = False

    def _ending(self, direction: Direction, scanned: Scanned) -> None:
        """A close frame, a message over the limit or a protocol error in this chunk."""
        close = scanned.close
        if close is not None and self.initiator is None:
            self.initiator = direction
            self.close_code = close.code
            self._close_timer = self._loop.call_later(self._close_timeout, self.finish)
        if scanned.too_big:
            self._counters.rejected_too_large += 1
            self.close_code = _MESSAGE_TOO_BIG
            self.close_both(_MESSAGE_TOO_BIG, b"")
        elif scanned.protocol_error:
            self._counters.ws_protocol_errors += 1
            self.close_code = _PROTOCOL_ERROR
            self.close_both(_PROTOCOL_ERROR, b"")

    # --- ending --------------------------------------------------------------------------

    def close_both(self, code: int, reason: bytes) -> None:
        """Send a close frame of the proxy's own to both sides, then end the connections."""
        if self.done:
            return
        self.client.write(close_frame(code, reason, None))
        self.upstream.write(close_frame(code, reason, os.urandom(4)))
        self.finish()

    def going_away(self) -> None:
        self.close_both(_GOING_AWAY, b"proxy shutting down")

    def finish(self) -> None:
        """End both connections (after what is buffered for them is written)."""
        if self.done:
            return
        self.done = True
        for timer in (self._close_timer, self._drain_timer):
            if timer is not None:
                timer.cancel()
        self.client.close()
        self.upstream.close()
        if not self.finished.done():
            self.finished.set_result(None)

    def _unobservable(self) -> None:
        self._counters.ws_unobservable += 1

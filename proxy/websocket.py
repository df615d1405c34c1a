"""The WebSocket legs: the handshake forwarded, then the tunnel or the terminated relay.

Owns every relayed WebSocket from its upgrade request to its end.  ``websocket_relay:
tunnel`` (the default) forwards the handshake as sent and joins the two connections frame
for frame (:mod:`proxy.wstunnel`); ``terminate`` negotiates each leg separately and relays
message by message with close frames mirrored exactly.  :meth:`WebSocketLegs.going_away`
closes all of them with 1001 at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final, NamedTuple

import aiohttp
from aiohttp import WSMsgType, hdrs, web

from socketio_trace_proxy.config.proxy import WebSocketRelay
from socketio_trace_proxy.proxy.aiohttp_compat import take_over_client
from socketio_trace_proxy.proxy.core import RelayCore, log
from socketio_trace_proxy.proxy.headers import (
    DROP_UPGRADE_BYTES,
    EXTENSIONS_BYTES,
    WS_HANDSHAKE,
    ClientRequest,
    strip,
    switching_head,
    text_response,
)
from socketio_trace_proxy.proxy.polling import Written, write_reply
from socketio_trace_proxy.proxy.upstream import UpstreamError, UpstreamResponse
from socketio_trace_proxy.proxy.wsclose import (
    AnyWebSocket,
    release_client_leg,
    release_upstream_leg,
    send_close_frame,
)
from socketio_trace_proxy.proxy.wstunnel import WebSocketTunnel
from socketio_trace_proxy.tracking.observer import RequestInfo, WebSocketObserver
from socketio_trace_proxy.tracking.traffic import Direction

C2S: Final = Direction.CLIENT_TO_SERVER
S2C: Final = Direction.SERVER_TO_CLIENT


class _WsSession:
    """One relayed WebSocket: both legs and who closed first."""

    __slots__ = ("client", "close_code", "initiator", "request", "upstream")

    def __init__(
        self,
        request: web.BaseRequest,
        client: web.WebSocketResponse[Any],
        upstream: aiohttp.ClientWebSocketResponse[Any],
    ) -> None:
        self.request = request
        self.client = client
        self.upstream = upstream
        self.initiator: Direction | None = None
        self.close_code: int | None = None


def _closed(
    core: RelayCore, wobs: WebSocketObserver | None, who: Direction | None, code: int | None
) -> None:
    """Tell the observer the WebSocket ended (who closed first, with which code)."""
    if wobs is not None:
        try:
            wobs.closed(who, code or None)
        except Exception:
            core.counters.observer_errors += 1


class Handshake(NamedTuple):
    """A forwarded upgrade: the upstream's answer, and on a 101 its connection and the bytes
    that followed the 101 (``transport`` ``None``: refused, relay ``upstream`` as is)."""

    info: RequestInfo | None
    upstream: UpstreamResponse
    transport: asyncio.Transport | None
    tail: bytes


class WebSocketLegs:
    """Every WebSocket the relay carries, tunnelled or terminated."""

    def __init__(self, core: RelayCore) -> None:
        self._core = core
        self._websockets: set[_WsSession] = set()
        self._tunnels: set[WebSocketTunnel] = set()

    async def going_away(self) -> None:
        """Going away (RFC 6455 7.4.1 code 1001) on both legs of every open WebSocket."""
        for tunnel in list(self._tunnels):
            tunnel.going_away()
        for ws in list(self._websockets):
            for leg in (ws.client, ws.upstream):
                with contextlib.suppress(Exception):
                    await send_close_frame(leg, 1001, b"proxy shutting down")
            release_client_leg(ws.request)
            release_upstream_leg(ws.upstream)

    async def relay(self, request: web.BaseRequest, sio: bool) -> web.StreamResponse:
        """An upgrade request: refused with 503 beyond ``max_websockets``, else relayed."""
        core = self._core
        busy = self.refusal()
        if busy is not None:
            return busy
        if core.settings.websocket_relay is WebSocketRelay.TUNNEL:
            return await self._tunnel(request, sio)
        return await self._terminate(request, sio)

    def refusal(self) -> web.Response | None:
        """The 503 for an upgrade beyond ``max_websockets`` (counted), else ``None``."""
        core = self._core
        if core.counters.ws_active < core.settings.max_websockets:
            return None
        core.counters.refused_busy += 1
        return text_response(503, "Service Unavailable: too many WebSockets relayed at once")

    def no_deflate(self) -> frozenset[bytes]:
        """Without compression the upstream is not told the client offered it."""
        return frozenset() if self._core.settings.websocket_compression else EXTENSIONS_BYTES

    async def run_tunnel(
        self, tunnel: WebSocketTunnel, tail: bytes, wobs: WebSocketObserver | None
    ) -> None:
        """Run a joined tunnel (``tail``: what the upstream sent after its 101) to its end."""
        counters = self._core.counters
        counters.ws_opened += 1
        counters.ws_active += 1
        self._tunnels.add(tunnel)
        try:
            tunnel.start(tail)
            await tunnel.finished
        finally:
            tunnel.finish()
            self._tunnels.discard(tunnel)
            counters.ws_active -= 1
            _closed(self._core, wobs, tunnel.initiator, tunnel.close_code)

    # --- tunnel ----------------------------------------------------------------------

    async def forward_handshake(
        self, request: ClientRequest, sio: bool, head: bytes | None = None
    ) -> Handshake | web.Response:
        """The client's upgrade forwarded upstream on a pooled connection (both server legs):
        the upstream's answer, or our own 502 when it cannot be reached.  A refusal (no 101)
        is counted here; the caller relays it as received.  ``head``: the upstream request
        head, if the caller built it (the lean leg, without a header multidict)."""
        core = self._core
        info = core.arrival(request) if sio else None
        pool = core.pool
        assert pool is not None
        counters = core.counters
        if head is None:
            head = core.request_head(request, None, keep=DROP_UPGRADE_BYTES, drop=self.no_deflate())
        try:
            upstream, transport, tail = await pool.upgrade(head, core.max)
        except asyncio.CancelledError:
            counters.client_disconnects += 1
            raise
        except UpstreamError as exc:
            counters.ws_refused += 1
            return core.upstream_failed(exc)
        if transport is None:
            counters.ws_refused += 1
        return Handshake(info, upstream, transport, tail)

    async def _tunnel(self, request: web.BaseRequest, sio: bool) -> web.StreamResponse:
        """The handshake forwarded as sent, then the two connections joined frame for frame."""
        handshake = await self.forward_handshake(request, sio)
        if isinstance(handshake, web.Response):
            return handshake
        info, upstream, transport, tail = handshake
        if transport is None:
            # Refused (or not a WebSocket 101): the client gets the upstream's answer as is.
            _, written = await write_reply(self._core, request, upstream)
            return written
        switched = await self._switch(request, upstream, transport, info)
        if switched is None:
            return Written(101, False, 0)
        response, tunnel, wobs = switched
        await self.run_tunnel(tunnel, tail, wobs)
        return response

    async def _switch(
        self,
        request: web.BaseRequest,
        upstream: UpstreamResponse,
        transport: asyncio.Transport,
        info: RequestInfo | None,
    ) -> tuple[web.StreamResponse, WebSocketTunnel, WebSocketObserver | None] | None:
        """The upstream's 101 sent to the client, and the tunnel joining the connections
        (observed from here on); ``None`` if the client has gone."""
        core = self._core
        version = request.version
        # Written as received, not through a StreamResponse, which adds Date and Server.
        head, extensions = switching_head(upstream, version.major, version.minor)
        client = request.transport
        try:
            if client is None:
                raise ConnectionResetError("client gone")
            await request.writer.write(head)
        except ConnectionError:
            # The client left during the handshake: counted, not an error (issue 14).
            transport.close()
            core.counters.client_disconnects += 1
            log.debug("client went away during the WebSocket handshake")
            return None
        except BaseException:
            transport.close()
            raise
        wobs = core.websocket_observer(info)
        tunnel = WebSocketTunnel(
            client,
            transport,
            max_message=core.max,
            deflate=extensions is not None and b"permessage-deflate" in extensions.lower(),
            observer=wobs,
            counters=core.counters,
            close_timeout_s=core.settings.close_timeout_s,
        )
        take_over_client(request, tunnel.client_reader())
        return Written(101, False, len(head)), tunnel, wobs

    # --- terminate -------------------------------------------------------------------

    async def _terminate(self, request: web.BaseRequest, sio: bool) -> web.StreamResponse:
        """One WebSocket per leg (each negotiated by the proxy), messages relayed."""
        core = self._core
        info = core.arrival(request) if sio else None
        counters = core.counters
        settings = core.settings
        # Each leg negotiates permessage-deflate on its own (RFC 7692 5); the upstream leg is
        # offered it only when the client offered it, as a direct connection would be (a
        # backend's size limit applies to frames as they arrive, compressed or not).
        deflate = settings.websocket_compression and "permessage-deflate" in request.headers.get(
            hdrs.SEC_WEBSOCKET_EXTENSIONS, ""
        )
        connected = await self._connect_upstream(request, deflate)
        if isinstance(connected, web.StreamResponse):
            return connected
        upstream = connected
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (),
            compress=deflate,
            max_msg_size=core.max,
            autoclose=False,
            autoping=False,
            decode_text=False,
        )
        try:
            await client.prepare(request)
        except BaseException:
            release_upstream_leg(upstream)
            raise
        wobs = core.websocket_observer(info)
        ws = _WsSession(request, client, upstream)
        counters.ws_opened += 1
        counters.ws_active += 1
        self._websockets.add(ws)
        try:
            await self._run_websocket(ws, wobs)
        finally:
            self._websockets.discard(ws)
            counters.ws_active -= 1
            release_upstream_leg(upstream)
            release_client_leg(request)
            _closed(core, wobs, ws.initiator, ws.close_code)
        return client

    async def _connect_upstream(
        self, request: web.BaseRequest, deflate: bool
    ) -> aiohttp.ClientWebSocketResponse[Any] | web.StreamResponse:
        """The upstream leg of a terminated WebSocket, or the answer for the client."""
        core = self._core
        counters = core.counters
        settings = core.settings
        session = core.session
        assert session is not None
        headers = core.upstream_headers(request)
        strip(headers, WS_HANDSHAKE)
        offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL)
        protocols = tuple(p.strip() for p in offered.split(",") if p.strip()) if offered else ()
        try:
            return await session.ws_connect(
                core.url(request),
                protocols=protocols,
                headers=headers,
                compress=15 if deflate and settings.upstream_websocket_compression else 0,
                max_msg_size=core.max,
                autoclose=False,
                autoping=False,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=settings.close_timeout_s),
            )
        except asyncio.CancelledError:
            counters.client_disconnects += 1
            raise
        except aiohttp.WSServerHandshakeError as exc:
            counters.ws_refused += 1
            status = exc.status if exc.status >= 400 else 502
            return text_response(status, f"upstream refused the WebSocket upgrade ({exc.status})")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            counters.ws_refused += 1
            return core.upstream_failed(exc)

    # --- the terminated relay's two pumps ------------------------------------------

    async def _run_websocket(self, ws: _WsSession, wobs: WebSocketObserver | None) -> None:
        """Client->upstream runs in the handler's task, upstream->client in a second one.

        Each pump forwards the close frame it receives and stops; the other pump then
        carries the reply.  A leg that ends without a close frame is mirrored as a dropped
        connection on the other leg; a missing close reply is given ``close_timeout_s``.
        """
        loop = asyncio.get_running_loop()
        timeout = self._core.settings.close_timeout_s
        downstream = loop.create_task(self._pump(ws, ws.upstream, ws.client, S2C, wobs))
        abort_handle: asyncio.TimerHandle | None = None

        def upstream_done(task: asyncio.Task[bool]) -> None:
            nonlocal abort_handle
            clean = not task.cancelled() and task.exception() is None and task.result()
            if clean:
                abort_handle = loop.call_later(timeout, release_client_leg, ws.request)
            else:
                release_client_leg(ws.request)

        downstream.add_done_callback(upstream_done)
        try:
            clean = await self._pump(ws, ws.client, ws.upstream, C2S, wobs)
            if not downstream.done():
                if clean:
                    await asyncio.wait((downstream,), timeout=timeout)
                downstream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await downstream
        finally:
            if not downstream.done():
                downstream.cancel()
            if abort_handle is not None:
                abort_handle.cancel()

    async def _pump(
        self,
        ws: _WsSession,
        src: AnyWebSocket,
        dst: AnyWebSocket,
        direction: Direction,
        wobs: WebSocketObserver | None,
    ) -> bool:
        """Forward ``src`` to ``dst`` until a close frame (True) or a failure (False)."""
        counters = self._core.counters
        c2s = direction is C2S
        TEXT, BINARY = WSMsgType.TEXT, WSMsgType.BINARY
        try:
            while True:
                msg = await src.receive()
                kind = msg.type
                if kind is TEXT or kind is BINARY:
                    data: bytes = msg.data
                    await dst.send_frame(data, kind)
                    if c2s:
                        counters.ws_messages_c2s += 1
                        counters.ws_bytes_c2s += len(data)
                    else:
                        counters.ws_messages_s2c += 1
                        counters.ws_bytes_s2c += len(data)
                    if wobs is not None:
                        try:
                            wobs.message(
                                direction,
                                data.decode("utf-8", "replace") if kind is TEXT else data,
                            )
                        except Exception:
                            counters.observer_errors += 1
                elif kind is WSMsgType.PING or kind is WSMsgType.PONG:
                    await dst.send_frame(msg.data, kind)
                elif kind is WSMsgType.CLOSE:
                    if ws.initiator is None:
                        ws.initiator = direction
                        ws.close_code = msg.data
                    reason = msg.extra
                    await send_close_frame(
                        dst,
                        msg.data,
                        reason.encode("utf-8") if isinstance(reason, str) else b"",
                    )
                    return True
                elif kind is WSMsgType.ERROR:
                    # aiohttp already answered src with a close frame carrying the error's
                    # code (e.g. 1009 message too big); tell dst the same.
                    code = getattr(msg.data, "code", 1011)
                    with contextlib.suppress(Exception):
                        await send_close_frame(dst, code, b"")
                    return False
                else:  # CLOSED / CLOSING: the connection is gone
                    return False
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            return False

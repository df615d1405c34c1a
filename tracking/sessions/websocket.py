"""Relayed WebSockets as the session table sees them: open, messages, close.

Owns the life of one relayed WebSocket (:class:`WebSocketLeg`): a WebSocket opened
without sid learns its session from the server's OPEN packet; one opened with sid is an
upgrade probe of a polling session until the client's ``5`` makes it the session's
transport; closing the WebSocket ends the session only if it was its transport (a failed
probe leaves the polling session alone), carrying the close code and initiator.  The
per-message path is the hot one: a text MESSAGE goes straight to the Socket.IO decoder.
"""

from __future__ import annotations

from typing import Final

from socketio_trace_proxy.tracking.events import CloseReason
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.sessions.packets import PacketReader
from socketio_trace_proxy.tracking.sessions.polling import PollingReader, eio_version
from socketio_trace_proxy.tracking.sessions.registry import SessionRegistry
from socketio_trace_proxy.tracking.sessions.state import (
    EngineSession,
    LegState,
    SessionCounters,
    WebSocketLeg,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.engineio import decode_open, decode_ws_frame
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket, EnginePacketType

_S2C: Final = Direction.SERVER_TO_CLIENT
_POLLING: Final = Transport.POLLING
_WEBSOCKET: Final = Transport.WEBSOCKET
_OPEN: Final = EnginePacketType.OPEN


class WebSocketReader:
    """See the module docstring."""

    def __init__(
        self,
        registry: SessionRegistry,
        packets: PacketReader,
        polling: PollingReader,
        counters: SessionCounters,
    ) -> None:
        self._registry = registry
        self._packets = packets
        self._polling = polling
        self._counters = counters

    def opened(self, info: RequestInfo, at: float, wall: float) -> WebSocketLeg:
        """A WebSocket was accepted on both legs (the 101 is the backend accepting its
        sid, if it named one); ``at``/``wall``: its stamp."""
        q = info.query
        sid = q.get("sid") or None
        leg = WebSocketLeg(
            sid, eio_version(q), info.remote, info.traceparent, info.arrived_at, info.remote_port
        )
        try:
            if sid:
                s = self._polling.accept(sid, leg.eio, _POLLING, info, at, wall)
                if s is not None:
                    s.last = at
                    leg.session = s
        except Exception:
            self._counters.internal_errors += 1
        return leg

    def message(
        self, leg: WebSocketLeg, direction: Direction, data: str | bytes, at: float, wall: float
    ) -> None:
        """A WebSocket message was forwarded (``at``/``wall``: its stamp)."""
        try:
            s = leg.session
            if s is None or s.closed:
                s = self._leg_session(leg, direction, data, at, wall)
                if s is None:
                    return
            s.last = at
            if type(data) is str and data[:1] == "4":
                # Hot path: a text MESSAGE, straight to the Socket.IO decoder.
                self._packets.message(
                    s, data, 1, -1, direction, _WEBSOCKET, leg.traceparent, at, wall
                )
                return
            if data == "2":  # heartbeats: no packet needed
                s.ping_at = at
                s.ping_dir = direction
                return
            if data == "3":
                self._packets.pong(s, direction, at, wall)
                return
            packet = decode_ws_frame(data, eio=leg.eio)
            self._packets.engine(s, packet, direction, _WEBSOCKET, leg, leg.traceparent, at, wall)
        except Exception:
            self._counters.internal_errors += 1

    def closed(
        self,
        leg: WebSocketLeg,
        initiator: Direction | None,
        code: int | None,
        at: float,
        wall: float,
    ) -> None:
        """The WebSocket ended (``initiator`` closed first, with ``code``; ``at``/``wall``:
        its stamp); the session ends with it only if it was its transport."""
        try:
            s = leg.session
            leg.session = None
            leg.state = LegState.CLOSED
            if s is not None and not s.closed and s.ws is leg:
                reason = CloseReason.WEBSOCKET_CLOSED
                self._registry.close(s, reason, at, wall, code, initiator)
        except Exception:
            self._counters.internal_errors += 1

    def _leg_session(
        self, leg: WebSocketLeg, direction: Direction, data: str | bytes, at: float, wall: float
    ) -> EngineSession | None:
        """The session of a leg that has none (yet, or any more)."""
        if leg.state is LegState.UNSAMPLED:
            sampler = self._registry.sampler
            if sampler is not None:
                sampler.unsampled(direction, 1, len(data))
            return None
        if leg.state is LegState.CLOSED:
            self._counters.unattributed += 1
            return None
        if leg.state is LegState.HANDSHAKE:
            self._handshake(leg, direction, data, at, wall)
            return None
        # The session ended (evicted, heartbeat timeout) but its WebSocket still talks.
        assert leg.sid is not None
        transport = _WEBSOCKET if leg.state is LegState.ACTIVE else _POLLING
        s = self._polling.accept(leg.sid, leg.eio, transport, _leg_info(leg), at, wall)
        leg.session = s
        if s is not None and leg.state is LegState.ACTIVE:
            s.ws = leg
        return s

    def _handshake(
        self, leg: WebSocketLeg, direction: Direction, data: str | bytes, at: float, wall: float
    ) -> None:
        """A WebSocket opened without sid: the server's OPEN packet names the session."""
        pkt = decode_ws_frame(data, eio=leg.eio)
        if direction is _S2C and isinstance(pkt, EnginePacket) and pkt.type is _OPEN:
            handshake = decode_open(pkt.data)
            if isinstance(handshake, DecodeFailure):
                self._counters.unattributed += 1
                self._packets.failed(None, _S2C, _WEBSOCKET, handshake.reason, pkt.size, at, wall)
                return
            s = self._registry.open_from_handshake(
                handshake,
                leg.eio,
                _WEBSOCKET,
                leg.remote,
                leg.traceparent,
                leg.requested_at,
                at,
                wall,
                leg.remote_port,
            )
            if s is None:  # not sampled
                leg.sid = handshake.sid
                leg.state = LegState.UNSAMPLED
                sampler = self._registry.sampler
                if sampler is not None:
                    sampler.unsampled(direction, 1, len(data))
                return
            leg.sid = s.sid
            leg.session = s
            leg.state = LegState.ACTIVE
            s.ws = leg
            return
        self._counters.unattributed += 1
        reason = pkt.reason if isinstance(pkt, DecodeFailure) else "traffic before OPEN"
        self._packets.failed(
            None, direction, _WEBSOCKET, f"handshake: {reason}", len(data), at, wall
        )


def _leg_info(leg: WebSocketLeg) -> RequestInfo:
    return RequestInfo("GET", {}, leg.remote, leg.traceparent, None, leg.remote_port)

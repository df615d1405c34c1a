"""The packets of one Engine.IO session: Engine.IO packets in, session events out.

Owns what a session learns from each packet, whatever the transport carried it: Socket.IO
packets (the text MESSAGE fast path, binary attachments through one stream decoder per
direction), heartbeats (PING -> PONG round trips), the upgrade (``5`` after a probe), and
the end (CLOSE).  Every method is given the stamp of the observation being handled and
passes it on to the events it emits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from socketio_trace_proxy.tracking.events import (
    CloseReason,
    DecodeFailed,
    HeartbeatObserved,
    PacketObserved,
    SessionEvent,
    SessionUpgraded,
    packet_sink,
)
from socketio_trace_proxy.tracking.sessions.registry import SessionRegistry
from socketio_trace_proxy.tracking.sessions.state import (
    EngineSession,
    LegState,
    SessionCounters,
    WebSocketLeg,
)
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.engineio import decode_open
from socketio_trace_proxy.tracking.wire.packets import (
    DecodeFailure,
    EnginePacket,
    EnginePacketType,
    SocketPacket,
)
from socketio_trace_proxy.tracking.wire.socketio import (
    SocketIOStreamDecoder,
    fast_message,
    parse_header,
)

_C2S: Final = Direction.CLIENT_TO_SERVER
_WEBSOCKET: Final = Transport.WEBSOCKET
_OPEN: Final = EnginePacketType.OPEN
_CLOSE: Final = EnginePacketType.CLOSE
_PING: Final = EnginePacketType.PING
_PONG: Final = EnginePacketType.PONG
_MESSAGE: Final = EnginePacketType.MESSAGE
_UPGRADE: Final = EnginePacketType.UPGRADE
_PACKET_OBSERVED: Final = PacketObserved
_tuple_new: Final = tuple.__new__  # builds a NamedTuple without its Python-level ``__new__``


class PacketReader:
    """See the module docstring."""

    def __init__(
        self,
        emit: Callable[[SessionEvent], None],
        counters: SessionCounters,
        registry: SessionRegistry,
        *,
        max_attachments: int,
        max_attachment_bytes: int,
    ) -> None:
        self._emit = emit
        self._sink = packet_sink(emit)  # emit's receiver, called natively per packet
        self._counters = counters
        self._registry = registry
        self._max_att = max_attachments
        self._max_att_bytes = max_attachment_bytes
        self.packets = 0  # Socket.IO packets decoded (its own counter: read per packet)

    def failed(  # noqa: PLR0917
        self,
        sid: str | None,
        direction: Direction,
        transport: Transport,
        reason: str,
        size: int,
        at: float,
        wall: float,
    ) -> None:
        """Something could not be decoded (it was forwarded unchanged anyway)."""
        self._counters.decode_failures += 1
        self._emit(DecodeFailed(sid, direction, transport, reason, size, at, wall))

    def engine(  # noqa: PLR0917 - positional: called per packet
        self,
        s: EngineSession,
        p: EnginePacket | DecodeFailure,
        direction: Direction,
        transport: Transport,
        leg: WebSocketLeg | None,
        traceparent: str | None,
        at: float,
        wall: float,
    ) -> None:
        """One Engine.IO packet of session ``s`` (``leg``: the WebSocket carrying it)."""
        if isinstance(p, DecodeFailure):
            self.failed(s.sid, direction, transport, p.reason, len(p.raw), at, wall)
            return
        t = p.type
        if t is _MESSAGE:
            data = p.data
            if isinstance(data, str):
                self.message(s, data, 0, p.size, direction, transport, traceparent, at, wall)
                return
            # A binary attachment: only a decoder waiting for one can take it.
            dec = s.dec_c2s if direction is _C2S else s.dec_s2c
            if dec is None:
                reason = "unexpected binary attachment"
                self.failed(s.sid, direction, transport, reason, p.size, at, wall)
            else:
                self._stream(s, dec, p, direction, transport, traceparent, at, wall)
        elif t is _PING:
            if p.data != "probe":
                s.ping_at = at
                s.ping_dir = direction
            elif leg is not None and direction is _C2S:
                leg.probe_at = at
        elif t is _PONG:
            if p.data != "probe":
                self.pong(s, direction, at, wall)
        elif t is _UPGRADE:
            if leg is not None and direction is _C2S and leg.state is not LegState.ACTIVE:
                self._upgraded(s, leg, at, wall)
        elif t is _CLOSE:
            self._registry.close(s, CloseReason.CLOSE_PACKET, at, wall, None, direction)
        elif t is _OPEN:
            handshake = decode_open(p.data)
            if isinstance(handshake, DecodeFailure):
                self.failed(s.sid, direction, transport, handshake.reason, p.size, at, wall)
                return
            self._registry.rewindow(s, handshake)
        # NOOP: nothing to learn (the old long-poll is being drained during an upgrade)

    def _upgraded(self, s: EngineSession, leg: WebSocketLeg, at: float, wall: float) -> None:
        started = leg.probe_at if leg.probe_at is not None else at
        leg.state = LegState.ACTIVE
        s.ws = leg
        s.transport = _WEBSOCKET
        self._counters.upgrades += 1
        self._emit(SessionUpgraded(s.sid, at - started, at, wall))

    def pong(self, s: EngineSession, direction: Direction, at: float, wall: float) -> None:
        """A PONG: the round trip of the PING the other side sent, if one is open."""
        ping_at = s.ping_at
        if ping_at is not None and s.ping_dir is not direction:
            s.ping_at = None
            self._emit(_tuple_new(HeartbeatObserved, (s.sid, at - ping_at, at, wall)))

    def message(  # noqa: PLR0917 - positional: called per text packet
        self,
        s: EngineSession,
        frame: str,
        start: int,
        engine_size: int,
        direction: Direction,
        transport: Transport,
        traceparent: str | None,
        at: float,
        wall: float,
    ) -> None:
        """The Socket.IO packet ``frame[start:]``; ``engine_size``: the encoded size of the
        Engine.IO packet carrying it, -1 when not known yet (then ``frame`` is all of it)."""
        dec = s.dec_c2s if direction is _C2S else s.dec_s2c
        idle = dec is None or not dec.busy
        if idle:
            fast = fast_message(frame, start, engine_size - 1 if engine_size > 0 else None)
            if fast is not None:
                self.packets += 1
                event: PacketObserved = _tuple_new(
                    _PACKET_OBSERVED, (s.sid, direction, transport, fast, at, wall, traceparent)
                )
                sink = self._sink
                if sink is not None:
                    sink.packet_observed(event)
                else:
                    self._emit(event)
                return
        if engine_size < 0:
            engine_size = len(frame) if frame.isascii() else -1
        text = frame[start:] if start else frame
        if idle:
            result = parse_header(text, engine_size - 1 if engine_size > 0 else None)
            if isinstance(result, DecodeFailure):
                self.failed(s.sid, direction, transport, result.reason, len(text), at, wall)
                return
            packet, count = result
            if not count:
                self.packets += 1
                self._emit(
                    _tuple_new(
                        PacketObserved,
                        (s.sid, direction, transport, packet, at, wall, traceparent),
                    )
                )
                return
        pkt = EnginePacket(_MESSAGE, text, engine_size if engine_size > 0 else len(text))
        decoder = self._decoder(s, direction)
        self._stream(s, decoder, pkt, direction, transport, traceparent, at, wall)

    def _decoder(self, s: EngineSession, direction: Direction) -> SocketIOStreamDecoder:
        dec = s.dec_c2s if direction is _C2S else s.dec_s2c
        if dec is None:
            dec = SocketIOStreamDecoder(
                max_attachments=self._max_att, max_attachment_bytes=self._max_att_bytes
            )
            if direction is _C2S:
                s.dec_c2s = dec
            else:
                s.dec_s2c = dec
        return dec

    def _stream(  # noqa: PLR0917
        self,
        s: EngineSession,
        dec: SocketIOStreamDecoder,
        p: EnginePacket,
        direction: Direction,
        transport: Transport,
        traceparent: str | None,
        at: float,
        wall: float,
    ) -> None:
        before = dec.overflows
        results = dec.feed(p)
        self._counters.attachment_overflows += dec.overflows - before
        for r in results:
            if isinstance(r, SocketPacket):
                self.packets += 1
                self._emit(PacketObserved(s.sid, direction, transport, r, at, wall, traceparent))
            else:
                self.failed(s.sid, direction, transport, r.reason, len(r.raw), at, wall)

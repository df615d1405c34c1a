"""Long-polling as the session table sees it: request bodies, replies, the handshake.

Owns the step from a relayed polling exchange to packets of a session: the handshake reply
(its first packet is OPEN and names the session), payloads in both directions (every
packet in order, until the session closes; the v4 text fast path straight to the
Socket.IO decoder), compressed replies (decoded from a bounded copy), error replies
(counted, never decoded), and the rule that a sid the table does not know is tracked only
once the backend accepted it (:mod:`tracking.sessions.unconfirmed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.query import query_value
from socketio_trace_proxy.tracking.sessions.packets import PacketReader
from socketio_trace_proxy.tracking.sessions.registry import SessionRegistry
from socketio_trace_proxy.tracking.sessions.state import EngineSession, SessionCounters
from socketio_trace_proxy.tracking.sessions.unconfirmed import HeldBody, UnconfirmedBodies
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.engineio import decode_open, decompress
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket, EnginePacketType
from socketio_trace_proxy.tracking.wire.payload import decode_payload, decode_payload_packet

_C2S: Final = Direction.CLIENT_TO_SERVER
_S2C: Final = Direction.SERVER_TO_CLIENT
_POLLING: Final = Transport.POLLING
_OPEN: Final = EnginePacketType.OPEN
# The separator as an int: ``b"\x1e" in body`` first tries its operand as an index (an
# exception raised and cleared on every call).
_RS: Final = 0x1E


def eio_version(query: Mapping[str, str]) -> int:
    return 3 if query_value(query, "EIO") == "3" else 4


def _jsonp(query: Mapping[str, str]) -> bool:
    return query_value(query, "j") is not None


class PollingReader:
    """See the module docstring."""

    def __init__(
        self,
        registry: SessionRegistry,
        packets: PacketReader,
        counters: SessionCounters,
        unconfirmed: UnconfirmedBodies,
        *,
        max_body_bytes: int,
    ) -> None:
        self._registry = registry
        self._sessions = registry.sessions
        self._packets = packets
        self._counters = counters
        self._unconfirmed = unconfirmed
        self._max_body = max_body_bytes

    def request(self, info: RequestInfo, body: bytes, at: float, wall: float) -> None:
        """A polling POST body (client to server) was forwarded (``at``/``wall``: its
        stamp)."""
        try:
            sid = query_value(info.query, "sid")
            if not sid:
                # The server refuses a POST without sid; nothing to attribute it to.
                self._counters.unattributed += 1
                return
            s = self._sessions.get(sid)
            if s is None:
                if self._registry.closed_recently(sid):
                    self._counters.unattributed += 1  # a straggler of a closed session
                else:
                    self._unconfirmed.hold(sid, HeldBody(info, body, at, wall))
                return
            self._body(s, info, body, at, wall)
        except Exception:
            self._counters.internal_errors += 1

    def _body(
        self, s: EngineSession, info: RequestInfo, body: bytes, at: float, wall: float
    ) -> None:
        s.last = at
        q = info.query
        self._payload(s, body, eio_version(q), _jsonp(q), _C2S, info.traceparent, at, wall)

    def reply(  # noqa: PLR0917
        self,
        info: RequestInfo,
        status: int,
        content_encoding: str | None,
        body: bytes,
        at: float,
        wall: float,
    ) -> None:
        """A polling response was forwarded (``body`` as the upstream sent it;
        ``at``/``wall``: its stamp)."""
        try:
            self._reply(info, status, content_encoding, body, at, wall)
        except Exception:
            self._counters.internal_errors += 1

    def _reply(  # noqa: PLR0917
        self,
        info: RequestInfo,
        status: int,
        content_encoding: str | None,
        body: bytes,
        at: float,
        wall: float,
    ) -> None:
        sid = query_value(info.query, "sid")
        if status != 200:
            # 400/403/413 carry a JSON error object, not a payload (e.g. a late poll after
            # the upgrade, or an unknown sid): count it, never decode it, never create.
            self._counters.error_replies += 1
            known = self._sessions.get(sid) if sid else None
            if known is not None:
                known.last = at
            elif sid and not self._registry.closed_recently(sid):
                self._counters.refused += 1
                self._unconfirmed.refuse(info)
            return
        s = self._sessions.get(sid) if sid else None
        if s is None and sid:
            s = self.accept(sid, eio_version(info.query), _POLLING, info, at, wall)
        if s is not None:
            s.last = at
        method = info.method
        if method != "GET" and (method == "POST" or method.upper() != "GET"):
            return  # the answer to a POST is "ok", not a payload
        if content_encoding:
            plain = decompress(body, content_encoding, max_size=self._max_body)
            if isinstance(plain, DecodeFailure):
                self._counters.decompress_failures += 1
                reason = plain.reason
                self._packets.failed(sid, _S2C, _POLLING, reason, len(body), at, wall)
                return
            body = plain
        if not sid:
            self._handshake(info, body, at, wall)
        elif s is not None:
            q = info.query
            tp = info.traceparent
            self._payload(s, body, eio_version(q), _jsonp(q), _S2C, tp, at, wall)

    def accept(  # noqa: PLR0917
        self, sid: str, eio: int, transport: Transport, info: RequestInfo, at: float, wall: float
    ) -> EngineSession | None:
        """The backend accepted ``sid`` (a 200 reply, a 101): its session, opened lazily if
        it is not tracked yet, with the bodies held for it replayed first."""
        s = self._sessions.get(sid)
        if s is not None:
            return s
        if self._registry.closed_recently(sid):
            self._counters.unattributed += 1  # the reply to a poll in flight at the close
            return None
        held = self._unconfirmed.take(sid)
        first = held[0] if held else None
        s = self._registry.open_lazily(
            sid,
            eio,
            transport,
            info.remote,
            info.traceparent,
            first.at if first is not None else at,
            first.wall if first is not None else wall,
            info.remote_port,
        )
        for held_info, held_body, held_at, held_wall in held:
            if s.closed:
                break
            self._body(s, held_info, held_body, held_at, held_wall)
        return None if s.closed else s

    def _handshake(self, info: RequestInfo, body: bytes, at: float, wall: float) -> None:
        """The reply to a request without sid: its first packet is OPEN and names the session."""
        q = info.query
        eio = eio_version(q)
        packets = decode_payload(body, eio=eio, jsonp=_jsonp(q), request=False)
        first = packets[0] if packets else None
        if not isinstance(first, EnginePacket) or first.type is not _OPEN:
            self._counters.unattributed += 1
            reason = first.reason if isinstance(first, DecodeFailure) else "no OPEN packet"
            self._packets.failed(None, _S2C, _POLLING, f"handshake: {reason}", len(body), at, wall)
            return
        handshake = decode_open(first.data)
        if isinstance(handshake, DecodeFailure):
            self._counters.unattributed += 1
            self._packets.failed(None, _S2C, _POLLING, handshake.reason, first.size, at, wall)
            return
        s = self._registry.open_from_handshake(
            handshake,
            eio,
            _POLLING,
            info.remote,
            info.traceparent,
            info.arrived_at,
            at,
            wall,
            info.remote_port,
        )
        if s is None:  # not sampled
            sampler = self._registry.sampler
            if sampler is not None:
                sampler.unsampled_body(_S2C, body)
            return
        s.last = at
        tp = info.traceparent
        for p in packets[1:]:
            if s.closed:
                break
            self._packets.engine(s, p, _S2C, _POLLING, None, tp, at, wall)

    def _payload(  # noqa: PLR0917
        self,
        s: EngineSession,
        body: bytes,
        eio: int,
        jsonp: bool,
        direction: Direction,
        tp: str | None,
        at: float,
        wall: float,
    ) -> None:
        """Every packet of a polling body, in order, until the session closes."""
        # packets.message(...) is a native call in the compiled build; a local alias of the
        # bound method (packets.message) would be called at Python level, boxing every arg.
        packets = self._packets
        if eio == 3 or jsonp or body[:1] != b"4":
            for p in decode_payload(body, eio=eio, jsonp=jsonp, request=direction is _C2S):
                if s.closed:
                    break
                packets.engine(s, p, direction, _POLLING, None, tp, at, wall)
            return
        # Hot path: a v4 text payload that opens with a MESSAGE (so it is not JSONP); each
        # text MESSAGE straight to the Socket.IO decoder, as on the WebSocket.
        if _RS not in body:  # one packet (the common case): no list, no copy
            if body.isascii():
                packets.message(
                    s, body.decode("ascii"), 1, len(body), direction, _POLLING, tp, at, wall
                )
            else:
                packets.engine(
                    s, decode_payload_packet(body, eio), direction, _POLLING, None, tp, at, wall
                )
            return
        for raw in body.split(b"\x1e"):
            if s.closed:
                break
            if raw[:1] == b"4" and raw.isascii():
                packets.message(
                    s, raw.decode("ascii"), 1, len(raw), direction, _POLLING, tp, at, wall
                )
            else:
                packets.engine(
                    s, decode_payload_packet(raw, eio), direction, _POLLING, None, tp, at, wall
                )

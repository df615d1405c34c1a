"""From the relay's raw observations to record lines (sans-IO, no clock: times are passed in).

:class:`RecordSplitter` follows Engine.IO sessions the way the tracker's session table does
(the ``sid`` query parameter, or the OPEN packet of a handshake), cuts polling bodies and
WebSocket messages into Engine.IO packets, redacts them and returns
:mod:`tracking.recording.format` lines.  Only sessions whose handshake it saw are recorded
(a replay needs the beginning); the rest is counted.  Bounded: at most
``max_open_sessions`` are followed (the least recently active is closed as ``evicted``),
and a bounded memory of finished sids keeps stragglers from being counted as unknown.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from socketio_trace_proxy.tracking.recording.format import (
    CloseLine,
    GapLine,
    Line,
    PacketLine,
    SessionLine,
)
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.engineio import decode_open, decode_ws_frame, decompress
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket, EnginePacketType
from socketio_trace_proxy.tracking.wire.payload import decode_payload

_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT
_POLLING = Transport.POLLING
_WEBSOCKET = Transport.WEBSOCKET
_MAX_TOMBSTONES = 4096


def _eio(query: Mapping[str, str]) -> int:
    return 3 if query.get("EIO") == "3" else 4


def packet_data(packet: EnginePacket) -> str | bytes:
    """The canonical form the format stores: ``<type digit><data>`` or the binary data."""
    if isinstance(packet.data, bytes):
        return packet.data
    return f"{int(packet.type)}{packet.data}"


@dataclass(slots=True, eq=False)
class _Session:
    sid: str
    start: float
    eio: int
    transport: Transport
    bodies: int = 0
    active_leg: int | None = None


@dataclass(slots=True, eq=False)
class _Leg:
    eio: int
    sid: str | None


@dataclass(slots=True)
class SplitterStats:
    sessions: int = 0  # sessions recorded (handshake seen)
    skipped_sessions: int = 0  # handshakes past the ``sessions`` limit
    unknown: int = 0  # traffic of sessions whose handshake was not recorded
    undecodable: int = 0  # bodies/messages that could not be cut into packets
    evicted: int = 0
    packets: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class RecordSplitter:
    """Observations in, lines out; see the module docstring.  ``wall_offset`` turns the
    monotonic times passed in into epoch seconds (``wall = t + wall_offset``)."""

    def __init__(
        self,
        redactor: PacketRedactor,
        *,
        wall_offset: float,
        max_sessions: int | None = None,
        max_open_sessions: int = 10_000,
    ) -> None:
        self._redactor = redactor
        self._wall_offset = wall_offset
        self._max_sessions = max_sessions
        self._max_open = max_open_sessions
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._legs: dict[int, _Leg] = {}
        self._ignored: OrderedDict[str, None] = OrderedDict()  # finished or skipped sids
        self.stats = SplitterStats()

    @property
    def open_sessions(self) -> list[str]:
        return list(self._sessions)

    # --- observations -----------------------------------------------------------------

    def polling_request(self, query: Mapping[str, str], body: bytes, t: float) -> list[Line]:
        s = self._known(query.get("sid"))
        if s is None:
            return []
        packets = decode_payload(body, eio=s.eio, jsonp="j" in query, request=True)
        return self._body(s, packets, _C2S, t)

    def polling_response(  # noqa: PLR0917 - the observer's facts plus the time
        self,
        query: Mapping[str, str],
        method: str,
        status: int,
        content_encoding: str | None,
        body: bytes,
        t: float,
    ) -> list[Line]:
        if status != 200 or method.upper() != "GET":
            return []  # errors carry no payload; a POST's answer is "ok"
        if content_encoding:
            plain = decompress(body, content_encoding)
            if isinstance(plain, DecodeFailure):
                self.stats.undecodable += 1
                return []
            body = plain
        eio = _eio(query)
        packets = decode_payload(body, eio=eio, jsonp="j" in query, request=False)
        sid = query.get("sid")
        if sid:
            s = self._known(sid)
            return [] if s is None else self._body(s, packets, _S2C, t)
        out: list[Line] = []
        s = self._open(packets[0] if packets else None, eio, _POLLING, t, out)
        if s is not None:
            out += self._body(s, packets, _S2C, t)
        return out

    def websocket_opened(self, leg: int, query: Mapping[str, str], t: float) -> list[Line]:
        self._legs[leg] = _Leg(_eio(query), query.get("sid") or None)
        return []

    def websocket_message(
        self, leg: int, direction: Direction, data: str | bytes, t: float
    ) -> list[Line]:
        state = self._legs.get(leg)
        if state is None:
            return []
        packet = decode_ws_frame(data, eio=state.eio)
        out: list[Line] = []
        if state.sid is None:
            if direction is not _S2C:
                self.stats.unknown += 1
                return out
            s = self._open(packet, state.eio, _WEBSOCKET, t, out)
            if s is None:
                del self._legs[leg]
                return out
            state.sid = s.sid
            s.active_leg = leg
        s2 = self._known(state.sid)
        if s2 is None:
            return out
        if isinstance(packet, DecodeFailure):
            self.stats.undecodable += 1
            return out
        if packet.type is EnginePacketType.UPGRADE and direction is _C2S:
            s2.transport = _WEBSOCKET
            s2.active_leg = leg
        self._packet(s2, packet, direction, _WEBSOCKET, t, None, out)
        return out

    def websocket_closed(
        self, leg: int, initiator: Direction | None, code: int | None, t: float
    ) -> list[Line]:
        state = self._legs.pop(leg, None)
        if state is None or state.sid is None:
            return []
        s = self._sessions.get(state.sid)
        if s is None or s.active_leg != leg:
            return []  # a failed upgrade probe: the polling session goes on
        return [self._close(s, "websocket_closed", t, initiator, code)]

    # --- lifecycle ----------------------------------------------------------------------

    def continued(self) -> list[Line]:
        """The ``session`` lines that open a new part of a rotated file."""
        return [
            SessionLine(s.sid, s.start + self._wall_offset, s.eio, s.transport, continued=True)
            for s in self._sessions.values()
        ]

    def gap(self, dropped: int, t: float, sessions: tuple[str, ...] | None = None) -> GapLine:
        """A ``gap`` line: ``dropped`` observations lost, affecting ``sessions`` (default:
        every open session)."""
        return GapLine(
            t + self._wall_offset, dropped, tuple(self._sessions) if sessions is None else sessions
        )

    def close_all(self, reason: str, t: float) -> list[Line]:
        out: list[Line] = [self._close(s, reason, t) for s in list(self._sessions.values())]
        self._legs.clear()
        return out

    # --- internals ----------------------------------------------------------------------

    def _known(self, sid: str | None) -> _Session | None:
        if not sid:
            return None
        s = self._sessions.get(sid)
        if s is None:
            if sid not in self._ignored:
                self.stats.unknown += 1
            return None
        self._sessions.move_to_end(sid)
        return s

    def _open(
        self,
        first: EnginePacket | DecodeFailure | None,
        eio: int,
        transport: Transport,
        t: float,
        out: list[Line],
    ) -> _Session | None:
        if not isinstance(first, EnginePacket) or first.type is not EnginePacketType.OPEN:
            self.stats.undecodable += 1
            return None
        info = decode_open(first.data)
        if isinstance(info, DecodeFailure) or info.sid in self._sessions:
            self.stats.undecodable += 1
            return None
        if self._max_sessions is not None and self.stats.sessions >= self._max_sessions:
            self.stats.skipped_sessions += 1
            self._ignore(info.sid)
            return None
        while len(self._sessions) >= self._max_open:
            oldest = next(iter(self._sessions.values()))
            self.stats.evicted += 1
            out.append(self._close(oldest, "evicted", t))
        s = _Session(info.sid, t, eio, transport)
        self._sessions[s.sid] = s
        self.stats.sessions += 1
        out.append(SessionLine(s.sid, t + self._wall_offset, eio, transport))
        return s

    def _body(
        self,
        s: _Session,
        packets: list[EnginePacket | DecodeFailure],
        direction: Direction,
        t: float,
    ) -> list[Line]:
        out: list[Line] = []
        body = s.bodies
        s.bodies += 1
        for p in packets:
            if s.sid not in self._sessions:
                break  # closed by a CLOSE packet earlier in the body
            if isinstance(p, DecodeFailure):
                self.stats.undecodable += 1
                continue
            self._packet(s, p, direction, _POLLING, t, body, out)
        return out

    def _packet(  # noqa: PLR0917 - one packet's facts
        self,
        s: _Session,
        p: EnginePacket,
        direction: Direction,
        transport: Transport,
        t: float,
        body: int | None,
        out: list[Line],
    ) -> None:
        data = packet_data(p)
        if isinstance(data, str):
            data = self._redactor.text(data)
        self.stats.packets += 1
        out.append(PacketLine(s.sid, max(0.0, t - s.start), direction, transport, data, body))
        if p.type is EnginePacketType.CLOSE:
            out.append(self._close(s, "close_packet", t, direction))

    def _close(
        self,
        s: _Session,
        reason: str,
        t: float,
        by: Direction | None = None,
        code: int | None = None,
    ) -> CloseLine:
        self._sessions.pop(s.sid, None)
        self._ignore(s.sid)
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        return CloseLine(s.sid, max(0.0, t - s.start), reason, by, code)

    def _ignore(self, sid: str) -> None:
        self._ignored[sid] = None
        while len(self._ignored) > _MAX_TOMBSTONES:
            self._ignored.popitem(last=False)

"""Engine.IO sessions as seen at the proxy: sans-IO state keyed by Engine.IO ``sid``.

Owns the step from raw relayed traffic (polling bodies, WebSocket messages, explicit
timestamps) to :mod:`tracking.events`: one session spans its polling requests and its
WebSocket, follows the polling -> WebSocket upgrade, measures heartbeats, and ends on a
CLOSE packet, the close of its active WebSocket, missed heartbeats, eviction or shutdown,
after which its state is freed.  No clock, no asyncio: the runtime passes ``at``
(monotonic) and ``wall`` (epoch) and calls :meth:`SessionTable.tick` at
:meth:`SessionTable.next_deadline`.  No public method raises.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from socketio_trace_proxy.tracking.events import (
    CloseReason,
    DecodeFailed,
    HeartbeatObserved,
    PacketObserved,
    SessionClosed,
    SessionEvent,
    SessionOpened,
    SessionUpgraded,
)
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from socketio_trace_proxy.tracking.wire.engineio import (
    decode_open,
    decode_payload,
    decode_payload_packet,
    decode_ws_frame,
    decompress,
)
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

_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT
_POLLING = Transport.POLLING
_WEBSOCKET = Transport.WEBSOCKET
_OPEN = EnginePacketType.OPEN
_CLOSE = EnginePacketType.CLOSE
_PING = EnginePacketType.PING
_PONG = EnginePacketType.PONG
_MESSAGE = EnginePacketType.MESSAGE
_UPGRADE = EnginePacketType.UPGRADE
_tuple_new = tuple.__new__  # builds a NamedTuple without its Python-level ``__new__``


def _eio_version(query: Mapping[str, str]) -> int:
    return 3 if query.get("EIO") == "3" else 4


class LegState(IntEnum):
    """Where a relayed WebSocket stands in its Engine.IO life."""

    HANDSHAKE = 0  # opened without sid: the server's OPEN packet will name the session
    PROBING = 1  # opened with sid: an upgrade candidate until the client sends ``5``
    ACTIVE = 2  # the session's transport
    CLOSED = 3


class WebSocketLeg:
    """One relayed WebSocket, as the session table tracks it (returned by
    :meth:`SessionTable.websocket_opened`, passed back with each message)."""

    __slots__ = ("eio", "probe_at", "remote", "session", "sid", "state", "traceparent")

    def __init__(
        self, sid: str | None, eio: int, remote: str | None, traceparent: str | None
    ) -> None:
        self.sid = sid
        self.eio = eio
        self.remote = remote
        self.traceparent = traceparent
        self.state = LegState.PROBING if sid else LegState.HANDSHAKE
        self.session: _Session | None = None
        self.probe_at: float | None = None

    @property
    def session_id(self) -> str | None:
        return self.sid


class _Session:
    __slots__ = (
        "bucket",
        "closed",
        "dec_c2s",
        "dec_s2c",
        "eio",
        "last",
        "ping_at",
        "ping_dir",
        "sid",
        "stamp",
        "transport",
        "window",
        "ws",
    )

    def __init__(self, sid: str, eio: int, transport: Transport, window: float, at: float):
        self.sid = sid
        self.eio = eio
        self.transport = transport
        self.window = window
        self.last = at  # last traffic seen
        self.stamp = at  # ``last`` when the session was last put at the end of its bucket
        self.bucket: OrderedDict[str, _Session] | None = None
        self.closed = False
        self.ws: WebSocketLeg | None = None
        self.ping_at: float | None = None
        self.ping_dir: Direction | None = None
        self.dec_c2s: SocketIOStreamDecoder | None = None
        self.dec_s2c: SocketIOStreamDecoder | None = None


@dataclass(frozen=True, slots=True)
class SessionTableStats:
    """Counters of a :class:`SessionTable` (monotonic since creation, except ``sessions``)."""

    sessions: int
    opened: int
    lazily_opened: int
    closed: int
    upgrades: int
    evicted: int
    heartbeat_expired: int
    packets: int
    decode_failures: int
    attachment_overflows: int
    decompress_failures: int
    error_replies: int
    unattributed: int
    internal_errors: int


class SessionTable:
    """All live Engine.IO sessions of one proxy; feeds :class:`SessionEvent` to ``emit``.

    Limits: ``max_sessions`` (the least recently active session is evicted, with
    ``SessionClosed(EVICTED)``), per-direction attachment buffers (``max_attachments``,
    ``max_attachment_bytes``), decompressed polling bodies (``max_body_bytes``), and a
    bounded memory of recently closed sids (``max_tombstones``) so that stragglers after a
    close do not resurrect the session.
    """

    def __init__(
        self,
        emit: Callable[[SessionEvent], None],
        *,
        max_sessions: int = 100_000,
        heartbeat_grace_s: float = 5.0,
        default_ping_interval_s: float = 25.0,
        default_ping_timeout_s: float = 20.0,
        max_attachments: int = 256,
        max_attachment_bytes: int = 16 * 1024 * 1024,
        max_body_bytes: int = 16 * 1024 * 1024,
        max_tombstones: int = 4096,
    ) -> None:
        self._emit = emit
        self._max_sessions = max(1, max_sessions)
        self._grace = heartbeat_grace_s
        self._default_interval = default_ping_interval_s
        self._default_timeout = default_ping_timeout_s
        self._max_att = max_attachments
        self._max_att_bytes = max_attachment_bytes
        self._max_body = max_body_bytes
        self._max_tombstones = max_tombstones
        self._sessions: dict[str, _Session] = {}
        # Sessions grouped by heartbeat window; within a bucket, ordered by ``stamp`` (a
        # lower bound of their last activity, fixed up lazily), so the front of each bucket
        # is the next to expire and the least recently active.
        self._buckets: dict[float, OrderedDict[str, _Session]] = {}
        self._tombstones: OrderedDict[str, None] = OrderedDict()
        # The time of the call being handled (every public method sets it first).
        self._at = 0.0
        self._wall = 0.0
        self.opened = 0
        self.lazily_opened = 0
        self.closed = 0
        self.upgrades = 0
        self.evicted = 0
        self.heartbeat_expired = 0
        self.packets = 0
        self.decode_failures = 0
        self.attachment_overflows = 0
        self.decompress_failures = 0
        self.error_replies = 0
        self.unattributed = 0
        self.internal_errors = 0

    # --- queries --------------------------------------------------------------------------

    def session_count(self) -> int:
        return len(self._sessions)

    def session_transport(self, sid: str) -> Transport | None:
        s = self._sessions.get(sid)
        return None if s is None else s.transport

    def stats(self) -> SessionTableStats:
        return SessionTableStats(
            sessions=len(self._sessions),
            opened=self.opened,
            lazily_opened=self.lazily_opened,
            closed=self.closed,
            upgrades=self.upgrades,
            evicted=self.evicted,
            heartbeat_expired=self.heartbeat_expired,
            packets=self.packets,
            decode_failures=self.decode_failures,
            attachment_overflows=self.attachment_overflows,
            decompress_failures=self.decompress_failures,
            error_replies=self.error_replies,
            unattributed=self.unattributed,
            internal_errors=self.internal_errors,
        )

    # --- long-polling ---------------------------------------------------------------------

    def polling_request(self, info: RequestInfo, body: bytes, at: float, wall: float) -> None:
        """A polling POST body (client to server) was forwarded."""
        self._at = at
        self._wall = wall
        try:
            q = info.query
            sid = q.get("sid")
            if not sid:
                # The server refuses a POST without sid; nothing to attribute it to.
                self.unattributed += 1
                return
            eio = _eio_version(q)
            s = self._find_or_create(sid, eio, _POLLING, info)
            if s is None:
                return
            s.last = at
            self._payload(s, body, eio, "j" in q, _C2S)
        except Exception:
            self.internal_errors += 1

    def polling_response(  # noqa: PLR0917 - the observer's signature plus the clock
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
        at: float,
        wall: float,
    ) -> None:
        """A polling response was forwarded (``body`` as the upstream sent it)."""
        self._at = at
        self._wall = wall
        try:
            self._polling_response(info, status, content_encoding, body)
        except Exception:
            self.internal_errors += 1

    def _polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        at = self._at
        q = info.query
        sid = q.get("sid")
        if status != 200:
            # 400/403/413 carry a JSON error object, not a payload (e.g. a late poll after
            # the upgrade, or an unknown sid): count it, never decode it, never create.
            self.error_replies += 1
            known = self._sessions.get(sid) if sid else None
            if known is not None:
                known.last = at
            return
        if info.method.upper() != "GET":
            # The answer to a POST is "ok", not a payload.
            known = self._sessions.get(sid) if sid else None
            if known is not None:
                known.last = at
            return
        eio = _eio_version(q)
        if content_encoding:
            plain = decompress(body, content_encoding, max_size=self._max_body)
            if isinstance(plain, DecodeFailure):
                self.decompress_failures += 1
                self._failed(sid, _S2C, _POLLING, plain.reason, len(body))
                return
            body = plain
        if sid:
            known = self._find_or_create(sid, eio, _POLLING, info)
            if known is not None:
                known.last = at
                self._payload(known, body, eio, "j" in q, _S2C)
            return
        # Handshake: the first packet is OPEN and names the session.
        packets = decode_payload(body, eio=eio, jsonp="j" in q, request=False)
        first = packets[0] if packets else None
        if not isinstance(first, EnginePacket) or first.type is not _OPEN:
            self.unattributed += 1
            reason = first.reason if isinstance(first, DecodeFailure) else "no OPEN packet"
            self._failed(None, _S2C, _POLLING, f"handshake: {reason}", len(body))
            return
        s = self._open_from_packet(first, eio, _POLLING, info)
        if s is None:
            return
        s.last = at
        for p in packets[1:]:
            if s.closed:
                break
            self._engine(s, p, _S2C, _POLLING, None)

    def _payload(
        self, s: _Session, body: bytes, eio: int, jsonp: bool, direction: Direction
    ) -> None:
        """Every packet of a polling body, in order, until the session closes."""
        if eio == 3 or jsonp or body[:1] != b"4":
            for p in decode_payload(body, eio=eio, jsonp=jsonp, request=direction is _C2S):
                if s.closed:
                    break
                self._engine(s, p, direction, _POLLING, None)
            return
        # Hot path: a v4 text payload that opens with a MESSAGE (so it is not JSONP); each
        # text MESSAGE straight to the Socket.IO decoder, as on the WebSocket.
        for raw in body.split(b"\x1e"):
            if s.closed:
                break
            if raw[:1] == b"4" and raw.isascii():
                self._message(s, raw.decode("ascii"), 1, len(raw), direction, _POLLING)
            else:
                self._engine(s, decode_payload_packet(raw, eio), direction, _POLLING, None)

    # --- WebSocket ------------------------------------------------------------------------

    def websocket_opened(self, info: RequestInfo, at: float, wall: float) -> WebSocketLeg:
        """A WebSocket was accepted on both legs."""
        self._at = at
        self._wall = wall
        q = info.query
        sid = q.get("sid") or None
        leg = WebSocketLeg(sid, _eio_version(q), info.remote, info.traceparent)
        try:
            if sid:
                s = self._find_or_create(sid, leg.eio, _POLLING, info)
                if s is not None:
                    s.last = at
                    leg.session = s
        except Exception:
            self.internal_errors += 1
        return leg

    def websocket_message(
        self, leg: WebSocketLeg, direction: Direction, data: str | bytes, at: float, wall: float
    ) -> None:
        """A WebSocket message was forwarded."""
        self._at = at
        self._wall = wall
        try:
            s = leg.session
            if s is None or s.closed:
                s = self._leg_session(leg, direction, data)
                if s is None:
                    return
            s.last = at
            if type(data) is str and data[:1] == "4":
                # Hot path: a text MESSAGE, straight to the Socket.IO decoder.
                self._message(s, data, 1, -1, direction, _WEBSOCKET)
                return
            if data == "2":  # heartbeats: no packet needed
                s.ping_at = at
                s.ping_dir = direction
                return
            if data == "3":
                self._pong(s, direction)
                return
            self._engine(s, decode_ws_frame(data, eio=leg.eio), direction, _WEBSOCKET, leg)
        except Exception:
            self.internal_errors += 1

    def _leg_session(
        self, leg: WebSocketLeg, direction: Direction, data: str | bytes
    ) -> _Session | None:
        if leg.state is LegState.CLOSED:
            self.unattributed += 1
            return None
        if leg.state is LegState.HANDSHAKE:
            pkt = decode_ws_frame(data, eio=leg.eio)
            if direction is _S2C and isinstance(pkt, EnginePacket) and pkt.type is _OPEN:
                info = RequestInfo("GET", {}, leg.remote, leg.traceparent)
                s = self._open_from_packet(pkt, leg.eio, _WEBSOCKET, info)
                if s is not None:
                    leg.sid = s.sid
                    leg.session = s
                    leg.state = LegState.ACTIVE
                    s.ws = leg
                return None
            self.unattributed += 1
            reason = pkt.reason if isinstance(pkt, DecodeFailure) else "traffic before OPEN"
            size = len(data)
            self._failed(None, direction, _WEBSOCKET, f"handshake: {reason}", size)
            return None
        # The session ended (evicted, heartbeat timeout) but its WebSocket still talks.
        assert leg.sid is not None
        info = RequestInfo("GET", {}, leg.remote, leg.traceparent)
        transport = _WEBSOCKET if leg.state is LegState.ACTIVE else _POLLING
        s = self._find_or_create(leg.sid, leg.eio, transport, info)
        leg.session = s
        if s is not None and leg.state is LegState.ACTIVE:
            s.ws = leg
        return s

    def websocket_closed(
        self,
        leg: WebSocketLeg,
        initiator: Direction | None,
        code: int | None,
        at: float,
        wall: float,
    ) -> None:
        """The WebSocket ended; the session ends with it only if it was its transport
        (a failed upgrade probe leaves the polling session alone)."""
        try:
            s = leg.session
            leg.session = None
            leg.state = LegState.CLOSED
            if s is not None and not s.closed and s.ws is leg:
                self._close(s, CloseReason.WEBSOCKET_CLOSED)
        except Exception:
            self.internal_errors += 1

    # --- time -----------------------------------------------------------------------------

    def tick(self, at: float, wall: float) -> None:
        """Expire the sessions without traffic for pingInterval + pingTimeout + grace."""
        self._at = at
        self._wall = wall
        try:
            for window, bucket in list(self._buckets.items()):
                while bucket:
                    s = next(iter(bucket.values()))
                    if s.last > s.stamp:
                        s.stamp = s.last
                        bucket.move_to_end(s.sid)
                    elif s.last + window <= at:
                        self.heartbeat_expired += 1
                        self._close(s, CloseReason.HEARTBEAT_TIMEOUT)
                    else:
                        break
        except Exception:
            self.internal_errors += 1

    def next_deadline(self) -> float | None:
        """The monotonic time at which :meth:`tick` next has work to do (``None``: idle)."""
        best: float | None = None
        for window, bucket in self._buckets.items():
            front = self._settle(bucket)
            if front is not None:
                deadline = front.last + window
                if best is None or deadline < best:
                    best = deadline
        return best

    def close_all(self, at: float, wall: float, reason: CloseReason = CloseReason.SHUTDOWN) -> None:
        """End every session (proxy shutdown)."""
        self._at = at
        self._wall = wall
        try:
            for s in list(self._sessions.values()):
                self._close(s, reason)
        except Exception:
            self.internal_errors += 1

    # --- internals ------------------------------------------------------------------------

    @staticmethod
    def _settle(bucket: OrderedDict[str, _Session]) -> _Session | None:
        """Move recently active sessions off the front until it is truly the oldest."""
        while bucket:
            s = next(iter(bucket.values()))
            if s.last <= s.stamp:
                return s
            s.stamp = s.last
            bucket.move_to_end(s.sid)
        return None

    def _find_or_create(
        self,
        sid: str,
        eio: int,
        transport: Transport,
        info: RequestInfo,
    ) -> _Session | None:
        s = self._sessions.get(sid)
        if s is not None:
            return s
        if sid in self._tombstones:
            # Stragglers of a session that closed (e.g. the reply to a poll in flight).
            self.unattributed += 1
            return None
        # Traffic for a session we never saw open (the proxy started mid-session, or it
        # was evicted): track it from here, with default heartbeat settings.
        self.lazily_opened += 1
        return self._create(
            sid, eio, transport, self._default_interval, self._default_timeout, info
        )

    def _open_from_packet(
        self,
        pkt: EnginePacket,
        eio: int,
        transport: Transport,
        info: RequestInfo,
    ) -> _Session | None:
        handshake = decode_open(pkt.data)
        if isinstance(handshake, DecodeFailure):
            self.unattributed += 1
            self._failed(None, _S2C, transport, handshake.reason, pkt.size)
            return None
        existing = self._sessions.get(handshake.sid)
        if existing is not None:
            return existing
        self._tombstones.pop(handshake.sid, None)
        return self._create(
            handshake.sid, eio, transport, handshake.ping_interval_s, handshake.ping_timeout_s, info
        )

    def _create(  # noqa: PLR0917
        self,
        sid: str,
        eio: int,
        transport: Transport,
        interval: float,
        timeout: float,
        info: RequestInfo,
    ) -> _Session:
        at = self._at
        wall = self._wall
        while len(self._sessions) >= self._max_sessions:
            victim = self._least_recent()
            if victim is None:  # pragma: no cover - buckets always hold every session
                break
            self.evicted += 1
            self._close(victim, CloseReason.EVICTED)
        s = _Session(sid, eio, transport, interval + timeout + self._grace, at)
        self._sessions[sid] = s
        self._enqueue(s)
        self.opened += 1
        self._emit(
            SessionOpened(
                session_id=sid,
                transport=transport,
                eio_version=eio,
                ping_interval_s=interval,
                ping_timeout_s=timeout,
                at=at,
                wall=wall,
                remote=info.remote,
                traceparent=info.traceparent,
            )
        )
        return s

    def _enqueue(self, s: _Session) -> None:
        bucket = self._buckets.get(s.window)
        if bucket is None:
            bucket = self._buckets[s.window] = OrderedDict()
        s.stamp = s.last
        bucket[s.sid] = s
        s.bucket = bucket

    def _least_recent(self) -> _Session | None:
        oldest: _Session | None = None
        for bucket in self._buckets.values():
            front = self._settle(bucket)
            if front is not None and (oldest is None or front.last < oldest.last):
                oldest = front
        return oldest

    def _close(self, s: _Session, reason: CloseReason) -> None:
        at = self._at
        wall = self._wall
        if s.closed:
            return
        s.closed = True
        self._sessions.pop(s.sid, None)
        bucket = s.bucket
        if bucket is not None:
            bucket.pop(s.sid, None)
            if not bucket:
                self._buckets.pop(s.window, None)
            s.bucket = None
        s.dec_c2s = s.dec_s2c = None
        leg = s.ws
        s.ws = None
        if reason is CloseReason.CLOSE_PACKET or reason is CloseReason.WEBSOCKET_CLOSED:
            self._tombstones[s.sid] = None
            if len(self._tombstones) > self._max_tombstones:
                self._tombstones.popitem(last=False)
            if leg is not None and reason is CloseReason.CLOSE_PACKET:
                leg.state = LegState.CLOSED
        self.closed += 1
        self._emit(SessionClosed(session_id=s.sid, reason=reason, at=at, wall=wall))

    def _failed(
        self,
        sid: str | None,
        direction: Direction,
        transport: Transport,
        reason: str,
        size: int,
    ) -> None:
        at = self._at
        wall = self._wall
        self.decode_failures += 1
        self._emit(DecodeFailed(sid, direction, transport, reason, size, at, wall))

    def _engine(
        self,
        s: _Session,
        p: EnginePacket | DecodeFailure,
        direction: Direction,
        transport: Transport,
        leg: WebSocketLeg | None,
    ) -> None:
        at = self._at
        wall = self._wall
        if isinstance(p, DecodeFailure):
            self._failed(s.sid, direction, transport, p.reason, len(p.raw))
            return
        t = p.type
        if t is _MESSAGE:
            data = p.data
            if isinstance(data, str):
                self._message(s, data, 0, p.size, direction, transport)
            else:
                self._binary(s, p, direction, transport)
        elif t is _PING:
            if p.data == "probe":
                if leg is not None and direction is _C2S:
                    leg.probe_at = at
            else:
                s.ping_at = at
                s.ping_dir = direction
        elif t is _PONG:
            if p.data != "probe":
                self._pong(s, direction)
        elif t is _UPGRADE:
            if leg is not None and direction is _C2S and leg.state is not LegState.ACTIVE:
                started = leg.probe_at if leg.probe_at is not None else at
                leg.state = LegState.ACTIVE
                s.ws = leg
                s.transport = _WEBSOCKET
                self.upgrades += 1
                self._emit(SessionUpgraded(s.sid, at - started, at, wall))
        elif t is _CLOSE:
            self._close(s, CloseReason.CLOSE_PACKET)
        elif t is _OPEN:
            handshake = decode_open(p.data)
            if isinstance(handshake, DecodeFailure):
                self._failed(s.sid, direction, transport, handshake.reason, p.size)
                return
            window = handshake.ping_interval_s + handshake.ping_timeout_s + self._grace
            if window != s.window and s.bucket is not None:
                s.bucket.pop(s.sid, None)
                if not s.bucket:
                    self._buckets.pop(s.window, None)
                s.window = window
                self._enqueue(s)
        # NOOP: nothing to learn (the old long-poll is being drained during an upgrade)

    def _pong(self, s: _Session, direction: Direction) -> None:
        ping_at = s.ping_at
        if ping_at is not None and s.ping_dir is not direction:
            at = self._at
            s.ping_at = None
            self._emit(_tuple_new(HeartbeatObserved, (s.sid, at - ping_at, at, self._wall)))

    def _decoder(self, s: _Session, direction: Direction) -> SocketIOStreamDecoder:
        if direction is _C2S:
            dec = s.dec_c2s
            if dec is None:
                dec = s.dec_c2s = SocketIOStreamDecoder(
                    max_attachments=self._max_att, max_attachment_bytes=self._max_att_bytes
                )
        else:
            dec = s.dec_s2c
            if dec is None:
                dec = s.dec_s2c = SocketIOStreamDecoder(
                    max_attachments=self._max_att, max_attachment_bytes=self._max_att_bytes
                )
        return dec

    def _message(  # noqa: PLR0917 - positional: called per text packet
        self,
        s: _Session,
        frame: str,
        start: int,
        engine_size: int,
        direction: Direction,
        transport: Transport,
    ) -> None:
        """The Socket.IO packet ``frame[start:]``; ``engine_size``: the encoded size of the
        Engine.IO packet carrying it, -1 when not known yet (then ``frame`` is all of it)."""
        at = self._at
        wall = self._wall
        dec = s.dec_c2s if direction is _C2S else s.dec_s2c
        idle = dec is None or not dec.busy
        if idle:
            fast = fast_message(frame, start, engine_size - 1 if engine_size > 0 else None)
            if fast is not None:
                self.packets += 1
                event: PacketObserved = _tuple_new(
                    PacketObserved, (s.sid, direction, transport, fast, at, wall)
                )
                self._emit(event)
                return
        if engine_size < 0:
            engine_size = len(frame) if frame.isascii() else -1
        text = frame[start:] if start else frame
        if idle:
            size = engine_size - 1 if engine_size > 0 else None
            result = parse_header(text, size)
            if isinstance(result, DecodeFailure):
                self._failed(s.sid, direction, transport, result.reason, len(text))
                return
            packet, count = result
            if not count:
                self.packets += 1
                self._emit(
                    _tuple_new(PacketObserved, (s.sid, direction, transport, packet, at, wall))
                )
                return
        pkt = EnginePacket(_MESSAGE, text, engine_size if engine_size > 0 else len(text))
        self._stream(s, self._decoder(s, direction), pkt, direction, transport)

    def _binary(
        self,
        s: _Session,
        p: EnginePacket,
        direction: Direction,
        transport: Transport,
    ) -> None:
        dec = s.dec_c2s if direction is _C2S else s.dec_s2c
        if dec is None:
            self._failed(s.sid, direction, transport, "unexpected binary attachment", p.size)
            return
        self._stream(s, dec, p, direction, transport)

    def _stream(
        self,
        s: _Session,
        dec: SocketIOStreamDecoder,
        p: EnginePacket,
        direction: Direction,
        transport: Transport,
    ) -> None:
        at = self._at
        wall = self._wall
        before = dec.overflows
        results = dec.feed(p)
        self.attachment_overflows += dec.overflows - before
        for r in results:
            if isinstance(r, SocketPacket):
                self.packets += 1
                self._emit(PacketObserved(s.sid, direction, transport, r, at, wall))
            else:
                self._failed(s.sid, direction, transport, r.reason, len(r.raw))

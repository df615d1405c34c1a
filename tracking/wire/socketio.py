"""Socket.IO packet decoding (protocol v4 and v5): header fast path, lazy arguments,
binary attachment reassembly.

Owns the layer above Engine.IO MESSAGE packets.  The header (type, attachment count,
namespace, ack id) and the event name are read without parsing the JSON payload;
:func:`parse_args` parses it only when somebody asks.  Nothing here raises on any input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, Final

from socketio_trace_proxy.tracking.wire.packets import (
    DecodeFailure,
    EnginePacket,
    EnginePacketType,
    SocketPacket,
    SocketPacketType,
)

RAW_KEEP: Final = 256
_TYPES: Final = tuple(SocketPacketType)
_EVENT: Final = SocketPacketType.EVENT
_ACK: Final = SocketPacketType.ACK
_BINARY_EVENT: Final = SocketPacketType.BINARY_EVENT
_BINARY_ACK: Final = SocketPacketType.BINARY_ACK
_CONNECT: Final = SocketPacketType.CONNECT
_CONNECT_ERROR: Final = SocketPacketType.CONNECT_ERROR
_MAX_ID_DIGITS: Final = 16  # JavaScript numbers stay exact up to 2**53
_MAX_COUNT_DIGITS: Final = 9
#: Longest namespace (query included) taken as one; a longer one is a decode failure.
MAX_NAMESPACE: Final = 4096
#: Longest event name kept as seen; longer ones are cut (and end in "…").
MAX_EVENT_NAME: Final = 1024
#: Deepest nesting in which binary attachment placeholders are put back.
MAX_PLACEHOLDER_DEPTH: Final = 64
_NO_ATTACHMENTS: tuple[bytes, ...] = ()


_SOCKET_PACKET: Final = SocketPacket
_tuple_new: Final = tuple.__new__  # builds a NamedTuple without its Python-level ``__new__``
_scan_json: Callable[[str, int], tuple[Any, int]]
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    """``json.loads(text)``, by way of the C scanner alone when ``text`` is exactly one JSON
    value (a packet payload); anything else gets ``json.loads``'s own verdict."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _fail(reason: str, raw: str | bytes) -> DecodeFailure:
    return DecodeFailure(reason, raw[:RAW_KEEP])


def fast_message(frame: str, start: int = 1, size: int | None = None) -> SocketPacket | None:
    """The Socket.IO packet at ``frame[start:]`` (by default: in the Engine.IO text MESSAGE
    ``frame``, ``4`` + packet), for the shapes that make up nearly all traffic: an EVENT or
    ACK of the main namespace, ``2["name",...]``, ``2<id>["name",...]``, ``3<id>[...]``,
    event name without escapes.  ``size``: the packet's encoded size, if known.

    ``None`` means "not one of those shapes": decode ``frame[start:]`` with
    :func:`parse_header`, which gives the same result for these shapes (and the failure for
    malformed ones).  Skips the copy of the packet text that slicing ``frame`` would cost.
    """
    n = len(frame)
    if n < start + 3 or ord(frame[n - 1]) != 93:  # "]"
        return None
    first = ord(frame[start])
    if not 50 <= first <= 51:  # "2" (EVENT), "3" (ACK)
        return None
    # The ack id: its digits end at the "[" that opens the arguments, at most
    # _MAX_ID_DIGITS of them (read char by char: no slice, no int() of a string).
    k = start + 1
    ack_id: int | None = None
    c = ord(frame[k])
    if c != 91:  # "["
        limit = k + _MAX_ID_DIGITS
        value = 0
        while 48 <= c <= 57:  # "0" - "9"
            if k == limit:
                return None
            value = value * 10 + (c - 48)
            k += 1
            c = ord(frame[k])  # frame ends with "]": never past its end
        if c != 91 or k == start + 1:
            return None
        ack_id = value
    if size is None:
        # everything before ``start`` is ASCII (``4``)
        size = n - start if frame.isascii() else len(frame.encode("utf-8", "surrogatepass")) - start
    if first == 51:
        if ack_id is None:
            return None
        return _tuple_new(_SOCKET_PACKET, (_ACK, "/", ack_id, None, frame[k:], (), size))
    if ord(frame[k + 1]) != 34:  # '"'
        return None
    end = frame.find('"', k + 2)
    if end < 0 or end - k - 2 > MAX_EVENT_NAME:
        return None  # (a long name is cut by the general path)
    # JSON strings may not hold raw control characters (strict scanstring refuses them);
    # escapes and anything unusual take the general path.  Printable ASCII but "\\" is
    # checked char by char; anything else asks str.isprintable.
    for i in range(k + 2, end):
        c = ord(frame[i])
        if c < 32 or c > 126 or c == 92:
            odd = frame[k + 2 : end]
            if "\\" in odd or not odd.isprintable():
                return None
            break
    name = frame[k + 2 : end]
    return _tuple_new(_SOCKET_PACKET, (_EVENT, "/", ack_id, name, frame[k:], (), size))


def parse_header(text: str, size: int | None = None) -> tuple[SocketPacket, int] | DecodeFailure:
    """Decode one text Socket.IO packet; returns it (without attachments) and the number of
    binary attachments that follow it (non-zero only for BINARY_EVENT/BINARY_ACK).

    Format (socket.io-protocol): ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]``.
    """
    try:
        return _parse_header(text, size)
    except Exception as exc:  # pragma: no cover - defensive: never raise into the relay
        return _fail(f"internal decoder error: {type(exc).__name__}", text)


def _parse_header(text: str, size: int | None) -> tuple[SocketPacket, int] | DecodeFailure:
    n = len(text)
    if n == 0:
        return _fail("empty Socket.IO packet", text)
    code = ord(text[0]) - 48
    if not 0 <= code <= 6:
        return _fail("unknown Socket.IO packet type", text)
    ptype = _TYPES[code]
    i = 1
    count = 0
    if ptype is _BINARY_EVENT or ptype is _BINARY_ACK:
        dash = text.find("-", 1, 2 + _MAX_COUNT_DIGITS)
        digits = text[1:dash] if dash > 0 else ""
        if not digits.isdigit() or not digits.isascii():
            return _fail("invalid attachment count", text)
        count = int(digits)
        i = dash + 1
    namespace = "/"
    if i < n and text[i] == "/":
        found = _namespace(text, i)
        if isinstance(found, DecodeFailure):
            return found
        namespace, i = found
    # The ack id: at most _MAX_ID_DIGITS digits, looked at before anything is scanned.
    j = i
    limit = min(n, i + _MAX_ID_DIGITS + 1)
    while j < limit and "0" <= text[j] <= "9":
        j += 1
    ack_id: int | None = None
    if j > i:
        if j - i > _MAX_ID_DIGITS:
            return _fail("ack id too long", text)
        ack_id = int(text[i:j])
        i = j
    payload = text[i:] if i else text
    checked = _check_payload(ptype, payload, ack_id, text)
    if isinstance(checked, DecodeFailure):
        return checked
    if size is None:
        size = n if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    packet: SocketPacket = _tuple_new(
        SocketPacket, (ptype, namespace, ack_id, checked, payload, _NO_ATTACHMENTS, size)
    )
    return packet, count


def _namespace(text: str, i: int) -> tuple[str, int] | DecodeFailure:
    """The namespace starting at ``text[i]`` (``/``) and where what follows it starts; the
    comma that ends it is looked for within :data:`MAX_NAMESPACE` characters only."""
    n = len(text)
    comma = text.find(",", i, i + MAX_NAMESPACE + 1)
    if comma < 0 and n - i > MAX_NAMESPACE:
        return _fail("namespace too long", text)
    end = n if comma < 0 else comma
    namespace = text[i:end]
    q = namespace.find("?")
    if q >= 0:
        # socket.io v2 (protocol v4) may append a query to the namespace of CONNECT;
        # it is not part of the name (and may carry credentials).
        namespace = namespace[:q]
    return namespace, (end + 1 if comma >= 0 else n)


def _check_payload(
    ptype: SocketPacketType, payload: str, ack_id: int | None, text: str
) -> str | DecodeFailure | None:
    """Whether ``payload`` has the shape its packet type needs; for events, the event name
    (``None`` when the first argument is not a string), cut at :data:`MAX_EVENT_NAME`."""
    if ptype is _EVENT or ptype is _BINARY_EVENT:
        if not payload or payload[0] != "[" or payload[-1] != "]":
            return _fail("event payload is not an array", text)
        k = 1
        while k < len(payload) and payload[k] in " \t\r\n":
            k += 1
        if k < len(payload) and payload[k] == '"':
            try:
                name, _ = scanstring(payload, k + 1, True)
            except (ValueError, IndexError):
                return _fail("invalid event name", text)
            return _cut_name(name)
        return None
    if ptype is _ACK or ptype is _BINARY_ACK:
        if ack_id is None:
            return _fail("ack without id", text)
        if not payload or payload[0] != "[" or payload[-1] != "]":
            return _fail("ack payload is not an array", text)
    elif ptype is _CONNECT:
        if payload and (payload[0] != "{" or payload[-1] != "}"):
            return _fail("connect payload is not an object", text)
    elif ptype is _CONNECT_ERROR:
        # protocol v5: an object; protocol v4 (socket.io v2): a JSON string
        if payload and payload[0] not in '{"':
            return _fail("invalid connect_error payload", text)
    elif payload:
        return _fail("disconnect with a payload", text)
    return None


def _cut_name(name: str) -> str:
    """An event name as records and metrics keep it: cut at :data:`MAX_EVENT_NAME`
    characters and marked, so that a hostile name cannot pin megabytes in every table
    that keeps names (activity, timelines, pending requests)."""
    if len(name) <= MAX_EVENT_NAME:
        return name
    return name[:MAX_EVENT_NAME] + "…"


def decode_packet(text: str, size: int | None = None) -> SocketPacket | DecodeFailure:
    """One complete (non-binary, or zero-attachment) Socket.IO packet."""
    result = parse_header(text, size)
    if isinstance(result, DecodeFailure):
        return result
    packet, count = result
    if count:
        return _fail("binary packet needs attachments", text)
    return packet


class SocketIOStreamDecoder:
    """Decodes the Socket.IO packets of one direction of one Engine.IO session.

    Feed it the MESSAGE packets in order (text and binary, any transport); a BINARY_EVENT or
    BINARY_ACK is returned once all its attachments have arrived.  Bounded: a packet that
    announces more than ``max_attachments`` or whose attachments exceed
    ``max_attachment_bytes`` is dropped as a failure (``overflows`` counts them) and its
    remaining attachments are skipped.
    """

    __slots__ = (
        "_got",
        "_got_bytes",
        "_max_att",
        "_max_bytes",
        "_need",
        "_pending",
        "_skip",
        "overflows",
    )

    def __init__(
        self, *, max_attachments: int = 256, max_attachment_bytes: int = 16 * 1024 * 1024
    ) -> None:
        self._max_att = max_attachments
        self._max_bytes = max_attachment_bytes
        self._pending: SocketPacket | None = None
        self._need = 0
        self._got: list[bytes] = []
        self._got_bytes = 0
        self._skip = 0
        self.overflows = 0

    @property
    def busy(self) -> bool:
        """Waiting for (or skipping) binary attachments: text must go through :meth:`feed`."""
        return self._pending is not None or self._skip > 0

    @property
    def pending_attachments(self) -> int:
        """How many attachments the decoder still waits for (0: idle)."""
        return self._need - len(self._got) if self._pending is not None else 0

    def feed(self, packet: EnginePacket) -> tuple[SocketPacket | DecodeFailure, ...]:
        """Feed one Engine.IO MESSAGE; returns the packets/failures it completes (often one,
        none while attachments are still expected, two when a text packet interrupts an
        incomplete binary packet)."""
        try:
            return self._feed(packet)
        except Exception as exc:  # pragma: no cover - defensive
            self._reset()
            return (_fail(f"internal decoder error: {type(exc).__name__}", b""),)

    def _feed(self, packet: EnginePacket) -> tuple[SocketPacket | DecodeFailure, ...]:
        if packet.type is not EnginePacketType.MESSAGE:
            return (_fail("not a message packet", packet.data),)
        data = packet.data
        if isinstance(data, str):
            out: tuple[SocketPacket | DecodeFailure, ...] = ()
            if self._pending is not None:
                out = (_fail("text packet before all binary attachments arrived", b""),)
                self._reset()
            self._skip = 0
            result = parse_header(data, packet.size)
            if isinstance(result, DecodeFailure):
                return (*out, result)
            head, count = result
            if not count:
                return (*out, head)
            return (*out, *self._start(head, count))
        if self._skip:
            self._skip -= 1
            return ()
        pending = self._pending
        if pending is None:
            return (_fail("unexpected binary attachment", data),)
        self._got.append(data)
        self._got_bytes += len(data)
        if self._got_bytes > self._max_bytes:
            self.overflows += 1
            self._skip = self._need - len(self._got)
            self._reset()
            return (_fail("binary attachments too large", b""),)
        if len(self._got) < self._need:
            return ()
        attachments = tuple(self._got)
        self._reset()
        return (
            SocketPacket(
                pending.type,
                pending.namespace,
                pending.ack_id,
                pending.event,
                pending.payload,
                attachments,
                pending.size + sum(len(a) for a in attachments),
            ),
        )

    def _start(self, head: SocketPacket, count: int) -> tuple[SocketPacket | DecodeFailure, ...]:
        if count > self._max_att:
            self.overflows += 1
            self._skip = count
            return (_fail("too many binary attachments", head.payload),)
        self._pending = head
        self._need = count
        return ()

    def _reset(self) -> None:
        self._pending = None
        self._need = 0
        self._got = []
        self._got_bytes = 0


def try_parse_args(packet: SocketPacket) -> list[object] | DecodeFailure:
    """The packet's arguments, JSON-parsed, attachments put back in place of
    ``{"_placeholder":true,"num":N}``.

    EVENT/BINARY_EVENT: the arguments after the event name; ACK/BINARY_ACK: all
    acknowledgement arguments; CONNECT/CONNECT_ERROR: ``[payload]`` (``[]`` without one);
    DISCONNECT: ``[]``.
    """
    text = packet.payload
    if not text:
        return []
    try:
        value = _loads(text)
    except (ValueError, RecursionError):
        return _fail("payload is not JSON", text)
    if packet.attachments or packet.type is _BINARY_EVENT or packet.type is _BINARY_ACK:
        try:
            value = _reconstruct(value, packet.attachments)
        except (IndexError, RecursionError):
            return _fail("invalid attachment placeholder", text)
    ptype = packet.type
    if ptype is _EVENT or ptype is _BINARY_EVENT:
        if not isinstance(value, list) or not value:
            return _fail("event payload is not a non-empty array", text)
        return value[1:]
    if ptype is _ACK or ptype is _BINARY_ACK:
        if not isinstance(value, list):
            return _fail("ack payload is not an array", text)
        return value
    return [value]


def first_arg(packet: SocketPacket) -> Any:
    """The first argument, or None: what ``(parse_args(packet) or [None])[0]`` gives, without
    copying the argument list (what match keys and error predicates read)."""
    ptype = packet.type
    if packet.attachments or ptype is _BINARY_EVENT or ptype is _BINARY_ACK:
        args = parse_args(packet)
        return args[0] if args else None
    text = packet.payload
    if not text:
        return None
    try:
        value = _loads(text)
    except (ValueError, RecursionError):
        return None
    if ptype is _EVENT:
        return value[1] if type(value) is list and len(value) > 1 else None
    if ptype is _ACK:
        return value[0] if type(value) is list and value else None
    return value


def parse_args(packet: SocketPacket) -> list[object]:
    """Like :func:`try_parse_args`, but an unparsable payload gives ``[]``."""
    result = try_parse_args(packet)
    return [] if isinstance(result, DecodeFailure) else result


def _reconstruct(value: object, attachments: tuple[bytes, ...], depth: int = 0) -> object:
    """``value`` with attachments in place of their placeholders; the recursion is bounded
    by :data:`MAX_PLACEHOLDER_DEPTH` (deeper raises ``RecursionError``), not by the payload."""
    if depth > MAX_PLACEHOLDER_DEPTH:
        raise RecursionError("attachment placeholders nested too deeply")
    if isinstance(value, list):
        return [_reconstruct(v, attachments, depth + 1) for v in value]
    if isinstance(value, dict):
        if value.get("_placeholder") is True and "num" in value:
            num = value["num"]
            if not isinstance(num, int) or isinstance(num, bool) or num < 0:
                raise IndexError(num)
            return attachments[num]
        return {k: _reconstruct(v, attachments, depth + 1) for k, v in value.items()}
    return value

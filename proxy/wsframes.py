"""Reads one direction of a tunnelled WebSocket frame by frame, sans-IO (RFC 6455 5.2).

The tunnel (:mod:`proxy.wstunnel`) forwards the bytes each side sends unchanged: masking,
fragmentation and permessage-deflate are negotiated end to end, so every frame reaches the
other side exactly as it was sent.  :class:`FrameScanner` reads the same bytes beside the
forwarding to count messages, to stop a message over the size limit at a frame boundary, to
find the close frame, to stop the stream at a control frame declaring more than 125 bytes
(a protocol error, RFC 6455 5.5, that would otherwise make it buffer that close frame's
payload), and, when observing, to hand each complete message (unmasked and inflated) to the
tracker.  Nothing it does can alter what is forwarded, and nothing in it raises on any input:
every byte stream parses as frames.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final, NamedTuple

from socketio_trace_proxy.proxy.aiohttp_compat import fast_websocket_mask

_TEXT: Final = 0x1
_CLOSE: Final = 0x8
_CONTROL: Final = 0x8  # opcodes 0x8-0xF are control frames (RFC 6455 5.5)
_MAX_CONTROL_PAYLOAD: Final = 125  # RFC 6455 5.5: "All control frames MUST have a payload
# length of 125 bytes or less"
# RFC 7692 7.2.2: the sender strips this empty stored block from every compressed message.
_DEFLATE_TAIL: Final = b"\x00\x00\xff\xff"


def _nothing_to_tell() -> None:
    return None


def _mask_function() -> Callable[[bytes, bytearray], None]:
    """aiohttp's C (Cython) XOR of a frame payload with its 4-byte key, in place; the
    location moved between aiohttp releases, and a slower pure-Python one is the fallback."""
    fast = fast_websocket_mask()
    if fast is not None:
        return fast
    tables = [bytes(b ^ k for b in range(256)) for k in range(256)]

    def mask(key: bytes, data: bytearray) -> None:
        for i in range(4):
            data[i::4] = data[i::4].translate(tables[key[i]])

    return mask


_apply_mask: Final = _mask_function()


def unmask(key: bytes | None, payload: bytes | bytearray) -> bytes | bytearray:
    """``payload`` unmasked (RFC 6455 5.3): a new bytearray, or ``payload`` itself when the
    frame was not masked."""
    if key is None or not payload:
        return payload
    data = bytearray(payload)
    _apply_mask(key, data)
    return data


class CloseFrame(NamedTuple):
    """A close frame's status code (``None``: empty close frame, as Engine.IO sends) and
    reason bytes."""

    code: int | None
    reason: bytes


class Scanned:
    """What one chunk came to.

    ``forward`` is what may go to the other side now: the chunk itself, or less when an
    incomplete frame header is held back (so that a message over the limit can still be
    stopped at a frame boundary) or when ``too_big`` or ``protocol_error`` (a control frame
    over 125 bytes) stopped the stream.  ``messages`` are the observed complete messages
    (``str`` for text, ``bytes`` for binary).  A plain class, not a ``NamedTuple``: one is
    made per chunk, and a named tuple's constructor is a Python function even when this
    module runs compiled.  ``ending``: any of ``close``, ``too_big``, ``protocol_error`` (one
    attribute for the relay to read per chunk).
    """

    __slots__ = (
        "byte_count",
        "close",
        "ending",
        "forward",
        "message_count",
        "messages",
        "protocol_error",
        "too_big",
    )

    def __init__(  # noqa: PLR0917 - built positionally on the per-chunk path
        self,
        forward: bytes,
        messages: tuple[str | bytes, ...] | list[str | bytes],
        message_count: int,
        byte_count: int,
        close: CloseFrame | None,
        too_big: bool,
        protocol_error: bool = False,
    ) -> None:
        self.forward = forward
        self.messages = messages
        self.message_count = message_count
        self.byte_count = byte_count
        self.close = close
        self.too_big = too_big
        self.protocol_error = protocol_error
        self.ending = close is not None or too_big or protocol_error

    def _fields(self) -> tuple[object, ...]:
        return (
            self.forward,
            tuple(self.messages),
            self.message_count,
            self.byte_count,
            self.close,
            self.too_big,
            self.protocol_error,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scanned) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"Scanned{self._fields()!r}"


_NOTHING: Final = ()
# What FrameScanner._frame_head answers instead of a position.
_HELD: Final = -1
_TOO_BIG: Final = -2
_PROTOCOL_ERROR: Final = -3


class FrameScanner:
    """One direction of one WebSocket, after the handshake.

    ``observe``: unmask, inflate and decode data messages for the tracker.  ``deflate``:
    permessage-deflate was negotiated (RSV1 marks a compressed message, RFC 7692 6).
    ``max_message``: a message whose frames add up to more (as sent, compressed or not)
    is not forwarded: :attr:`Scanned.too_big` is set and the scanner forwards nothing more;
    the same, with :attr:`Scanned.protocol_error`, for a control frame declaring a payload
    over 125 bytes, whatever its opcode (nothing of it is forwarded or kept).
    An observed message that does not inflate, or inflates past ``max_message``, stops the
    observation of this direction (forwarding goes on), counts in :attr:`unobservable` and
    calls ``on_unobservable``.
    """

    __slots__ = (
        "_deflate",
        "_frame_key",
        "_frame_opcode",
        "_frame_parts",
        "_frame_whole",
        "_held",
        "_inflater",
        "_max",
        "_message_compressed",
        "_message_parts",
        "_message_size",
        "_message_text",
        "_on_unobservable",
        "_remaining",
        "observe",
        "stopped",
        "unobservable",
    )

    def __init__(
        self,
        *,
        max_message: int,
        observe: bool,
        deflate: bool,
        on_unobservable: Callable[[], None] = _nothing_to_tell,
    ) -> None:
        self._max = max_message
        self._on_unobservable = on_unobservable
        self.observe = observe
        self._deflate = deflate
        self._held = b""  # an incomplete frame header, not forwarded yet
        self._remaining = 0  # payload bytes of the current frame still to come
        self._frame_opcode = 0
        self._frame_key: bytes | None = None
        self._frame_parts: list[bytes] | None = None  # payload of the current frame, if kept
        # ... or all of it, when it came in the chunk that held its header (the usual case)
        self._frame_whole: bytes | None = None
        self._message_size = 0
        self._message_text = False
        self._message_compressed = False
        self._message_parts: list[bytes | bytearray] = []
        self._inflater: zlib._Decompress | None = None
        self.stopped = False
        self.unobservable = 0

    def feed(self, data: bytes) -> Scanned:
        if self.stopped:
            return Scanned(b"", _NOTHING, 0, 0, None, False)
        if self._held:
            data = self._held + data
            self._held = b""
        n = len(data)
        pos = 0
        count = 0
        nbytes = 0
        messages: list[str | bytes] | None = None
        close: CloseFrame | None = None
        while pos < n:
            remaining = self._remaining
            if remaining:
                end = pos + remaining if remaining < n - pos else n
                parts = self._frame_parts
                if parts is not None:
                    parts.append(data[pos:end])
                self._remaining = remaining - (end - pos)
                pos = end
                if self._remaining:
                    break
            else:
                start = self._frame_head(data, pos, n)
                if start < 0:  # held back, or the stream stops here
                    big, bad = start == _TOO_BIG, start == _PROTOCOL_ERROR
                    return Scanned(data[:pos], messages or _NOTHING, count, nbytes, close, big, bad)
                pos = start
                if self._remaining:
                    continue
            # A frame is complete.
            opcode = self._frame_opcode
            parts = self._frame_parts
            whole = self._frame_whole if parts is None else b"".join(parts)
            self._frame_parts = self._frame_whole = None
            if opcode & 0x0F >= _CONTROL:
                if opcode & 0x0F == _CLOSE and whole is not None:
                    close = _close_frame(unmask(self._frame_key, whole))
                continue
            # The usual case, a whole message in one frame (FIN, not a continuation, no
            # fragments open), skips the fragment list.
            if whole is not None and (opcode & 0x8F <= 0x80 or self._message_parts):
                self._message_parts.append(unmask(self._frame_key, whole))
                whole = None
            if opcode & 0x80:  # FIN: the message is complete
                count += 1
                nbytes += self._message_size
                if self.observe:
                    message = self._message(whole)
                    if message is not None:
                        if messages is None:
                            messages = [message]
                        else:
                            messages.append(message)
                if self._message_parts:
                    self._message_parts = []
        return Scanned(data, messages or _NOTHING, count, nbytes, close, False)

    def _frame_head(self, data: bytes, pos: int, n: int) -> int:
        """Read the frame header at ``pos``: where its payload starts (past the payload
        when the whole of it is here and kept: ``_remaining`` is then 0), or :data:`_HELD`
        (an incomplete header, held back), :data:`_TOO_BIG` or :data:`_PROTOCOL_ERROR`
        (the scanner stops)."""
        b0 = data[pos]
        b1 = data[pos + 1] if n - pos > 1 else 0
        length = b1 & 0x7F
        head = 2 if length < 126 else 4 if length == 126 else 10
        masked = b1 & 0x80
        if masked:
            head += 4
        if n - pos < head:
            self._held = data[pos:]
            return _HELD
        if length >= 126:
            length = int.from_bytes(data[pos + 2 : pos + head - (4 if masked else 0)])
        opcode = b0 & 0x0F
        if opcode < _CONTROL:
            if opcode:  # the first frame of a message; 0 continues one
                self._message_size = 0
                self._message_text = opcode == _TEXT
                self._message_compressed = bool(b0 & 0x40) and self._deflate
            self._message_size += length
            if self._message_size > self._max:
                self.stopped = True
                return _TOO_BIG
            keep = self.observe
        elif length > _MAX_CONTROL_PAYLOAD:
            self.stopped = True
            return _PROTOCOL_ERROR
        else:
            keep = opcode == _CLOSE
        self._frame_opcode = opcode | (b0 & 0x80)  # FIN kept in bit 7
        self._frame_key = data[pos + head - 4 : pos + head] if masked else None
        pos += head
        if length and length <= n - pos and keep:
            # The usual case: the whole payload is in this chunk.
            self._frame_whole = data[pos : pos + length]
            self._remaining = 0
            return pos + length
        self._frame_parts = [] if keep else None
        self._remaining = length
        return pos

    def _message(self, whole: bytes | None) -> str | bytes | None:
        """The message just completed: ``whole``, the payload of its only frame (still
        masked), or else the fragments gathered."""
        if whole is not None:
            return self._decode(unmask(self._frame_key, whole))
        parts = self._message_parts
        return self._decode(parts[0] if len(parts) == 1 else b"".join(parts))

    def _decode(self, payload: bytes | bytearray) -> str | bytes | None:
        """A complete message's payload (unmasked) as the tracker sees it: inflated when
        compressed, ``str`` for text; ``None`` when it does not inflate."""
        if self._message_compressed:
            inflated = self._inflate(payload)
            if inflated is None:
                return None
            payload = inflated
        if type(payload) is bytes:  # typed: mypyc decodes without a method lookup
            return payload.decode("utf-8", "replace") if self._message_text else payload
        if self._message_text:
            return payload.decode("utf-8", "replace")
        return bytes(payload)

    def _inflate(self, payload: bytes | bytearray) -> bytes | None:
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            out = inflater.decompress(payload + _DEFLATE_TAIL, self._max)
        except zlib.error:
            self._unobservable()
            return None
        if inflater.unconsumed_tail:
            self._unobservable()
            return None
        if inflater.eof:
            # The sender ended the DEFLATE stream (BFINAL, RFC 7692 7.2.3.4): the next
            # message starts a new one.
            self._inflater = None
        return out

    def _unobservable(self) -> None:
        """Observation of this direction ends; the inflater's history is lost with it."""
        self.unobservable += 1
        self.observe = False
        self._inflater = None
        self._on_unobservable()


def _close_frame(payload: bytes | bytearray) -> CloseFrame:
    if len(payload) < 2:
        return CloseFrame(None, b"")
    return CloseFrame(int.from_bytes(payload[:2]), bytes(payload[2:]))


def close_frame(code: int, reason: bytes, mask_key: bytes | None) -> bytes:
    """A close frame with ``code`` and ``reason``, masked when sent by the client side."""
    payload = code.to_bytes(2) + reason[:123]
    if mask_key is None:
        return bytes((0x88, len(payload))) + payload
    return bytes((0x88, 0x80 | len(payload))) + mask_key + unmask(mask_key, payload)

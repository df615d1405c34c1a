"""Engine.IO v3/v4 decoding: single packets, polling payloads, JSONP, compressed bodies.

Owns everything below Socket.IO: turning WebSocket frames and long-polling bodies into
:class:`EnginePacket` values.  Pure functions and small state machines, no I/O; nothing in
the public API raises on any input (garbage comes back as :class:`DecodeFailure`).
"""

from __future__ import annotations

import binascii
import json
import re
import zlib
from dataclasses import dataclass
from urllib.parse import parse_qs

from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket, EnginePacketType

Decoded = EnginePacket | DecodeFailure

#: How much of an undecodable input a :class:`DecodeFailure` keeps (never the whole body).
RAW_KEEP = 256

_TYPES = tuple(EnginePacketType)
_MESSAGE = EnginePacketType.MESSAGE
_SEP = b"\x1e"
_MAX_LENGTH_DIGITS = 10  # a v3 length prefix longer than this is garbage, not a big packet
_tuple_new = tuple.__new__  # builds a NamedTuple without its Python-level ``__new__``


def _fail(reason: str, raw: str | bytes) -> DecodeFailure:
    return DecodeFailure(reason, raw[:RAW_KEEP])


def _text_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def decode_text_packet(text: str, *, eio: int = 4, size: int | None = None) -> Decoded:
    """One text-encoded packet: ``<type><data>`` or base64 binary ``b...``.

    v4 writes binary as ``b<base64>``; v3 (engine.io-protocol v3) as ``b<type><base64>``.
    """
    if size is None:
        size = _text_size(text)
    if not text:
        return _fail("empty packet", text)
    first = text[0]
    if "0" <= first <= "6":
        packet: EnginePacket = _tuple_new(EnginePacket, (_TYPES[ord(first) - 48], text[1:], size))
        return packet
    if first == "b":
        body = text[1:]
        if eio == 3 and body[:1].isdigit():
            if body[0] != "4":
                return _fail("v3 base64 packet of a non-message type", text)
            body = body[1:]
        try:
            return EnginePacket(_MESSAGE, binascii.a2b_base64(body, strict_mode=True), size)
        except (binascii.Error, ValueError):
            return _fail("invalid base64 binary packet", text)
    return _fail("unknown packet type", text)


def decode_ws_frame(data: str | bytes, *, eio: int = 4) -> Decoded:
    """One WebSocket message (text or binary) as one Engine.IO packet.

    A v4 binary frame is the raw MESSAGE data; a v3 binary frame starts with the packet
    type byte ``0x04`` (engine.io-parser v2 ``encodeBuffer``).
    """
    if isinstance(data, str):
        return decode_text_packet(data, eio=eio)
    if not isinstance(data, bytes | bytearray | memoryview):
        return _fail("unsupported frame type", repr(type(data)))
    raw = bytes(data)
    if eio == 3:
        if not raw or raw[0] != 4:
            return _fail("v3 binary frame without message type byte", raw)
        return EnginePacket(_MESSAGE, raw[1:], len(raw))
    return EnginePacket(_MESSAGE, raw, len(raw))


@dataclass(frozen=True, slots=True)
class OpenInfo:
    """The handshake carried by an OPEN packet (durations in seconds)."""

    sid: str
    upgrades: tuple[str, ...]
    ping_interval_s: float
    ping_timeout_s: float
    max_payload: int | None


def decode_open(data: str | bytes) -> OpenInfo | DecodeFailure:
    """Parse the JSON handshake of an OPEN packet (``0{"sid":...}``, data after the ``0``)."""
    if not isinstance(data, str):
        return _fail("binary OPEN packet", data)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return _fail("OPEN packet is not JSON", data)
    if not isinstance(obj, dict):
        return _fail("OPEN packet is not a JSON object", data)
    sid = obj.get("sid")
    interval = obj.get("pingInterval")
    timeout = obj.get("pingTimeout")
    upgrades = obj.get("upgrades", [])
    max_payload = obj.get("maxPayload")
    if not isinstance(sid, str) or not sid:
        return _fail("OPEN packet without sid", data)
    if not isinstance(interval, int | float) or not isinstance(timeout, int | float):
        return _fail("OPEN packet without ping interval/timeout", data)
    if not _is_number(interval) or not _is_number(timeout):
        return _fail("OPEN packet without ping interval/timeout", data)
    return OpenInfo(
        sid=sid,
        upgrades=tuple(u for u in upgrades if isinstance(u, str))
        if isinstance(upgrades, list)
        else (),
        ping_interval_s=float(interval) / 1000.0,
        ping_timeout_s=float(timeout) / 1000.0,
        max_payload=int(max_payload) if isinstance(max_payload, int | float) else None,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


# --- JSONP (v3, and python-engineio v4 still honours it) -----------------------------------

_JSONP_RESPONSE = re.compile(rb'\A\s*___eio\[\d+\]\("(.*)"\);?\s*\Z', re.DOTALL)
# engine.io (server, transports/polling-jsonp.js) onData: "\\n" -> "\n", "\\\\n" -> "\\n"
_JSONP_SLASHES = re.compile(r"(\\)?\\n")


def unwrap_jsonp_response(body: bytes) -> str | DecodeFailure:
    """The payload inside ``___eio[N]("...");`` (a JavaScript string literal)."""
    m = _JSONP_RESPONSE.match(body)
    if m is None:
        return _fail("not a JSONP response", body)
    try:
        literal = m.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return _fail("JSONP response is not UTF-8", body)
    try:
        value = json.loads('"' + literal + '"', strict=False)
    except ValueError:
        # python-engineio escapes only '"', so a stray backslash may not be valid JSON
        return literal.replace('\\"', '"')
    return value if isinstance(value, str) else _fail("JSONP response is not a string", body)


def unwrap_jsonp_request(body: bytes) -> str | DecodeFailure:
    """The payload of a JSONP POST: the form-encoded ``d=`` field, newlines unescaped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _fail("JSONP form body is not UTF-8", body)
    values = parse_qs(text, keep_blank_values=True).get("d")
    if not values:
        return _fail("JSONP form body without d=", body)
    return _JSONP_SLASHES.sub(lambda m: m.group(0) if m.group(1) else "\n", values[0]).replace(
        "\\\\n", "\\n"
    )


# --- Polling payloads -----------------------------------------------------------------------


class _Mode:
    UNKNOWN = 0
    V4 = 1
    V3_TEXT = 2
    V3_BINARY = 3
    JSONP = 4
    BROKEN = 5


class PollingPayloadDecoder:
    """Incremental decoder of one long-polling body; any split of the body decodes the same.

    ``feed`` returns the packets completed by the chunk, ``close`` the rest (and a failure
    for a truncated body).  v4 bodies are ``\\x1e``-separated text packets; v3 bodies are
    either length-prefixed text (``<len>:<packet>``, len in UTF-16 code units) or the raw
    binary format (``\\x00``/``\\x01``, length digits as bytes, ``\\xff``, packet), told apart
    by their first byte.  With ``jsonp`` the body is buffered and unwrapped at ``close``.
    No limit on packets per payload; one packet may not exceed ``max_packet_bytes`` (the
    body is then abandoned with one failure and ``overflowed`` set).
    """

    __slots__ = (
        "_broken_raw",
        "_buf",
        "_eio",
        "_fail_reason",
        "_jsonp",
        "_max",
        "_mode",
        "_request",
        "_seen_sep",
        "overflowed",
    )

    def __init__(
        self,
        *,
        eio: int = 4,
        jsonp: bool = False,
        request: bool = False,
        max_packet_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._eio = eio
        self._jsonp = jsonp
        self._request = request
        self._max = max_packet_bytes
        self._buf = bytearray()
        self._mode = _Mode.JSONP if jsonp else (_Mode.V4 if eio != 3 else _Mode.UNKNOWN)
        self._fail_reason = ""
        self._broken_raw = bytearray()
        self._seen_sep = False
        self.overflowed = False

    def feed(self, chunk: bytes) -> list[Decoded]:
        try:
            return self._feed(chunk)
        except Exception as exc:  # pragma: no cover - defensive: never raise into the relay
            return self._break(f"internal decoder error: {type(exc).__name__}", b"")

    def close(self) -> list[Decoded]:
        try:
            return self._close()
        except Exception as exc:  # pragma: no cover - defensive
            return [_fail(f"internal decoder error: {type(exc).__name__}", b"")]

    # internals

    def _feed(self, chunk: bytes) -> list[Decoded]:
        mode = self._mode
        if mode == _Mode.BROKEN:
            self._keep_raw(chunk)
            return []
        self._buf += chunk
        if mode == _Mode.JSONP:
            if len(self._buf) > self._max:
                self.overflowed = True
                return self._break("JSONP body too large", self._buf)
            return []
        if mode == _Mode.UNKNOWN:
            if not self._buf:
                return []
            mode = self._mode = _Mode.V3_BINARY if self._buf[0] <= 1 else _Mode.V3_TEXT
        out: list[Decoded] = []
        if mode == _Mode.V4:
            self._drain_v4(out)
        elif mode == _Mode.V3_TEXT:
            self._drain_v3_text(out, final=False)
        else:
            self._drain_v3_binary(out, final=False)
        return out

    def _close(self) -> list[Decoded]:
        mode = self._mode
        buf = self._buf
        out: list[Decoded] = []
        if mode == _Mode.JSONP:
            text = (
                unwrap_jsonp_request(bytes(buf))
                if self._request
                else unwrap_jsonp_response(bytes(buf))
            )
            buf.clear()
            if isinstance(text, DecodeFailure):
                return [text]
            if self._eio == 3:
                return decode_v3_text_payload(text)
            return [] if not text else [decode_text_packet(p, eio=4) for p in text.split("\x1e")]
        if mode == _Mode.V4:
            if buf or self._seen_sep:
                out.append(_decode_utf8_packet(bytes(buf), self._eio))
                buf.clear()
        elif mode == _Mode.V3_TEXT:
            self._drain_v3_text(out, final=True)
        elif mode == _Mode.V3_BINARY:
            self._drain_v3_binary(out, final=True)
        if self._mode == _Mode.BROKEN:
            out.append(DecodeFailure(self._fail_reason, bytes(self._broken_raw)))
            self._broken_raw = bytearray()
            self._mode = _Mode.UNKNOWN if self._eio == 3 else _Mode.V4
        return out

    def _break(self, reason: str, rest: bytes | bytearray) -> list[Decoded]:
        # Framing is lost: everything from here to the end of the body is one failure,
        # reported by close() so that the result does not depend on how the body was split.
        self._mode = _Mode.BROKEN
        self._fail_reason = reason
        self._broken_raw = bytearray()
        self._keep_raw(rest)
        self._buf = bytearray()
        return []

    def _keep_raw(self, chunk: bytes | bytearray) -> None:
        room = RAW_KEEP - len(self._broken_raw)
        if room > 0:
            self._broken_raw += chunk[:room]

    def _drain_v4(self, out: list[Decoded]) -> None:
        buf = self._buf
        end = buf.rfind(_SEP)
        if end < 0:
            if len(buf) > self._max:
                self.overflowed = True
                self._break("packet too large", buf)
            return
        eio = self._eio
        self._seen_sep = True
        for part in bytes(buf[:end]).split(_SEP):
            out.append(_decode_utf8_packet(part, eio))
        del buf[: end + 1]
        if len(buf) > self._max:
            self.overflowed = True
            self._break("packet too large", buf)

    def _drain_v3_text(self, out: list[Decoded], *, final: bool) -> None:
        buf = self._buf
        pos = 0
        n = len(buf)
        while pos < n:
            colon = buf.find(b":", pos, pos + _MAX_LENGTH_DIGITS + 1)
            if colon < 0:
                if n - pos > _MAX_LENGTH_DIGITS or final:
                    del buf[:pos]
                    self._break("invalid v3 length prefix", buf)
                    return
                break
            digits = bytes(buf[pos:colon])
            if not digits.isdigit():
                del buf[:pos]
                self._break("invalid v3 length prefix", buf)
                return
            units = int(digits)
            start = colon + 1
            end = _utf16_span(buf, start, units)
            if end == -1:
                del buf[:pos]
                self._break("v3 length does not match the UTF-8 text", buf)
                return
            if end is None:
                if (n - start) > self._max:
                    self.overflowed = True
                    del buf[:pos]
                    self._break("packet too large", buf)
                    return
                if final:
                    del buf[:pos]
                    self._break("truncated v3 payload", buf)
                    return
                break
            if end > start:
                out.append(_decode_utf8_packet(bytes(buf[start:end]), 3))
            pos = end
        del buf[:pos]

    def _drain_v3_binary(self, out: list[Decoded], *, final: bool) -> None:
        buf = self._buf
        pos = 0
        n = len(buf)
        while pos < n:
            kind = buf[pos]
            if kind > 1:
                del buf[:pos]
                self._break("invalid v3 binary payload marker", buf)
                return
            stop = buf.find(b"\xff", pos + 1, pos + 2 + _MAX_LENGTH_DIGITS)
            if stop < 0:
                if n - pos > _MAX_LENGTH_DIGITS + 1 or final:
                    del buf[:pos]
                    self._break("invalid v3 binary length", buf)
                    return
                break
            length = 0
            for d in buf[pos + 1 : stop]:
                if d > 9:
                    del buf[:pos]
                    self._break("invalid v3 binary length", buf)
                    return
                length = length * 10 + d
            if stop == pos + 1:
                del buf[:pos]
                self._break("invalid v3 binary length", buf)
                return
            start = stop + 1
            end = start + length
            if end > n:
                if length > self._max:
                    self.overflowed = True
                    del buf[:pos]
                    self._break("packet too large", buf)
                    return
                if final:
                    del buf[:pos]
                    self._break("truncated v3 payload", buf)
                    return
                break
            body = bytes(buf[start:end])
            if kind == 0:
                out.append(_decode_utf8_packet(body, 3))
            elif not body or body[0] != 4:
                out.append(_fail("v3 binary packet without message type byte", body))
            else:
                out.append(EnginePacket(_MESSAGE, body[1:], len(body)))
            pos = end
        del buf[:pos]


def decode_payload_packet(raw: bytes, eio: int = 4) -> Decoded:
    """One packet of a v4 text polling payload (the bytes between two separators), as
    :func:`decode_payload` decodes it."""
    return _decode_utf8_packet(raw, eio)


def _decode_utf8_packet(raw: bytes, eio: int) -> Decoded:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _fail("packet is not UTF-8", raw)
    return decode_text_packet(text, eio=eio, size=len(raw))


def _utf16_span(buf: bytearray, start: int, units: int) -> int | None:
    """End offset of ``units`` UTF-16 code units of UTF-8 text starting at ``start``.

    ``None``: not enough bytes yet; ``-1``: the count splits a character or the bytes are
    not UTF-8.  (engine.io-parser v2 ``encodePayload`` counts JavaScript string length, so
    a character outside the BMP counts 2.)
    """
    end = start + units
    if end <= len(buf) and buf[start:end].isascii():
        return end
    i = start
    n = 0
    size = len(buf)
    while n < units:
        if i >= size:
            return None
        b = buf[i]
        if b < 0x80:
            i += 1
            n += 1
        elif b >= 0xF8:
            return -1
        elif b >= 0xF0:
            i += 4
            n += 2
        elif b >= 0xE0:
            i += 3
            n += 1
        elif b >= 0xC0:
            i += 2
            n += 1
        else:
            return -1
    if n != units:
        return -1
    if i > size:
        return None
    return i


def decode_v3_text_payload(text: str) -> list[Decoded]:
    """A v3 length-prefixed payload already decoded to text (e.g. unwrapped JSONP)."""
    raw = text.encode("utf-8", "surrogatepass")
    dec = PollingPayloadDecoder(eio=3)
    dec._mode = _Mode.V3_TEXT
    return dec.feed(raw) + dec.close()


def decode_payload(
    body: bytes, *, eio: int = 4, jsonp: bool = False, request: bool = False
) -> list[Decoded]:
    """Decode a whole long-polling body (request or response) in one call.

    JSONP is also recognised without ``jsonp`` (no Engine.IO payload starts with ``d=`` or
    ``___eio[``), as python-engineio does for ``d=`` bodies.
    """
    if not jsonp:
        jsonp = body[:2] == b"d=" if request else body[:7] == b"___eio["
    if eio != 3 and not jsonp:
        # Hot path: v4 text payload, split once.
        if not body:
            return []
        try:
            return [_decode_utf8_packet(p, eio) for p in body.split(_SEP)]
        except Exception as exc:  # pragma: no cover - defensive
            return [_fail(f"internal decoder error: {type(exc).__name__}", b"")]
    dec = PollingPayloadDecoder(eio=eio, jsonp=jsonp, request=request)
    return dec.feed(body) + dec.close()


# --- Content-Encoding ----------------------------------------------------------------------


def decompress(
    body: bytes, content_encoding: str | None, *, max_size: int = 16 * 1024 * 1024
) -> bytes | DecodeFailure:
    """A decompressed copy of ``body`` per ``Content-Encoding`` (gzip, deflate, identity).

    Refuses (returns a failure) to inflate beyond ``max_size`` bytes, on unknown encodings
    (e.g. ``br``) and on corrupt data.  Codings listed in order of application are undone
    in reverse.
    """
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    data = body
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            result = _inflate(data, 16 + zlib.MAX_WBITS, max_size)
        elif coding == "deflate":
            # RFC 9110 "deflate" is zlib-wrapped; some servers send raw deflate anyway.
            result = _inflate(data, zlib.MAX_WBITS, max_size)
            if isinstance(result, DecodeFailure) and result.reason != "decompressed body too large":
                result = _inflate(data, -zlib.MAX_WBITS, max_size)
        else:
            return _fail(f"unsupported content encoding {coding!r}", b"")
        if isinstance(result, DecodeFailure):
            return result
        data = result
    return data


def _inflate(data: bytes, wbits: int, max_size: int) -> bytes | DecodeFailure:
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, max_size + 1)
        if len(out) > max_size or d.unconsumed_tail:
            return _fail("decompressed body too large", b"")
        out += d.flush()
        if len(out) > max_size:
            return _fail("decompressed body too large", b"")
        if not d.eof:
            return _fail("truncated compressed body", data)
        return out
    except zlib.error:
        return _fail("corrupt compressed body", data)

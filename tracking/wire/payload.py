"""Long-polling payloads: many Engine.IO packets in one body (v4, v3 text and binary, JSONP).

Owns turning a whole polling body (request or response) into :class:`EnginePacket` values,
in order: v4 ``\\x1e``-separated text packets, v3 length-prefixed text (lengths in UTF-16
code units) and the v3 raw binary format, and JSONP in both directions.  Every length and
prefix is bounded by the protocol before anything is scanned; no loop runs per byte of an
untrusted body in Python.  Nothing in the public API raises on any input.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Final
from urllib.parse import parse_qs

from socketio_trace_proxy.tracking.wire.engineio import (
    RAW_KEEP,
    Decoded,
    decode_failure,
    decode_text_packet,
)
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket, EnginePacketType

_MESSAGE = EnginePacketType.MESSAGE
_SEP = b"\x1e"
_MAX_LENGTH_DIGITS = 10  # a v3 length prefix longer than this is garbage, not a big packet
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


# --- JSONP (v3, and python-engineio v4 still honours it) -----------------------------------

_JSONP_RESPONSE = re.compile(rb'\A\s*___eio\[\d+\]\("(.*)"\);?\s*\Z', re.DOTALL)


def unwrap_jsonp_response(body: bytes) -> str | DecodeFailure:
    """The payload inside ``___eio[N]("...");`` (a JavaScript string literal)."""
    m = _JSONP_RESPONSE.match(body)
    if m is None:
        return decode_failure("not a JSONP response", body)
    try:
        literal = m.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return decode_failure("JSONP response is not UTF-8", body)
    try:
        value = json.loads('"' + literal + '"', strict=False)
    except ValueError:
        # python-engineio escapes only '"', so a stray backslash may not be valid JSON
        return literal.replace('\\"', '"')
    return (
        value if isinstance(value, str) else decode_failure("JSONP response is not a string", body)
    )


def unwrap_jsonp_request(body: bytes) -> str | DecodeFailure:
    """The payload of a JSONP POST: the form-encoded ``d=`` field, newlines unescaped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return decode_failure("JSONP form body is not UTF-8", body)
    values = parse_qs(text, keep_blank_values=True).get("d")
    if not values:
        return decode_failure("JSONP form body without d=", body)
    return _unescape_jsonp_newlines(values[0])


def _unescape_jsonp_newlines(text: str) -> str:
    """engine.io's JSONP ``onData``: ``\\\\n`` (an escaped backslash before n) becomes
    ``\\n``, and any other ``\\n`` a newline, scanning left to right.  Done with
    ``split``/``replace`` (C speed) rather than a regex calling back into Python per match,
    which made a body full of ``\\n`` cost seconds of event-loop time."""
    return "\\n".join(part.replace("\\n", "\n") for part in text.split("\\\\n"))


# --- Polling payloads -----------------------------------------------------------------------


class _Mode:
    UNKNOWN: Final = 0
    V4: Final = 1
    V3_TEXT: Final = 2
    V3_BINARY: Final = 3
    JSONP: Final = 4
    BROKEN: Final = 5


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
            return [decode_failure(f"internal decoder error: {type(exc).__name__}", b"")]

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
            for d in bytes(buf[pos + 1 : stop]):  # a copy: mypyc iterates no bytearray
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
                out.append(decode_failure("v3 binary packet without message type byte", body))
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
        return decode_failure("packet is not UTF-8", raw)
    return decode_text_packet(text, eio=eio, size=len(raw))


def _utf16_span(buf: bytearray, start: int, units: int) -> int | None:
    """End offset of ``units`` UTF-16 code units of UTF-8 text starting at ``start``.

    ``None``: not enough bytes yet; ``-1``: the count splits a character or the bytes are
    not UTF-8.  (engine.io-parser v2 ``encodePayload`` counts JavaScript string length, so
    a character outside the BMP counts 2.)  Counted by the codecs (C speed), never byte by
    byte in Python; a unit takes at most 3 bytes, so ``3 * units + 1`` bytes are read at most.
    """
    end = start + units
    if end <= len(buf) and buf[start:end].isascii():
        return end
    chunk = bytes(buf[start : start + 3 * units + 1])  # +1: a pair split by the count
    # Incomplete trailing bytes are held back (not enough data yet); invalid ones become
    # lone surrogates, which make the final encode fail below if they fall in the span.
    text = _utf8_decoder("surrogateescape").decode(chunk, final=False)
    span16 = text.encode("utf-16-le", "surrogatepass")[: 2 * units]
    try:  # a pair split by the count, or an invalid byte, does not encode
        size = len(span16.decode("utf-16-le", "surrogatepass").encode("utf-8"))
    except UnicodeEncodeError:
        return -1
    return start + size if len(span16) == 2 * units else None


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
            return [decode_failure(f"internal decoder error: {type(exc).__name__}", b"")]
    dec = PollingPayloadDecoder(eio=eio, jsonp=jsonp, request=request)
    return dec.feed(body) + dec.close()

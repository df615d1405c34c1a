"""Engine.IO v3/v4 decoding: single packets, WebSocket frames, the OPEN handshake, and
compressed polling bodies.

Owns the Engine.IO packet level below Socket.IO (long-polling payloads, which carry many
packets, are :mod:`tracking.wire.payload`'s).  Pure functions, no I/O; nothing in the
public API raises on any input (garbage comes back as :class:`DecodeFailure`).
"""

from __future__ import annotations

import binascii
import json
import zlib
from dataclasses import dataclass
from typing import Final

from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, EnginePacket, EnginePacketType

Decoded = EnginePacket | DecodeFailure

#: How much of an undecodable input a :class:`DecodeFailure` keeps (never the whole body).
RAW_KEEP: Final = 256

_TYPES: Final = tuple(EnginePacketType)
_MESSAGE: Final = EnginePacketType.MESSAGE
_tuple_new: Final = tuple.__new__  # builds a NamedTuple without its Python-level ``__new__``


def decode_failure(reason: str, raw: str | bytes) -> DecodeFailure:
    """A :class:`DecodeFailure` keeping at most :data:`RAW_KEEP` of what was undecodable."""
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
        return decode_failure("empty packet", text)
    first = text[0]
    if "0" <= first <= "6":
        packet: EnginePacket = _tuple_new(EnginePacket, (_TYPES[ord(first) - 48], text[1:], size))
        return packet
    if first == "b":
        body = text[1:]
        if eio == 3 and body[:1].isdigit():
            if body[0] != "4":
                return decode_failure("v3 base64 packet of a non-message type", text)
            body = body[1:]
        try:
            return EnginePacket(_MESSAGE, binascii.a2b_base64(body, strict_mode=True), size)
        except (binascii.Error, ValueError):
            return decode_failure("invalid base64 binary packet", text)
    return decode_failure("unknown packet type", text)


def decode_ws_frame(data: str | bytes, *, eio: int = 4) -> Decoded:
    """One WebSocket message (text or binary) as one Engine.IO packet.

    A v4 binary frame is the raw MESSAGE data; a v3 binary frame starts with the packet
    type byte ``0x04`` (engine.io-parser v2 ``encodeBuffer``).
    """
    if isinstance(data, str):
        return decode_text_packet(data, eio=eio)
    if not isinstance(data, bytes | bytearray | memoryview):
        return decode_failure("unsupported frame type", repr(type(data)))
    raw = bytes(data)
    if eio == 3:
        if not raw or raw[0] != 4:
            return decode_failure("v3 binary frame without message type byte", raw)
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
        return decode_failure("binary OPEN packet", data)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return decode_failure("OPEN packet is not JSON", data)
    if not isinstance(obj, dict):
        return decode_failure("OPEN packet is not a JSON object", data)
    sid = obj.get("sid")
    interval = obj.get("pingInterval")
    timeout = obj.get("pingTimeout")
    upgrades = obj.get("upgrades", [])
    max_payload = obj.get("maxPayload")
    if not isinstance(sid, str) or not sid:
        return decode_failure("OPEN packet without sid", data)
    if not isinstance(interval, int | float) or not isinstance(timeout, int | float):
        return decode_failure("OPEN packet without ping interval/timeout", data)
    if not _is_number(interval) or not _is_number(timeout):
        return decode_failure("OPEN packet without ping interval/timeout", data)
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
            return decode_failure(f"unsupported content encoding {coding!r}", b"")
        if isinstance(result, DecodeFailure):
            return result
        data = result
    return data


def _inflate(data: bytes, wbits: int, max_size: int) -> bytes | DecodeFailure:
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, max_size + 1)
        if len(out) > max_size or d.unconsumed_tail:
            return decode_failure("decompressed body too large", b"")
        out += d.flush()
        if len(out) > max_size:
            return decode_failure("decompressed body too large", b"")
        if not d.eof:
            return decode_failure("truncated compressed body", data)
        return out
    except zlib.error:
        return decode_failure("corrupt compressed body", data)

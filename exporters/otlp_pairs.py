"""OTLP ``Span`` bytes straight from a :class:`tracking.records.PairRecord` (issue 12).

The exporter's hot path: one span per paired request.  The general path builds a
:class:`exporters.spans.SpanSpec` (:func:`exporters.spans.pair_span`) and encodes it
attribute by attribute (:class:`exporters.otlp_wire.SpanEncoder`); this one writes the same
bytes from the record, in the same order, with the parts that repeat encoded once: the span
name and kind per operation, the shared attributes and the status per record shape (the
interned tuple of :func:`exporters.spans.pair_shared`), the sid, client and session-link
fields per session, the body sizes per value and the ack id attributes per ack id.  What is
left per record is the ids, the times and the duration.  ``spans.py`` stays the model: the
tests compare this output with the general path's, byte for byte, for every kind of pair.

Anything unusual (an id of the wrong size, text UTF-8 cannot carry) raises; the caller then
takes the general path, which reports or repairs it as before.
"""

from __future__ import annotations

import binascii
import struct
from typing import Final

from socketio_trace_proxy.exporters.otlp_wire import key_value, varint
from socketio_trace_proxy.exporters.spans import (
    AttrValue,
    SpanKind,
    StatusCode,
    pair_error_type,
    pair_shared,
)
from socketio_trace_proxy.tracking.records import Outcome, PairKind, PairRecord, SessionRef

_pack_double: Final = struct.Struct("<d").pack
_pack_times: Final = struct.Struct("<BQBQ").pack  # Span.start (7) and .end (8), fixed64
_fromhex: Final = bytes.fromhex
_unhexlify: Final = binascii.unhexlify  # ASCII hex only: cheaper than bytes.fromhex
_STREAM: Final = PairKind.STREAM
_OK: Final = Outcome.OK
_T_START: Final = 0x39
_T_END: Final = 0x41


def _len(size: int) -> bytes:
    return bytes((size,)) if size < 0x80 else varint(size)


def _field(tag: bytes, body: bytes) -> bytes:
    return tag + _len(len(body)) + body


def attribute(key: str, value: AttrValue) -> bytes:
    """A whole ``Span.attributes`` field (9)."""
    return _field(b"\x4a", key_value(key, value))


def _key(key: str) -> bytes:
    """``KeyValue.key`` (1), encoded."""
    return _field(b"\x0a", key.encode())


def text_attribute(key_field: bytes, text: str) -> bytes:
    """``attribute(key, text)`` given the encoded key (:func:`_key`)."""
    value = text.encode()
    size = len(value)
    total = len(key_field) + size + 4
    if total < 0x80:  # every length a single byte
        return b"".join(
            (bytes((0x4A, total)), key_field, bytes((0x12, size + 2, 0x0A, size)), value)
        )
    return _field(b"\x4a", key_field + _field(b"\x12", _field(b"\x0a", value)))


_MESSAGE_ID: Final = _key("messaging.message.id")
_CONVERSATION: Final = _key("messaging.message.conversation_id")


def _float_prefix(key: str) -> bytes:
    """A double attribute without its eight value bytes."""
    whole = attribute(key, 0.0)
    return whole[:-8]


_DURATION: Final = _float_prefix("socket.duration_ms")
_FIRST_CHUNK: Final = _float_prefix("messaging.socket.io.first_chunk_ms")
_NAME_TAG: Final = b"\x2a"
_KIND: Final = b"\x30" + bytes((SpanKind.INTERNAL,))
_LINK_HEAD: Final = b"\x6a\x1c\x0a\x10"  # Span.links (13), 28 bytes; Link.trace_id (1)
_LINK_SPAN: Final = b"\x12\x08"  # Link.span_id (2)


def _link(trace_id: str, span_id: str) -> bytes:
    if len(span_id) != 16:
        raise ValueError(f"bad link ids {trace_id!r}/{span_id!r}")
    return _LINK_HEAD + _fromhex(trace_id) + _LINK_SPAN + _fromhex(span_id)


class PairSpanEncoder:
    """``encode(record)``: the ``Span`` message body :class:`exporters.otlp_wire.SpanEncoder`
    makes of ``pair_span(record)``, with ``constant`` attributes after the record's own.
    Every cache is bounded by ``cache_limit`` entries (cleared when full, counted)."""

    def __init__(self, constant: bytes = b"", cache_limit: int = 8192) -> None:
        self._constant = constant
        self._limit = cache_limit
        # keyed by identity, the entry keeping its key object alive (so no id is reused)
        self._shapes: dict[int, tuple[object, bytes, bytes, int, str, bytes]] = {}
        self._sessions: dict[int, tuple[SessionRef, bytes, bytes, bytes, int]] = {}
        # times, the duration attribute and the constant attributes
        self._fixed = 18 + len(_DURATION) + 8 + len(constant)
        self._request_sizes: dict[int, bytes] = {}
        self._response_sizes: dict[int, bytes] = {}
        self._acks: dict[int, bytes] = {}
        self._keys: dict[tuple[int | None, str], bytes] = {}  # (ack id, match key)
        self.cache_resets = 0

    def _room(self, cache: dict[int, bytes]) -> None:
        if len(cache) >= self._limit:
            cache.clear()
            self.cache_resets += 1

    def _shape(
        self, record: PairRecord, shared: tuple[tuple[str, AttrValue], ...], error_type: str | None
    ) -> tuple[object, bytes, bytes, int, str, bytes]:
        """The shared attributes (``shared``, :func:`exporters.spans.pair_shared`), the
        status (both follow from the record's shape), their size, and the span's name and
        kind (the operation's, nearly always one per shape), encoded and cached."""
        status = b""
        if error_type is not None:  # Status{message = 2, code = 3}
            message = _field(b"\x12", error_type.encode()) if error_type else b""
            status = _field(b"\x7a", message + b"\x18" + bytes((StatusCode.ERROR,)))
        attrs = b"".join(attribute(k, v) for k, v in shared)
        name = _field(_NAME_TAG, record.operation.encode()) + _KIND
        if len(self._shapes) >= self._limit:
            self._shapes.clear()
            self.cache_resets += 1
        size = len(attrs) + len(status) + len(name)
        entry = (shared, attrs, status, size, record.operation, name)
        self._shapes[id(shared)] = entry
        return entry

    def _session(self, session: SessionRef) -> tuple[SessionRef, bytes, bytes, bytes, int]:
        """The sid attributes, the client attributes and the link to the handshake span."""
        sid = session.session_id
        if len(session.trace_id) != 32 or len(session.span_id) != 16:
            raise ValueError(f"bad link ids {session.trace_id!r}/{session.span_id!r}")
        ids = attribute("messaging.client.id", sid) + attribute("messaging.socket.io.sid", sid)
        client = b""
        if session.client_address:
            client = attribute("client.address", session.client_address)
            if session.client_port is not None:
                client += attribute("client.port", session.client_port)
        link = _link(session.trace_id, session.span_id)
        if len(self._sessions) >= self._limit:
            self._sessions.clear()
            self.cache_resets += 1
        entry = (session, ids, client, link, len(ids) + len(client) + len(link))
        self._sessions[id(session)] = entry
        return entry

    def _size(self, cache: dict[int, bytes], key: str, size: int) -> bytes:
        encoded = attribute(key, size)
        self._room(cache)
        cache[size] = encoded
        return encoded

    def _ack(self, ack_id: int) -> bytes:
        """``messaging.message.id`` and ``.conversation_id`` of an ack pair."""
        text = str(ack_id)
        encoded = text_attribute(_MESSAGE_ID, text) + text_attribute(_CONVERSATION, text)
        self._room(self._acks)
        self._acks[ack_id] = encoded
        return encoded

    def encode(self, record: PairRecord) -> bytes:
        """The ``Span`` message body."""
        return b"".join(self.parts(record)[1])

    def parts(self, record: PairRecord) -> tuple[int, tuple[bytes, ...]]:
        """The ``Span`` message body in parts (joined once with the whole request) and its
        size."""
        trace_id = record.trace_id
        span_id = record.span_id
        parent = record.parent_span_id
        if len(trace_id) != 32 or len(span_id) != 16:
            raise ValueError(f"bad ids {trace_id!r}/{span_id!r}")
        if parent:  # trace_id (1), span_id (2) and parent_span_id (4) with their tags
            if len(parent) != 16:
                raise ValueError(f"bad parent span id {parent!r}")
            ids = _unhexlify("0a10" + trace_id + "1208" + span_id + "2208" + parent)
        else:
            ids = _unhexlify("0a10" + trace_id + "1208" + span_id)
        session = record.session
        known = self._sessions.get(id(session))
        if known is None or known[0] is not session:
            known = self._session(session)
        error_type = record.error_type
        if error_type is not None or record.outcome is not _OK:
            error_type = pair_error_type(record)
        shared = pair_shared(record, error_type)
        shape = self._shapes.get(id(shared))
        if shape is None or shape[0] is not shared or shape[4] != record.operation:
            shape = self._shape(record, shared, error_type)
        value = record.request_size
        request_size = self._request_sizes.get(value) or self._size(
            self._request_sizes, "messaging.message.body.size", value
        )
        value = record.response_size
        response_size = self._response_sizes.get(value) or self._size(
            self._response_sizes, "messaging.socket.io.response.body.size", value
        )
        ack_id = record.ack_id
        match_key = record.match_key
        if match_key is None:
            conversation = b"" if ack_id is None else self._acks.get(ack_id) or self._ack(ack_id)
        else:
            conversation = self._keys.get((ack_id, match_key)) or self._key(ack_id, match_key)
        rare = b""
        if (
            record.request_payload is not None
            or record.response_payload is not None
            or record.kind is _STREAM
        ):
            rare = self._rare(record)
        linked = record.linked_span_id
        linked_part = b"" if linked is None else _link(trace_id, linked)
        duration = record.duration_s
        start = round(record.start_wall * 1_000_000) * 1000
        size = (
            self._fixed + len(ids) + shape[3] + known[4] + len(request_size)
            + len(response_size) + len(conversation) + len(rare) + len(linked_part)
        )  # fmt: skip
        return size, (
            ids,
            shape[5],
            _pack_times(_T_START, start, _T_END, start + round(duration * 1e9)),
            shape[1],
            _DURATION,
            _pack_double(duration * 1000.0),
            known[1],
            request_size,
            response_size,
            conversation,
            rare,
            known[2],
            self._constant,
            known[3],
            linked_part,
            shape[2],
        )

    def _key(self, ack_id: int | None, match_key: str) -> bytes:
        """``messaging.message.id`` (an ack id, if any) and ``.conversation_id`` (the match
        key) of a pair that has a match key."""
        encoded = b"" if ack_id is None else text_attribute(_MESSAGE_ID, str(ack_id))
        encoded += text_attribute(_CONVERSATION, match_key)
        if len(self._keys) >= self._limit:
            self._keys.clear()
            self.cache_resets += 1
        self._keys[(ack_id, match_key)] = encoded
        return encoded

    @staticmethod
    def _rare(record: PairRecord) -> bytes:
        """A stream's chunk attributes and the captured payloads, in the model's order."""
        parts: list[bytes] = []
        if record.kind is _STREAM:
            parts.append(attribute("messaging.socket.io.chunk_count", record.chunk_count))
            if record.first_chunk_s is not None:
                parts.append(_FIRST_CHUNK + _pack_double(record.first_chunk_s * 1000.0))
        if record.request_payload is not None:
            parts.append(attribute("messaging.socket.io.request.payload", record.request_payload))
        if record.response_payload is not None:
            parts.append(attribute("messaging.socket.io.response.payload", record.response_payload))
        return b"".join(parts)

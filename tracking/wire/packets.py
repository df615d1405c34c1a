"""Typed, immutable packet models shared by the decoder and everything downstream.

The per-frame types are ``typing.NamedTuple``: immutable and typed like frozen dataclasses,
but built at C speed (a frozen dataclass costs a Python-level ``__setattr__`` per field, and
these are made for every frame the proxy relays).  Like any tuple they compare by value.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class EnginePacketType(IntEnum):
    """Engine.IO packet types (engine.io-protocol, "Packet encoding")."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class SocketPacketType(IntEnum):
    """Socket.IO packet types (socket.io-protocol v5, "Packet format")."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


class EnginePacket(NamedTuple):
    """One Engine.IO packet.

    ``data`` is the text after the type character for text packets, or the raw bytes of a
    binary MESSAGE (already base64-decoded when it arrived as ``b<base64>`` in a polling
    payload).  ``size`` is the encoded size on the wire in bytes.
    """

    type: EnginePacketType
    data: str | bytes
    size: int


class SocketPacket(NamedTuple):
    """One Socket.IO packet, with binary attachments already reassembled.

    ``event`` is the event name for EVENT/BINARY_EVENT (``None`` otherwise or when the
    payload does not start with a string).  ``payload`` is the raw JSON text after the
    namespace/ack id (arguments array, CONNECT/CONNECT_ERROR object), parsed only on demand
    by :func:`tracking.wire.socketio.parse_args`.  ``attachments`` are the binary
    attachments of BINARY_EVENT/BINARY_ACK in order.  ``size`` counts the encoded packet
    plus its attachments.
    """

    type: SocketPacketType
    namespace: str
    ack_id: int | None
    event: str | None
    payload: str
    attachments: tuple[bytes, ...]
    size: int


class DecodeFailure(NamedTuple):
    """Something the decoder could not make sense of; it was forwarded unchanged anyway."""

    reason: str
    raw: str | bytes

"""Redaction of whole Engine.IO packets, by :class:`tracking.capture.Capturer`'s rules.

The recorder writes every text MESSAGE through :meth:`PacketRedactor.text`, and a replay
passes live replies through the same rules before comparing them with the recording.  A
packet nothing is masked in keeps its exact text; a masked one is re-encoded (its
Socket.IO header kept, the JSON arguments rewritten).  Binary attachments are kept: they
have no fields to mask.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from socketio_trace_proxy.config.tracking import CaptureSettings, TrackingSettings
from socketio_trace_proxy.tracking.capture import REDACTED, Capturer
from socketio_trace_proxy.tracking.rules import RuleBook
from socketio_trace_proxy.tracking.wire.packets import DecodeFailure, SocketPacketType
from socketio_trace_proxy.tracking.wire.socketio import parse_header

_ARGS_TYPES = (
    SocketPacketType.EVENT,
    SocketPacketType.BINARY_EVENT,
    SocketPacketType.ACK,
    SocketPacketType.BINARY_ACK,
)
_EVENT_TYPES = (SocketPacketType.EVENT, SocketPacketType.BINARY_EVENT)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class PacketRedactor:
    """Masks the configured capture fields in Socket.IO packets."""

    def __init__(self, capture: CaptureSettings, rules: RuleBook | None = None) -> None:
        self._capturer = Capturer(capture)
        self._rules = rules if rules is not None else RuleBook(TrackingSettings())
        self.keys = capture.redact_keys
        self.paths: Mapping[str, tuple[str, ...]] = capture.redact_paths

    @classmethod
    def from_header(cls, keys: tuple[str, ...], paths: Mapping[str, tuple[str, ...]]) -> Any:
        """The redactor a recording's header describes (templates resolve as exact names)."""
        return cls(CaptureSettings(redact_keys=keys, redact_paths=dict(paths)))

    def text(self, packet: str) -> str:
        """A text Engine.IO packet with its Socket.IO payload redacted (``packet`` itself
        when nothing is masked or it is not a MESSAGE)."""
        if packet[:1] != "4":
            return packet
        body = packet[1:]
        parsed = parse_header(body)
        if isinstance(parsed, DecodeFailure):
            return packet
        sp, _ = parsed
        payload = sp.payload
        if not payload:
            return packet
        head = body[: len(body) - len(payload)]
        label = self._label(sp.event)
        if not self._capturer.might_redact(payload, sp.event, label):
            return packet
        new = self.payload(sp.type, payload, sp.event, label)
        return packet if new is None else "4" + head + new

    def payload(
        self, ptype: SocketPacketType, payload: str, event: str | None, label: str | None
    ) -> str | None:
        """The redacted JSON payload of a Socket.IO packet, or None if unchanged."""
        try:
            value = json.loads(payload)
        except (ValueError, RecursionError):
            return _dumps(REDACTED)  # unparsable: no field can be told apart from a secret
        if ptype in _ARGS_TYPES:
            if not isinstance(value, list):
                return None
            named = ptype in _EVENT_TYPES and bool(value) and value[0] == event
            args = value[1:] if named else value
            redacted = self._capturer.redact(args, event, label)
            if redacted == args:
                return None
            return _dumps([value[0], *redacted] if named else redacted)
        if ptype is SocketPacketType.CONNECT and isinstance(value, dict):
            (masked,) = self._capturer.redact([value], None, None)
            return None if masked == value else _dumps(masked)
        return None

    def _label(self, event: str | None) -> str | None:
        if event is None:
            return None
        return self._rules.roles(event).label

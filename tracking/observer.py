"""The interface the relay feeds: raw traffic facts, no decoding on the relay's side.

The relay (``proxy``) calls these methods inline, right after it has forwarded the bytes
they describe; implementations must be cheap, must never block, and must never raise (the
relay still guards every call and counts what escapes).  With tracking disabled the relay
holds no observer at all and decodes nothing.

Per Socket.IO-path request the relay calls :meth:`TrafficObserver.request_arrived` once,
as soon as the request head is in, and passes the :class:`RequestInfo` it returns to every
later call about that request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

from socketio_trace_proxy.tracking.traffic import Direction


class RequestInfo(NamedTuple):
    """What the relay knows about one HTTP request on the Socket.IO path.

    ``query`` holds the decoded query parameters (``EIO``, ``transport``, ``sid``, ``j``,
    ``b64``, ...).  ``traceparent`` is the W3C trace context header the client sent, if any.
    ``arrived_at`` is when the request head arrived, on the observer's own monotonic clock
    (set by :meth:`TrafficObserver.request_arrived`; ``None`` when not known).  ``remote``
    and ``remote_port`` are the client's address and TCP port as the relay's peer (``None``
    when not known); the session's records carry them (``client.address``/``client.port``).

    A ``typing.NamedTuple`` (immutable and typed, like the per-frame packets): one is made
    per relayed Socket.IO request, at C speed by :func:`new_request_info`'s
    ``tuple.__new__``, where a frozen dataclass costs a Python-level ``__init__``.
    """

    method: str
    query: Mapping[str, str]
    remote: str | None = None
    traceparent: str | None = None
    arrived_at: float | None = None
    remote_port: int | None = None


_tuple_new = tuple.__new__


def new_request_info(  # noqa: PLR0917 - the fields
    method: str,
    query: Mapping[str, str],
    remote: str | None = None,
    traceparent: str | None = None,
    arrived_at: float | None = None,
    remote_port: int | None = None,
) -> RequestInfo:
    """``RequestInfo(...)`` without its Python-level ``__new__`` (the compiled tracker
    builds it the same way, inline)."""
    info: RequestInfo = _tuple_new(
        RequestInfo, (method, query, remote, traceparent, arrived_at, remote_port)
    )
    return info


class WebSocketObserver(Protocol):
    """Observes one relayed WebSocket connection, from upgrade to close."""

    def message(self, direction: Direction, data: str | bytes) -> None:
        """A text (``str``) or binary (``bytes``) message was forwarded."""

    # An observer may also have ``observing``: once it is false, the relay stops showing it
    # messages (it still calls ``closed``).

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        """The connection ended; ``initiator`` is the side that closed first (``None``: the
        proxy gave up, e.g. the upstream vanished), ``code`` the close code if there was one."""


class TrafficObserver(Protocol):
    """Observes all Socket.IO-path traffic of one proxy."""

    def request_arrived(
        self,
        method: str,
        query: Mapping[str, str],
        remote: str | None,
        traceparent: str | None,
        remote_port: int | None = None,
    ) -> RequestInfo:
        """A request head arrived on the Socket.IO path (before its body is read, before
        a WebSocket upgrade is forwarded); returns the request's :class:`RequestInfo`,
        stamped with the arrival on the observer's clock."""

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        """A long-polling POST body (client to server) was forwarded upstream."""

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        """A long-polling response (to GET or POST) was forwarded to the client.

        ``body`` is exactly what the upstream sent, still compressed when
        ``content_encoding`` says so; decompressing a copy is the observer's business.
        """

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver | None:
        """A WebSocket was accepted on both legs; returns the observer for its messages,
        or ``None`` when nothing about it is wanted (an unsampled session): the relay then
        forwards its frames without assembling or showing them to anyone."""


class UnstampedRequests:
    """``request_arrived`` for observers that keep no clock of their own: the request's
    facts without an arrival stamp (inherit it beside the other observer methods)."""

    def request_arrived(
        self,
        method: str,
        query: Mapping[str, str],
        remote: str | None,
        traceparent: str | None,
        remote_port: int | None = None,
    ) -> RequestInfo:
        return RequestInfo(method, query, remote, traceparent, None, remote_port)

"""One request as the lean server leg parsed it, and the answers the proxy gives itself.

Owns :class:`LeanRequest`: the head (method, target in origin form, version, header lines
as received, keep-alive), what the legs read of it (the same names as aiohttp's
``web.BaseRequest``, :class:`proxy.headers.ClientRequest`) and its body as it arrives,
either collected whole (bounded) or handed on in chunks.  Also :func:`answer`, the bytes of
a response the proxy writes itself (404, 413, 502, ...).
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import formatdate
from typing import Final
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http import HttpVersion
from multidict import CIMultiDict, MultiDict, MultiDictProxy
from yarl import URL

from socketio_trace_proxy.proxy.lean.head import noted as noted_headers
from socketio_trace_proxy.proxy.polling import connection_line


class Kind(enum.Enum):
    """What a request's body is for."""

    WHOLE = "whole"  # collected whole (the Socket.IO path), bounded by max_message_size
    STREAM = "stream"  # handed on in chunks as it arrives (everything else, HEAD)
    DISCARD = "discard"  # answered by the proxy itself; the body is read and dropped


# The members as module constants: on Python 3.11 the enum class has a ``__getattr__``, so
# each ``Kind.X`` read costs a wrapper object and a Python-level attribute call.
WHOLE: Final = Kind.WHOLE
STREAM: Final = Kind.STREAM
DISCARD: Final = Kind.DISCARD


class BodyLost(Exception):
    """The client went away before its body was complete."""


class LeanRequest:
    """A parsed request (:class:`proxy.headers.ClientRequest`) and its body."""

    __slots__ = (
        "_headers",
        "_query",
        "_waiter",
        "buffered",
        "chunks",
        "complete",
        "expect",
        "has_body",
        "keep_alive",
        "kind",
        "lnames",
        "lost",
        "method",
        "noted",
        "path",
        "raw_headers",
        "raw_path",
        "refused",
        "remote",
        "remote_port",
        "reserved",
        "size",
        "too_large",
        "transport",
        "upgrade",
        "version",
    )

    scheme = "http"

    def __init__(  # noqa: PLR0917 - the head's parts
        self,
        method: str,
        raw_path: str,
        path: str,
        version: HttpVersion,
        raw_headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        transport: asyncio.Transport | None,
        remote: str | None,
        remote_port: int | None = None,
        noted: dict[bytes, bytes] | None = None,
        lnames: list[bytes] | None = None,
    ) -> None:
        self.method = method
        self.raw_path = raw_path  # origin form: path and query as sent
        self.path = path  # percent-decoded, as aiohttp's ``request.path``
        self.version = version
        self.raw_headers = raw_headers
        # The first value of each header the relay reads itself; ``headers`` (all of them,
        # decoded) only when asked for.
        if noted is None:
            noted = noted_headers(raw_headers)
        self.noted = noted
        self.lnames = lnames  # the lines' names in lower case, if the head reader gave them
        self._headers: CIMultiDict[str] | None = None
        self.keep_alive = keep_alive
        self.transport = transport
        self.remote = remote
        self.remote_port = remote_port  # the client's TCP port (the records' client.port)
        upgrade = noted.get(b"upgrade")
        self.upgrade = method == "GET" and upgrade is not None and upgrade.lower() == b"websocket"
        expect = noted.get(b"expect")
        self.expect = None if expect is None else expect.decode("utf-8", "surrogateescape")
        self.has_body = b"transfer-encoding" in noted or noted.get(b"content-length", b"0") not in (
            b"0",
            b"",
        )
        self.kind = STREAM
        self.refused = False  # over max_bodies_in_flight: answered 503, body dropped
        self.too_large = False  # over max_message_size: answered 413, connection closed
        self.reserved = 0  # bytes of max_bodies_in_flight this body holds
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.buffered = 0  # bytes received and not yet taken (STREAM)
        self.complete = False
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None
        self._query: MultiDictProxy[str] | None = None

    @property
    def traceparent(self) -> str | None:
        """The client's first ``traceparent`` (W3C trace context), without a header dict."""
        return self.text(b"traceparent")

    def text(self, lname: bytes) -> str | None:
        """The first value of a noted header (:data:`proxy.lean.head.NOTED`, lower-case
        name), as ``headers`` has it."""
        value = self.noted.get(lname)
        return None if value is None else value.decode("utf-8", "surrogateescape")

    # --- what the legs read (aiohttp's names) ---------------------------------------

    @property
    def headers(self) -> CIMultiDict[str]:
        headers = self._headers
        if headers is None:
            headers = self._headers = CIMultiDict(
                [
                    (n.decode("latin-1"), v.decode("utf-8", "surrogateescape"))
                    for n, v in self.raw_headers
                ]
            )
        return headers

    @property
    def rel_url(self) -> URL:
        return URL(self.raw_path, encoded=True)

    @property
    def query(self) -> Mapping[str, str]:
        if self._query is None:
            _, _, qs = self.raw_path.partition("?")
            self._query = MultiDictProxy(MultiDict(parse_qsl(qs, keep_blank_values=True)))
        return self._query

    @property
    def content_length(self) -> int | None:
        value = self.noted.get(b"content-length")
        return None if value is None or b"transfer-encoding" in self.noted else int(value)

    # --- the body, fed by the connection --------------------------------------------

    def feed(self, data: bytes, limit: int) -> int:
        """Body bytes from the parser; how many the connection now buffers for it."""
        kind = self.kind
        if kind is DISCARD or self.refused or self.too_large:
            return 0
        self.size += len(data)
        if kind is WHOLE and self.size > limit:
            self.too_large = True
            self.chunks.clear()
            self._wake()
            return 0
        self.chunks.append(data)
        if kind is STREAM:
            self.buffered += len(data)
            self._wake()
            return len(data)
        return 0

    def finish(self, lost: bool = False) -> None:
        """The body is complete (or, ``lost``, will never be)."""
        self.complete = True
        self.lost = lost
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def whole(self) -> bytes:
        """The whole body (WHOLE), once complete or too large (then ``b""``)."""
        while not self.complete and not self.too_large:
            await self._wait()
        if self.lost:
            raise BodyLost
        return self.body()

    def body(self) -> bytes:
        """The body collected so far (WHOLE): all of it once complete."""
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def stream(self, taken: Callable[[int], None]) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive (STREAM); ``taken`` is told each chunk's size."""
        chunks = self.chunks
        while True:
            while chunks:
                chunk = chunks.popleft()
                self.buffered -= len(chunk)
                taken(len(chunk))
                yield chunk
            if self.complete:
                if self.lost:
                    raise BodyLost
                return
            await self._wait()


def answer(response: web.Response, version: HttpVersion, keep_alive: bool) -> bytes:
    """The bytes of one of the proxy's own plain-text answers (made by
    :func:`proxy.headers.text_response`), with a ``Date`` (RFC 9110 6.6.1: an origin of a
    response with a clock sends one) and no ``Server``."""
    body = response.body
    assert isinstance(body, bytes)
    return b"".join(
        (
            b"HTTP/%d.%d %d %s\r\n" % (*version, response.status, response.reason.encode()),
            b"Content-Type: %s\r\n" % (response.headers["Content-Type"].encode("latin-1")),
            b"Content-Length: %d\r\n" % len(body),
            b"Date: %s\r\n" % formatdate(usegmt=True).encode("ascii"),
            connection_line(version, keep_alive),
            b"\r\n",
            body,
        )
    )

"""HTTP/1.1 head work of the relay's polling path, sans-IO: header lines in, bytes or facts out.

Owns the per-exchange loops over header lines that the lean leg runs on every long-poll:
the first values of the request headers the relay reads itself (:func:`noted`), the
upstream request head built from the client's lines (:func:`request_head`: hop-by-hop and
replaced lines dropped, the proxy's lines added, the length framed), and whether an
upstream reply may go to the client as the very bytes received (:func:`as_received`,
with the :class:`Seen` facts the serializer and the observer read).

Typed and free of I/O, so the compiled build (``tracking/compiled.py``) compiles it with
mypyc; this Python source is what runs without a compiler, and what the compiled build is
made from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

# Request headers the relay reads itself (their first value: :func:`noted`).
NOTED: Final = frozenset(
    (
        b"connection",
        b"content-length",
        b"expect",
        b"forwarded",
        b"host",
        b"traceparent",
        b"transfer-encoding",
        b"upgrade",
        b"x-forwarded-for",
        b"x-real-ip",
    )
)
# aiohttp's limits for a request line and a header field (its defaults), and for the head.
MAX_TARGET: Final = 8190
MAX_FIELD: Final = 8190
MAX_HEADERS: Final = 128
FORWARDED_BYTES: Final = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
# The client's other address headers (issue 17.15), and every name a server may read as one
# of them once underscores become dashes (CGI-style environ keys make them equal).
ADDRESS_BYTES: Final = frozenset({b"forwarded", b"x-real-ip"})
ADDRESS_LIKE: Final = ADDRESS_BYTES | FORWARDED_BYTES
_UNDERSCORE: Final = 95  # ord("_")


class Refused(Exception):
    """A request head the parser callbacks refuse (its status and reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class RequestHead:
    """A request head's target and header lines as llhttp reads them (httptools'
    ``on_url`` and ``on_header`` callbacks), within aiohttp's limits."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.lnames: list[bytes] = []  # the lines' names in lower case
        self.noted: dict[bytes, bytes] = {}  # :func:`noted` of the lines
        self.started = False  # a head is being read (its target began)

    def on_url(self, url: bytes) -> None:
        self.started = True
        self.url += url
        if len(self.url) > MAX_TARGET:
            raise Refused(414, "URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        headers.append((name, value))
        if len(name) + len(value) > MAX_FIELD or len(headers) > MAX_HEADERS:
            raise Refused(431, "Request Header Fields Too Large")
        # Each name lowered once, here, for what reads the lines after (noted, request_head).
        lname = name.lower()
        self.lnames.append(lname)
        if lname in NOTED and lname not in self.noted:
            self.noted[lname] = value

    def take(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The head's target and lines, read whole; the next head starts empty."""
        url, headers, _, _ = self.take_all()
        return url, headers

    def take_all(
        self,
    ) -> tuple[bytes, list[tuple[bytes, bytes]], list[bytes], dict[bytes, bytes]]:
        """:meth:`take`, and the lines' names in lower case and their :func:`noted`."""
        result = (self.url, self.headers, self.lnames, self.noted)
        self.url = b""
        self.headers = []
        self.lnames = []
        self.noted = {}
        self.started = False
        return result


class TooLarge(Exception):
    """A response body over the relay's limit (:class:`ResponseHead`'s ``limit``)."""


class ResponseHead:
    """A response as llhttp reads it (httptools' ``on_status``, ``on_header``,
    ``on_headers_complete`` and ``on_body`` callbacks): its reason phrase, header lines,
    whether the head is complete, and its body's chunks, at most ``limit`` bytes with what
    came before it (``size``)."""

    def __init__(self) -> None:
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.done = False  # the head is complete
        self.body: list[bytes] = []
        self.size = 0
        self.limit = 0

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            raise TooLarge("upstream response larger than max_message_size")
        self.body.append(body)

    def reset(self) -> None:
        """The next head starts (after an informational response: the body's count goes on)."""
        self.reason = b""
        self.headers = []
        self.done = False

    def start(self, limit: int) -> None:
        """A new response starts, its body (and informational heads) within ``limit`` bytes."""
        self.reset()
        self.body = []
        self.size = 0
        self.limit = limit


def underscored(lname: bytes) -> bool:
    """Whether a lower-case header name is an address header spelled with underscores."""
    # The byte as an integer: CPython's bytes ``in`` first tries the operand as one, and
    # with ``b"_"`` raises and clears a formatted TypeError for every name.
    return _UNDERSCORE in lname and lname.replace(b"_", b"-") in ADDRESS_LIKE


def noted(raw_headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The first value of each :data:`NOTED` header among ``raw_headers``, by lower-case name."""
    out: dict[bytes, bytes] = {}
    for name, value in raw_headers:
        lname = name.lower()
        if lname in NOTED and lname not in out:
            out[lname] = value
    return out


def request_head(  # noqa: PLR0917 - the head's parts
    line: bytes,
    raw_headers: Sequence[tuple[bytes, bytes]],
    dropped: frozenset[bytes],
    guard: bool,
    added: Sequence[bytes],
    length: int,
    lnames: list[bytes] | None = None,
) -> bytes:
    """An upstream request head: the request ``line``, the client's header lines as received
    less those named in ``dropped`` (and, ``guard``, address headers spelled with
    underscores), the ``added`` lines, a ``Content-Length`` unless ``length`` is negative
    (``lnames``: the lines' names in lower case, if known)."""
    parts = [line]
    append = parts.append
    for i in range(len(raw_headers)):
        name, value = raw_headers[i]
        lname = name.lower() if lnames is None else lnames[i]
        if lname in dropped or (guard and underscored(lname)):
            continue
        # Four parts joined once, not three concatenations per line.
        append(name)
        append(b": ")
        append(value)
        append(b"\r\n")
    parts.extend(added)
    if length >= 0:
        append(b"Content-Length: " + str(length).encode("ascii") + b"\r\n")
    append(b"\r\n")
    return b"".join(parts)


def proxy_lines(
    remote: bytes | None, scheme: bytes, noted: dict[bytes, bytes], forwarded: bool, rewrite: bool
) -> list[bytes]:
    """The lines the proxy adds to a request whose client sent no ``Forwarded``: with
    ``forwarded``, ``X-Forwarded-For`` (the client's first value, then its address),
    ``-Proto`` and ``-Host`` (its first ``Host``); with ``rewrite``, ``X-Real-IP`` (its
    address) when it sent one (:func:`proxy.headers.forwarded_for`, ``address_for``)."""
    lines: list[bytes] = []
    if forwarded:
        if remote:
            prior = noted.get(b"x-forwarded-for")
            chain = prior + b", " + remote if prior else remote
            lines.append(b"X-Forwarded-For: " + chain + b"\r\n")
        lines.append(b"X-Forwarded-Proto: " + scheme + b"\r\n")
        host = noted.get(b"host")
        if host:
            lines.append(b"X-Forwarded-Host: " + host + b"\r\n")
    if rewrite and remote and b"x-real-ip" in noted:
        lines.append(b"X-Real-IP: " + remote + b"\r\n")
    return lines


_MAX_TOKEN_SETS: Final = 64  # distinct Connection values kept (clients send a few)
MAX_KNOWN_LINES: Final = 4  # sets of header lines a client connection's lines are kept for


class HeadBuilder:
    """The upstream request heads of one relay configuration, from a request's parts in one
    call: the request line (the upstream's path ``prefix`` before the target), the client's
    lines less ``drop`` (and those its first ``Connection`` value lists, and, ``guard``,
    address headers spelled with underscores), the :func:`proxy_lines` and the length;
    what :meth:`proxy.core.RelayCore.head` builds for a client that sent no ``Forwarded``."""

    def __init__(  # noqa: PLR0917 - the configuration's parts
        self,
        prefix: str,
        drop: frozenset[bytes],
        guard: bool,
        scheme: bytes,
        forwarded: bool,
        rewrite: bool,
    ) -> None:
        self.prefix = prefix
        self.drop = drop
        self.guard = guard
        self.scheme = scheme
        self.forwarded = forwarded
        self.rewrite = rewrite
        self._dropped: dict[bytes, frozenset[bytes]] = {}
        self.cleared = 0  # times the known Connection values were dropped (the table full)
        self.lines_cleared = 0  # times a connection's known header lines were dropped
        self._length_dropped = b"content-length" in drop

    def dropped(self, connection: bytes | None) -> frozenset[bytes]:
        """:attr:`drop` plus the names a ``Connection`` value lists (RFC 9110 7.6.1), as
        :func:`proxy.headers.with_connection_tokens` reads them."""
        if not connection:
            return self.drop
        known = self._dropped.get(connection)
        if known is not None:
            return known
        text = connection.decode("utf-8", "surrogateescape")
        names = set(self.drop)
        for part in text.split(","):
            token = part.strip()
            if token:
                names.add(token.lower().encode("utf-8", "surrogateescape"))
        result = frozenset(names)
        if len(self._dropped) >= _MAX_TOKEN_SETS:
            self._dropped.clear()
            self.cleared += 1
        self._dropped[connection] = result
        return result

    def build(  # noqa: PLR0917 - the request's parts
        self,
        method: str,
        target: str,
        raw_headers: Sequence[tuple[bytes, bytes]],
        noted: dict[bytes, bytes],
        remote: str | None,
        length: int,
        keep: frozenset[bytes] = frozenset(),
        drop: frozenset[bytes] = frozenset(),
        lnames: list[bytes] | None = None,
    ) -> bytes:
        """The head of ``method`` ``target`` (origin form) with the client's ``raw_headers``
        (``noted``: their first values, :func:`noted`; no ``Forwarded`` among them), from a
        client at ``remote``; a ``Content-Length`` unless ``length`` is negative; ``keep``:
        names kept although hop-by-hop, ``drop``: names dropped besides; ``lnames``: the
        lines' names in lower case, if known."""
        line = (method + " " + self.prefix + target + " HTTP/1.1\r\n").encode(
            "utf-8", "surrogateescape"
        )
        address = None if remote is None else remote.encode("utf-8", "surrogateescape")
        added = proxy_lines(address, self.scheme, noted, self.forwarded, self.rewrite)
        dropped = self.dropped(noted.get(b"connection"))
        if keep or drop:
            dropped = (dropped - keep) | drop
        return request_head(line, raw_headers, dropped, self.guard, added, length, lnames)

    def build_known(  # noqa: PLR0917 - the request's parts
        self,
        method: str,
        target: str,
        raw_headers: list[tuple[bytes, bytes]],
        noted: dict[bytes, bytes],
        remote: str | None,
        length: int,
        lnames: list[bytes] | None,
        known: dict[bytes, bytes],
    ) -> bytes:
        """:meth:`build` (no ``keep``, no ``drop``) for a request from a client connection
        that keeps ``known``: the lines built for each set of header lines it sent (at
        most :data:`MAX_KNOWN_LINES`, emptied when full and counted in
        :attr:`lines_cleared`).  What follows the request line is a function of the
        client's lines alone (hence ``noted``), its address (the connection's) and this
        builder's settings, so a poll whose lines were met before is its request line,
        those lines and its length."""
        # The lines as one key: names and values as llhttp read them, which hold no LF;
        # less the Content-Length lines, always dropped (the length goes on the head).
        parts: list[bytes] = []
        skip = self._length_dropped
        for i in range(len(raw_headers)):
            name, value = raw_headers[i]
            if skip and (name.lower() if lnames is None else lnames[i]) == b"content-length":
                continue
            parts.append(name)
            parts.append(value)
        key = b"\n".join(parts)
        lines = known.get(key)
        if lines is None:
            head = self.build(method, target, raw_headers, noted, remote, -1, lnames=lnames)
            lines = head[head.find(b"\r\n") + 2 : -2]
            if len(known) >= MAX_KNOWN_LINES:
                known.clear()
                self.lines_cleared += 1
            known[key] = lines
        line = (method + " " + self.prefix + target + " HTTP/1.1\r\n").encode(
            "utf-8", "surrogateescape"
        )
        if length < 0:
            return line + lines + b"\r\n"
        return line + lines + b"Content-Length: " + str(length).encode("ascii") + b"\r\n\r\n"


class Seen:
    """The response header lines the serializer has to know about, as copied."""

    __slots__ = ("chunked", "content_encoding", "content_type", "framed", "length")

    def __init__(self) -> None:
        self.length: bytes | None = None
        self.content_type: bytes | None = None
        self.content_encoding: bytes | None = None
        self.chunked = False
        self.framed = False  # a "Transfer-Encoding: chunked" line was kept in its place

    def note(self, lname: bytes, value: bytes) -> None:
        """A line kept (``lname``: its name in lower case): the first ``Content-Length``,
        ``Content-Type`` and ``Content-Encoding`` values count."""
        if lname == b"content-length":
            if self.length is None:
                self.length = value
        elif lname == b"content-type":
            if self.content_type is None:
                self.content_type = value
        elif lname == b"content-encoding" and self.content_encoding is None:
            self.content_encoding = value


def as_received(  # noqa: PLR0917 - the reply's parts
    raw: bytes,
    status: int,
    reason: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body_length: int,
    drop: frozenset[bytes],
) -> Seen | None:
    """Whether ``raw``, a whole HTTP/1.1 response received in one read, is byte for byte
    what the relay's serializer would write for it (its parsed ``status``, ``reason``,
    ``headers`` and a body of ``body_length``): the status line as written, no line named in
    ``drop``, every line ``name: value`` (one space, none after the value), framed by a
    ``Content-Length``.  The lines' facts if so, else ``None``."""
    status_line = b"HTTP/1.1 " + str(status).encode("ascii") + b" " + reason + b"\r\n"
    if not raw.startswith(status_line):
        return None
    seen = Seen()
    at = len(status_line)
    for name, value in headers:
        lname = name.lower()
        if lname in drop:
            return None
        # The line is "name: value\r\n" exactly; llhttp read the names and values in order.
        colon = at + len(name)
        end = colon + len(value) + 4
        # Read byte by byte (ints, no slice objects): ": " after the name, CRLF at the end.
        if (
            end > len(raw)
            or raw[colon] != 58
            or raw[colon + 1] != 32
            or raw[end - 2] != 13
            or raw[end - 1] != 10
        ):
            return None
        at = end
        seen.note(lname, value)
    if seen.length is None or at + 2 + body_length != len(raw):
        return None
    return seen

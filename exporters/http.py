"""Blocking HTTP POST for exporter worker threads, with a total deadline, and how a reply is
classified.

Retry rules are those of OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#failures-1) and
of opentelemetry-exporter-otlp-proto-http: 429, 502, 503 and 504 are transient (honouring
``Retry-After``, seconds or an HTTP date), so are connection errors and a missed deadline;
every other non-2xx status is permanent for the payload.  A plugin may widen the transient
set where its receiver says so (OpenObserve answers 500 for a failed write it will accept
again: see :mod:`exporters.openobserve`).

Every request has a total deadline: connect, send, headers and body together.  urllib3 (and
http.client) only bound each socket operation, so a receiver trickling a byte now and then
held a request, and with it the whole export, forever (issue 17, item 11).  Here a watchdog
timer shuts the socket down when the deadline passes, which ends any read in progress.

Nothing a receiver says is kept or logged as it came: reply bodies and exception texts go
through :func:`config.redact.scrub` (the request's credentials and anything that looks like
one masked, length capped), and URLs through :func:`config.redact.redact_url`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import http.client
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from socketio_trace_proxy.config.redact import redact_url, scrub, secret_forms
from socketio_trace_proxy.exporters.plugin import SendResult, Verdict

RETRYABLE = frozenset({429, 502, 503, 504})
GZIP_LEVEL = 1  # a third of level 9's CPU for ~12% more bytes; the output is plain gzip
MAX_REPLY_BYTES = 64 * 1024  # of a reply body read (partial success fits many times over)
# Header values that are not secrets; every other configured value is treated as one.
_PLAIN_HEADERS = frozenset({"content-type", "content-encoding", "user-agent", "stream-name"})
# Errors of a kept-alive connection the receiver had already closed: tried once more, fresh.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def gzip_body(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=GZIP_LEVEL)


def safe_url(url: str) -> str:
    """``url`` as it may be shown (the one redactor: :func:`config.redact.redact_url`)."""
    return redact_url(url)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (RFC 9110: delay-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply; ``headers`` keys are lower case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The secret forms in ``headers``: every value but the plain ones, the credentials part
    of an ``Authorization`` value, and the user's password inside a Basic token."""
    values: list[str] = []
    for name, value in headers.items():
        if name.lower() in _PLAIN_HEADERS:
            continue
        values.append(value)
        scheme, _, credentials = value.strip().partition(" ")
        if credentials:
            values.append(credentials.strip())
        if scheme.lower() == "basic" and credentials:
            with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
                values.extend((decoded, decoded.partition(":")[2]))
    return secret_forms(*values)


class _Watchdog:
    """One thread per poster that shuts the current socket down when an armed deadline
    passes (a thread per request cost more than the request on loopback)."""

    def __init__(self, sock: Callable[[], socket.socket | None]) -> None:
        self._sock = sock
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._fired = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, timeout_s: float) -> None:
        with self._cond:
            self._deadline = time.monotonic() + timeout_s
            self._fired = False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="exporter-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self) -> bool:
        """Stop watching; True if the deadline had passed (and the socket was shut down)."""
        with self._cond:
            self._deadline = None
            return self._fired

    @property
    def fired(self) -> bool:
        return self._fired

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                deadline = self._deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._deadline = None
                self._fired = True
                sock = self._sock()
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


class HttpPoster:
    """One kept-alive connection to one URL, used by one worker thread only."""

    def __init__(self, url: str, headers: Mapping[str, str], secrets: Collection[str] = ()):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact_url(url)!r}")
        self.url = url
        self.safe_url = redact_url(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = dict(headers)
        self.secrets = tuple(
            sorted({*header_secrets(headers), *secret_forms(*secrets)}, key=len, reverse=True)
        )
        self._context = ssl.create_default_context() if self._https else None
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False
        self._watchdog = _Watchdog(self._current_sock)

    def describe(self, text: str) -> str:
        """``text`` from outside (a reply, an exception) made safe to keep and show."""
        return scrub(text, self.secrets)

    def _new_connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._context is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout_s, context=self._context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)

    def _current_sock(self) -> socket.socket | None:
        conn = self._conn
        return conn.sock if conn is not None else None

    def post(self, body: bytes, timeout_s: float) -> Reply | SendResult:
        """The reply, or a RETRY result when none came (refused, reset, deadline missed)."""
        timeout_s = max(timeout_s, 0.001)
        end = time.monotonic() + timeout_s
        watchdog = self._watchdog
        watchdog.arm(timeout_s)
        try:
            try:
                reply = self._exchange(body, end)
            except _STALE:
                if watchdog.fired or self._conn is None or not self._reused:
                    raise
                self._drop()  # the receiver closed the kept-alive connection: once more, fresh
                reply = self._exchange(body, end)
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            if watchdog.disarm() or isinstance(exc, TimeoutError):  # socket timeout: same
                return self._missed(timeout_s)
            reason = self.describe(f"{type(exc).__name__}: {exc}")
            return SendResult(
                Verdict.RETRY,
                error=f"POST {self.safe_url} failed: {reason}",
                key=f"net-{type(exc).__name__}",
            )
        if watchdog.disarm():  # the socket was shut down: what was read may be cut short
            self._drop()
            return self._missed(timeout_s)
        return reply

    def _missed(self, timeout_s: float) -> SendResult:
        return SendResult(
            Verdict.RETRY,
            error=f"POST {self.safe_url}: no complete reply within the {timeout_s:g} s deadline",
            key="deadline",
        )

    def _exchange(self, body: bytes, end: float) -> Reply:
        remaining = max(end - time.monotonic(), 0.001)
        conn = self._conn
        self._reused = conn is not None
        if conn is None:
            conn = self._conn = self._new_connection(remaining)
        conn.timeout = remaining
        if conn.sock is None:
            conn.connect()
            sock: socket.socket = conn.sock  # type: ignore[assignment]  # set by connect()
            # as urllib3 does: no Nagle delay between the request's segments
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            conn.sock.settimeout(remaining)
        conn.request("POST", self._target, body=body, headers=self._headers)
        response = conn.getresponse()
        data = response.read(MAX_REPLY_BYTES)
        headers = {name.lower(): value for name, value in response.getheaders()}
        if response.will_close or not response.isclosed():  # closing, or too long to read
            self._drop()
        return Reply(response.status, headers, data)

    def _drop(self) -> None:
        """Close the connection (the next request opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        self._drop()
        self._watchdog.close()


def classify(
    reply: Reply,
    poster: HttpPoster,
    hint: Mapping[int, str] | None = None,
    retryable: Collection[int] = RETRYABLE,
) -> SendResult:
    """A non-2xx reply as a failed SendResult (``hint`` adds advice per status)."""
    status = reply.status
    text = poster.describe(reply.body[:2048].decode("utf-8", "replace"))
    advice = (hint or {}).get(status)
    error = f"POST {poster.safe_url} -> HTTP {status}" + (f": {text}" if text else "")
    if advice:
        error = f"{error} ({advice})"
    if status in retryable:
        return SendResult(
            Verdict.RETRY,
            status=status,
            error=error,
            key=f"http-{status}",
            retry_after_s=retry_after(reply.headers.get("retry-after")),
        )
    return SendResult(Verdict.REJECT, status=status, error=error, key=f"http-{status}")


def post_batch(
    poster: HttpPoster,
    payload: bytes,
    count: int,
    timeout_s: float,
    *,
    compress: bool,
    rejected_in: Callable[[Reply], tuple[int, str | None]],
    what: str,
    hints: Mapping[int, str] | None = None,
    retryable: Collection[int] = RETRYABLE,
    transient: Callable[[Reply], bool] | None = None,
) -> SendResult:
    """POST one encoded batch of ``count`` records and judge the reply.

    A 2xx reply can still reject part of the batch (OTLP partial success, OpenObserve's
    per-stream ``failed``): ``rejected_in`` reads how many and why from the reply.
    ``transient`` may call a non-2xx reply outside ``retryable`` transient after all.
    """
    reply = poster.post(gzip_body(payload) if compress else payload, timeout_s)
    if isinstance(reply, SendResult):
        return reply
    if not 200 <= reply.status < 300:
        if transient is not None and transient(reply):
            retryable = {*retryable, reply.status}
        return classify(reply, poster, hints, retryable)
    rejected, reason = rejected_in(reply)
    if rejected:
        why = poster.describe(reason or "") or "no reason given"
        return SendResult(
            Verdict.OK,
            rejected=min(rejected, count),
            status=reply.status,
            error=f"{poster.safe_url} rejected {rejected} {what}: {why}",
            key="partial",
        )
    return SendResult(Verdict.OK, status=reply.status)

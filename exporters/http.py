"""Blocking HTTP POST for exporter worker threads, and how a reply is classified.

Retry rules are those of OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#failures-1) and
of opentelemetry-exporter-otlp-proto-http: 429, 502, 503 and 504 are transient (honouring
``Retry-After``, seconds or an HTTP date), so are connection errors and timeouts; every other
non-2xx status is permanent for the payload.  URLs are logged without any userinfo.
"""

from __future__ import annotations

import gzip
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import urllib3

from socketio_trace_proxy.exporters.batching import SendResult, Verdict

RETRYABLE = frozenset({429, 502, 503, 504})
GZIP_LEVEL = 1  # a third of level 9's CPU for ~12% more bytes; the output is plain gzip


def gzip_body(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=GZIP_LEVEL)


def safe_url(url: str) -> str:
    """``url`` without user:password@ (for logs and errors)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


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
    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpPoster:
    """One connection pool, used by one worker thread only."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self.url = url
        self.safe_url = safe_url(url)
        self._headers = dict(headers)
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=1)

    def post(self, body: bytes, timeout_s: float) -> Reply | SendResult:
        """The reply, or a RETRY result when no reply came (refused, reset, timeout)."""
        try:
            response = self._pool.request(
                "POST",
                self.url,
                body=body,
                headers=self._headers,
                timeout=urllib3.Timeout(total=max(timeout_s, 0.001)),
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            return SendResult(
                Verdict.RETRY,
                error=f"POST {self.safe_url} failed: {_describe(exc)}",
                key=f"net-{type(exc).__name__}",
            )
        return Reply(response.status, response.headers, response.data)

    def close(self) -> None:
        self._pool.clear()


def _describe(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason or exc}"


def classify(reply: Reply, url: str, hint: Mapping[int, str] | None = None) -> SendResult:
    """A non-2xx reply as a failed SendResult (``hint`` adds advice per status)."""
    status = reply.status
    text = reply.body[:200].decode("utf-8", "replace").strip()
    advice = (hint or {}).get(status)
    error = f"POST {url} -> HTTP {status}" + (f" {text}" if text else "")
    if advice:
        error = f"{error} ({advice})"
    if status in RETRYABLE:
        return SendResult(
            Verdict.RETRY,
            status=status,
            error=error,
            key=f"http-{status}",
            retry_after_s=retry_after(reply.headers.get("Retry-After")),
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
) -> SendResult:
    """POST one encoded batch of ``count`` records and judge the reply.

    A 2xx reply can still reject part of the batch (OTLP partial success, OpenObserve's
    per-stream ``failed``): ``rejected_in`` reads how many and why from the reply.
    """
    reply = poster.post(gzip_body(payload) if compress else payload, timeout_s)
    if isinstance(reply, SendResult):
        return reply
    if not 200 <= reply.status < 300:
        return classify(reply, poster.safe_url, hints)
    rejected, reason = rejected_in(reply)
    if rejected:
        return SendResult(
            Verdict.OK,
            rejected=min(rejected, count),
            status=reply.status,
            error=f"{poster.safe_url} rejected {rejected} {what}: {reason or 'no reason given'}",
            key="partial",
        )
    return SendResult(Verdict.OK, status=reply.status)

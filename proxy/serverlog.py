"""What the relay's server leg logs about requests that went wrong, without flooding the log.

Owns :class:`Throttled` (a repeated condition logged at most once per interval, with how many
times it happened since the last line) and :class:`ServerLog`, the logger aiohttp's server
is given: a malformed request (aiohttp's ``HttpProcessingError``: bad request line or
headers, ``Content-Length`` with ``Transfer-Encoding``...) is counted and reported through a
:class:`Throttled` warning without a traceback (the traceback at debug), a client that went
away mid-response is counted as a client disconnect at debug, anything else is logged as
aiohttp logs it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp.http_exceptions import HttpProcessingError

from socketio_trace_proxy.proxy.counters import RelayCounters

REPORT_INTERVAL_S: Final = 10.0


class Throttled:
    """One warning per ``interval_s`` at most for a repeated condition, with its count."""

    __slots__ = ("_clock", "_interval", "_log", "_message", "_next", "_pending")

    def __init__(
        self,
        log: logging.Logger,
        message: str,
        interval_s: float = REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._message = message
        self._interval = interval_s
        self._clock = clock
        self._next = 0.0
        self._pending = 0  # occurrences not yet reported

    def hit(self, detail: str) -> None:
        """One more occurrence; logged now if the last line is ``interval_s`` old."""
        self._pending += 1
        now = self._clock()
        if now < self._next:
            return
        self._log.warning(
            "%s: %d in the last %.0f s (latest: %s)",
            self._message,
            self._pending,
            self._interval,
            detail,
            extra={"fields": {"count": self._pending}},
        )
        self._pending = 0
        self._next = now + self._interval


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``logger`` of aiohttp's ``RequestHandler`` (it calls ``debug``, ``warning`` and
    ``exception``), counting into the relay's counters."""

    def __init__(self, logger: logging.Logger, counters: RelayCounters) -> None:
        super().__init__(logger, {})
        self._counters = counters
        self._malformed = Throttled(logger, "malformed HTTP requests refused with 400")

    def _handled(self, exc: object) -> bool:
        """Counted (and logged at debug) here: a malformed request or a vanished client."""
        if isinstance(exc, HttpProcessingError):
            self._counters.malformed_requests += 1
            self._malformed.hit(_first_line(exc))
            return True
        if isinstance(exc, ConnectionError):
            self._counters.client_disconnects += 1
            return True
        return False

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if self._handled(exc):
            self.logger.debug(msg, *args, exc_info=exc, **kw)
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kw)

    def debug(self, msg: object, *args: Any, **kw: Any) -> None:
        # aiohttp logs a bad method as the first request of a connection at debug.
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            self._handled(exc)
        self.logger.debug(msg, *args, **kw)

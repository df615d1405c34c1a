"""The plugin interface of the batching core: what a plugin's ``encode`` returns, what a
``send`` came to, the text helpers every encoder uses (:func:`utf8`: a text UTF-8 cannot
carry is replaced and counted, never a lost batch), and :class:`LogOnce`."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from socketio_trace_proxy.tracking.records import Record


class Verdict(Enum):
    OK = "ok"
    RETRY = "retry"  # transient: try the same payload again later
    REJECT = "reject"  # permanent for this payload: count it failed, do not retry


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one send attempt came to.

    ``rejected`` counts records the receiver refused inside a successful reply (OTLP partial
    success, OpenObserve's per-record ``failed``).  ``key`` groups failures for logging once
    (e.g. ``"http-401"``); ``error`` is the human-readable line (never contains secrets).
    """

    verdict: Verdict
    rejected: int = 0
    status: int | None = None
    error: str | None = None
    key: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Encoded:
    """A batch ready to send; ``count`` is how many records it carries (some may be skipped)."""

    payload: bytes
    count: int
    skipped: int = 0  # records the encoder could not encode (counted failed)
    skip_error: str | None = None
    replaced: int = 0  # records sent with text it could not encode replaced (U+FFFD)


def encode_each(
    records: Sequence[Record],
    encode_one: Callable[[Record], tuple[bytes, bool]],
    join: Callable[[list[bytes]], bytes],
) -> Encoded:
    """A batch encoded record by record, so that a record that cannot be encoded costs
    itself only (issue 17, item 12): ``encode_one`` gives a record's bytes and whether text
    was replaced in them, ``join`` makes the payload of the parts."""
    parts: list[bytes] = []
    skipped = replaced = 0
    error: str | None = None
    for record in records:
        try:
            part, repaired = encode_one(record)
        except Exception as exc:
            skipped += 1
            error = repr(exc)
            continue
        parts.append(part)
        replaced += repaired
    return Encoded(join(parts), len(parts), skipped, error, replaced)


_SURROGATES = re.compile("[\ud800-\udfff]")


def utf8(text: str) -> tuple[bytes, bool]:
    """``text`` as UTF-8, and whether something had to be replaced: a lone surrogate (a JSON
    ``"\\ud800"`` escape decodes to one) cannot be encoded and becomes U+FFFD, so one odd
    string never costs a whole batch (issue 17, item 12)."""
    try:
        return text.encode(), False
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text).encode(), True


def replace_unencodable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (see :func:`utf8`)."""
    return _SURROGATES.sub("\ufffd", text)


class Plugin(Protocol):
    """One exporter's encode/send behaviour; called only from the worker thread."""

    def encode(self, records: Sequence[Record]) -> Encoded: ...

    def send(self, batch: Encoded, timeout_s: float) -> SendResult: ...

    def close(self) -> None: ...


class LogOnce:
    """Logs each distinct failure key once until the next success (then it may log again)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()
        self._limit = 64

    def error(self, key: str, message: str) -> None:
        if key in self._seen:
            self._logger.debug("%s", message)
            return
        if len(self._seen) < self._limit:
            self._seen.add(key)
        self._logger.error("%s (logged once until the next success)", message)

    def reset(self) -> None:
        self._seen.clear()

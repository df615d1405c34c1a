"""Structured one-line logs: every record is one JSON object on one line.

``configure_logging`` installs the formatter on the root logger; extra fields go in
``extra={"fields": {...}}``.  URLs are logged through :func:`redact_url` (the one redactor,
:mod:`config.redact`), which drops credentials and query strings, so secrets never reach the
log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from socketio_trace_proxy.config.redact import redact_url

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class OneLineFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ..., <fields>, "exc": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                out.setdefault(str(key), value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Route all logging through one :class:`OneLineFormatter` handler at ``level``."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(OneLineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level.lower(), logging.INFO))
    # aiohttp's per-request access log would be one line per long-poll: off by default.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


__all__ = ["OneLineFormatter", "configure_logging", "redact_url"]

"""What this program is: its distribution name and installed version (for ``--version``,
the OTLP resource and the exporters' ``User-Agent``)."""

from __future__ import annotations

import importlib.metadata

DISTRIBUTION = "socketio-trace-proxy"


def version() -> str:
    """The installed distribution's version (``0+unknown`` when run from a bare checkout)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def user_agent() -> str:
    return f"{DISTRIBUTION}/{version()}"

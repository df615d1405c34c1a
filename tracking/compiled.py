"""The compiled build: which modules mypyc compiles, and whether this process runs them.

The pure Python modules are the source of truth; ``setup.py`` compiles the modules listed
in :data:`COMPILED_MODULES` with mypyc when it can (``SOCKETIO_TRACE_PROXY_COMPILE``), and
an install without a C compiler runs the same modules as Python.  The list holds typed,
sans-IO modules on the tracker's per-frame path (and the WebSocket tunnel's frame scanner,
``proxy.wsframes``, which reads every frame the relay forwards, the polling path's header
loops, ``proxy.lean.head``, and ``proxy.query``, which reads every Socket.IO request's
query for the observer); modules that build
classes at run time (the records' fast constructors) stay Python.
"""

from __future__ import annotations

import importlib

PACKAGE = "socketio_trace_proxy"

COMPILED_MODULES: tuple[str, ...] = (
    "tracking.traffic",
    "tracking.wire.packets",
    "tracking.wire.engineio",
    "tracking.wire.payload",
    "tracking.wire.socketio",
    "tracking.events",
    "tracking.sessions.state",
    "tracking.sessions.registry",
    "tracking.sessions.packets",
    "tracking.sessions.unconfirmed",
    "tracking.sessions.polling",
    "tracking.sessions.websocket",
    "tracking.sessions.table",
    "tracking.correlation.state",
    "tracking.correlation.pending",
    "tracking.correlation.outcomes",
    "tracking.correlation.lifecycle",
    "tracking.correlation.echo",
    "tracking.correlation.dispatch",
    "tracking.correlation.engine",
    "tracking.sampling",
    "tracking.runtime.ring",
    "tracking.runtime.intake",
    "tracking.query",
    "tracking.ids",
    "tracking.metrics",
    "proxy.wsframes",
    "proxy.lean.head",
    "proxy.query",
)
"""Module names under :data:`PACKAGE` (also repository paths: ``tracking/wire/payload.py``)."""


def compiled_modules() -> dict[str, bool]:
    """Each listed module and whether it was loaded from a compiled extension."""
    result: dict[str, bool] = {}
    for name in COMPILED_MODULES:
        module = importlib.import_module(f"{PACKAGE}.{name}")
        result[name] = not str(getattr(module, "__file__", "")).endswith(".py")
    return result


def compiled_core() -> bool:
    """Whether the tracker's core runs compiled (every listed module an extension)."""
    return all(compiled_modules().values())

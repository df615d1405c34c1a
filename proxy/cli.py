"""The composition root: ``socketio-trace-proxy serve | demo | check-config | replay``.

Only this module wires the pieces together (:func:`start_proxy`): settings -> exporter
sinks -> tracker -> relay (+ admin app).  Bad configuration is reported (file, line,
field) with exit status 2 before any port is opened; SIGTERM/SIGINT shut down gracefully:
stop accepting, close WebSocket sessions, then flush the sinks within a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from yarl import URL

from socketio_trace_proxy.config.about import version
from socketio_trace_proxy.config.checks import tracking_warnings
from socketio_trace_proxy.config.loader import describe_settings
from socketio_trace_proxy.config.settings import Settings
from socketio_trace_proxy.exporters import ExporterConfigError, build_sinks
from socketio_trace_proxy.exporters.openobserve import (
    openobserve_target,
    stored_stream_name,
    stored_stream_notes,
)
from socketio_trace_proxy.proxy.admin import (
    DashboardInfo,
    MonitorSource,
    RelayOnlySource,
    TraceLink,
    TrackerMonitorSource,
    build_admin_app,
)
from socketio_trace_proxy.proxy.demo import EventPrinter, TeeObserver
from socketio_trace_proxy.proxy.logging import configure_logging, redact_url
from socketio_trace_proxy.proxy.options import (
    UsageError,
    apply_overrides,
    check_settings,
    load_configuration,
    parse_hostport,
)
from socketio_trace_proxy.proxy.relay import RelayServer
from socketio_trace_proxy.proxy.replay import command as replay_command
from socketio_trace_proxy.tracking.compiled import compiled_core
from socketio_trace_proxy.tracking.events import SessionEvent
from socketio_trace_proxy.tracking.observer import TrafficObserver
from socketio_trace_proxy.tracking.recording.recorder import Recorder
from socketio_trace_proxy.tracking.runtime import Tracker
from socketio_trace_proxy.tracking.sink import RecordSink

__all__ = [
    "RunningProxy",
    "UsageError",
    "apply_overrides",
    "check_settings",
    "load_configuration",
    "main",
    "openobserve_trace_link",
    "parse_hostport",
    "start_proxy",
]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


class _Lifecycle(Protocol):
    async def start(self) -> None: ...

    async def stop(self, deadline_s: float) -> None: ...


# --- composition ------------------------------------------------------------------------


@dataclass
class RunningProxy:
    """Everything :func:`start_proxy` started, in the order :meth:`stop` undoes it."""

    settings: Settings
    relay: RelayServer
    relay_runner: web.BaseRunner
    address: tuple[str, int]
    admin_runner: web.AppRunner | None = None
    admin_address: tuple[str, int] | None = None
    tracker: _Lifecycle | None = None
    sinks: Sequence[RecordSink] = field(default_factory=tuple)
    recorder: Recorder | None = None

    @property
    def url(self) -> str:
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    async def stop(self) -> None:
        deadline = self.settings.proxy.shutdown_timeout_s
        # Stop accepting, close the WebSocket sessions, answer pending requests.
        await self.relay_runner.cleanup()
        if self.admin_runner is not None:
            await self.admin_runner.cleanup()
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.stop)
        if self.tracker is not None:
            try:
                await asyncio.wait_for(self.tracker.stop(deadline), deadline + 1.0)
            except Exception:
                log.exception("tracker did not stop cleanly")
        log.info("stopped")


def _build_sinks(settings: Settings, environ: Mapping[str, str]) -> list[RecordSink]:
    try:
        return build_sinks(settings.exporters, environ, upstream=settings.proxy.upstream)
    except ExporterConfigError as exc:
        raise UsageError(f"exporters: {exc}") from None


def _upstream_probe(upstream: str, timeout: float) -> Callable[[], Awaitable[bool]]:
    url = URL(upstream)
    host = url.host or "127.0.0.1"
    port = url.port or (443 if url.scheme in ("https", "wss") else 80)

    async def reachable() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    return reachable


async def _listen(runner: web.BaseRunner, listen: str) -> tuple[str, int]:
    """Set ``runner`` up and listen on ``listen``; the address bound."""
    host, port = parse_hostport(listen, "listen")
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound: tuple[str, int] = (host, port)
    for addr in runner.addresses:
        if isinstance(addr, tuple):
            bound = (str(addr[0]), int(addr[1]))
            break
    return bound


def _combined_observer(
    tracker: Tracker | None, recorder: Recorder | None, extra: Sequence[TrafficObserver]
) -> TrafficObserver | None:
    """What the relay tells what it forwarded: ``None`` for a plain relay (nothing is
    decoded), the one observer, or a tee of them."""
    observers: list[TrafficObserver] = (
        ([tracker] if tracker is not None else [])
        + ([recorder] if recorder is not None else [])
        + list(extra)
    )
    if not observers:
        return None
    if len(observers) == 1:
        return observers[0]
    return TeeObserver(observers)


async def start_proxy(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    extra_observers: Sequence[TrafficObserver] = (),
    on_session_event: Callable[[SessionEvent], None] | None = None,
) -> RunningProxy:
    """Wire sinks -> tracker -> relay (+ admin) and start listening."""
    check_settings(settings)
    upstream = settings.proxy.upstream
    assert upstream is not None
    tracker: Tracker | None = None
    sinks: list[RecordSink] = []
    if settings.tracking.enabled:
        sinks = _build_sinks(settings, environ)
        tracker = Tracker(settings.tracking, sinks, on_session_event=on_session_event)
    recorder = _build_recorder(settings)
    observer = _combined_observer(tracker, recorder, extra_observers)

    if recorder is not None and settings.record.path is not None:
        try:
            recorder.start()
        except OSError as exc:
            raise UsageError(f"record.path: cannot write {settings.record.path}: {exc}") from None
    if tracker is not None:
        await tracker.start()
    relay = RelayServer(settings.proxy, observer)
    shutdown_s = settings.proxy.shutdown_timeout_s
    relay_runner = relay.runner(access_log=None, shutdown_timeout=shutdown_s)
    try:
        address = await _listen(relay_runner, settings.proxy.listen)
    except BaseException:
        if tracker is not None:
            await tracker.stop(shutdown_s)
        raise
    running = RunningProxy(
        settings, relay, relay_runner, address, tracker=tracker, sinks=sinks, recorder=recorder
    )
    log.info("compiled core: %s", "yes" if compiled_core() else "no")
    log.info(
        "relay listening",
        extra={
            "fields": {
                "listen": f"{address[0]}:{address[1]}",
                "upstream": redact_url(upstream),
                "tracking": tracker is not None,
            }
        },
    )
    if settings.admin.listen is not None:
        try:
            await _start_admin(running, settings, tracker, relay, upstream)
        except BaseException:
            await running.stop()
            raise
    return running


async def _start_admin(
    running: RunningProxy,
    settings: Settings,
    tracker: Tracker | None,
    relay: RelayServer,
    upstream: str,
) -> None:
    assert settings.admin.listen is not None
    source: MonitorSource
    if tracker is None:  # a plain relay still has health checks and counters
        source = RelayOnlySource(relay.stats)
    else:
        source = TrackerMonitorSource(tracker, relay.stats)
    probe = _upstream_probe(upstream, min(2.0, settings.proxy.connect_timeout_s))
    info = DashboardInfo(
        capture=tracker is not None and settings.tracking.capture.enabled,
        trace_link=openobserve_trace_link(settings) if tracker is not None else None,
    )
    admin_app = build_admin_app(source, settings.admin, probe, info=info, recorder=running.recorder)
    runner = web.AppRunner(
        admin_app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0
    )
    address = await _listen(runner, settings.admin.listen)
    running.admin_runner = runner
    running.admin_address = address
    log.info(
        "admin listening",
        extra={"fields": {"listen": f"{address[0]}:{address[1]}", "tracking": tracker is not None}},
    )


def openobserve_trace_link(settings: Settings) -> TraceLink | None:
    """Where the dashboard opens a record's trace: OpenObserve's trace view, when the
    OpenObserve traces exporter is on (its web UI at ``admin.openobserve_ui_url``, else at the
    exporter's endpoint, without any credentials in it)."""
    oo = settings.exporters.openobserve
    if not oo.endpoint or not oo.traces:
        return None
    target = openobserve_target(oo.endpoint, oo.org)
    ui = settings.admin.openobserve_ui_url or str(URL(target.base).with_user(None))
    # OpenObserve's UI knows the stream by its stored (normalized) name
    return TraceLink.openobserve(ui, target.org, stored_stream_name(oo.traces_stream))


# --- running ----------------------------------------------------------------------------


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _serve(settings: Settings, environ: Mapping[str, str]) -> int:
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    try:
        running = await start_proxy(settings, environ)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        return EXIT_FAILURE
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await running.stop()
    return EXIT_OK


async def _demo(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    # The demo's python-socketio peers are imported only when the demo runs.
    try:
        from socketio_trace_proxy.examples import demo_backend  # noqa: PLC0415
    except ImportError as exc:
        raise UsageError(
            f"demo: {exc.name or 'python-socketio'} is not installed; the demo needs the "
            "'demo' extra: pip install 'socketio-trace-proxy[demo]'"
        ) from None

    backend_host, backend_port = parse_hostport(args.backend, "--backend")
    # Everything is validated before the first port opens; the upstream is filled in below.
    settings = apply_overrides(
        load_configuration(args.config, environ),
        listen=args.listen,
        upstream=f"http://{backend_host}:{backend_port or 1}",
        admin=args.admin,
    )
    backend = await demo_backend.serve(backend_host, backend_port)
    bound = next((a for a in backend.addresses if isinstance(a, tuple)), None)
    backend_url = f"http://{backend_host}:{bound[1] if bound else backend_port}"
    settings = settings.model_copy(
        update={"proxy": settings.proxy.model_copy(update={"upstream": backend_url})}
    )
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    try:
        running = await start_proxy(settings, environ, on_session_event=EventPrinter())
    except BaseException:
        await backend.cleanup()
        raise
    print(f"demo backend on {backend_url}; proxy on {running.url}", flush=True)
    if running.admin_address is not None:
        host, port = running.admin_address
        print(f"dashboard on http://{host}:{port}/", flush=True)
    status = EXIT_OK
    try:
        if args.drive:
            from socketio_trace_proxy.examples.demo_client import ScriptFailed, drive  # noqa: PLC0415

            try:
                # Stay until the never-answered ai_get_info has timed out, to show it.
                await drive(running.url, linger_s=settings.tracking.defaults.timeout + 0.5)
                print("demo client: all steps answered", flush=True)
            except (ScriptFailed, OSError, Exception) as exc:
                print(f"demo client failed: {exc}", file=sys.stderr, flush=True)
                status = EXIT_FAILURE
        else:
            print("point a Socket.IO client at the proxy; Ctrl-C stops", flush=True)
            await stop.wait()
    finally:
        await running.stop()
        await backend.cleanup()
    return status


def _build_recorder(settings: Settings) -> Recorder | None:
    """The recorder, when recording is configured (``record.path``) or the admin API may
    start it; ``None`` keeps a plain relay plain.  With tracking off the relay runs with no
    observer at all (WebSocket frames are not even unmasked), and an idle recorder would be
    one, so there the admin API can start a recording only when ``record.path`` is set."""
    admin = settings.admin.listen is not None and settings.tracking.enabled
    if settings.record.path is None and not admin:
        return None
    return Recorder(
        settings.record, settings.tracking, settings.proxy.socketio_path, version=version()
    )


def _check_config(path: Path, environ: Mapping[str, str]) -> int:
    settings = load_configuration(path, environ)
    print(describe_settings(settings), end="")
    problems = []
    if not settings.proxy.upstream:
        problems.append("proxy.upstream is not set: `serve` will need --upstream")
    problems.extend(stored_stream_notes(settings.exporters.openobserve))
    for line in problems:
        print(f"note: {line}")
    for line in tracking_warnings(settings.tracking):
        print(f"warning: {line}")
    print(f"{path}: OK")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socketio-trace-proxy",
        description="Transparent Socket.IO tracing reverse proxy",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="relay to an upstream and trace it")
    serve.add_argument("--listen", help="HOST:PORT the front end connects to")
    serve.add_argument("--upstream", help="base URL of the Socket.IO backend")
    serve.add_argument("--config", type=Path, help="YAML configuration file")
    serve.add_argument("--admin", help="HOST:PORT of the admin listener, or 'off'")
    serve.add_argument("--record", metavar="FILE", help="record every relayed session to FILE")
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    demo = sub.add_parser("demo", help="run the demo backend behind the proxy")
    demo.add_argument("--drive", action="store_true", help="run the scripted client, then exit")
    demo.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT of the proxy")
    demo.add_argument(
        "--backend", default="127.0.0.1:0", help="HOST:PORT of the demo backend (0: any port)"
    )
    demo.add_argument("--config", type=Path, help="YAML configuration file")
    demo.add_argument("--admin", help="HOST:PORT of the admin listener, or 'off'")
    demo.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning", "error")
    )

    check = sub.add_parser("check-config", help="validate a configuration file and explain it")
    check.add_argument("file", type=Path)
    replay_command.add_parser(sub)
    return parser


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(coro)
    result: int = uvloop.run(coro)
    return result


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    configure_logging(getattr(args, "log_level", "info"))
    try:
        if args.command == "check-config":
            return _check_config(args.file, env)
        if args.command == "serve":
            settings = apply_overrides(
                load_configuration(args.config, env),
                listen=args.listen,
                upstream=args.upstream,
                admin=args.admin,
                record=args.record,
            )
            return _run(_serve(settings, env))
        if args.command == "demo":
            return _run(_demo(args, env))
        if args.command == "replay":
            settings = load_configuration(args.config, env)
            return replay_command.run(args, settings, _run)
    except UsageError as exc:
        print(f"socketio-trace-proxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_FAILURE


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and the demo)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


if __name__ == "__main__":
    sys.exit(main())

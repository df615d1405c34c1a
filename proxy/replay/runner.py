"""Runs replay sessions against a target: one :class:`EngineClient` per session, driven by
the sans-IO :class:`tracking.replay.session.ReplaySession`; ``concurrency`` sessions at a
time, ``sessions`` in all (the recorded ones cycled: copies), with a progress display.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TextIO

import aiohttp

from socketio_trace_proxy.config.record import ReplaySettings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.proxy.replay.client import EngineClient, EngineIOError
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.replay.diff import Comparer
from socketio_trace_proxy.tracking.replay.report import Summary
from socketio_trace_proxy.tracking.replay.script import SessionScript
from socketio_trace_proxy.tracking.replay.session import (
    Close,
    ReplaySession,
    Send,
    SessionResult,
    Upgrade,
    Wait,
)
from socketio_trace_proxy.tracking.traffic import Transport

_MAX_WAIT_S = 1.0  # re-evaluate at least this often
_SLACK_S = 30.0  # a session may overrun its recorded length by this much


class TransportMode(Enum):
    RECORDED = "recorded"  # as the session did: its first transport, its upgrade
    POLLING = "polling"
    WEBSOCKET = "websocket"
    UPGRADE = "upgrade"  # polling, upgraded to WebSocket right after the handshake


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    target: str  # base URL of the backend
    path: str = "/socket.io/"
    speed: float | None = 1.0  # None: as fast as the replies allow
    sessions: int | None = None  # total sessions (default: each recorded one once)
    concurrency: int = 1
    transport: TransportMode = TransportMode.RECORDED
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_s: float = 10.0


class Replayer:
    def __init__(
        self,
        scripts: Sequence[SessionScript],
        options: ReplayOptions,
        tracking: TrackingSettings,
        replay: ReplaySettings,
        redactor: PacketRedactor,
    ) -> None:
        self.scripts = scripts
        self.options = options
        self.tracking = tracking
        self.comparer = Comparer(replay.ignore, replay.ignore_paths)
        self.redactor = redactor
        self.summary = Summary()
        self.running = 0

    @property
    def total(self) -> int:
        return self.options.sessions if self.options.sessions is not None else len(self.scripts)

    def _jobs(self) -> Iterator[tuple[SessionScript, int]]:
        cycle = itertools.cycle(self.scripts)
        for n in range(self.total):
            yield next(cycle), n // max(1, len(self.scripts))

    async def run(self, progress: Callable[[Replayer], None] | None = None) -> Summary:
        started = time.monotonic()
        jobs = self._jobs() if self.scripts else iter(())
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def worker() -> None:
                for script, copy in jobs:
                    self.running += 1
                    try:
                        result = await self.run_one(http, script, copy)
                    finally:
                        self.running -= 1
                    self.summary.add(result)
                    self.summary.elapsed_s = time.monotonic() - started
                    if progress is not None:
                        progress(self)

            workers = max(1, min(self.options.concurrency, self.total))
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        self.summary.elapsed_s = time.monotonic() - started
        return self.summary

    def _upgrade_at(self, script: SessionScript) -> tuple[Transport, float | None]:
        mode = self.options.transport
        if mode is TransportMode.POLLING:
            return Transport.POLLING, None
        if mode is TransportMode.WEBSOCKET:
            return Transport.WEBSOCKET, None
        if mode is TransportMode.UPGRADE:
            return Transport.POLLING, 0.0
        if script.transport is Transport.WEBSOCKET:
            return Transport.WEBSOCKET, None
        return Transport.POLLING, script.upgrade_at

    async def run_one(
        self, http: aiohttp.ClientSession, script: SessionScript, copy: int
    ) -> SessionResult:
        first, upgrade_at = self._upgrade_at(script)
        rs = ReplaySession(
            script,
            self.tracking,
            self.comparer,
            self.redactor,
            speed=self.options.speed,
            upgrade_at=upgrade_at,
            copy=copy,
        )
        wake = asyncio.Event()
        t0 = time.monotonic()

        def now() -> float:
            return time.monotonic() - t0

        def on_packet(data: str | bytes, transport: Transport) -> None:
            rs.received(data, transport, now())
            wake.set()

        url = self.options.target.rstrip("/") + "/" + self.options.path.lstrip("/")
        client = EngineClient(
            http,
            url,
            script.eio,
            on_packet,
            headers=self.options.headers,
            timeout_s=self.options.connect_timeout_s,
        )
        client.on_close(wake.set)
        scale = 0.0 if not self.options.speed else 1.0 / self.options.speed
        deadline = (
            script.end_t * scale
            + max([e.timeout_s for e in script.expectations] + [self.tracking.defaults.timeout])
            + _SLACK_S
        )
        try:
            rs.opened(await client.open(first))
            await self._drive(rs, client, wake, now, deadline)
        except (EngineIOError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            rs.failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        finally:
            await client.close()
        return rs.finish(now())

    async def _drive(
        self,
        rs: ReplaySession,
        client: EngineClient,
        wake: asyncio.Event,
        now: Callable[[], float],
        deadline: float,
    ) -> None:
        while True:
            if now() > deadline:
                rs.failed("the session ran past its recorded length plus its timeouts")
                return
            action = rs.next_action(now())
            if isinstance(action, Close):
                return
            if isinstance(action, Send):
                transport = await client.send(action.packets)
                rs.sent(action, transport, now())
            elif isinstance(action, Upgrade):
                await client.upgrade()
                rs.upgraded()
            elif isinstance(action, Wait):
                if client.closed:
                    rs.server_closed(client.close_reason or "closed")
                    continue
                wake.clear()
                limit = _MAX_WAIT_S if action.until is None else action.until - now()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(0.0, min(limit, _MAX_WAIT_S)))


class Progress:
    """A progress bar on a TTY (redrawn at most ten times a second), plain lines otherwise
    (each tenth of the sessions, and the last)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = self.out.isatty()
        self._last = 0.0
        self._decile = -1

    def __call__(self, r: Replayer) -> None:
        s = r.summary
        done, total = s.sessions, r.total
        if self.tty:
            t = time.monotonic()
            if t - self._last < 0.1 and done < total:
                return
            self._last = t
            width = 30
            fill = int(width * done / total) if total else width
            bar = "#" * fill + "." * (width - fill)
            self.out.write(
                f"\r[{bar}] {done}/{total} sessions, {r.running} running, "
                f"{s.failed_sessions} with problems, {s.elapsed_s:.1f} s"
            )
            if done >= total:
                self.out.write("\n")
            self.out.flush()
            return
        decile = (10 * done) // total if total else 10
        if decile > self._decile or done >= total:
            self._decile = decile
            print(
                f"replay: {done}/{total} sessions done, {s.failed_sessions} with problems, "
                f"{s.elapsed_s:.1f} s",
                file=self.out,
                flush=True,
            )

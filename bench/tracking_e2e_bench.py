"""Tracking end to end: the proxy's CPU per round trip spent on tracking and export.

Builds the tracker the way ``socketio-trace-proxy serve`` does (settings from the packaged
``config/default.yaml``, sinks from :func:`exporters.build_sinks`, optionally the admin
listener's live hub subscribed to it), starts it on a uvloop event loop, and drives it through
the observer API the relay calls (:mod:`tracking.observer`) with AetherTerm-like ack round
trips, ``42N["echo",{...}]`` answered by ``43N[{...}]`` (100 B payloads), on many concurrent
sessions:

* WebSocket: each round trip is two ``message`` calls (the EVENT and its ACK);
* long-polling (Engine.IO v4): a POST carrying the EVENT (``polling_request`` and the POST's
  ``ok`` response) and the pending GET's response carrying the ACK; each of the two
  requests first goes through :meth:`proxy.core.RelayCore.arrival` (its query read, then
  ``request_arrived``), as the relay's lean polling leg does once per request, from a
  parsed request as that leg gets it (:class:`proxy.lean.request.LeanRequest`).

Measured: process CPU time (``time.process_time``, so the exporter threads count) from the
first frame until every exporter has flushed what it was given, divided by round trips;
"driver" is the same loop with a tracker that does nothing (subtracted in "net").  Frames
are paced to ``--rate`` round trips per second (in bursts, one per session), so that the
exporter threads see a load like the relay benchmark's; ``--rate 0`` drives flat out.
Every loop is bounded by a count.

Usage: ``.venv/bin/python bench/tracking_e2e_bench.py [--quick] [--round-trips N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop
from aiohttp.http import HttpVersion11
from multidict import MultiDict, MultiDictProxy

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from socketio_trace_proxy.config.loader import load_settings  # noqa: E402
from socketio_trace_proxy.config.settings import Settings  # noqa: E402
from socketio_trace_proxy.exporters import build_sinks  # noqa: E402
from socketio_trace_proxy.exporters.batching import BatchingSink  # noqa: E402
from socketio_trace_proxy.exporters.plugin import SendResult, Verdict  # noqa: E402
from socketio_trace_proxy.proxy.admin.live import LiveHub  # noqa: E402
from socketio_trace_proxy.proxy.admin.metrics import DurationHistograms  # noqa: E402
from socketio_trace_proxy.proxy.admin.source import TrackerMonitorSource  # noqa: E402
from socketio_trace_proxy.proxy.core import RelayCore  # noqa: E402
from socketio_trace_proxy.proxy.lean.request import LeanRequest  # noqa: E402
from socketio_trace_proxy.proxy.polling import (  # noqa: E402
    RelayedReply,
    observe_reply,
    observe_request,
)
from socketio_trace_proxy.proxy.upstream import UpstreamResponse  # noqa: E402
from socketio_trace_proxy.tracking.compiled import compiled_core  # noqa: E402
from socketio_trace_proxy.tracking.observer import (  # noqa: E402
    RequestInfo,
    TrafficObserver,
    UnstampedRequests,
    WebSocketObserver,
)
from socketio_trace_proxy.tracking.runtime import Tracker  # noqa: E402
from socketio_trace_proxy.tracking.sink import RecordSink  # noqa: E402
from socketio_trace_proxy.tracking.traffic import Direction  # noqa: E402

C2S = Direction.CLIENT_TO_SERVER
S2C = Direction.SERVER_TO_CLIENT
PAYLOAD = {"data": "x" * 88}  # 100 B as JSON
OTLP_URL = "http://127.0.0.1:9/v1/traces"  # never contacted: sends are discarded
PING = '{"upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'


class _NullWs:
    def message(self, direction: Direction, data: str | bytes) -> None:
        pass

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        pass


class NullObserver(UnstampedRequests):
    """Observes nothing: the driver's own cost."""

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        pass

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        pass

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver:
        return _NullWs()


@dataclass(frozen=True, slots=True)
class Result:
    cpu_us: float  # process CPU per round trip
    wall_s: float
    ok_pairs: int  # echo -> ack pairs the tracker made, ok
    exported: int  # records the sinks report sent


def query(**params: str) -> MultiDictProxy[str]:
    """A query as the relay passes it (aiohttp's ``request.query``)."""
    return MultiDictProxy(MultiDict(params))


def event(ack: int) -> str:
    return f"42{ack}" + json.dumps(["echo", PAYLOAD], separators=(",", ":"))


def ack(ack_id: int) -> str:
    return f"43{ack_id}" + json.dumps([PAYLOAD], separators=(",", ":"))


def settings_for(
    export: bool, ndjson: Path, *, otlp: bool = False, session_sample_rate: float = 1.0
) -> Settings:
    """The packaged default; local export on (NDJSON file in ``ndjson``'s place) or off;
    ``otlp``: the OTLP exporter on (its sends discarded, see :func:`discard_sends`)."""
    settings = load_settings(None, {})
    local = settings.exporters.local.model_copy(
        update={"mode": "on", "ndjson_path": str(ndjson)} if export else {"mode": "off"}
    )
    update: dict[str, Any] = {"local": local}
    if otlp:
        update["otlp"] = settings.exporters.otlp.model_copy(update={"endpoint": OTLP_URL})
    exporters = settings.exporters.model_copy(update=update)
    tracking = settings.tracking.model_copy(update={"session_sample_rate": session_sample_rate})
    return settings.model_copy(update={"exporters": exporters, "tracking": tracking})


def discard_sends(sinks: Sequence[RecordSink]) -> None:
    """Every batch the sinks encode is accepted and thrown away instead of POSTed: the
    exporters' encoding is measured, not the HTTP client nor a receiver."""
    for sink in sinks:
        plugin = getattr(sink, "_plugin", None)
        if plugin is not None and hasattr(plugin, "send"):
            plugin.send = _accept


def _accept(batch: Any, timeout_s: float) -> SendResult:
    return SendResult(Verdict.OK)


class Rig:
    """A tracker (or a null observer) with its sinks and, optionally, the admin live hub."""

    def __init__(self, settings: Settings | None, console: Any, admin: bool) -> None:
        self.tracker: Tracker | None = None
        self.sinks: list[RecordSink] = []
        self.hub: LiveHub | None = None
        self.observer: TrafficObserver = NullObserver()
        proxy = load_settings(None, {}).proxy.model_copy(update={"upstream": "http://127.0.0.1:9"})
        if settings is not None:
            self.sinks = build_sinks(settings.exporters, {}, console=console)
            discard_sends(self.sinks)
            self.tracker = Tracker(settings.tracking, self.sinks)
            self.observer = self.tracker
            if admin:
                histograms = DurationHistograms(
                    settings.admin.duration_buckets_s, settings.admin.max_histogram_series
                )
                self.hub = LiveHub(TrackerMonitorSource(self.tracker), settings.admin, histograms)
        # The relay's shared steps (never started: no upstream is contacted); with tracking
        # off (the driver) it holds no observer, as the relay does.
        self.core = RelayCore(proxy, self.tracker)

    async def start(self) -> None:
        if self.tracker is not None:
            await self.tracker.start()
        if self.hub is not None:
            self.hub.start()

    async def flush(self) -> None:
        for sink in self.sinks:
            if isinstance(sink, BatchingSink):
                await sink.flush(30.0)

    async def stop(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
        if self.tracker is not None:
            await self.tracker.stop(5.0)

    def ok_pairs(self) -> int:
        if self.tracker is None:
            return 0
        rules = self.tracker.get_metrics().rules
        return sum(r.outcomes.get("ok", 0) for r in rules if r.rule == "echo -> ack")

    def exported(self) -> int:
        return sum(s.health().sent for s in self.sinks)


async def _paced(
    rig: Rig, rounds: int, sessions: int, rate: float, step: Callable[[int], None]
) -> Result:
    """Runs ``step(i)`` for ``i < rounds`` (each one burst of ``sessions`` round trips) at
    ``rate`` round trips per second, then flushes the exporters; the process CPU of both,
    per round trip."""
    period = sessions / rate if rate > 0 else 0.0
    gc.collect()
    cpu0, wall0 = time.process_time(), time.monotonic()
    for i in range(rounds):
        step(i)
        if period:
            delay = wall0 + (i + 1) * period - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
        elif i % 8 == 7:
            await asyncio.sleep(0)  # let the timer and the loop's callbacks run
    wall = time.monotonic() - wall0
    await rig.flush()
    cpu = time.process_time() - cpu0
    return Result(cpu / (rounds * sessions) * 1e6, wall, rig.ok_pairs(), rig.exported())


async def run_websocket(rig: Rig, sessions: int, round_trips: int, rate: float) -> Result:
    await rig.start()
    legs: list[WebSocketObserver] = []  # the legs shown messages
    opened: list[WebSocketObserver] = []  # every leg (the tunnel calls ``closed`` on each)
    for n in range(sessions):
        leg = rig.observer.websocket_opened(
            RequestInfo("GET", query(EIO="4", transport="websocket"), "127.0.0.1")
        )
        if leg is None:  # left out at the request (not here: the sid is not known yet)
            continue
        opened.append(leg)
        sid = f"ws{n:06d}AAAAAAAAAAAA"
        leg.message(S2C, '0{"sid":"' + sid + '",' + PING[1:])
        if not getattr(leg, "observing", True):
            # What WebSocketTunnel does after the upstream's first messages: an unsampled
            # session's frames are relayed without being assembled or shown to anyone.
            continue
        leg.message(C2S, "40")
        leg.message(S2C, '40{"sid":"ns' + sid + '"}')
        legs.append(leg)
    rounds = max(1, round_trips // sessions)
    events = [event(i) for i in range(rounds)]
    acks = [ack(i) for i in range(rounds)]

    def step(i: int) -> None:
        ev, reply = events[i], acks[i]
        for leg in legs:
            leg.message(C2S, ev)
        for leg in legs:
            leg.message(S2C, reply)

    result = await _paced(rig, rounds, sessions, rate, step)
    for leg in opened:
        leg.closed(C2S, 1000)
    await rig.stop()
    return result


def lean_request(method: str, target: str, body: bytes = b"") -> LeanRequest:
    """A request head as the lean polling leg parses it from socket.io-client (node)."""
    headers = [(b"Host", b"127.0.0.1:8080"), (b"Accept", b"*/*"), (b"Connection", b"keep-alive")]
    if method == "POST":
        headers += [
            (b"Content-Type", b"text/plain;charset=UTF-8"),
            (b"Content-Length", b"%d" % len(body)),
        ]
    path = target.partition("?")[0]
    return LeanRequest(method, target, path, HttpVersion11, headers, True, None, "127.0.0.1", 40000)


Reply = tuple[UpstreamResponse, RelayedReply]


def upstream_reply(request: LeanRequest, content_type: bytes, body: bytes) -> Reply:
    """The backend's 200 as the pool reads it, and the reply the relay writes from it."""
    headers = [(b"Content-Type", content_type), (b"Content-Length", b"%d" % len(body))]
    raw = b"HTTP/1.1 200 OK\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    upstream = UpstreamResponse(200, b"OK", headers, body, True, raw=raw + b"\r\n" + body)
    return upstream, RelayedReply(request, upstream)


async def run_polling(rig: Rig, sessions: int, round_trips: int, rate: float) -> Result:
    """Each request as the lean polling leg observes it: ``RelayCore.arrival`` as its head
    is in, ``observe_request`` for a POST's body, ``observe_reply`` for the reply."""
    await rig.start()
    core = rig.core
    posts: list[LeanRequest] = []
    gets: list[LeanRequest] = []
    text = b"text/plain; charset=UTF-8"

    def exchange(request: LeanRequest, body: bytes | None, reply: Reply) -> None:
        info = core.arrival(request)
        observe_request(core, info, body)
        observe_reply(core, info, reply[0], reply[1])

    for n in range(sessions):
        sid = f"lp{n:06d}AAAAAAAAAAAA"
        handshake = lean_request("GET", "/socket.io/?EIO=4&transport=polling&t=a")
        opened = ('0{"sid":"' + sid + '",' + PING[1:]).encode()
        exchange(handshake, None, upstream_reply(handshake, text, opened))
        target = f"/socket.io/?EIO=4&transport=polling&t=PzYx1Ab.0&sid={sid}"
        connect = lean_request("POST", target, b"40")
        get = lean_request("GET", target)
        exchange(connect, b"40", upstream_reply(connect, b"text/html", b"ok"))
        exchange(get, None, upstream_reply(get, text, ('40{"sid":"ns' + sid + '"}').encode()))
        posts.append(connect)
        gets.append(get)
    rounds = max(1, round_trips // sessions)
    events = [event(i).encode() for i in range(rounds)]
    # The POST's "ok" and each round's ACK as relayed replies (the relay's own work, built
    # before the clock starts: only what it does for the observer is measured).
    ok = upstream_reply(posts[0], b"text/html", b"ok")
    acks = [upstream_reply(gets[0], text, ack(i).encode()) for i in range(rounds)]

    def step(i: int) -> None:
        body, reply = events[i], acks[i]
        for post in posts:
            exchange(post, body, ok)
        for get in gets:
            exchange(get, None, reply)

    result = await _paced(rig, rounds, sessions, rate, step)
    await rig.stop()
    return result


Runner = Callable[[Rig, int, int, float], Any]


def measure(
    runner: Runner,
    settings: Settings | None,
    args: argparse.Namespace,
    round_trips: int,
) -> Result:
    with tempfile.TemporaryFile("w") as console:
        rig = Rig(settings, console, args.admin)
        result: Result = uvloop.run(runner(rig, args.sessions, round_trips, args.rate))
        return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer round trips, one repetition")
    p.add_argument("--round-trips", type=int, help="per measurement (default 40000)")
    p.add_argument("--sessions", type=int, default=50, help="concurrent sessions")
    p.add_argument("--rate", type=float, default=5000.0, help="round trips/s; 0: flat out")
    p.add_argument("--repeat", type=int, help="repetitions, median kept (default 3)")
    p.add_argument(
        "--admin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="subscribe the admin listener's live hub, as serve does (default on)",
    )
    p.add_argument("--transports", default="websocket,polling")
    p.add_argument(
        "--configs",
        default="driver,off,on,otlp,sampled",
        help="driver only, local export off / on, OTLP encoding, session_sample_rate 0.1",
    )
    p.add_argument("--warmup", type=int, default=2000, help="round trips before measuring")
    p.add_argument("--json", type=Path, help="also write the medians here (perf_table.py)")
    args = p.parse_args(argv)
    round_trips = args.round_trips or (10_000 if args.quick else 40_000)
    repeat = args.repeat or (1 if args.quick else 3)
    runners: Mapping[str, Runner] = {"websocket": run_websocket, "polling": run_polling}
    with tempfile.TemporaryDirectory() as tmp:
        ndjson = Path(tmp) / "trace.ndjson"
        known: dict[str, tuple[str, Settings | None]] = {
            "driver": ("driver only", None),
            "off": ("tracking, no export", settings_for(False, ndjson)),
            "on": ("tracking + local export", settings_for(True, ndjson)),
            "otlp": ("tracking + OTLP encoding", settings_for(False, ndjson, otlp=True)),
            "sampled": (
                "sessions sampled 10%",
                settings_for(False, ndjson, session_sample_rate=0.1),
            ),
        }
        config_keys = args.configs.split(",")
        configs = [known[name] for name in config_keys]
        rows: list[dict[str, Any]] = []
        print(
            f"Tracking CPU per round trip: {args.sessions} sessions, {round_trips} round trips "
            f"at {args.rate:.0f}/s, admin hub {'on' if args.admin else 'off'}, "
            f"median of {repeat} [min-max]"
        )
        header = (
            f"{'transport':<11}{'config':<25}{'us/rt':>7}{'net':>7}  {'[min-max]':<13}"
            f"{'ok pairs':>9}{'exported':>10}"
        )
        print(header)
        print("-" * len(header))
        for transport in args.transports.split(","):
            runner = runners[transport]
            if args.warmup:
                measure(runner, known["on"][1], args, args.warmup)
            driver = 0.0
            for key, (name, settings) in zip(config_keys, configs, strict=True):
                results = [measure(runner, settings, args, round_trips) for _ in range(repeat)]
                cpu = [r.cpu_us for r in results]
                median = statistics.median(cpu)
                if settings is None:
                    driver = median
                last = results[-1]
                rows.append(
                    {"transport": transport, "config": key, "cpu_us": median,
                     "net_us": median - driver, "runs": cpu}
                )  # fmt: skip
                spread = f"[{min(cpu):.1f}-{max(cpu):.1f}]"
                print(
                    f"{transport:<11}{name:<25}{median:>7.1f}{median - driver:>7.1f}  "
                    f"{spread:<13}{last.ok_pairs:>9}{last.exported:>10}"
                )
        if args.json is not None:
            args.json.write_text(json.dumps({"compiled": compiled_core(), "rows": rows}))
    print("us/rt: process CPU per round trip (EVENT + ACK), exporter threads included, flushed;")
    print("net: minus the driver's own cost.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Polling micro-benchmark: the proxy's CPU per Engine.IO v4 long-polling exchange.

Starts ``backend.py`` and the proxy as ``relay_bench.py`` does (tracking off, tracking on with
``config/default.yaml``; ``--only`` as there), then drives ``--clients`` keep-alive HTTP
clients in this process doing real Engine.IO v4 polling: open a session and connect the
namespace, then loop POST ``42N["echo","..."]`` (answered ``OK``) + GET for the ack
``43N[...]`` (a ping is answered by a pong in the next POST). After ``--warmup`` seconds it
measures the proxy process tree's user+sys CPU (psutil) until ``--duration`` seconds or
``--round-trips`` round trips have passed, and prints the CPU per round trip (one POST + one
GET) and per HTTP exchange, as median [min-max] over ``--rounds`` interleaved rounds. The
clients are lean (raw request heads, ``httptools`` parsing through ``proxy.upstream``), so
most of the machine is left to the servers.

Usage: ``.venv/bin/python bench/polling_bench.py [--only off,on] [--rounds 3] [--duration 5]
[--baseline ../main-checkout]`` (``--baseline``: the same configs from another checkout,
interleaved, to compare two versions of the relay in one run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import uvloop
from relay_bench import DEFAULT_PROXY_CONFIG, Fleet, Server, make_targets, raise_fd_limit

from socketio_trace_proxy.proxy.upstream import UpstreamPool, UpstreamResponse

RECORD_SEP = b"\x1e"
LIMIT = 16 * 1024 * 1024


class ExchangeFailed(Exception):
    """The server answered something an Engine.IO v4 echo exchange does not expect."""


@dataclasses.dataclass
class Totals:
    round_trips: int = 0
    exchanges: int = 0
    errors: int = 0
    limit: int | None = None  # set when measuring: ``reached`` fires at this many round trips
    reached: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def round_trip(self) -> None:
        self.round_trips += 1
        if self.limit is not None and self.round_trips >= self.limit:
            self.reached.set()


@dataclasses.dataclass(frozen=True, slots=True)
class Measured:
    target: str
    round: int
    seconds: float
    round_trips: int
    exchanges: int
    cpu_s: float
    errors: int

    @property
    def us_per_round_trip(self) -> float:
        return self.cpu_s / max(1, self.round_trips) * 1e6

    @property
    def us_per_exchange(self) -> float:
        return self.cpu_s / max(1, self.exchanges) * 1e6


class PollingClient:
    """One Engine.IO v4 polling session over one keep-alive connection."""

    def __init__(self, host: str, port: int, payload: bytes, totals: Totals) -> None:
        self._pool = UpstreamPool(host, port, max_idle=1)
        self._host = f"Host: {host}:{port}\r\n".encode()
        self._payload = payload
        self._totals = totals
        self._path = b"/socket.io/?EIO=4&transport=polling"
        self._pong = False

    async def _exchange(self, method: bytes, body: bytes = b"") -> bytes:
        head = [method, b" ", self._path, b" HTTP/1.1\r\n", self._host]
        if method == b"POST":
            head.append(b"Content-Type: text/plain;charset=UTF-8\r\n")
            head.append(b"Content-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        resp: UpstreamResponse = await self._pool.request(b"".join(head), body, LIMIT)
        self._totals.exchanges += 1
        if resp.status != 200:
            raise ExchangeFailed(f"{method.decode()} answered {resp.status}: {resp.body[:80]!r}")
        return resp.body

    async def _receive(self, want: bytes) -> bytes:
        """GETs until a packet starting with ``want`` arrives; pings are answered later."""
        while True:
            for packet in (await self._exchange(b"GET")).split(RECORD_SEP):
                if packet == b"2":
                    self._pong = True
                elif packet.startswith(want):
                    return packet
                else:
                    raise ExchangeFailed(f"unexpected packet {packet[:80]!r}")

    async def open(self) -> None:
        handshake = await self._exchange(b"GET")
        if not handshake.startswith(b'0{"sid":"'):
            raise ExchangeFailed(f"bad handshake {handshake[:80]!r}")
        sid = handshake[len(b'0{"sid":"') :].split(b'"', 1)[0]
        self._path += b"&sid=" + sid
        await self._exchange(b"POST", b"40")
        await self._receive(b"40")

    async def run(self, stop: asyncio.Event) -> None:
        ack_id = 0
        while not stop.is_set():
            ack_id += 1
            message = b'42%d["echo","%s"]' % (ack_id, self._payload)
            if self._pong:
                message = b"3" + RECORD_SEP + message
                self._pong = False
            reply = await self._exchange(b"POST", message)
            if reply != b"OK":
                raise ExchangeFailed(f"POST answered {reply[:80]!r}")
            expected = b'43%d["%s"]' % (ack_id, self._payload)
            if await self._receive(b"43") != expected:
                raise ExchangeFailed(f"wrong ack for id {ack_id}")
            self._totals.round_trip()

    def close(self) -> None:
        self._pool.close()


async def drive(server: Server, args: argparse.Namespace, target: str, rnd: int) -> Measured:
    """Loads ``server`` with ``args.clients`` sessions; measures the window after warm-up."""
    totals = Totals()
    stop = asyncio.Event()
    host, port = "127.0.0.1", server.port
    clients = [PollingClient(host, port, b"x" * args.payload, totals) for _ in range(args.clients)]
    await asyncio.gather(*(c.open() for c in clients))

    async def guarded(client: PollingClient) -> None:
        try:
            await client.run(stop)
        except Exception as exc:
            totals.errors += 1
            print(f"  client failed: {exc}", file=sys.stderr)

    tasks = [asyncio.create_task(guarded(c)) for c in clients]
    try:
        await asyncio.sleep(args.warmup)
        cpu0, rt0, ex0, t0 = server.cpu_s(), totals.round_trips, totals.exchanges, time.monotonic()
        totals.limit = rt0 + args.round_trips
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(totals.reached.wait(), args.duration)
        cpu1, rt1, ex1, t1 = server.cpu_s(), totals.round_trips, totals.exchanges, time.monotonic()
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
        for c in clients:
            c.close()
    return Measured(target, rnd, t1 - t0, rt1 - rt0, ex1 - ex0, cpu1 - cpu0, totals.errors)


def fmt(values: Sequence[float], unit: str) -> str:
    med = statistics.median(values)
    return f"{med:8.0f} {unit} [{min(values):.0f}-{max(values):.0f}]"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default="off,on", help="proxy configs: off,on,quiet,naive")
    p.add_argument("--clients", type=int, default=20, help="concurrent sessions (default 20)")
    p.add_argument("--payload", type=int, default=100, help="echo payload bytes (default 100)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds at most")
    p.add_argument("--round-trips", type=int, default=100_000, help="measured round trips at most")
    p.add_argument("--proxy-config", default=str(DEFAULT_PROXY_CONFIG), help="tracking-on config")
    p.add_argument(
        "--baseline",
        help="another checkout (e.g. a git worktree of main): its proxy runs the same configs, "
        "interleaved, as NAME@base",
    )
    args = p.parse_args(argv)
    if args.baseline:
        args.baseline = str(Path(args.baseline).resolve())
    # make_targets' switches: nginx is not a Python relay and is left to relay_bench.py.
    args.no_nginx = True
    return args


async def run(args: argparse.Namespace) -> list[Measured]:
    workdir = Path(tempfile.mkdtemp(prefix="polling-bench-"))
    fleet = Fleet(workdir)
    targets = [t for t in make_targets(args) if t.command is not None]
    if args.baseline:
        targets += [
            dataclasses.replace(
                t, name=f"{t.name}@base", env={**t.env, "PYTHONPATH": args.baseline}
            )
            for t in targets
        ]
    results: list[Measured] = []
    try:
        backend = fleet.start_backend()
        servers = {t.name: fleet.start(t.name, t, backend.url) for t in targets}
        for name, server in servers.items():
            print(f"{name}: pid {server.popen.pid} on {server.url}", file=sys.stderr)
        for rnd in range(args.rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            for t in order:
                res = await drive(servers[t.name], args, t.name, rnd)
                results.append(res)
                print(
                    f"  round {rnd} {t.name:<6} {res.round_trips / res.seconds:7.0f} rt/s "
                    f"{res.us_per_round_trip:6.0f} us/rt {res.us_per_exchange:6.0f} us/exchange"
                    + (f" errors {res.errors}" if res.errors else ""),
                    file=sys.stderr,
                )
    finally:
        fleet.stop_all()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    results = uvloop.run(run(args))
    print(
        f"\nEngine.IO v4 polling echo, {args.clients} clients, {args.payload} B payload, "
        f"{args.rounds} round(s) of <= {args.duration}s: proxy user+sys CPU, median [min-max]"
    )
    print(f"{'config':<10}{'round trips/s':>30}{'CPU per round trip':>30}{'CPU per exchange':>30}")
    for name in dict.fromkeys(r.target for r in results):
        rows = [r for r in results if r.target == name]
        rate = fmt([r.round_trips / r.seconds for r in rows], "rt/s")
        per_rt = fmt([r.us_per_round_trip for r in rows], "us")
        per_ex = fmt([r.us_per_exchange for r in rows], "us")
        errors = sum(r.errors for r in rows)
        print(
            f"{name:<10}{rate:>30}{per_rt:>30}{per_ex:>30}"
            + (f"  errors {errors}" if errors else "")
        )
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

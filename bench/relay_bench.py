"""Relay benchmark (issue 2 "Benchmark"): echo load direct vs. through proxies, as ratios to direct.

Runs the same Socket.IO echo load (node socket.io-client clients in ``bench/js/load.js``,
closed-loop emit-with-ack) on WebSocket and long-polling with 100 B and 10 KiB payloads
against: the backend directly, our proxy with tracking off and on (AetherTerm default
config), the naive aiohttp relay (``bench/naive_relay.py``) and nginx with 1 worker when
installed. Configurations run interleaved, in rotated order, for several rounds; each ratio
is taken against direct in the same round and the median over rounds is printed. Then each
proxy is restarted fresh and holds idle WebSocket sessions to measure RSS per session.

Usage: ``.venv/bin/python bench/relay_bench.py [--quick] [--only direct,naive,...] [--json F]``
(``cd bench/js && npm ci`` first). ``--mode upgrade`` runs ``upgrade_bench.py`` instead (the
time from connect to the first ack after the polling -> WebSocket upgrade) with its options.
Loopback only; every child process is bounded in time and stopped by this script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
LOAD_JS = BENCH / "js" / "load.js"
DEFAULT_PROXY_CONFIG = ROOT / "config" / "default.yaml"
KIB = 1024

# Goals from issue 2 (tracking on) and the reference figures it quotes (nginx, naive relay).
GOAL_WS = 0.85
GOAL_POLLING = 0.70
GOAL_P50 = 1.2
GOAL_IDLE_KIB = 24.0


@dataclass(frozen=True, slots=True)
class Target:
    """One configuration under test: how to start it (``None``: direct, nothing to start)."""

    name: str
    label: str
    command: Callable[[int, str, Path], list[str]] | None = None
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[int, str, Path], None] | None = None
    idle: bool = True  # also measure its memory per idle session


@dataclass(frozen=True, slots=True)
class Scenario:
    transport: str
    payload: int

    @property
    def label(self) -> str:
        size = f"{self.payload // KIB} KiB" if self.payload >= KIB else f"{self.payload} B"
        return f"{self.transport} {size}"


@dataclass(frozen=True, slots=True)
class RunResult:
    target: str
    scenario: Scenario
    round: int
    acks: int
    acks_per_s: float
    p50_us: float
    p99_us: float
    proxy_cpu_s: float | None
    backend_cpu_s: float
    errors: int
    note: str | None = None
    loadgen_cpu_s: float = 0.0
    sampled_share: float | None = None  # session sampling: share of this round's sessions traced


@dataclass(frozen=True, slots=True)
class IdleResult:
    target: str
    sessions: int
    rss_before: int
    rss_after: int
    failed: int

    @property
    def kib_per_session(self) -> float:
        return (self.rss_after - self.rss_before) / max(1, self.sessions) / KIB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raise_fd_limit() -> None:
    """Children inherit this: 2,000 idle sessions need ~4,000 descriptors in a proxy."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def proxy_cli_command() -> list[str]:
    script = Path(PYTHON).parent / "socketio-trace-proxy"
    if script.exists():
        return [PYTHON, str(script)]
    return [PYTHON, "-m", "socketio_trace_proxy.proxy.cli"]


def nginx_conf(port: int, upstream: str, workdir: Path) -> None:
    host_port = upstream.split("://", 1)[1].rstrip("/")
    user = "user root;\n" if os.geteuid() == 0 else ""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / sub).mkdir(exist_ok=True)
    (workdir / "nginx.conf").write_text(
        f"""{user}worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 16000; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    client_max_body_size 16m;
    upstream backend {{ server {host_port}; keepalive 256; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""
    )


def aiohttp_leg_config(_port: int, _upstream: str, workdir: Path) -> None:
    """The config of the ``off-aiohttp`` target: aiohttp's web server as the client leg."""
    (workdir / "aiohttp-leg.yaml").write_text("proxy:\n  server_leg: aiohttp\n")


def no_export_config(base: Path, out: Path, session_sample_rate: float = 1.0) -> None:
    """``base`` with the local exporters (NDJSON file, console lines) switched off (and
    ``tracking.session_sample_rate`` set)."""
    data = yaml.safe_load(base.read_text()) if base.exists() else {}
    data = data or {}
    data.setdefault("exporters", {}).setdefault("local", {})["mode"] = "off"
    if session_sample_rate < 1.0:
        data.setdefault("tracking", {})["session_sample_rate"] = session_sample_rate
    out.write_text(yaml.safe_dump(data, sort_keys=False))


def make_targets(args: argparse.Namespace) -> list[Target]:
    targets = [Target("direct", "direct")]
    cli = proxy_cli_command()
    config = Path(args.proxy_config)

    def ours(port: int, upstream: str, workdir: Path) -> list[str]:
        # Each instance gets its own admin listener (the default port would collide).
        admin = f"127.0.0.1:{free_port()}"
        return [
            *cli, "serve",
            "--listen", f"127.0.0.1:{port}",
            "--upstream", upstream,
            "--admin", admin,
            "--log-level", "warning",
        ]  # fmt: skip

    def ours_on(port: int, upstream: str, workdir: Path) -> list[str]:
        cmd = ours(port, upstream, workdir)
        return [*cmd, "--config", str(config)] if config.exists() else cmd

    def ours_on_quiet(port: int, upstream: str, workdir: Path) -> list[str]:
        return [*ours(port, upstream, workdir), "--config", str(workdir / "no-export.yaml")]

    targets.append(
        Target("off", "proxy, tracking off", ours, env={"SOCKET_TRACKING_ENABLED": "false"})
    )
    targets.append(
        Target("on", "proxy, tracking on", ours_on, env={"SOCKET_TRACKING_ENABLED": "true"})
    )
    # The same proxy with aiohttp's web server on the client side (issue 14's before).
    targets.append(
        Target(
            "off-aiohttp",
            "tracking off, aiohttp leg",
            lambda p, u, w: [*ours(p, u, w), "--config", str(w / "aiohttp-leg.yaml")],
            env={"SOCKET_TRACKING_ENABLED": "false"},
            prepare=aiohttp_leg_config,
        )
    )
    # The default config exports locally (NDJSON file + a console line per pair) when no
    # remote exporter is set; this variant shows what tracking costs without that export.
    targets.append(
        Target(
            "quiet",
            "tracking on, no export",
            ours_on_quiet,
            env={"SOCKET_TRACKING_ENABLED": "true"},
            prepare=lambda _p, _u, w: no_export_config(config, w / "no-export.yaml"),
            idle=False,
        )
    )
    # Head-based session sampling: one session in ten decoded, the rest only relayed.
    targets.append(
        Target(
            "sampled",
            "tracking on, 10% sessions",
            lambda p, u, w: [*ours(p, u, w), "--config", str(w / "sampled.yaml")],
            env={"SOCKET_TRACKING_ENABLED": "true"},
            prepare=lambda _p, _u, w: no_export_config(config, w / "sampled.yaml", 0.1),
            idle=False,
        )
    )
    if getattr(args, "pure_tree", None):  # polling_bench.py has no such option
        # The same configs on the pure Python modules: a copy of the package without the
        # compiled extensions, first on the proxy's PYTHONPATH.
        pure = {"PYTHONPATH": str(Path(args.pure_tree).resolve())}
        for name in ("quiet", "sampled"):
            base = next(t for t in targets if t.name == name)
            targets.append(
                Target(
                    f"{name}-pure",
                    f"{base.label} (pure)",
                    base.command,
                    env={**base.env, **pure},
                    prepare=base.prepare,
                    idle=False,
                )
            )
    targets.append(
        Target(
            "naive",
            "naive aiohttp relay",
            lambda port, upstream, _w: [
                PYTHON,
                str(BENCH / "naive_relay.py"),
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                upstream,
            ],
        )
    )
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if nginx is not None and not args.no_nginx:
        targets.append(
            Target(
                "nginx",
                "nginx, 1 worker",
                lambda port, upstream, w: [nginx, "-p", str(w), "-c", str(w / "nginx.conf")],
                prepare=nginx_conf,
            )
        )
    wanted = set(args.only.split(",")) if args.only else None
    if wanted is not None:
        unknown = wanted - {t.name for t in targets} - {"nginx"}
        if unknown:
            raise SystemExit(f"unknown --only names: {sorted(unknown)}")
        targets = [t for t in targets if t.name in wanted or t.name == "direct"]
    return targets


_SAMPLING_COUNTERS = ("socketio_proxy_handshakes_total", "socketio_proxy_sampled_sessions_total")


def sampling_counts(admin: str) -> tuple[int, int] | None:
    """Session sampling's handshakes and sampled sessions so far, from our proxy's admin
    listener at ``admin`` (host:port, its ``/metrics``); ``None`` without sampling (tracking
    off or every session traced)."""
    try:
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except Exception:
        return None
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _SAMPLING_COUNTERS:
            found[name] = int(float(value))
    if len(found) < len(_SAMPLING_COUNTERS):
        return None
    return found[_SAMPLING_COUNTERS[0]], found[_SAMPLING_COUNTERS[1]]


class Server:
    """A child process serving HTTP on a loopback port; stopped on exit."""

    def __init__(
        self, name: str, argv: list[str], port: int, env: dict[str, str], log: Path
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("wb")
        # Nothing is exported anywhere: no OpenObserve/OTLP settings reach the children.
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENOBSERVE_", "OTEL_"))
        }
        full_env = {**inherited, "PYTHONPATH": str(ROOT), **env}
        self.popen = subprocess.Popen(
            argv,
            cwd=log.parent,  # files a server writes (e.g. the local NDJSON export) stay there
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.process = psutil.Process(self.popen.pid)
        # our proxy's admin listener (its Prometheus /metrics), if the command names one
        self.admin = argv[argv.index("--admin") + 1] if "--admin" in argv[:-1] else None

    def sampling_counts(self) -> tuple[int, int] | None:
        """Session sampling's handshakes and sampled sessions so far (see
        :func:`sampling_counts`)."""
        return sampling_counts(self.admin) if self.admin is not None else None

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        """Ready once a Socket.IO polling handshake through this server succeeds."""
        deadline = time.monotonic() + timeout_s
        url = f"{self.url}/socket.io/?EIO=4&transport=polling"
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200 and resp.read(1) == b"0":
                        return
            except Exception as exc:
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become ready ({last}); log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_s(self) -> float:
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int:
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log_file.close()


class Fleet:
    """Starts servers and guarantees they are all stopped."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[Server] = []

    def start(self, name: str, target: Target, upstream: str) -> Server:
        assert target.command is not None
        port = free_port()
        tdir = self.workdir / f"{name}-{port}"
        tdir.mkdir()
        if target.prepare is not None:
            target.prepare(port, upstream, tdir)
        server = Server(
            name, target.command(port, upstream, tdir), port, target.env, tdir / "log.txt"
        )
        self.servers.append(server)
        server.wait_ready()
        return server

    def start_backend(self) -> Server:
        port = free_port()
        server = Server(
            "backend",
            [PYTHON, str(BENCH / "backend.py"), "--port", str(port)],
            port,
            {},
            self.workdir / "backend.log",
        )
        self.servers.append(server)
        server.wait_ready()
        return server

    def stop(self, server: Server) -> None:
        server.stop()
        self.servers.remove(server)

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()


def node_lines(
    argv: list[str], timeout_s: float, cpu: list[Callable[[], float]] | None = None
) -> Generator[dict[str, Any], None, None]:
    """Runs the node load generator, yielding its JSON lines; kills it past ``timeout_s``.
    ``cpu`` (if given) receives a function returning the generator's CPU seconds so far."""
    proc = subprocess.Popen(
        ["node", str(LOAD_JS), *argv],
        cwd=BENCH / "js",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    if cpu is not None:
        node = psutil.Process(proc.pid)

        def node_cpu_s() -> float:
            with contextlib.suppress(psutil.Error):
                t = node.cpu_times()
                return float(t.user + t.system)
            return 0.0

        cpu.append(node_cpu_s)
    deadline = time.monotonic() + timeout_s
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if time.monotonic() > deadline:
                break
            line = raw.strip()
            if line:
                yield json.loads(line)
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_echo(
    target: Target,
    *,
    url: str,
    proxy: Server | None,
    backend: Server,
    scenario: Scenario,
    rnd: int,
    args: argparse.Namespace,
) -> RunResult:
    argv = [
        "--mode", "echo",
        "--url", url,
        "--transport", scenario.transport,
        "--clients", str(args.clients),
        "--payload", str(scenario.payload),
        "--warmup", str(args.warmup),
        "--duration", str(args.duration),
        *([] if args.deflate else ["--no-deflate"]),
    ]  # fmt: skip
    timeout = args.warmup + args.duration + 60
    proxy_cpu0 = proxy_cpu1 = backend_cpu0 = backend_cpu1 = load_cpu0 = load_cpu1 = 0.0
    result: dict[str, Any] = {}
    load_cpu: list[Callable[[], float]] = []
    # Session sampling decides per session (from its sid): this round's share of traced
    # sessions is binomial around the rate (50 clients at 0.1: 2-8 of them in most rounds),
    # and the proxy's CPU per ack goes with it.
    counts0 = proxy.sampling_counts() if proxy else None
    counts1 = None
    for msg in node_lines(argv, timeout, load_cpu):
        phase = msg.get("phase")
        if phase == "start":
            proxy_cpu0 = proxy.cpu_s() if proxy else 0.0
            backend_cpu0 = backend.cpu_s()
            load_cpu0 = load_cpu[0]()
        elif phase == "end":
            proxy_cpu1 = proxy.cpu_s() if proxy else 0.0
            backend_cpu1 = backend.cpu_s()
            load_cpu1 = load_cpu[0]()
            if counts0 is not None and proxy is not None:  # after the window: not measured
                counts1 = proxy.sampling_counts()
        elif phase == "result":
            result = msg
    acks = int(result.get("acks", 0))
    errors = int(result.get("ack_errors", 0)) + int(result.get("connect_failures", 0))
    share = None
    if counts0 is not None and counts1 is not None and counts1[0] > counts0[0]:
        share = (counts1[1] - counts0[1]) / (counts1[0] - counts0[0])
    return RunResult(
        target=target.name,
        scenario=scenario,
        round=rnd,
        acks=acks,
        acks_per_s=float(result.get("acks_per_s", 0.0)),
        p50_us=float(result.get("p50_us") or "nan"),
        p99_us=float(result.get("p99_us") or "nan"),
        proxy_cpu_s=(proxy_cpu1 - proxy_cpu0) if proxy else None,
        backend_cpu_s=backend_cpu1 - backend_cpu0,
        errors=errors,
        note=result.get("error"),
        loadgen_cpu_s=load_cpu1 - load_cpu0,
        sampled_share=share,
    )


def measure_idle(
    fleet: Fleet, target: Target, backend: Server, args: argparse.Namespace, *, deflate: bool
) -> IdleResult | None:
    """RSS delta of a fresh instance of ``target`` over ``args.idle_sessions`` idle sessions.

    ``deflate``: whether the clients offer permessage-deflate (each leg that accepts it keeps
    zlib state per connection, which dominates the figure).
    """
    server = fleet.start(f"idle-{target.name}", target, backend.url) if target.command else None
    measured = server if server is not None else backend
    try:
        # Warm up first: imports, pools and first-connection allocations are not per session.
        pmd = [] if deflate else ["--no-deflate"]
        warm = ["--mode", "idle", "--url", measured.url, "--clients", "20", "--hold", "0", *pmd]
        warm += ["--transport", args.idle_transport]
        for _ in node_lines(warm, 60):
            pass
        time.sleep(args.settle)
        before = measured.rss()
        idle = [
            "--mode", "idle",
            "--url", measured.url,
            "--clients", str(args.idle_sessions),
            "--hold", str(args.settle * 4 + 30),
            "--batch", "100",
            "--transport", args.idle_transport,
            *pmd,
        ]  # fmt: skip
        after = before
        connected = failed = 0
        gen = node_lines(idle, args.settle * 4 + 120)
        for msg in gen:
            if msg.get("phase") == "ready":
                connected = int(msg.get("connected", 0))
                failed = int(msg.get("failed", 0))
                time.sleep(args.settle)
                after = measured.rss()
                break
        gen.close()  # closes node's stdin: it disconnects everything and exits
        if connected == 0:
            return None
        return IdleResult(target.name, connected, before, after, failed)
    finally:
        if server is not None:
            fleet.stop(server)


def fmt_ratio(values: Sequence[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.2f}x"
    return f"{med:.2f}x [{min(values):.2f}-{max(values):.2f}]"


def report(
    targets: list[Target],
    scenarios: list[Scenario],
    runs: list[RunResult],
    idle: dict[tuple[str, bool], IdleResult],
    args: argparse.Namespace,
) -> dict[str, dict[str, float]]:
    """Prints the tables; returns the medians per scenario/target used for the goal check."""
    by = {(r.target, r.scenario, r.round): r for r in runs}
    medians: dict[str, dict[str, float]] = {}
    budgets: list[str] = []
    print()
    print(
        f"Echo load: {args.clients} node socket.io-client clients, closed-loop emit-with-ack, "
        f"{args.rounds} round(s) x {args.duration}s (+{args.warmup}s warm-up) per config, "
        "interleaved. Ratios are to direct in the same round: median [min-max] over rounds."
    )
    header = (
        f"{'scenario':<17}{'config':<22}{'throughput':>24}{'p50':>24}{'p99':>24}"
        f"{'proxy CPU':>13}{'backend CPU':>13}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for sc in scenarios:
        direct = [by[("direct", sc, r)] for r in range(args.rounds) if ("direct", sc, r) in by]
        if direct:
            d_thr = statistics.median(r.acks_per_s for r in direct)
            d_p50 = statistics.median(r.p50_us for r in direct)
            d_p99 = statistics.median(r.p99_us for r in direct)
            d_bcpu = statistics.median(r.backend_cpu_s / max(1, r.acks) * 1e6 for r in direct)
            print(
                f"{sc.label:<17}{'direct (absolute)':<22}{d_thr:>18.0f} ack/s"
                f"{d_p50 / 1000:>21.2f} ms{d_p99 / 1000:>21.2f} ms{'-':>13}"
                f"{d_bcpu:>10.0f} us{sum(r.errors for r in direct):>8}"
            )
            budgets.append(_cpu_line(f"{sc.label}  direct", direct))
        for t in targets:
            if t.name == "direct":
                continue
            thr: list[float] = []
            p50: list[float] = []
            p99: list[float] = []
            cpu: list[float] = []
            bcpu: list[float] = []
            errors = 0
            for rnd in range(args.rounds):
                run = by.get((t.name, sc, rnd))
                base = by.get(("direct", sc, rnd))
                if run is None or base is None or run.acks == 0 or base.acks == 0:
                    continue
                thr.append(run.acks_per_s / base.acks_per_s)
                p50.append(run.p50_us / base.p50_us)
                p99.append(run.p99_us / base.p99_us)
                if run.proxy_cpu_s is not None:
                    cpu.append(run.proxy_cpu_s / run.acks * 1e6)
                bcpu.append(run.backend_cpu_s / run.acks * 1e6)
                errors += run.errors
            cpu_s = f"{statistics.median(cpu):>10.0f} us" if cpu else f"{'-':>13}"
            shares = [
                f"{r.sampled_share:.0%}"
                for rnd in range(args.rounds)
                if (r := by.get((t.name, sc, rnd))) is not None and r.sampled_share is not None
            ]
            bcpu_s = f"{statistics.median(bcpu):>10.0f} us" if bcpu else f"{'-':>13}"
            print(
                f"{'':<17}{t.label:<22}{fmt_ratio(thr):>24}{fmt_ratio(p50):>24}"
                f"{fmt_ratio(p99):>24}{cpu_s}{bcpu_s}{errors:>8}"
            )
            if shares:
                print(f"{'':<19}sessions traced per round (session sampling): {' '.join(shares)}")
            runs = [
                r
                for rnd in range(args.rounds)
                if (r := by.get((t.name, sc, rnd))) is not None and r.acks
            ]
            if runs:
                budgets.append(_cpu_line(f"{sc.label}  {t.label}", runs))
            if thr:
                medians.setdefault(sc.label, {})[t.name] = statistics.median(thr)
                medians[sc.label][f"{t.name}:p50"] = statistics.median(p50)
    print(
        "CPU columns: user+sys CPU time of the proxy (process tree) and of the backend during "
        "the measured window, divided by acks (one ack = one emit round trip)."
    )
    if budgets:
        print()
        print(
            "Whole machine: CPU per ack of proxy + backend + load generator, and how many cores "
            "that kept busy (median over rounds). Once every core is busy, throughput is total "
            "CPU / CPU per ack: each microsecond the proxy spends comes out of the backend's "
            "and the load generator's share."
        )
        print("\n".join(budgets))
    if idle:
        print()
        print(
            f"Idle {args.idle_transport} sessions: RSS delta over {args.idle_sessions} sessions, "
            "per session "
            "(fresh process each, after a 20-session warm-up; 'direct' is the backend's own)."
        )
        print(f"{'config':<22}{'no deflate':>14}{'deflate offered':>18}")
        for t in (t for t in targets if t.idle):
            cells = []
            for deflate in (False, True):
                res = idle.get((t.name, deflate))
                if res is None:
                    cells.append("-")
                else:
                    extra = f" ({res.failed} failed)" if res.failed else ""
                    cells.append(f"{res.kib_per_session:.1f} KiB{extra}")
            label = "backend (direct)" if t.name == "direct" else t.label
            print(f"{label:<22}{cells[0]:>14}{cells[1]:>18}")
    return medians


def _cpu_line(label: str, runs: list[RunResult]) -> str:
    """CPU per ack of the proxy, backend and load generator together, and cores kept busy."""
    per_ack = statistics.median(
        ((r.proxy_cpu_s or 0.0) + r.backend_cpu_s + r.loadgen_cpu_s) / max(1, r.acks) * 1e6
        for r in runs
    )
    busy = statistics.median(
        ((r.proxy_cpu_s or 0.0) + r.backend_cpu_s + r.loadgen_cpu_s)
        / max(1e-9, r.acks / max(r.acks_per_s, 1e-9))
        for r in runs
    )
    load = statistics.median(r.loadgen_cpu_s / max(1, r.acks) * 1e6 for r in runs)
    return (
        f"  {label:<39}{per_ack:>8.0f} us per ack (load generator {load:.0f} us), "
        f"{busy:.2f} of {os.cpu_count()} cores busy"
    )


def check_goals(
    scenarios: list[Scenario],
    medians: dict[str, dict[str, float]],
    idle: dict[tuple[str, bool], IdleResult],
) -> None:
    lines: list[str] = []
    for sc in scenarios:
        m = medians.get(sc.label, {})
        if "on" in m:
            goal = GOAL_WS if sc.transport == "websocket" else GOAL_POLLING
            ok = m["on"] >= goal
            lines.append(
                f"{'PASS' if ok else 'MISS'} {sc.label}: tracking on {m['on']:.2f}x >= {goal}x"
            )
            ok = m["on:p50"] <= GOAL_P50
            lines.append(
                f"{'PASS' if ok else 'MISS'} {sc.label}: tracking on p50 "
                f"{m['on:p50']:.2f}x <= {GOAL_P50}x"
            )
        if "off" in m and "naive" in m:
            ok = m["off"] >= m["naive"]
            lines.append(
                f"{'PASS' if ok else 'MISS'} {sc.label}: tracking off {m['off']:.2f}x >= "
                f"naive {m['naive']:.2f}x"
            )
    if ("on", False) in idle:
        kib = idle["on", False].kib_per_session
        ok = kib <= GOAL_IDLE_KIB
        verdict = "PASS" if ok else "MISS"
        lines.append(f"{verdict} idle: tracking on {kib:.1f} KiB <= {GOAL_IDLE_KIB} KiB")
    if lines:
        print()
        print("Goals (issue 2):")
        print("\n".join(lines))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="1 short round, 300 idle sessions (about a minute)"
    )
    p.add_argument("--rounds", type=int, help="rounds of all configs per scenario (default 3)")
    p.add_argument("--duration", type=float, help="measured seconds per run (default 4)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per run (default 1)")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    p.add_argument("--idle-sessions", type=int, help="idle WebSocket sessions (default 2000)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds before reading RSS")
    p.add_argument(
        "--only",
        help="configs besides direct: off,on,off-aiohttp,quiet,sampled,naive,nginx (+ -pure)",
    )
    p.add_argument("--transports", default="websocket,polling")
    p.add_argument("--payloads", default="100,10240", help="payload sizes in bytes")
    p.add_argument(
        "--deflate",
        action="store_true",
        help="echo clients offer permessage-deflate (off by default: the reference figures of "
        "issue 2 match clients without it)",
    )
    p.add_argument(
        "--idle-deflate",
        choices=("off", "on", "both"),
        help="idle sessions without / with permessage-deflate offered (default: both; quick: off)",
    )
    p.add_argument("--no-nginx", action="store_true", help="skip nginx even if installed")
    p.add_argument("--no-idle", action="store_true", help="skip the idle-session measurement")
    p.add_argument(
        "--idle-transport",
        choices=("websocket", "polling"),
        default="websocket",
        help="idle sessions on WebSocket, or long-polling (each holds a pending GET)",
    )
    p.add_argument("--proxy-config", default=str(DEFAULT_PROXY_CONFIG), help="tracking-on config")
    p.add_argument("--json", help="write every raw result to this file")
    p.add_argument(
        "--pure-tree",
        help="a package tree without compiled extensions (perf_table.py makes one): adds "
        "quiet-pure and sampled-pure",
    )
    args = p.parse_args(argv)
    quick = args.quick
    if args.rounds is None:
        args.rounds = 1 if quick else 3
    if args.duration is None:
        args.duration = 1.0 if quick else 4.0
    if args.warmup is None:
        args.warmup = 0.4 if quick else 1.0
    if args.idle_deflate is None:
        args.idle_deflate = "off" if quick else "both"
    if args.idle_sessions is None:
        args.idle_sessions = 300 if quick else 2000
    if quick:
        args.settle = min(args.settle, 0.5)
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=("echo", "upgrade"), default="echo")
    known, rest = mode.parse_known_args(argv)
    if known.mode == "upgrade":
        # The polling -> WebSocket upgrade's duration: its own bench and options.
        from upgrade_bench import main as upgrade_main  # noqa: PLC0415 - only this mode

        return upgrade_main(rest)
    args = parse_args(rest)
    if not (BENCH / "js" / "node_modules" / "socket.io-client").exists():
        print("bench/js/node_modules missing: run `cd bench/js && npm ci` first", file=sys.stderr)
        return 2
    raise_fd_limit()
    targets = make_targets(args)
    scenarios = [
        Scenario(t, int(p)) for t in args.transports.split(",") for p in args.payloads.split(",")
    ]
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    fleet = Fleet(workdir)
    # SIGTERM ends the run like Ctrl-C does, so the finally below stops every child.
    signal.signal(signal.SIGTERM, _interrupt)
    runs: list[RunResult] = []
    idle: dict[tuple[str, bool], IdleResult] = {}
    try:
        backend = fleet.start_backend()
        servers: dict[str, Server | None] = {}
        for t in list(targets):
            if t.command is None:
                servers[t.name] = None
                continue
            try:
                servers[t.name] = fleet.start(t.name, t, backend.url)
            except (RuntimeError, OSError) as exc:
                print(f"skipping {t.label}: {exc}", file=sys.stderr)
                targets.remove(t)
        print(f"configs: {', '.join(t.label for t in targets)}", file=sys.stderr)
        for sc in scenarios:
            for rnd in range(args.rounds):
                order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
                for t in order:
                    server = servers[t.name]
                    url = server.url if server is not None else backend.url
                    res = run_echo(
                        t, url=url, proxy=server, backend=backend, scenario=sc, rnd=rnd, args=args
                    )
                    runs.append(res)
                    print(
                        f"  [{time.monotonic() - started:6.1f}s] {sc.label:<16} round {rnd} "
                        f"{t.name:<7} {res.acks_per_s:8.0f} ack/s p50 {res.p50_us / 1000:6.2f} ms"
                        + (f" errors {res.errors}" if res.errors else "")
                        + (f" ({res.note})" if res.note else ""),
                        file=sys.stderr,
                    )
        # Idle memory needs fresh processes: the echo runs leave allocator high-water marks.
        for server in servers.values():
            if server is not None:
                fleet.stop(server)
        if not args.no_idle:
            modes = {"off": [False], "on": [True], "both": [False, True]}[args.idle_deflate]
            for deflate in modes:
                for t in (t for t in targets if t.idle):
                    res_idle = measure_idle(fleet, t, backend, args, deflate=deflate)
                    if res_idle is not None:
                        idle[t.name, deflate] = res_idle
                        print(
                            f"  [{time.monotonic() - started:6.1f}s] idle {t.name:<7} "
                            f"deflate {'on' if deflate else 'off'} {res_idle.sessions} sessions "
                            f"{res_idle.kib_per_session:.1f} KiB each",
                            file=sys.stderr,
                        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        fleet.stop_all()
    medians = report(targets, scenarios, runs, idle, args)
    check_goals(scenarios, medians, idle)
    print(f"\n(total {time.monotonic() - started:.0f}s; logs in {workdir})")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "runs": [
                        {
                            "target": r.target,
                            "scenario": r.scenario.label,
                            "round": r.round,
                            "acks": r.acks,
                            "acks_per_s": r.acks_per_s,
                            "p50_us": r.p50_us,
                            "p99_us": r.p99_us,
                            "proxy_cpu_s": r.proxy_cpu_s,
                            "backend_cpu_s": r.backend_cpu_s,
                            "loadgen_cpu_s": r.loadgen_cpu_s,
                            "sampled_share": r.sampled_share,
                            "errors": r.errors,
                        }
                        for r in runs
                    ],
                    "idle": {
                        f"{k[0]}{'+deflate' if k[1] else ''}": {
                            "sessions": v.sessions,
                            "rss_before": v.rss_before,
                            "rss_after": v.rss_after,
                            "kib_per_session": v.kib_per_session,
                        }
                        for k, v in idle.items()
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

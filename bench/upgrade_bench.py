"""Upgrade benchmark (issue 14): a session's time to its first ack after the polling ->
WebSocket upgrade, direct vs through the proxy (tracking off, on) vs nginx.

The official JS ``socket.io-client`` in one node process (``js/load.js --mode upgrade``) runs
one session at a time with its default transports (polling first, then the upgrade), emits
``echo`` at once as the official suites do, and times from ``io()`` to the first ack that
arrives over WebSocket (an ack that came back over polling first is asked again after the
upgrade), and to the client's ``upgrade`` event. The backend (``backend.py``, python-socketio
on aiohttp) holds the reply to the namespace CONNECT during the upgrade, so on this backend
that first ack always waits for the whole upgrade. Configurations are interleaved in blocks of
``--block`` sessions, so that a shared machine's load weighs on all of them alike; the run is
repeated ``--rounds`` times. Printed per config and round: median and p90 of both times and
the difference of the medians to direct.

Usage: ``.venv/bin/python bench/upgrade_bench.py [--sessions 300] [--rounds 3]
[--only off,on,nginx] [--baseline OTHER_CHECKOUT] [--json FILE]``, or
``bench/relay_bench.py --mode upgrade`` with the same options (``cd bench/js && npm ci``
first). Loopback only; every child process is bounded in time and stopped by this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relay_bench import (
    BENCH,
    DEFAULT_PROXY_CONFIG,
    Fleet,
    Server,
    make_targets,
    node_lines,
    raise_fd_limit,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=300, help="sessions per config and round")
    p.add_argument("--block", type=int, default=10, help="sessions in a row per config")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--only",
        default="off,on,nginx",
        help="configs besides direct: off,on,quiet,sampled,naive,nginx (default off,on,nginx)",
    )
    p.add_argument("--deflate", action="store_true", help="clients offer permessage-deflate")
    p.add_argument("--no-nginx", action="store_true", help="skip nginx even if installed")
    p.add_argument("--proxy-config", default=str(DEFAULT_PROXY_CONFIG), help="tracking-on config")
    p.add_argument("--json", help="write every round's figures to this file")
    p.add_argument(
        "--baseline",
        help="another checkout (e.g. a git worktree of an older commit): its proxy runs the "
        "same proxy configs, interleaved, as NAME@base",
    )
    args = p.parse_args(argv)
    args.pure_tree = None  # make_targets' option for relay_bench's pure-Python variants
    return args


def run_round(servers: dict[str, str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """One interleaved run over every config; the node generator's figures per config."""
    urls = ",".join(f"{name}={url}" for name, url in servers.items())
    argv = [
        "--mode", "upgrade",
        "--urls", urls,
        "--sessions", str(args.sessions),
        "--block", str(args.block),
        *([] if args.deflate else ["--no-deflate"]),
    ]  # fmt: skip
    timeout = args.sessions * len(servers) * 2 + 60
    for msg in node_lines(argv, timeout):
        if msg.get("phase") == "result":
            if "targets" not in msg:
                raise RuntimeError(f"load generator failed: {msg.get('error')}")
            targets: dict[str, dict[str, Any]] = msg["targets"]
            return targets
    raise RuntimeError("load generator ended without a result")


def report(rounds: list[dict[str, dict[str, Any]]], labels: dict[str, str]) -> None:
    print()
    print(
        "Upgrade: io() to the first ack over WebSocket, and to the client's 'upgrade' event "
        "(ms; one session at a time, configs interleaved; +x: median minus direct's, same round)"
    )
    header = f"{'round':<7}{'config':<30}{'ack p50':>9}{'p90':>8}{'vs direct':>11}"
    header += f"{'upgrade p50':>13}{'p90':>8}{'sessions':>10}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for i, res in enumerate(rounds):
        direct = res.get("direct", {}).get("ack_p50_ms")
        for name, fig in res.items():
            ack = fig.get("ack_p50_ms")
            diff = f"{ack - direct:+.2f}" if ack is not None and direct is not None else "-"
            if name == "direct":
                diff = ""
            print(
                f"{i:<7}{labels.get(name, name):<30}{_ms(ack):>9}{_ms(fig.get('ack_p90_ms')):>8}"
                f"{diff:>11}{_ms(fig.get('upgrade_p50_ms')):>13}"
                f"{_ms(fig.get('upgrade_p90_ms')):>8}{fig.get('sessions', 0):>10}"
                f"{fig.get('errors', 0):>8}"
            )
    names = list(rounds[0]) if rounds else []
    if len(rounds) > 1:
        print("median over rounds of (config p50 - direct p50):")
        for name in names:
            if name == "direct":
                continue
            diffs = [
                r[name]["ack_p50_ms"] - r["direct"]["ack_p50_ms"]
                for r in rounds
                if r.get(name, {}).get("ack_p50_ms") is not None
                and r.get("direct", {}).get("ack_p50_ms") is not None
            ]
            if diffs:
                print(
                    f"  {labels.get(name, name):<30}{statistics.median(diffs):+.2f} ms "
                    f"[{min(diffs):+.2f} .. {max(diffs):+.2f}]"
                )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (BENCH / "js" / "node_modules" / "socket.io-client").exists():
        print("bench/js/node_modules missing: run `cd bench/js && npm ci` first", file=sys.stderr)
        return 2
    raise_fd_limit()
    targets = make_targets(args)
    if args.baseline:
        # The other checkout's modules first on the proxy's path (.ci/package-view maps the
        # folders to the import package, as the editable install does here).
        base = Path(args.baseline).resolve()
        view = base / ".ci" / "package-view"
        path = str(view if view.is_dir() else base)
        targets += [
            dataclasses.replace(
                t,
                name=f"{t.name}@base",
                label=f"{t.label} (base)",
                env={**t.env, "PYTHONPATH": path},
            )
            for t in targets
            if t.command is not None and t.name != "nginx"
        ]
    labels = {t.name: t.label for t in targets}
    workdir = Path(tempfile.mkdtemp(prefix="upgrade-bench-"))
    fleet = Fleet(workdir)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        backend = fleet.start_backend()
        servers: dict[str, str] = {}
        for t in targets:
            if t.command is None:
                servers[t.name] = backend.url
                continue
            try:
                server: Server = fleet.start(t.name, t, backend.url)
            except (RuntimeError, OSError) as exc:
                print(f"skipping {t.label}: {exc}", file=sys.stderr)
                continue
            servers[t.name] = server.url
        print(f"configs: {', '.join(labels[n] for n in servers)}", file=sys.stderr)
        for rnd in range(args.rounds):
            rounds.append(run_round(servers, args))
            print(f"  [{time.monotonic() - started:6.1f}s] round {rnd} done", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        fleet.stop_all()
    report(rounds, labels)
    print(f"\n(total {time.monotonic() - started:.0f}s; logs in {workdir})")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The proxy's user-space instructions per ack under the real echo load, for callgrind A/B.

Runs the backend (``backend.py``) and one proxy under ``valgrind --tool=callgrind`` with
instrumentation off, then the node load generator (``js/load.js``, echo mode, as
``relay_bench.py`` runs it); ``callgrind_control`` switches instrumentation on and zeroes the
counts when the load generator starts its measured window and dumps them when it ends.
Prints the proxy's instructions per ack (all threads, user space only: the kernel's socket
work is not in it) and where the dump is, for ``callgrind_annotate``.

Unlike CPU time on a shared machine, the count repeats (within about 1%), so configs can be
compared across runs: ``off`` (tracking off), a session sample rate (``0.0``: every session
unsampled, ``0.1``, ``1.0``: tracked, no export)::

    .venv/bin/python bench/relay_callgrind.py off
    .venv/bin/python bench/relay_callgrind.py 0.1 --clients 50 --duration 10

The proxy runs about 50 times slower under callgrind: it sees more messages per read than
without it, so compare configs of this bench with each other, not with relay_bench figures.
With a sample rate below 1 the share of sessions traced varies per run (it is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import relay_bench as rb


def _ready(port: int, timeout_s: float = 120.0) -> None:
    url = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.read(1) == b"0":
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answered on port {port}")


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {dump}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("callgrind.out*"):
        old.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENOBSERVE_", "OTEL_"))}
    env["PYTHONPATH"] = str(rb.ROOT)
    bport, pport, aport = rb.free_port(), rb.free_port(), rb.free_port()
    proxy_cmd = [
        *rb.proxy_cli_command(), "serve",
        "--listen", f"127.0.0.1:{pport}",
        "--upstream", f"http://127.0.0.1:{bport}",
        "--admin", f"127.0.0.1:{aport}",
        "--log-level", "warning",
    ]  # fmt: skip
    proxy_env = dict(env)
    if args.config == "off":
        proxy_env["SOCKET_TRACKING_ENABLED"] = "false"
    else:
        proxy_env["SOCKET_TRACKING_ENABLED"] = "true"
        rb.no_export_config(Path(args.proxy_config), work / "proxy.yaml", float(args.config))
        proxy_cmd += ["--config", str(work / "proxy.yaml")]
    out = work / "callgrind.out"
    started: list[subprocess.Popen[bytes]] = []
    with (work / "backend.log").open("wb") as blog, (work / "proxy.log").open("wb") as plog:
        try:
            backend = subprocess.Popen(
                [rb.PYTHON, str(rb.BENCH / "backend.py"), "--port", str(bport)],
                env=env, stdout=blog, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            started.append(backend)
            proxy = subprocess.Popen(
                [
                    "valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={out}", *proxy_cmd,
                ],
                env=proxy_env, cwd=work, stdout=plog, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            started.append(proxy)
            _ready(bport)
            _ready(pport)
            result = _load(args, pport, proxy.pid)
            counts = rb.sampling_counts(f"127.0.0.1:{aport}")
        finally:
            for p in reversed(started):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                p.wait()
    dumps = sorted(work.glob("callgrind.out.*"))
    if not dumps:
        raise SystemExit(f"no callgrind dump in {work}")
    acks = int(result.get("acks", 0))
    total = _total(dumps[0])
    return {
        "config": args.config,
        "acks": acks,
        "instructions": total,
        "instructions_per_ack": round(total / max(1, acks)),
        "sessions_traced": f"{counts[1]}/{counts[0]}" if counts else None,
        "dump": str(dumps[0]),
    }


def _load(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    """The node echo load; callgrind counts from its measured window's start to its end."""
    argv = [
        "node", str(rb.LOAD_JS), "--mode", "echo",
        "--url", f"http://127.0.0.1:{port}",
        "--transport", args.transport,
        "--clients", str(args.clients),
        "--payload", str(args.payload),
        "--warmup", str(args.warmup),
        "--duration", str(args.duration),
        "--connectTimeout", "120",
        "--no-deflate",
    ]  # fmt: skip
    result: dict[str, Any] = {}
    control = ["callgrind_control"]
    with subprocess.Popen(argv, cwd=rb.BENCH / "js", stdout=subprocess.PIPE, text=True) as node:
        assert node.stdout is not None
        for line in node.stdout:
            msg = json.loads(line)
            phase = msg.get("phase")
            if phase == "start":
                subprocess.run([*control, "-i", "on", str(pid)], capture_output=True, check=True)
                subprocess.run([*control, "-z", str(pid)], capture_output=True, check=True)
            elif phase == "end":
                subprocess.run([*control, "-d", str(pid)], capture_output=True, check=True)
            elif phase == "result":
                result = msg
    if not result.get("acks"):
        raise SystemExit(f"the load generator got no acks: {result}")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("config", help="off, or a tracking.session_sample_rate (0.0-1.0, no export)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--payload", type=int, default=100)
    p.add_argument("--transport", default="websocket", choices=("websocket", "polling"))
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--proxy-config", default=str(rb.DEFAULT_PROXY_CONFIG))
    p.add_argument("--workdir", default="/tmp/relay-callgrind")
    args = p.parse_args()
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

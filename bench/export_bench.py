"""Exporter benchmark: CPU per exported span and spans per second, OTLP to OpenObserve.

Runs the OpenObserve test double in its own process (so its decoding is not counted), builds
the OpenObserve traces exporter with ``build_sinks`` exactly as the CLI does, submits N pair
records and flushes them (encode + batch + gzip + HTTP send, all on the exporter's worker
thread), and prints this process's CPU time per span (all threads) and the wall-clock rate.
A breakdown of the encoding steps (the general path's span model and wire encoding, the pair
fast path of :mod:`exporters.otlp_pairs` that pairs take, request assembly, gzip) follows.

    .venv/bin/python bench/export_bench.py [--spans 50000] [--batch 512]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from socketio_trace_proxy.config.exporters import (  # noqa: E402
    BatchSettings,
    ExportersSettings,
    OpenObserveSettings,
)
from socketio_trace_proxy.exporters import build_sinks  # noqa: E402
from socketio_trace_proxy.exporters.batching import BatchingSink  # noqa: E402
from socketio_trace_proxy.exporters.http import GZIP_LEVEL  # noqa: E402
from socketio_trace_proxy.exporters.otlp_pairs import PairSpanEncoder  # noqa: E402
from socketio_trace_proxy.exporters.otlp_wire import SpanEncoder, export_request, resource, scope  # noqa: E402
from socketio_trace_proxy.exporters.spans import pair_span  # noqa: E402
from socketio_trace_proxy.tracking.records import Outcome, PairKind, PairRecord, SessionRef  # noqa: E402
from socketio_trace_proxy.tracking.traffic import Direction, Transport  # noqa: E402

USER, PASSWORD = "bench@example.com", "bench-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_records(count: int) -> list[PairRecord]:
    """Realistic pairs: 50 sessions, a few rules, ~5% timeouts, some acks."""
    sessions = [
        SessionRef(f"sid{n:05d}AbCdEfGhIjKl", os.urandom(16).hex(), os.urandom(8).hex())
        for n in range(50)
    ]
    rules = [
        ("create_terminal", "create_terminal -> terminal_ready", "terminal_ready", None),
        ("terminal_input", "terminal_input -> ack", None, 1),
        ("resize", "resize -> resized", "resized", None),
    ]
    now = time.time()
    records = []
    for n in range(count):
        rule, operation, response, ack = rules[n % len(rules)]
        timed_out = n % 20 == 0
        records.append(
            PairRecord(
                trace_id=os.urandom(16).hex(),
                span_id=os.urandom(8).hex(),
                session=sessions[n % len(sessions)],
                namespace="/",
                kind=PairKind.ACK if ack else PairKind.EVENT_PAIR,
                rule=rule,
                operation=operation,  # one name per operation, whatever its outcome
                initiator=Direction.CLIENT_TO_SERVER,
                request_event=rule,
                response_event=None if timed_out else response,
                ack_id=n % 1000 if ack else None,
                match_key=None if ack else f"t{n % 97}",
                outcome=Outcome.TIMEOUT if timed_out else Outcome.OK,
                error_type="timeout" if timed_out else None,
                slow=n % 50 == 0,
                start_wall=now - 1.0 + n * 1e-6,
                duration_s=5.0 if timed_out else 0.011,
                first_chunk_s=None,
                chunk_count=0,
                request_transport=Transport.WEBSOCKET,
                response_transport=None if timed_out else Transport.WEBSOCKET,
                request_size=120 + n % 50,
                response_size=300 + n % 70,
            )
        )
    return records


def start_double(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.doubles.openobserve",
            "--port",
            str(port),
            "--user",
            USER,
            "--password",
            PASSWORD,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the OpenObserve double did not start")


async def end_to_end(records: list[PairRecord], batch: int, port: int) -> tuple[float, float]:
    settings = ExportersSettings(
        openobserve=OpenObserveSettings(
            json_stream=None,
            batch=BatchSettings(
                max_batch_size=batch, flush_interval_s=0.2, max_queue_size=len(records)
            ),
        )
    )
    environ = {
        "OPENOBSERVE_ENDPOINT": f"http://127.0.0.1:{port}",
        "OPENOBSERVE_USER": USER,
        "OPENOBSERVE_PASS": PASSWORD,
    }
    (sink,) = build_sinks(settings, environ)
    assert isinstance(sink, BatchingSink)
    await sink.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for record in records:
        sink.submit(record)
    submit_cpu = time.process_time() - cpu0
    await sink.shutdown(120.0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    health = sink.health()
    if health.sent != len(records):
        raise SystemExit(f"not everything arrived: {health}")
    print(f"  submit (event loop side):   {submit_cpu / len(records) * 1e6:6.2f} us/span")
    return cpu, wall


def best_per_span(work: Callable[[], object], count: int, repeat: int = 5) -> float:
    timings = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        timings.append(time.process_time() - start)
    return min(timings) / count * 1e6


def breakdown(records: list[PairRecord], batch: int) -> None:
    chunk = records[:batch]
    encoder = SpanEncoder()
    res, scp = resource({"service.name": "bench"}), scope("bench", "0")
    specs = [pair_span(r) for r in chunk]
    bodies = [encoder.span(s) for s in specs]
    payload = export_request(res, scp, bodies)
    pairs = PairSpanEncoder()
    model = best_per_span(lambda: [pair_span(r) for r in chunk], batch)
    wire = best_per_span(lambda: [encoder.span(s) for s in specs], batch)
    fast = best_per_span(lambda: [pairs.parts(r) for r in chunk], batch)
    request = best_per_span(lambda: export_request(res, scp, bodies), batch)
    packed = best_per_span(lambda: gzip.compress(payload, compresslevel=GZIP_LEVEL), batch)
    size = len(payload) / batch
    zipped = len(gzip.compress(payload, compresslevel=GZIP_LEVEL)) / batch
    print("  general path (lifecycle and message records; pairs when the fast path refuses):")
    print(f"    span model:               {model:6.2f} us/span")
    print(f"    protobuf wire encoding:   {wire:6.2f} us/span")
    print(f"  pair fast path (parts):     {fast:6.2f} us/span")
    print(f"  request assembly:           {request:6.2f} us/span")
    print(f"  gzip (level {GZIP_LEVEL}):               {packed:6.2f} us/span")
    print(f"  bytes per span:             {size:6.0f} ({zipped:.0f} gzipped)")


def main() -> None:
    parser = argparse.ArgumentParser(description="OTLP exporter CPU per span")
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    records = make_records(args.spans)
    port = free_port()
    double = start_double(port)
    try:
        print(
            f"OTLP/HTTP protobuf to the OpenObserve double, {args.spans} spans, batch {args.batch}"
        )
        cpu, wall = asyncio.run(end_to_end(records, args.batch, port))
        print(f"  CPU per exported span:      {cpu / args.spans * 1e6:6.2f} us (goal <= 20)")
        print(f"  spans per second:           {args.spans / wall:8.0f}")
        print("breakdown (best of 5, one batch):")
        breakdown(records, args.batch)
    finally:
        double.terminate()
        double.wait(10)


if __name__ == "__main__":
    main()

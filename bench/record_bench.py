"""CPU cost of recording per relayed WebSocket message (issue 16).

Two figures: what the relay's thread pays per message (the observer call: a clock read and a
queue append) and what the writer thread pays (cut into packets, redact, encode, write).
Messages are AetherTerm-like ``terminal_output`` events of ~100 B; run:

    .venv/bin/python bench/record_bench.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.tracking.observer import RequestInfo
from socketio_trace_proxy.tracking.recording.recorder import Recorder
from socketio_trace_proxy.tracking.traffic import Direction

OPEN = '0{"sid":"BENCH","upgrades":[],"pingTimeout":20000,"pingInterval":25000}'
MSG = '42["terminal_output",{"session":"session_1795613910760","data":"hello-from-probe\\r\\n"}]'


def run(messages: int) -> None:
    settings = load_settings(None, {})
    with tempfile.TemporaryDirectory() as tmp:
        record = settings.record.model_copy(
            update={
                "path": str(Path(tmp) / "b.jsonl"),
                "queue": messages + 10,
                "queue_bytes": 1 << 30,
                "flush_interval": 3600,
            }
        )
        rec = Recorder(record, settings.tracking)
        rec.start()
        leg = rec.websocket_opened(RequestInfo("GET", {"EIO": "4", "transport": "websocket"}))
        leg.message(Direction.SERVER_TO_CLIENT, OPEN)
        c0 = time.thread_time()
        for _ in range(messages):
            leg.message(Direction.SERVER_TO_CLIENT, MSG)
        relay = time.thread_time() - c0
        w0 = time.thread_time()
        rec.flush()  # the writer's work, done on this thread to time it alone
        writer = time.thread_time() - w0
        rec.stop()
        assert rec.status().dropped == 0
    print(f"{messages} messages of {len(MSG)} B")
    print(f"relay thread (observer call): {relay / messages * 1e6:.2f} us per message")
    print(f"writer (split, redact, encode, write): {writer / messages * 1e6:.2f} us per message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    run(parser.parse_args().messages)


if __name__ == "__main__":
    main()

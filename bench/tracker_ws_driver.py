"""Drive N WebSocket round trips through the tunnel's frame scanner and a real Tracker in one
process, for callgrind.

The tracker is built as ``bench/tracking_e2e_bench.py`` builds it (packaged default config,
``--config``: local export off, on, or OTLP encoding into a sink that discards; the admin
listener's live hub subscribed unless ``--no-admin``).  50 WebSocket sessions are opened
(OPEN, ``40``), then each round trip is the client's masked ``42N["echo",{...}]`` frame and
the server's ``43N[{...}]`` frame, each fed through a :class:`proxy.wsframes.FrameScanner`
(observing) and its messages shown to the session's observer, as ``WebSocketTunnel._seen``
does.  Frames are built before the measured loop; the process ends without stopping the
tracker (no shutdown work counted).  Instruction counts repeat; the cost per round trip is
the difference of two runs::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python bench/tracker_ws_driver.py 2000
    valgrind --tool=callgrind ... bench/tracker_ws_driver.py 6000
    # (Ir(6000) - Ir(2000)) / 4000 = instructions per round trip (driver included;
    # --config driver: the driver's own share)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

import tracking_e2e_bench as e2e  # noqa: E402

from socketio_trace_proxy.proxy.wsframes import FrameScanner  # noqa: E402
from socketio_trace_proxy.tracking.observer import WebSocketObserver  # noqa: E402

SESSIONS = 50
_KEY = b"\x01\x02\x03\x04"


def frame(text: str, masked: bool) -> bytes:
    """One unfragmented text frame (RFC 6455 5.2), masked as a client sends it."""
    data = text.encode()
    n = len(data)
    mask_bit = 0x80 if masked else 0
    head = bytearray([0x81])
    if n < 126:
        head.append(mask_bit | n)
    elif n < 65536:
        head += bytes([mask_bit | 126]) + n.to_bytes(2)
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8)
    if not masked:
        return bytes(head) + data
    return bytes(head) + _KEY + bytes(c ^ _KEY[i % 4] for i, c in enumerate(data))


async def run(round_trips: int, size: int, config: str, admin: bool) -> None:
    ndjson = Path(tempfile.mkdtemp()) / "trace.ndjson"
    settings = (
        None
        if config == "driver"
        else e2e.settings_for(config == "on", ndjson, otlp=config == "otlp")
    )
    payload = {"data": "x" * max(0, size - 12)}
    with tempfile.TemporaryFile("w") as console:
        rig = e2e.Rig(settings, console, admin)
        await rig.start()
        legs: list[tuple[WebSocketObserver, FrameScanner, FrameScanner]] = []
        for n in range(SESSIONS):
            info = e2e.RequestInfo("GET", e2e.query(EIO="4", transport="websocket"), "127.0.0.1")
            leg = rig.observer.websocket_opened(info)
            assert leg is not None
            sid = f"ws{n:06d}AAAAAAAAAAAA"
            leg.message(e2e.S2C, '0{"sid":"' + sid + '",' + e2e.PING[1:])
            leg.message(e2e.C2S, "40")
            leg.message(e2e.S2C, '40{"sid":"ns' + sid + '"}')
            scanners = [FrameScanner(max_message=1 << 24, observe=True, deflate=False)]
            scanners.append(FrameScanner(max_message=1 << 24, observe=True, deflate=False))
            legs.append((leg, scanners[0], scanners[1]))
        rounds = max(1, round_trips // SESSIONS)
        dumps = json.dumps
        events = [
            frame(f"42{i}" + dumps(["echo", payload], separators=(",", ":")), True)
            for i in range(rounds)
        ]
        acks = [
            frame(f"43{i}" + dumps([payload], separators=(",", ":")), False) for i in range(rounds)
        ]
        for i in range(rounds):
            for leg, c2s, _ in legs:
                for message in c2s.feed(events[i]).messages:
                    leg.message(e2e.C2S, message)
            for leg, _, s2c in legs:
                for message in s2c.feed(acks[i]).messages:
                    leg.message(e2e.S2C, message)
            if i % 8 == 7:
                await asyncio.sleep(0)  # the tracker's timer and flushes run
        await asyncio.sleep(0.01)
        await rig.flush()
        print(f"ok pairs {rig.ok_pairs()}, exported {rig.exported()}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(0)  # no shutdown work in the count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("round_trips", type=int)
    p.add_argument("--size", type=int, default=100, help="payload bytes (about)")
    p.add_argument("--config", choices=("driver", "off", "on", "otlp"), default="off")
    p.add_argument("--no-admin", action="store_true", help="no live hub subscribed")
    args = p.parse_args()
    asyncio.run(run(args.round_trips, args.size, args.config, not args.no_admin))


if __name__ == "__main__":
    main()

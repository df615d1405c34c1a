"""The tunnel's frame scanner alone: CPU per frame (``proxy.wsframes.FrameScanner.feed``).

AetherTerm-like ``terminal_output`` text frames (~70 B, masked), fed 20 per chunk with and
without observation, and one per chunk with observation; best of 5.  ``--module PATH`` loads
``wsframes.py`` from another checkout (e.g. a ``git worktree`` of ``main``) to compare.

    .venv/bin/python bench/wsframes_bench.py [--module ../main/proxy/wsframes.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from typing import Any

PAYLOAD = b'42["terminal_output",{"session":"s","data":"hello-from-probe\\r\\n"}]'


def frame(payload: bytes) -> bytes:
    """One masked FIN text frame (RFC 6455 5.2), payload under 126 bytes."""
    return bytes((0x81, 0x80 | len(payload))) + b"abcd" + payload


def scanner_class(module: str | None) -> Any:
    if module is None:
        from socketio_trace_proxy.proxy.wsframes import FrameScanner  # noqa: PLC0415

        return FrameScanner
    spec = importlib.util.spec_from_file_location("wsframes_under_test", module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded.FrameScanner


def best_ns(cls: Any, chunk: bytes, feeds: int, frames: int, observe: bool) -> float:
    best = float("inf")
    for _ in range(5):
        scanner = cls(max_message=1 << 20, observe=observe, deflate=False)
        start = time.process_time()
        for _ in range(feeds):
            scanner.feed(chunk)
        best = min(best, time.process_time() - start)
    return best / (feeds * frames) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description="FrameScanner CPU per frame")
    parser.add_argument("--module", help="path of another wsframes.py to measure")
    args = parser.parse_args()
    cls = scanner_class(args.module)
    one = frame(PAYLOAD)
    print(
        f"observe, 20 frames per chunk:  {best_ns(cls, one * 20, 20_000, 20, True):6.0f} ns/frame"
    )
    print(
        f"forward only, 20 per chunk:    {best_ns(cls, one * 20, 20_000, 20, False):6.0f} ns/frame"
    )
    print(f"observe, 1 frame per chunk:    {best_ns(cls, one, 200_000, 1, True):6.0f} ns/frame")


if __name__ == "__main__":
    main()

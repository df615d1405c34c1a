"""A scripted python-socketio client exercising every event of :mod:`examples.demo_backend`.

Run: ``python -m examples.demo_client --url http://127.0.0.1:8080`` (exits 0 when every
step got its answer).  :func:`drive` is what ``socketio-trace-proxy demo --drive`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import socketio


class ScriptFailed(Exception):
    pass


async def _expect(queue: asyncio.Queue[Any], what: str, limit_s: float) -> Any:
    try:
        return await asyncio.wait_for(queue.get(), limit_s)
    except TimeoutError:
        raise ScriptFailed(f"no {what} within {limit_s}s") from None


async def drive(
    url: str,
    *,
    transports: list[str] | None = None,
    step_s: float = 5.0,
    linger_s: float = 0.2,
) -> None:
    """Connect to ``url`` and run the script; raises :class:`ScriptFailed` on a miss.

    ``linger_s``: how long to stay connected after the never-answered ``ai_get_info``
    (longer than the tracker's timeout shows it timing out; shorter, it is abandoned).
    """
    client = socketio.AsyncClient(reconnection=False)
    ready: asyncio.Queue[Any] = asyncio.Queue()
    output: asyncio.Queue[Any] = asyncio.Queue()
    block: asyncio.Queue[Any] = asyncio.Queue()
    client.on("terminal_ready", ready.put_nowait)
    client.on("terminal_output", output.put_nowait)
    client.on("block_status_response", block.put_nowait)
    await client.connect(url, transports=transports, wait_timeout=step_s)
    try:
        await client.emit("create_terminal", {"session": "", "cols": 120, "rows": 30})
        terminal = await _expect(ready, "terminal_ready", step_s)
        session = terminal["session"]
        for chunk in ("ls -la\r", "echo hello\r"):
            await client.emit("terminal_input", {"session": session, "data": chunk})
            echoed = await _expect(output, "terminal_output", step_s)
            if echoed.get("data") != chunk:
                raise ScriptFailed(f"terminal_output echoed {echoed!r}, expected {chunk!r}")
        status = await client.call("get_block_status", {"block_id": "b-1"}, timeout=step_s)
        if not isinstance(status, dict) or status.get("block_id") != "b-1":
            raise ScriptFailed(f"get_block_status answered {status!r}")
        await _expect(block, "block_status_response", step_s)
        pong = await client.call("ping_backend", {"n": 1}, timeout=step_s)
        if not isinstance(pong, dict) or not pong.get("pong"):
            raise ScriptFailed(f"ping_backend answered {pong!r}")
        # Never answered by the backend: the proxy reports it as pending, then timed out
        # (or abandoned, if the client leaves before the timeout).
        await client.emit("ai_get_info", {"session": session})
        await asyncio.sleep(linger_s)
    finally:
        await client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="scripted demo client")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--transport", choices=("polling", "websocket"), default=None)
    args = parser.parse_args(argv)
    transports = [args.transport] if args.transport else None
    try:
        asyncio.run(drive(args.url, transports=transports))
    except (ScriptFailed, socketio.exceptions.ConnectionError) as exc:
        print(f"demo client failed: {exc}", file=sys.stderr)
        return 1
    print("demo client: all steps answered")
    return 0


if __name__ == "__main__":
    sys.exit(main())

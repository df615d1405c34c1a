"""Exactness through the relay: every polling body and every WebSocket message (content,
text/binary type, order) that the node client sent or received is what the backend received or
sent, on every transport.  The client's log comes from harness.js, the server's from the ASGI
recorder around python-socketio under uvicorn."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from socketio_trace_proxy.tracking.traffic import Direction
from tests.proxy.js.js_backend import MAX_HTTP_BUFFER_SIZE
from tests.proxy.js.js_harness import (
    DIRECT,
    Front,
    Side,
    TapObserver,
    client_sides,
    run_node,
    server_sides,
    wire_differences,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODES: dict[str, list[str] | None] = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": None,
}


def load(path: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data


def sizes(sides: list[Side]) -> list[int]:
    """Sizes of everything that crossed, both ways."""
    out = []
    for s in sides:
        for msgs in (s.c2s or [], s.s2c or []):
            out += [m["n"] for m in msgs]
        for body in (s.request, s.response):
            if body is not None:
                out.append(body["n"])
    return out


@pytest.mark.parametrize("mode", MODES)
async def test_wire_is_identical_at_both_ends(asgi_front: Front, mode: str, tmp_path: Path) -> None:
    assert asgi_front.recorder is not None
    tag = f"exact-{mode}"
    log = tmp_path / "client.json"
    transports = MODES[mode]
    result = await run_node(
        "scenario.js",
        {
            "url": asgi_front.url,
            "rec": tag,
            "transports": transports,
            "log": str(log),
            "wait_upgrade": transports is None,
            "big": True,
            "max": MAX_HTTP_BUFFER_SIZE,
        },
    )
    client = client_sides(load(log))
    server = server_sides(asgi_front.recorder.exchanges.get(tag, []))

    # The logs must hold the traffic we expect before their equality means anything.
    kinds = {(s.kind, s.method) for s in client}
    if mode == "polling":
        assert kinds == {("http", "GET"), ("http", "POST")}
    elif mode == "websocket":
        assert kinds == {("ws", "GET")}
    else:
        assert kinds == {("http", "GET"), ("http", "POST"), ("ws", "GET")}
        ws = [s for s in client if s.kind == "ws"]
        assert len(ws) == 1 and ws[0].c2s and ws[0].c2s[0]["d"] == "2probe"
    # the 1 MB payloads crossed both ways (polling: POST body and GET response; a polling
    # binary attachment leaves room for the header packet it may be batched with)
    assert sum(n >= MAX_HTTP_BUFFER_SIZE - 64 for n in sizes(client)) >= 4
    assert result["big_text"]["server"]["len"] == result["big_text"]["n"]

    assert wire_differences(client, server) == []

    # The comparison can fail: one flipped byte in one message is reported.
    tampered = list(client)
    i, side = next((i, s) for i, s in enumerate(tampered) if s.kind == "ws" or s.request)
    if side.kind == "ws":
        assert side.c2s
        first = {**side.c2s[0], "h": "0" * 64}
        tampered[i] = dataclasses.replace(side, c2s=[first, *side.c2s[1:]])
    else:
        assert side.request
        tampered[i] = dataclasses.replace(side, request={**side.request, "h": "0" * 64})
    assert wire_differences(tampered, server) != []

    if not DIRECT:
        assert asgi_front.observer is not None
        check_observer_saw_the_wire(asgi_front.observer, tag, client)


def check_observer_saw_the_wire(observer: TapObserver, tag: str, client: list[Side]) -> None:
    """What the relay told its observer is what crossed: same messages, same order."""
    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    ws_client = [s for s in client if s.kind == "ws"]
    ws_seen = observer.websockets.get(tag, [])
    assert len(ws_seen) == len(ws_client)
    for seen, side in zip(ws_seen, ws_client, strict=True):
        assert [m for d, m in seen if d == c2s] == side.c2s
        assert [m for d, m in seen if d == s2c] == side.s2c
    polled = observer.polling.get(tag, [])
    posts = [s for s in client if s.kind == "http" and s.method == "POST"]
    assert [b for m, d, b in polled if (m, d) == ("POST", c2s)] == [s.request for s in posts]
    for method in ("GET", "POST"):
        answered = [
            s.response
            for s in client
            if s.kind == "http" and s.method == method and s.response is not None
        ]
        assert [b for m, d, b in polled if (m, d) == (method, s2c)] == answered

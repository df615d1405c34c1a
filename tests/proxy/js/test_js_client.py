"""The official socket.io-client (node) through the relay to a python-socketio backend served
by aiohttp: events, acks both ways, nested binary, two namespaces, and payloads at the backend's
1 MB limit, on every transport."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.proxy.js.js_backend import MAX_HTTP_BUFFER_SIZE, SERVER_BLOB
from tests.proxy.js.js_harness import Front, run_node

pytestmark = pytest.mark.asyncio(loop_scope="module")

# mode -> (socket.io-client `transports` option, transport the session must end on)
MODES: dict[str, tuple[list[str] | None, str]] = {
    "polling": (["polling"], "polling"),
    "websocket": (["websocket"], "websocket"),
    "upgrade": (None, "websocket"),
}
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def expected_big(kind: str, n: int) -> bytes:
    """The payload scenario.js generates (same rule, written independently)."""
    if kind == "text":
        return (ALPHABET * (n // len(ALPHABET) + 1))[:n].encode()
    return bytes((i * 31 + 7) & 255 for i in range(n))


def wire_size(kind: str, transport: str, n: int) -> int:
    """Size of the largest Engine.IO message / polling body carrying the big payload."""
    if kind == "text":
        return len('42["big","') + n + len('"]')
    if transport == "websocket":
        return n
    # "b" + base64, in the worst case batched after the header packet and a "\x1e"
    header = len('451-["big",{"_placeholder":true,"num":0}]') + 1
    return header + 1 + 4 * ((n + 2) // 3)


def binary(data: bytes) -> dict[str, str]:
    return {"$bin": data.hex(), "type": "Buffer"}


def check_scenario(r: dict[str, Any], final_transport: str) -> None:
    assert r["echo"] == ["héllo ☃ 😀", 42, {"a": [1, None, True, 2.5]}]
    assert r["echo_event"] == ["x", {"y": [1]}]
    # server -> client call: the client's answer came back as the server's ack
    assert r["ask"] == [{"answer": 42, "via": "node"}]
    assert r["binary_echo"] == [
        {
            "a": binary(bytes([0, 1, 2, 255])),
            "nested": {"list": [binary(b""), "x", {"deep": binary(b"deep")}]},
        },
        binary(b"second arg"),
    ]
    assert r["server_binary"] == [
        {"blob": binary(SERVER_BLOB), "nested": [binary(b"\x00\xff"), {"x": binary(b"abc")}]}
    ]
    assert r["welcome"] == {"ns": "/second", "auth": {"token": "t-1"}}
    assert r["second"] == ["/second", "two", 2]
    assert r["last_transport"] == final_transport
    for kind in ("text", "binary"):
        big = r[f"big_{kind}"]
        assert big["transport"] == final_transport
        # at the limit exactly: one more byte and the backend would refuse it
        assert wire_size(kind, final_transport, big["n"]) in range(
            MAX_HTTP_BUFFER_SIZE - 3, MAX_HTTP_BUFFER_SIZE + 1
        )
        want = expected_big(kind, big["n"])
        digest = {"len": len(want), "sha256": hashlib.sha256(want).hexdigest()}
        assert big["server"] == digest, "the backend did not receive the payload intact"
        assert (big["echoed"]["n"], big["echoed"]["h"]) == (digest["len"], digest["sha256"])
        assert big["echoed_is_buffer"] == (kind == "binary")


@pytest.mark.parametrize("mode", MODES)
async def test_scenario_through_relay(aiohttp_front: Front, mode: str) -> None:
    transports, final = MODES[mode]
    result = await run_node(
        "scenario.js",
        {
            "url": aiohttp_front.url,
            "rec": f"client-{mode}",
            "transports": transports,
            "wait_upgrade": transports is None,
            "big": True,
            "max": MAX_HTTP_BUFFER_SIZE,
        },
    )
    assert result["first_transport"] == (transports or ["polling"])[0]
    assert result["upgrades"] == ([] if transports else ["websocket"])
    check_scenario(result, final)

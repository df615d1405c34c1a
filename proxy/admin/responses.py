"""What every admin handler shares: JSON replies, query parameters, and encoding long lists
without stalling the event loop the relay runs on.

The admin listener shares its event loop with the relayed traffic, so a handler that turns
thousands of records into text never builds the whole answer at once: it streams it, a chunk
of :data:`ENCODE_CHUNK` items at a time, yielding to the loop before each (:func:`chunks`,
:func:`write_chunks`, :func:`stream_json`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from aiohttp import web

from socketio_trace_proxy.proxy.admin.serialize import JSON, ActivityFilter

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENCODE_CHUNK = 100
"""Records encoded between two yields to the event loop (a few milliseconds of work)."""

TRACKING_OFF = (
    "tracking is off (tracking.enabled: false, or SOCKET_TRACKING_ENABLED=0): the proxy "
    "relays without decoding, so there are no sessions, requests or records to report; "
    "/healthz, /readyz, /metrics and /api/metrics still report the relay"
)


def dumps(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"))


def json_response(
    value: JSON, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(value),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=dumps({"error": message}), content_type="application/json")


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}")
    return value


def choice_param(request: web.Request, name: str, default: str, choices: Sequence[str]) -> str:
    value = request.query.get(name) or default
    if value not in choices:
        raise bad_request(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def activity_filter(request: web.Request) -> ActivityFilter:
    try:
        return ActivityFilter.from_query(request.query)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def tracking_off() -> web.Response:
    """What an endpoint that needs the tracker answers when tracking is off."""
    return json_response({"error": TRACKING_OFF, "tracking": False}, status=503)


async def chunks(values: Iterable[T], size: int = ENCODE_CHUNK) -> AsyncIterator[list[T]]:
    """``values`` in lists of ``size``, yielding to the event loop before each one."""
    chunk: list[T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            await asyncio.sleep(0)
            yield chunk
            chunk = []
    if chunk:
        await asyncio.sleep(0)
        yield chunk


async def write_chunks(
    response: web.StreamResponse,
    parts: AsyncIterator[list[T]],
    encode: Callable[[list[T]], str | bytes],
    sep: str = "",
) -> None:
    """Write each chunk of ``parts`` as ``encode(chunk)``, ``sep`` between chunks."""
    first = True
    gap = sep.encode()
    async for part in parts:
        text = encode(part)
        data = text if isinstance(text, bytes) else text.encode()
        await response.write(data if first or not gap else gap + data)
        first = False


async def stream_json(
    request: web.Request,
    head: str,
    parts: AsyncIterator[list[T]],
    encode: Callable[[T], str],
    tail: str,
) -> web.StreamResponse:
    """``head`` + the encoded values, comma-separated + ``tail``, as a chunked JSON reply."""
    response = web.StreamResponse(
        headers={"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(head.encode())
    await write_chunks(response, parts, lambda part: ",".join(map(encode, part)), ",")
    await response.write(tail.encode())
    await response.write_eof()
    return response

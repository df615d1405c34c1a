"""Everything off the Socket.IO path (and HEAD): streamed both ways, never inspected.

Owns the streamed leg through aiohttp's ``ClientSession``: the request body is passed on as
it arrives; the response head is written as the upstream sent it (status line, reason,
header names, order and repeats; minus hop-by-hop lines, plus only the framing and
``Connection`` this client needs, issue 14) and its body in chunks as they come; a client
that goes away cancels the upstream request.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import aiohttp
from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from socketio_trace_proxy.proxy.core import RelayCore
from socketio_trace_proxy.proxy.headers import ClientRequest
from socketio_trace_proxy.proxy.polling import (
    CHUNKED,
    NO_BODY_STATUS,
    Written,
    connection_line,
    copy_headers,
)
from socketio_trace_proxy.proxy.wsclose import release_client_leg

STREAM_CHUNK: Final = 64 * 1024


def stream_head(
    request: web.BaseRequest, upstream: aiohttp.ClientResponse
) -> tuple[bytes, bool, bool]:
    """The response head for the client; whether the body is to be chunked, and whether the
    connection is kept alive.  A body the upstream framed by its length keeps that length;
    any other is chunked for an HTTP/1.1 client and ends with the connection otherwise."""
    version = request.version
    status = upstream.status
    no_body = request.method == hdrs.METH_HEAD or status in NO_BODY_STATUS
    reason = upstream.reason or ""
    parts = [
        b"HTTP/%d.%d %d %s\r\n"
        % (version.major, version.minor, status, reason.encode("utf-8", "surrogateescape"))
    ]
    append = parts.append
    # A HEAD's Content-Length announces the body a GET would get: kept.
    chunk_ok = not no_body and version == HttpVersion11
    seen = copy_headers(list(upstream.raw_headers), status in NO_BODY_STATUS, append, chunk_ok)
    keep_alive = request.keep_alive
    chunked = False
    if not no_body and seen.length is None:
        if chunk_ok:
            chunked = True
            if not seen.framed:
                append(CHUNKED)
        else:
            keep_alive = False  # the end of the body is the end of the connection
    append(connection_line(version, keep_alive))
    append(b"\r\n")
    return b"".join(parts), chunked, keep_alive


async def open_upstream(
    core: RelayCore, request: ClientRequest, data: Any
) -> aiohttp.ClientResponse | web.Response:
    """Send ``request`` (``data``: its body, streamed) through the ``ClientSession``: the
    upstream's response with its body still to read, or the 502 for an unreachable one."""
    session = core.session
    assert session is not None
    try:
        return await session.request(
            request.method,
            core.url(request),
            headers=core.upstream_headers(request),
            data=data,
            allow_redirects=False,
        )
    except asyncio.CancelledError:
        core.counters.client_disconnects += 1
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return core.upstream_failed(exc)


async def relay_stream(core: RelayCore, request: web.BaseRequest) -> web.StreamResponse:
    """Forward ``request`` and stream the upstream's response back."""
    upstream = await open_upstream(core, request, request.content if request.body_exists else None)
    if isinstance(upstream, web.Response):
        return upstream
    writer = request.writer
    sent = 0
    try:
        head, chunked, keep_alive = stream_head(request, upstream)
        await writer.write(head)
        sent = len(head)
        if chunked:
            writer.enable_chunking()
        async for chunk in upstream.content.iter_chunked(STREAM_CHUNK):
            await writer.write(chunk)
            sent += len(chunk)
        await writer.write_eof()
        return Written(upstream.status, keep_alive, sent)
    except (ConnectionError, asyncio.CancelledError):
        core.counters.client_disconnects += 1
        upstream.close()
        raise
    except (TimeoutError, aiohttp.ClientError):
        # Upstream died after the head went out: nothing sensible left to send.
        core.counters.upstream_errors += 1
        upstream.close()
        release_client_leg(request)
        return Written(upstream.status, False, sent)
    finally:
        upstream.release()

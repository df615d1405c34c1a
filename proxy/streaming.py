"""Everything off the Socket.IO path (and HEAD): streamed both ways, never inspected.

Owns the streamed leg through aiohttp's ``ClientSession``: the request body is passed on as
it arrives, the response's status, reason and headers (minus hop-by-hop ones) and its body
in chunks as they come; a client that goes away cancels the upstream request.
"""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp
from aiohttp import web

from socketio_trace_proxy.proxy.core import RelayCore
from socketio_trace_proxy.proxy.headers import response_headers
from socketio_trace_proxy.proxy.wsclose import release_client_leg

STREAM_CHUNK: Final = 64 * 1024


async def relay_stream(core: RelayCore, request: web.BaseRequest) -> web.StreamResponse:
    """Forward ``request`` and stream the upstream's response back."""
    session = core.session
    assert session is not None
    data = request.content if request.body_exists else None
    try:
        upstream = await session.request(
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
    try:
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=response_headers(upstream.headers),
        )
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(STREAM_CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    except (ConnectionError, asyncio.CancelledError):
        core.counters.client_disconnects += 1
        upstream.close()
        raise
    except (TimeoutError, aiohttp.ClientError):
        # Upstream died after the headers went out: nothing sensible left to send.
        core.counters.upstream_errors += 1
        upstream.close()
        release_client_leg(request)
        return response
    finally:
        upstream.release()

"""Who may use the admin listener: the loopback rule, the bearer token and the login cookie.

Bound to a non-loopback address the listener needs a token (``SOCKET_TRACE_ADMIN_TOKEN``);
without one :func:`check_admin_binding` raises :class:`AdminBindError` (the CLI exits 2).
With a token configured every endpoint but the health checks and the login form asks for
``Authorization: Bearer <token>`` or the cookie the login form sets.  The cookie holds an
HMAC of the token, never the token itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from socketio_trace_proxy.config.admin import ADMIN_TOKEN_ENV, AdminSettings

COOKIE_NAME = "sitp_admin"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login"})
_LOGIN_FAILURE_DELAY_S = 0.25


class AdminBindError(Exception):
    """The admin listener may not start with these settings (the message says why)."""


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` -> (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AdminBindError(f"admin listen address {listen!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def is_loopback_host(host: str) -> bool:
    """Only literal loopback addresses and ``localhost`` count; every other name may
    resolve to a public interface."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_admin_binding(settings: AdminSettings) -> None:
    """Raise :class:`AdminBindError` unless the listener is disabled, on loopback, or has a
    token."""
    if settings.listen is None:
        return
    host, _ = parse_listen(settings.listen)
    if not is_loopback_host(host) and settings.token is None:
        raise AdminBindError(
            f"refusing to start the admin listener on {settings.listen}: it is not a loopback "
            f"address and no token is set; set {ADMIN_TOKEN_ENV} in the environment, or bind "
            "it to 127.0.0.1"
        )


def cookie_value(token: str) -> str:
    return hmac.new(
        token.encode(), b"socketio-trace-proxy admin cookie v1", hashlib.sha256
    ).hexdigest()


def is_authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(COOKIE_NAME)
    return cookie is not None and hmac.compare_digest(cookie.encode(), cookie_value(token).encode())


def auth_middleware(token: str) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or is_authorized(request, token):
            return await handler(request)
        if request.method == "GET" and request.path == "/":
            raise web.HTTPSeeOther("/login")
        return web.json_response(
            {"error": "unauthorized: send Authorization: Bearer <token> or log in at /login"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="socketio-trace-proxy admin"'},
        )

    return middleware


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>socketio-trace-proxy: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px system-ui,sans-serif;background:#10151c;color:#dde3ea;display:grid;
place-items:center;height:100vh;margin:0}}form{{background:#19212b;padding:24px 28px;
border-radius:8px;min-width:300px}}input{{width:100%;box-sizing:border-box;padding:8px;
margin:8px 0 14px;background:#0d1117;color:inherit;border:1px solid #3a4656;border-radius:4px}}
button{{padding:8px 16px;background:#2f81f7;color:#fff;border:0;border-radius:4px}}
.err{{color:#ff7b72}}</style></head>
<body><form method="post" action="/login"><h2>Socket.IO trace monitor</h2>{error}
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus>
<button type="submit">Log in</button></form></body></html>"""


def login_page(error: str | None = None, status: int = 200) -> web.Response:
    err = f'<p class="err">{html.escape(error)}</p>' if error else ""
    return web.Response(
        text=_LOGIN_PAGE.format(error=err),
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


def login_handlers(token: str | None) -> list[web.RouteDef]:
    async def get_login(request: web.Request) -> web.StreamResponse:
        if token is None:
            raise web.HTTPSeeOther("/")
        return login_page()

    async def post_login(request: web.Request) -> web.StreamResponse:
        if token is None:
            raise web.HTTPSeeOther("/")
        form = await request.post()
        given = form.get("token")
        if isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode()):
            response = web.HTTPSeeOther("/")
            response.set_cookie(
                COOKIE_NAME,
                cookie_value(token),
                httponly=True,
                samesite="Strict",
                path="/",
                secure=request.secure,
            )
            raise response
        await asyncio.sleep(_LOGIN_FAILURE_DELAY_S)  # slows down guessing
        return login_page("That token is not right.", status=401)

    async def post_logout(request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login" if token is not None else "/")
        response.del_cookie(COOKIE_NAME, path="/")
        raise response

    return [
        web.get("/login", get_login),
        web.post("/login", post_login),
        web.post("/logout", post_logout),
    ]

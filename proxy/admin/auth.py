"""The admin token at work: bearer header, login form, session cookies, guess rate limit.

With a token configured every endpoint but the health checks and the login form asks for
``Authorization: Bearer <token>`` or the cookie the login form sets.  The cookie names a
login session: a random 256-bit value (only its SHA-256 is kept), valid for
``login_session_ttl_s``, revoked by ``POST /logout``; at most ``max_login_sessions`` live at
once (the oldest is revoked beyond, counted).  A wrong token (form or bearer) is a guess:
each client (remote address; IPv6 by /64) may make ``login_attempt_burst`` at once and
``login_attempts_per_minute`` after that; beyond, token checks are refused with 429 before
the token is even compared (counted).  An unknown cookie (expired, revoked, from before a
restart) is not a guess: it cannot be guessed, and a stale tab must not lock its user out.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from socketio_trace_proxy.config.admin import AdminSettings

COOKIE_NAME = "sitp_admin"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/login"})
MAX_TRACKED_CLIENTS = 4096
"""Clients the guess limiter remembers; the least recently seen is forgotten beyond."""


class LoginSessions:
    """Random, expiring, revocable login sessions, bounded in number."""

    def __init__(self, ttl_s: float, max_sessions: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._expiry: OrderedDict[bytes, float] = OrderedDict()  # sha256(cookie) -> deadline
        self.evicted = 0

    def create(self) -> str:
        self._purge()
        while len(self._expiry) >= self._max:
            self._expiry.popitem(last=False)
            self.evicted += 1
        cookie = secrets.token_urlsafe(32)
        self._expiry[_digest(cookie)] = self._clock() + self._ttl
        return cookie

    def valid(self, cookie: str) -> bool:
        key = _digest(cookie)
        deadline = self._expiry.get(key)
        if deadline is None:
            return False
        if deadline <= self._clock():
            del self._expiry[key]
            return False
        return True

    def revoke(self, cookie: str) -> None:
        self._expiry.pop(_digest(cookie), None)

    def _purge(self) -> None:
        now = self._clock()
        for key in [k for k, deadline in self._expiry.items() if deadline <= now]:
            del self._expiry[key]

    def __len__(self) -> int:
        return len(self._expiry)


def _digest(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode()).digest()


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class GuessLimiter:
    """A token bucket of wrong-token guesses per client, in a bounded table."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        clock: Callable[[], float],
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        self._max_clients = max_clients
        self._burst = float(burst)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.evicted = 0

    def allowed(self, client: str) -> bool:
        """Whether ``client`` may have a token checked now."""
        return self._bucket(client).tokens >= 1.0

    def retry_after_s(self, client: str) -> int:
        missing = 1.0 - self._bucket(client).tokens
        return max(1, math.ceil(missing / self._rate))

    def failed(self, client: str) -> None:
        self._bucket(client).tokens -= 1.0

    def _bucket(self, client: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            while len(self._buckets) >= self._max_clients:
                self._buckets.popitem(last=False)
                self.evicted += 1
            bucket = self._buckets[client] = _Bucket(self._burst, now)
        else:
            self._buckets.move_to_end(client)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
            bucket.at = now
        return bucket


def client_key(remote: str | None) -> str:
    """The rate limit's key for a peer address: the address itself, or its /64 for IPv6
    (one host commonly holds a whole /64)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "?"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Auth:
    """The middleware and the login/logout routes for one admin token."""

    def __init__(
        self,
        token: str,
        settings: AdminSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token.encode()
        self.sessions = LoginSessions(
            settings.login_session_ttl_s, settings.max_login_sessions, clock
        )
        self.limiter = GuessLimiter(
            settings.login_attempt_burst, settings.login_attempts_per_minute, clock
        )
        self._ttl = int(settings.login_session_ttl_s)
        self.failures = 0
        self.refused = 0

    def counters(self) -> dict[str, int]:
        return {
            "login_failures": self.failures,
            "login_refused": self.refused,
            "login_sessions": len(self.sessions),
            "login_sessions_evicted": self.sessions.evicted,
            "login_clients_evicted": self.limiter.evicted,
        }

    def _check_token(self, request: web.Request, given: str) -> bool | None:
        """True/False: the token is right/wrong; None: refused by the guess limit."""
        client = client_key(request.remote)
        if not self.limiter.allowed(client):
            self.refused += 1
            return None
        if hmac.compare_digest(given.encode(), self._token):
            return True
        self.failures += 1
        self.limiter.failed(client)
        return False

    def _too_many(self, request: web.Request) -> web.Response:
        retry = self.limiter.retry_after_s(client_key(request.remote))
        return web.json_response(
            {"error": f"too many wrong tokens from this address; retry in {retry} s"},
            status=429,
            headers={"Retry-After": str(retry), "Cache-Control": "no-store"},
        )

    def middleware(self) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in PUBLIC_PATHS:
                return await handler(request)
            cookie = request.cookies.get(COOKIE_NAME)
            if cookie is not None and self.sessions.valid(cookie):
                return await handler(request)
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer" and given.strip():
                verdict = self._check_token(request, given.strip())
                if verdict is None:
                    return self._too_many(request)
                if verdict:
                    return await handler(request)
            if request.method == "GET" and request.path == "/":
                raise web.HTTPSeeOther("/login")
            return web.json_response(
                {"error": "unauthorized: send Authorization: Bearer <token> or log in at /login"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="socketio-trace-proxy admin"'},
            )

        return middleware

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/login", self._get_login),
            web.post("/login", self._post_login),
            web.post("/logout", self._post_logout),
        ]

    async def _get_login(self, request: web.Request) -> web.StreamResponse:
        return login_page()

    async def _post_login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given = form.get("token")
        verdict = self._check_token(request, given if isinstance(given, str) else "")
        if verdict is None:
            retry = self.limiter.retry_after_s(client_key(request.remote))
            return login_page(
                f"Too many wrong tokens from this address. Try again in {retry} s.",
                status=429,
                headers={"Retry-After": str(retry)},
            )
        if not verdict:
            return login_page("That token is not right.", status=401)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            COOKIE_NAME,
            self.sessions.create(),
            max_age=self._ttl,
            httponly=True,
            samesite="Strict",
            path="/",
            secure=request.secure,
        )
        raise response

    async def _post_logout(self, request: web.Request) -> web.StreamResponse:
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie is not None:
            self.sessions.revoke(cookie)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE_NAME, path="/")
        raise response


def open_routes() -> list[web.RouteDef]:
    """Login and logout without a token: there is nothing to log in to."""

    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/")

    return [web.get("/login", home), web.post("/login", home), web.post("/logout", home)]


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>socketio-trace-proxy: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
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


def login_page(
    error: str | None = None, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    err = f'<p class="err">{html.escape(error)}</p>' if error else ""
    return web.Response(
        text=_LOGIN_PAGE.format(error=err),
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY", **(headers or {})},
    )

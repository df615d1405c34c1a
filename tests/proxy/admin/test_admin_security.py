"""Loopback rule, bearer token and login cookie."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from pydantic import SecretStr

from socketio_trace_proxy.config.admin import ADMIN_TOKEN_ENV, AdminSettings
from socketio_trace_proxy.proxy.admin import AdminBindError, build_admin_app, check_admin_binding
from socketio_trace_proxy.proxy.admin.auth import (
    COOKIE_NAME,
    GuessLimiter,
    LoginSessions,
    client_key,
)
from socketio_trace_proxy.proxy.admin.security import is_loopback_host, parse_listen
from tests.proxy.admin.conftest import MakeClient
from tests.proxy.admin.fakes import FakeSource

TOKEN = "correct horse battery staple"


def guarded(listen: str = "0.0.0.0:9090") -> AdminSettings:
    return AdminSettings(listen=listen, token=SecretStr(TOKEN))


@pytest.mark.parametrize("listen", ["127.0.0.1:9090", "[::1]:9090", "localhost:1", "127.8.9.1:0"])
def test_loopback_needs_no_token(listen: str) -> None:
    check_admin_binding(AdminSettings(listen=listen))


@pytest.mark.parametrize("listen", ["0.0.0.0:9090", "[::]:9090", "10.1.2.3:80", "admin.example:9"])
def test_non_loopback_without_token_refuses_to_start(listen: str) -> None:
    with pytest.raises(AdminBindError, match=ADMIN_TOKEN_ENV):
        check_admin_binding(AdminSettings(listen=listen))

    async def ready() -> bool:
        return True

    with pytest.raises(AdminBindError):
        build_admin_app(FakeSource(), AdminSettings(listen=listen), ready)
    check_admin_binding(guarded(listen))  # fine with a token


def test_disabled_listener_is_fine() -> None:
    check_admin_binding(AdminSettings(listen=None))


@pytest.mark.parametrize("listen", ["9090", ":9090", "host:port", "host:70000"])
def test_malformed_listen(listen: str) -> None:
    with pytest.raises(AdminBindError, match="HOST:PORT"):
        parse_listen(listen)


def test_loopback_detection() -> None:
    assert is_loopback_host("::1") and is_loopback_host("127.0.0.2")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("192.168.1.1")


@pytest.mark.parametrize(
    "path", ["/metrics", "/api/metrics", "/api/pending", "/api/events", "/api/stream",
             "/api/export?format=csv", "/api/sessions", "/api/sessions/x", "/static/dashboard.js"]
)  # fmt: skip
async def test_no_token_gives_401(make_client: MakeClient, path: str) -> None:
    client = await make_client(FakeSource(), guarded("127.0.0.1:0"))
    resp = await client.get(path)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await client.get(path, headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401


async def test_bearer_token_opens_the_api(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guarded("127.0.0.1:0"))
    resp = await client.get("/api/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200


async def test_health_checks_stay_open(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guarded("127.0.0.1:0"))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_login_form_sets_a_cookie_without_the_token(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guarded("127.0.0.1:0"))
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    page = await (await client.get("/login")).text()
    assert re.search(r'<input[^>]+name="token"', page)

    resp = await client.post("/login", data={"token": "nope"}, allow_redirects=False)
    assert resp.status == 401
    assert COOKIE_NAME not in resp.cookies

    resp = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303
    cookie = resp.cookies[COOKIE_NAME]
    assert TOKEN not in cookie.value
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (await client.get("/api/metrics")).status == 200  # the jar sends the cookie
    assert (await client.get("/")).status == 200

    await client.post("/logout", allow_redirects=False)
    assert (await client.get("/api/metrics")).status == 401


async def test_without_token_on_loopback_everything_is_open(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), AdminSettings(listen="127.0.0.1:0"))
    assert (await client.get("/api/metrics")).status == 200
    resp = await client.get("/login", allow_redirects=False)
    assert resp.status == 303


# --- without a token: only loopback and configured Host names (DNS rebinding) -----------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:9090", "127.0.0.1.nip.io:9090", "0.0.0.0:9090",
             "[2001:db8::1]:9090", "localhost.evil.example"]
)  # fmt: skip
async def test_without_a_token_a_foreign_host_name_is_refused(
    make_client: MakeClient, host: str
) -> None:
    """A page on evil.example that rebinds its name to 127.0.0.1 still sends its own name."""
    client = await make_client(FakeSource(), AdminSettings(listen="127.0.0.1:0"))
    for path in ("/api/export?format=ndjson", "/api/metrics", "/", "/metrics", "/healthz"):
        resp = await client.get(path, headers={"Host": host})
        assert resp.status == 421, (path, resp.status)
        assert "admin.allowed_hosts" in (await resp.json())["error"]
    metrics = await (await client.get("/metrics")).text()
    assert "socketio_proxy_admin_hosts_refused_total 5.0" in metrics


@pytest.mark.parametrize(
    "host", ["127.0.0.1:9090", "127.0.0.1", "localhost:9090", "LOCALHOST", "[::1]:9090",
             "app.localhost:9090", "127.8.9.1"]
)  # fmt: skip
async def test_without_a_token_loopback_host_names_are_served(
    make_client: MakeClient, host: str
) -> None:
    client = await make_client(FakeSource(), AdminSettings(listen="127.0.0.1:0"))
    assert (await client.get("/api/metrics", headers={"Host": host})).status == 200


async def test_configured_host_names_are_served(make_client: MakeClient) -> None:
    settings = AdminSettings(listen="127.0.0.1:0", allowed_hosts=("Monitor.LAN.",))
    client = await make_client(FakeSource(), settings)
    assert (await client.get("/api/metrics", headers={"Host": "monitor.lan:9090"})).status == 200
    assert (await client.get("/api/metrics", headers={"Host": "other.lan"})).status == 421


def test_allowed_hosts_are_names_without_port_or_scheme() -> None:
    for bad in ("http://x", "x:80", "a b", ""):
        with pytest.raises(ValueError, match="host name"):
            AdminSettings(allowed_hosts=(bad,))


async def test_with_a_token_the_token_guards_any_host_name(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guarded("127.0.0.1:0"))
    headers = {"Host": "proxy.example:9090", "Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/api/metrics", headers=headers)).status == 200
    assert (await client.get("/api/metrics", headers={"Host": "proxy.example"})).status == 401


# --- login sessions: random, expiring, revocable, bounded ------------------------------


async def login(client: Any) -> str:
    resp = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303
    return str(resp.cookies[COOKIE_NAME].value)


async def test_each_login_gets_its_own_random_session(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guarded("127.0.0.1:0"))
    first, second = await login(client), await login(client)
    assert first != second
    assert len(first) >= 40 and TOKEN not in first
    for cookie in (first, second):
        resp = await client.get("/api/metrics", cookies={COOKIE_NAME: cookie})
        assert resp.status == 200


async def test_log_out_revokes_the_session(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guarded("127.0.0.1:0"))
    kept, revoked = await login(client), await login(client)
    client.session.cookie_jar.clear()
    resp = await client.post("/logout", cookies={COOKIE_NAME: revoked}, allow_redirects=False)
    assert resp.status == 303
    # the old cookie is worthless now, even sent by hand; the other session lives on
    assert (await client.get("/api/metrics", cookies={COOKIE_NAME: revoked})).status == 401
    assert (await client.get("/api/metrics", cookies={COOKIE_NAME: kept})).status == 200


async def test_session_cookie_expires(make_client: MakeClient) -> None:
    settings = AdminSettings(listen="127.0.0.1:0", token=SecretStr(TOKEN), login_session_ttl_s=600)
    client = await make_client(FakeSource(), settings)
    resp = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.cookies[COOKIE_NAME]["max-age"] == "600"


def test_login_sessions_expire_and_are_bounded() -> None:
    now = [1000.0]
    sessions = LoginSessions(ttl_s=60.0, max_sessions=2, clock=lambda: now[0])
    a = sessions.create()
    now[0] += 30
    b = sessions.create()
    assert sessions.valid(a) and sessions.valid(b)
    now[0] += 20
    c = sessions.create()  # a third one: the oldest is revoked
    assert not sessions.valid(a) and sessions.valid(c)
    assert sessions.evicted == 1
    now[0] += 41  # b is 61 s old, c 41 s
    assert not sessions.valid(b) and sessions.valid(c)
    assert len(sessions) == 1


async def test_login_sessions_are_bounded_and_counted(make_client: MakeClient) -> None:
    settings = AdminSettings(listen="127.0.0.1:0", token=SecretStr(TOKEN), max_login_sessions=2)
    client = await make_client(FakeSource(), settings)
    cookies = [await login(client) for _ in range(3)]
    client.session.cookie_jar.clear()
    assert (await client.get("/api/metrics", cookies={COOKIE_NAME: cookies[0]})).status == 401
    body = await (await client.get("/api/metrics", cookies={COOKIE_NAME: cookies[2]})).json()
    assert body["admin"]["login_sessions"] == 2
    assert body["admin"]["login_sessions_evicted"] == 1


# --- wrong-token guesses are rate-limited ------------------------------------------------


def guess_limited(burst: int) -> AdminSettings:
    """A token, ``burst`` wrong guesses at once, then one a minute."""
    return AdminSettings(
        listen="127.0.0.1:0",
        token=SecretStr(TOKEN),
        login_attempt_burst=burst,
        login_attempts_per_minute=1,
    )


async def test_login_guesses_are_rate_limited_and_counted(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guess_limited(burst=3))

    async def guess(i: int) -> int:
        resp = await client.post("/login", data={"token": f"guess-{i}"}, allow_redirects=False)
        return resp.status

    statuses = await asyncio.gather(*(guess(i) for i in range(40)))
    assert statuses.count(401) == 3  # the burst
    assert statuses.count(429) == 37
    resp = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 429  # even the right token is not compared while limited
    assert int(resp.headers["Retry-After"]) >= 1
    bearer = await client.get("/api/metrics", headers={"Authorization": "Bearer also-a-guess"})
    assert bearer.status == 429
    metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert metrics.status == 429  # a limited address gets no token checked


async def test_bearer_guesses_count_too_and_stale_cookies_do_not(make_client: MakeClient) -> None:
    client = await make_client(FakeSource(), guess_limited(burst=2))
    for _ in range(20):  # a tab holding a cookie from before a restart keeps polling
        stale = await client.get("/api/metrics", cookies={COOKIE_NAME: "stale-session"})
        assert stale.status == 401
    good = await client.get("/api/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status == 200
    body = await good.json()
    assert body["admin"]["login_failures"] == 0
    for _ in range(2):
        resp = await client.get("/api/metrics", headers={"Authorization": "Bearer wrong"})
        assert resp.status == 401
    resp = await client.get("/api/metrics", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 429


def test_guess_limiter_refills_and_forgets_the_least_recent_clients() -> None:
    now = [0.0]
    limiter = GuessLimiter(burst=2, per_minute=6, clock=lambda: now[0], max_clients=3)
    for _ in range(2):
        assert limiter.allowed("a")
        limiter.failed("a")
    assert not limiter.allowed("a")
    assert limiter.retry_after_s("a") == 10  # 6 a minute: one every 10 s
    now[0] += 10
    assert limiter.allowed("a")
    for client in ("b", "c", "d"):  # a table of 3: "a" is forgotten
        limiter.allowed(client)
    assert limiter.evicted == 1


def test_client_key_groups_ipv6_by_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == client_key("10.0.0.1") == "10.0.0.1"

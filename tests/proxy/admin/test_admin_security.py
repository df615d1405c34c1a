"""Loopback rule, bearer token and login cookie."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from socketio_trace_proxy.config.admin import ADMIN_TOKEN_ENV, AdminSettings
from socketio_trace_proxy.proxy.admin import AdminBindError, build_admin_app, check_admin_binding
from socketio_trace_proxy.proxy.admin.security import COOKIE_NAME, is_loopback_host, parse_listen
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

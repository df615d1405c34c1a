"""The monitoring listener's settings (dashboard, admin API, Prometheus metrics).

The admin token is a secret and comes from the environment only: the config loader fills
``AdminSettings.token`` from ``SOCKET_TRACE_ADMIN_TOKEN`` (see :func:`token_from_environ`)
and must refuse a ``token`` key in the YAML file.  An empty variable means "no token".
Without a token the admin listener only starts on a loopback address and only answers
requests whose ``Host`` is a loopback address, ``localhost`` or one of ``allowed_hosts``
(a page on another origin must not reach it through DNS rebinding).  With a token, every
endpoint except ``/healthz``, ``/readyz`` and the login form asks for
``Authorization: Bearer <token>`` or the session cookie the login form sets (random,
expiring, revoked by ``/logout``); wrong tokens are rate-limited.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from socketio_trace_proxy.config.address import split_host_port
from socketio_trace_proxy.config.base import Section

ADMIN_TOKEN_ENV = "SOCKET_TRACE_ADMIN_TOKEN"

DEFAULT_DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def token_from_environ(environ: Mapping[str, str]) -> SecretStr | None:
    """The admin token from ``SOCKET_TRACE_ADMIN_TOKEN``; ``None`` when unset or blank."""
    value = environ.get(ADMIN_TOKEN_ENV, "").strip()
    return SecretStr(value) if value else None


class AdminSettings(Section):
    listen: str | None = Field(
        "127.0.0.1:9090", description="HOST:PORT of the admin listener; null disables it"
    )
    token: SecretStr | None = Field(
        None,
        description=f"bearer token guarding the admin listener; from ${ADMIN_TOKEN_ENV} only",
        json_schema_extra={"env_only": True},
    )
    stream_interval_s: float = Field(
        0.5, gt=0, le=60, description="how often the live stream pushes one aggregated update"
    )
    stream_client_buffer: int = Field(
        8, gt=0, le=1024, description="updates queued per live-stream client before dropping"
    )
    max_stream_clients: int = Field(64, gt=0, description="concurrent live-stream clients")
    stream_activity_items: int = Field(
        200, gt=0, description="newest activity items per update and client (rest are counted)"
    )
    stream_pending_items: int = Field(
        200, gt=0, description="oldest pending requests sent per update (total always sent)"
    )
    api_max_items: int = Field(
        5000, gt=0, description="largest page /api/events, /api/sessions, /api/pending return"
    )
    duration_buckets_s: tuple[float, ...] = Field(
        DEFAULT_DURATION_BUCKETS_S,
        min_length=1,
        description="upper bounds of the request duration histogram on /metrics",
    )
    max_histogram_series: int = Field(
        2000, gt=0, description="(rule, outcome) histogram series before folding into (other)"
    )
    allowed_hosts: tuple[str, ...] = Field(
        (),
        description="Host names (no port) answered without a token, besides loopback "
        "addresses and localhost (DNS rebinding guard)",
    )
    max_concurrent_exports: int = Field(
        2, gt=0, description="/api/export downloads at once; more are refused (429, counted)"
    )
    closed_sessions: int = Field(
        200, ge=0, description="recently closed sessions kept browsable (most recent N)"
    )
    login_session_ttl_s: float = Field(
        12 * 3600.0, gt=0, description="lifetime of a login cookie's session"
    )
    max_login_sessions: int = Field(
        64, gt=0, description="login sessions held; the oldest is revoked beyond (counted)"
    )
    login_attempts_per_minute: float = Field(
        6.0, gt=0, description="wrong-token guesses allowed per client after the burst"
    )
    login_attempt_burst: int = Field(
        5, gt=0, description="wrong-token guesses a client may make at once (rest: 429)"
    )
    openobserve_ui_url: str | None = Field(
        None,
        description="OpenObserve web UI as the browser reaches it, for trace links "
        "(OPENOBSERVE_UI_URL); default: the exporter's endpoint",
    )

    @field_validator("listen")
    @classmethod
    def _listen_address(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(v.strip().lower().rstrip(".") for v in value)
        for name in names:
            if not name or any(c in name for c in "/:@ []"):
                raise ValueError(f"{name!r} is not a host name (give it without scheme or port)")
        return names

    @field_validator("openobserve_ui_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http(s) URL such as http://127.0.0.1:5080")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials (the browser logs in to OpenObserve)")
        return value.strip().rstrip("/")

    @field_validator("duration_buckets_s")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(b <= 0 for b in value) or any(a >= b for a, b in pairwise(value)):
            raise ValueError("bucket bounds must be positive and strictly increasing")
        return value

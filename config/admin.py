"""The monitoring listener's settings (dashboard, admin API, Prometheus metrics).

The admin token is a secret and comes from the environment only: the config loader fills
``AdminSettings.token`` from ``SOCKET_TRACE_ADMIN_TOKEN`` (see :func:`token_from_environ`)
and must refuse a ``token`` key in the YAML file.  An empty variable means "no token".
Without a token the admin listener only starts on a loopback address; with one, every
endpoint except ``/healthz``, ``/readyz`` and the login form asks for
``Authorization: Bearer <token>`` or the cookie the login form sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

from pydantic import Field, SecretStr, field_validator

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
        2000, gt=0, description="(rule, outcome) histogram series before folding into _other"
    )

    @field_validator("duration_buckets_s")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(b <= 0 for b in value) or any(a >= b for a, b in pairwise(value)):
            raise ValueError("bucket bounds must be positive and strictly increasing")
        return value

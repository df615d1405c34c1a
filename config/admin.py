"""The monitoring listener's settings (dashboard, admin API, Prometheus metrics)."""

from __future__ import annotations

from pydantic import Field

from config.base import Section


class AdminSettings(Section):
    listen: str | None = Field(
        "127.0.0.1:9090", description="HOST:PORT of the admin listener; null disables it"
    )

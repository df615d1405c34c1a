"""Tracking settings: event-pair rules, timeouts, sampling, capture, limits."""

from __future__ import annotations

from pydantic import Field

from config.base import Section


class TrackingSettings(Section):
    enabled: bool = Field(True, description="decode and correlate; false makes a plain relay")

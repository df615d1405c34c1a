"""The whole configuration, composed of its sections."""

from __future__ import annotations

from pydantic import Field

from config.admin import AdminSettings
from config.base import Section
from config.exporters import ExportersSettings
from config.proxy import ProxySettings
from config.tracking import TrackingSettings


class Settings(Section):
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    exporters: ExportersSettings = Field(default_factory=ExportersSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)

"""The whole configuration, composed of its sections."""

from __future__ import annotations

from pydantic import Field

from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.config.base import Section
from socketio_trace_proxy.config.exporters import ExportersSettings
from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.config.record import RecordSettings, ReplaySettings
from socketio_trace_proxy.config.tracking import TrackingSettings


class Settings(Section):
    proxy: ProxySettings = Field(default_factory=ProxySettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    exporters: ExportersSettings = Field(default_factory=ExportersSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    record: RecordSettings = Field(default_factory=RecordSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)

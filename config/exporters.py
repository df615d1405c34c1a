"""Exporter settings: OpenObserve, any OTLP/HTTP endpoint, local NDJSON/console."""

from __future__ import annotations

from pydantic import Field

from config.base import Section


class ExportersSettings(Section):
    service_name: str = Field("socketio-trace-proxy", description="OTel service.name")

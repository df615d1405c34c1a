"""Exporters: small plugins behind :class:`tracking.sink.RecordSink` (encode -> batch -> send).

OpenObserve traces over OTLP/HTTP, the OpenObserve JSON stream, any OTLP/HTTP endpoint,
and the local default (NDJSON file and console lines).  The CLI calls :func:`build_sinks`.
"""

from socketio_trace_proxy.exporters.factory import ExporterConfigError, build_sinks

__all__ = ["ExporterConfigError", "build_sinks"]

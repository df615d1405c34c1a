"""Exporter settings: OpenObserve, any OTLP/HTTP endpoint, local NDJSON/console.

How the OpenObserve URLs are built
----------------------------------
``openobserve.endpoint`` (environment: ``OPENOBSERVE_ENDPOINT``) is the server's base URL,
e.g. ``http://openobserve:5080``; ``openobserve.org`` (``OPENOBSERVE_ORG``, default
``default``) is the organisation.  Traces go to ``{endpoint}/api/{org}/v1/traces`` (OTLP/HTTP
protobuf, gzip, ``stream-name: {traces_stream}`` header) and, unless ``json_stream`` is null,
the in-app tracker's records go to ``{endpoint}/api/{org}/{json_stream}/_json``.  An endpoint
that already ends in ``/api/{org}`` (the form AetherTerm's in-app tracker used, e.g.
``https://api.openobserve.ai/api/my_org``) is accepted too: that ``{org}`` is used and
``/api/{org}`` is not repeated.  Setting the endpoint is enough to turn both on.

What you find in OpenObserve: the stream names are stored normalized (every run of
characters outside ``[a-zA-Z0-9_:]`` becomes ``_``, then lower case: ``socket-io-traces`` is
the stream ``socket_io_traces``; ``check-config`` prints the stored name beside yours), and
every record key or span attribute is a column with ``.`` (and any character outside
``[a-z0-9_]``) turned into ``_``: ``socket.request.event`` is ``socket_request_event``,
``messaging.socket.io.sid`` is ``messaging_socket_io_sid`` (README, "What you find in
OpenObserve", has the table).

Credentials: ``openobserve.user`` / ``openobserve.password`` are filled from
``OPENOBSERVE_USER`` / ``OPENOBSERVE_PASS`` by the config loader (and by
``exporters.build_sinks`` from its ``environ``) and never from a file; they are ``SecretStr``
so they never show in reprs or logs, and are sent only as the HTTP Basic ``Authorization``
header.  An endpoint with userinfo (``http://user:pass@host:5080``) works too (sent as Basic,
never in the URL) and is shown with the password masked.  ``otlp.headers`` in the file may not
carry credentials (``Authorization``, ``*token*``, ``*key*``, ...): those go in
``OTEL_EXPORTER_OTLP_HEADERS``.

Any OTLP/HTTP endpoint: ``otlp.endpoint`` is the full URL (``.../v1/traces``); without it the
standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
(``/v1/traces`` appended) turn the exporter on, with ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``
and ``OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION``.  ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` shape the resource of every OTLP exporter.

When no remote exporter is configured, the local exporters (NDJSON file and console lines)
are used (``local.mode: auto``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from socketio_trace_proxy.config.base import Section


class BatchSettings(Section):
    """Batching, queueing and retry of one exporter."""

    max_batch_size: int = Field(512, ge=1, description="records per request")
    flush_interval_s: float = Field(5.0, gt=0, description="send what is queued this often")
    max_queue_size: int = Field(
        8192, ge=1, description="records held while the backend is slow; oldest dropped beyond"
    )
    max_retries: int | None = Field(
        None, ge=0, description="cap on the retries of one batch; null: the time budget decides"
    )
    retry_budget_s: float = Field(
        300.0,
        gt=0,
        description="a batch failing transiently (429/502/503/504, network, deadline; OpenObserve"
        " also 500) is retried this long: covers a slow first start of the receiver",
    )
    backoff_initial_s: float = Field(1.0, gt=0, description="first retry delay (doubles, jittered)")
    backoff_max_s: float = Field(10.0, gt=0, description="longest retry delay")
    max_retry_after_s: float = Field(60.0, gt=0, description="cap on a server's Retry-After")
    request_timeout_s: float = Field(
        10.0, gt=0, description="total deadline of one HTTP request (connect to last byte)"
    )


class OpenObserveSettings(Section):
    endpoint: str | None = Field(
        None,
        description="base URL (http://host:5080) or one ending in /api/{org}; OPENOBSERVE_ENDPOINT",
    )
    org: str = Field("default", min_length=1, description="organisation; OPENOBSERVE_ORG")
    user: SecretStr | None = Field(None, description="from OPENOBSERVE_USER only")
    password: SecretStr | None = Field(None, description="from OPENOBSERVE_PASS only")
    traces: bool = Field(True, description="export spans over OTLP/HTTP protobuf")
    traces_stream: str = Field(
        "default", min_length=1, description="stream-name header (OpenObserve normalizes it)"
    )
    json_stream: str | None = Field(
        "socket-io-traces",
        description="stream for the in-app tracker's JSON records, stored by OpenObserve as "
        "socket_io_traces (every run of characters outside [a-zA-Z0-9_:] becomes _, lower "
        "case); null: off",
    )
    compression: Literal["gzip", "none"] = Field("gzip", description="request body encoding")
    batch: BatchSettings = Field(default_factory=BatchSettings)


# Header names that carry credentials: never accepted from the file (issue 17, item 3).
_SECRET_HEADER = re.compile(r"(?i)auth|token|key|secret|pass|cookie|cred|session|signature")


class OtlpSettings(Section):
    endpoint: str | None = Field(
        None, description="full OTLP/HTTP traces URL; else OTEL_EXPORTER_OTLP_* variables"
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="extra headers, not secrets: credentials go in OTEL_EXPORTER_OTLP_HEADERS",
    )

    @field_validator("headers")
    @classmethod
    def _no_credentials(cls, headers: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in headers if _SECRET_HEADER.search(name))
        if secret:
            raise ValueError(
                f"header {', '.join(secret)} carries a credential: secrets are read only from "
                "the environment (OTEL_EXPORTER_OTLP_HEADERS); remove it from the file"
            )
        return headers

    compression: Literal["gzip", "none"] | None = Field(
        None, description="null: OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION, else none"
    )
    batch: BatchSettings = Field(default_factory=BatchSettings)


class LocalSettings(Section):
    mode: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: only when no remote exporter is configured"
    )
    ndjson_path: str | None = Field(
        "socketio-trace-proxy.ndjson", description="one JSON record per line; null: no file"
    )
    ndjson_max_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, description="rotate to <path>.1 beyond this size"
    )
    console: bool = Field(True, description="one concise line per pair on stdout")
    console_ok_per_s: int = Field(
        20, ge=0, description="plain ok pair lines per second; the rest as one summary line"
    )
    flush_interval_s: float = Field(0.5, gt=0, description="write what is queued this often")
    max_queue_size: int = Field(8192, ge=1, description="records held; oldest dropped beyond")


class ExportersSettings(Section):
    service_name: str = Field("socketio-trace-proxy", description="OTel service.name")
    resource_attributes: dict[str, str] = Field(
        default_factory=dict, description="extra OTel resource attributes"
    )
    export_messages: bool = Field(
        False, description="also export unpaired one-way events (as zero-length spans/records)"
    )
    openobserve: OpenObserveSettings = Field(default_factory=OpenObserveSettings)
    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    local: LocalSettings = Field(default_factory=LocalSettings)

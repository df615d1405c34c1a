"""``build_sinks``: the exporters the settings and the environment ask for.

Environment (``environ``) values win over the settings, as the config loader applies them:
``OPENOBSERVE_ENDPOINT``/``ORG``/``USER``/``PASS`` for OpenObserve (see
:mod:`config.exporters` for how its URLs are built); the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (as is) / ``OTEL_EXPORTER_OTLP_ENDPOINT`` (+
``/v1/traces``), ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``, ``..._COMPRESSION`` and
``..._TIMEOUT`` (milliseconds) for any OTLP receiver.  ``service.name`` is
``OTEL_SERVICE_NAME``, else ``exporters.service_name`` when the configuration sets it,
else ``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES``, else the default.  With no remote
exporter configured the local ones (NDJSON, console) are used.

An OpenObserve endpoint given with userinfo (``http://user:pass@host:5080``) is sent without
it, as Basic credentials when ``OPENOBSERVE_USER``/``OPENOBSERVE_PASS`` are not set.  Every
credential an exporter is given is masked in whatever a receiver's reply echoes back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import TextIO
from urllib.parse import unquote, urlsplit

from opentelemetry.util.re import parse_env_headers

from socketio_trace_proxy.config.exporters import BatchSettings, ExportersSettings
from socketio_trace_proxy.config.redact import redact_url, url_credentials
from socketio_trace_proxy.exporters.batching import BatchingSink, BatchPolicy
from socketio_trace_proxy.exporters.local import ConsolePlugin, NdjsonFilePlugin
from socketio_trace_proxy.exporters.openobserve import (
    AUTH_HINTS,
    JSON_COLUMNS,
    OPENOBSERVE_RETRYABLE,
    TRACES_COLUMNS,
    basic_auth,
    openobserve_target,
    stored_stream_name,
    stream_hint,
)
from socketio_trace_proxy.exporters.openobserve_json import OpenObserveJsonPlugin
from socketio_trace_proxy.exporters.otlp import OtlpTracesPlugin, default_resource
from socketio_trace_proxy.exporters.spans import AttrValue, export_filter
from socketio_trace_proxy.tracking.records import Record
from socketio_trace_proxy.tracking.sink import RecordSink

log = logging.getLogger(__name__)


class ExporterConfigError(ValueError):
    """An exporter setting that cannot work (e.g. an endpoint that is not an http(s) URL)."""


def batch_policy(batch: BatchSettings) -> BatchPolicy:
    return BatchPolicy(
        max_batch=batch.max_batch_size,
        interval_s=batch.flush_interval_s,
        max_queue=batch.max_queue_size,
        max_retries=batch.max_retries,
        retry_budget_s=batch.retry_budget_s,
        backoff_initial_s=batch.backoff_initial_s,
        backoff_max_s=batch.backoff_max_s,
        max_retry_after_s=batch.max_retry_after_s,
        request_timeout_s=batch.request_timeout_s,
    )


def parse_resource_attributes(value: str) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES``: ``k=v,k2=v2``, values percent-decoded (as the SDK does)."""
    attrs: dict[str, str] = {}
    for pair in value.split(","):
        if not pair.strip():
            continue
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            log.warning("ignoring malformed OTEL_RESOURCE_ATTRIBUTES entry %r", pair)
            continue
        attrs[key.strip()] = unquote(raw.strip())
    return attrs


def resolve_resource(
    settings: ExportersSettings, environ: Mapping[str, str]
) -> dict[str, AttrValue]:
    env_attrs = parse_resource_attributes(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if environ.get("OTEL_SERVICE_NAME"):
        service = environ["OTEL_SERVICE_NAME"]
    elif "service_name" in settings.model_fields_set:
        service = settings.service_name
    else:
        service = env_attrs.get("service.name", settings.service_name)
    attrs = default_resource(service)
    attrs.update(env_attrs)
    attrs.update(settings.resource_attributes)
    attrs["service.name"] = service
    return attrs


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ExporterConfigError(f"{what} must be an http(s) URL, got {redact_url(url)!r}")
    return url


def _otlp_endpoint(configured: str | None, environ: Mapping[str, str]) -> str | None:
    if configured:
        return configured
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].strip()
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:  # OTLP exporter spec: the signal path is appended to the base endpoint
        return f"{base.rstrip('/')}/v1/traces"
    return None


def otlp_timeout_s(environ: Mapping[str, str], default_s: float) -> float:
    """``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT``, in milliseconds as the OTLP exporter spec says
    (the Python SDK has read seconds: opentelemetry-python #4044), else ``default_s``."""
    value = _env(environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    if value is None:
        return default_s
    try:
        millis = float(value)
    except ValueError:
        millis = -1.0
    if not 0 < millis < float("inf"):
        log.warning("ignoring OTLP timeout %r: expected milliseconds > 0", value)
        return default_s
    return millis / 1000.0


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def upstream_attributes(upstream: str | None) -> dict[str, AttrValue]:
    """``server.address`` / ``server.port`` of the relayed-to backend, for every span."""
    if not upstream:
        return {}
    try:
        parts = urlsplit(upstream)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return {}
    attrs: dict[str, AttrValue] = {}
    if parts.hostname:
        attrs["server.address"] = parts.hostname
        if port is not None:
            attrs["server.port"] = port
    return attrs


def build_sinks(
    settings: ExportersSettings,
    environ: Mapping[str, str],
    *,
    console: TextIO | None = None,
    upstream: str | None = None,
) -> list[RecordSink]:
    """Every exporter asked for, not yet started (the caller starts and shuts them down).
    ``upstream`` is the backend's URL (spans name it as ``server.address``/``server.port``)."""
    service_resource = resolve_resource(settings, environ)
    service = str(service_resource["service.name"])
    remote_accepts = export_filter(messages=settings.export_messages)
    span_attrs = upstream_attributes(upstream)
    sinks: list[RecordSink] = []
    sinks.extend(
        _openobserve_sinks(
            settings,
            environ,
            service_resource,
            service,
            remote_accepts,
            span_attributes=span_attrs,
        )
    )
    otlp = _otlp_sink(settings, environ, service_resource, remote_accepts, span_attrs)
    if otlp is not None:
        sinks.append(otlp)
    local = settings.local
    if local.mode == "on" or (local.mode == "auto" and not sinks):
        sinks.extend(_local_sinks(settings, console))
    return sinks


def _openobserve_sinks(
    settings: ExportersSettings,
    environ: Mapping[str, str],
    resource: Mapping[str, AttrValue],
    service: str,
    accepts: Callable[[Record], bool],
    *,
    span_attributes: Mapping[str, AttrValue],
) -> list[RecordSink]:
    oo = settings.openobserve
    endpoint = _env(environ, "OPENOBSERVE_ENDPOINT") or oo.endpoint
    if not endpoint:
        return []
    org = _env(environ, "OPENOBSERVE_ORG") or oo.org
    _check_url(endpoint, "OPENOBSERVE_ENDPOINT")
    target = openobserve_target(redact_url(endpoint), org)
    headers, secrets = _openobserve_credentials(settings, environ, endpoint)
    if not headers:
        log.warning(
            "OpenObserve at %s: OPENOBSERVE_USER/OPENOBSERVE_PASS not set, sending without "
            "credentials (OpenObserve will answer 401)",
            target.base,
        )
    gzip = oo.compression == "gzip"
    policy = batch_policy(oo.batch)
    sinks: list[RecordSink] = []
    if oo.traces:
        plugin = OtlpTracesPlugin(
            target.traces_url,
            {**headers, "stream-name": oo.traces_stream},
            resource,
            gzip=gzip,
            hints=AUTH_HINTS,
            retryable=OPENOBSERVE_RETRYABLE,
            span_attributes=span_attributes,
            secrets=secrets,
        )
        log.info(
            "exporting traces to %s (stream %s, stored as %s)",
            plugin.url,
            oo.traces_stream,
            stored_stream_name(oo.traces_stream),
        )
        where = stream_hint("Traces", oo.traces_stream, TRACES_COLUMNS)
        sinks.append(
            BatchingSink("openobserve-traces", plugin, policy, accepts=accepts, where=where)
        )
    if oo.json_stream:
        json_plugin = OpenObserveJsonPlugin(
            target.json_url(oo.json_stream),
            oo.json_stream,
            service,
            headers,
            gzip=gzip,
            secrets=secrets,
        )
        log.info(
            "exporting JSON records to %s (stream stored as %s)",
            json_plugin.url,
            stored_stream_name(oo.json_stream),
        )
        where = stream_hint("Logs", oo.json_stream, JSON_COLUMNS)
        sinks.append(
            BatchingSink("openobserve-json", json_plugin, policy, accepts=accepts, where=where)
        )
    return sinks


def _openobserve_credentials(
    settings: ExportersSettings, environ: Mapping[str, str], endpoint: str
) -> tuple[dict[str, str], list[str]]:
    """The ``Authorization`` header (none without credentials) and the secrets to mask."""
    oo = settings.openobserve
    in_url = url_credentials(endpoint)
    user = _env(environ, "OPENOBSERVE_USER") or (
        oo.user.get_secret_value() if oo.user is not None else None
    )
    password = environ.get("OPENOBSERVE_PASS") or (
        oo.password.get_secret_value() if oo.password is not None else None
    )
    if not (user and password) and in_url is not None:
        user, password = in_url  # http://user:pass@host:5080: sent as Basic, not in the URL
    headers = {"Authorization": basic_auth(user, password)} if user and password else {}
    return headers, [value for value in (password, *(in_url or ())) if value]


def _otlp_sink(
    settings: ExportersSettings,
    environ: Mapping[str, str],
    resource: Mapping[str, AttrValue],
    accepts: Callable[[Record], bool],
    span_attributes: Mapping[str, AttrValue],
) -> RecordSink | None:
    otlp = settings.otlp
    endpoint = _otlp_endpoint(otlp.endpoint, environ)
    if not endpoint:
        return None
    _check_url(endpoint, "the OTLP endpoint")
    protocol = _env(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol is not None and protocol != "http/protobuf":
        log.warning("OTLP protocol %r is not supported; sending http/protobuf", protocol)
    env_headers = _env(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    headers = dict(parse_env_headers(env_headers, liberal=True)) if env_headers else {}
    headers.update(otlp.headers)
    compression = otlp.compression or _env(
        environ, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"
    )
    if compression not in (None, "none", "gzip"):
        log.warning("OTLP compression %r is not supported; sending uncompressed", compression)
    in_url = url_credentials(endpoint)
    if in_url is not None and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = basic_auth(*in_url)  # userinfo is never sent in the URL
    plugin = OtlpTracesPlugin(
        endpoint,
        headers,
        resource,
        gzip=compression == "gzip",
        span_attributes=span_attributes,
        secrets=[value for value in in_url or () if value],
    )
    log.info("exporting traces to %s", plugin.url)
    policy = batch_policy(otlp.batch)
    timeout_s = otlp_timeout_s(environ, policy.request_timeout_s)
    if timeout_s != policy.request_timeout_s:
        policy = dataclasses.replace(policy, request_timeout_s=timeout_s)
    return BatchingSink("otlp", plugin, policy, accepts=accepts)


def _local_sinks(settings: ExportersSettings, console: TextIO | None) -> list[RecordSink]:
    local = settings.local
    policy = BatchPolicy(
        max_batch=512,
        interval_s=local.flush_interval_s,
        max_queue=local.max_queue_size,
        max_retries=0,
    )
    ndjson_accepts = export_filter(messages=settings.export_messages)
    console_accepts = export_filter(messages=False)  # pairs and lifecycle records only
    sinks: list[RecordSink] = []
    if local.ndjson_path:
        plugin = NdjsonFilePlugin(local.ndjson_path, local.ndjson_max_bytes)
        log.info("writing records to %s", local.ndjson_path)
        sinks.append(BatchingSink("ndjson", plugin, policy, accepts=ndjson_accepts))
    if local.console:
        sinks.append(
            BatchingSink(
                "console",
                ConsolePlugin(console, ok_per_s=local.console_ok_per_s),
                policy,
                accepts=console_accepts,
            )
        )
    return sinks

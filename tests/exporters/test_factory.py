"""build_sinks: which exporters the settings and environment turn on, and how."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from socketio_trace_proxy.config.exporters import ExportersSettings, LocalSettings, OtlpSettings
from socketio_trace_proxy.exporters import ExporterConfigError, build_sinks
from socketio_trace_proxy.exporters.factory import (
    otlp_timeout_s,
    parse_resource_attributes,
    resolve_resource,
)
from tests.doubles.openobserve import OpenObserveDouble, start_openobserve
from tests.exporters.kit import pair

USER, PASSWORD = "u@example.com", "pw"


@pytest.fixture
async def double() -> AsyncIterator[OpenObserveDouble]:
    server = await start_openobserve(USER, PASSWORD)
    yield server
    await server.close()


def names(settings: ExportersSettings, environ: dict[str, str]) -> list[str]:
    return [sink.name for sink in build_sinks(settings, environ)]


def test_local_default_when_nothing_is_configured(tmp_path: Path) -> None:
    settings = ExportersSettings(local=LocalSettings(ndjson_path=str(tmp_path / "t.ndjson")))
    assert names(settings, {}) == ["ndjson", "console"]


def test_remote_exporters_replace_the_local_default_unless_asked() -> None:
    environ = {"OPENOBSERVE_ENDPOINT": "http://oo:5080"}
    assert names(ExportersSettings(), environ) == ["openobserve-traces", "openobserve-json"]
    both = ExportersSettings(local=LocalSettings(mode="on", ndjson_path=None))
    assert names(both, environ) == ["openobserve-traces", "openobserve-json", "console"]
    off = ExportersSettings(local=LocalSettings(mode="off"))
    assert names(off, {}) == []


def test_otel_environment_variables() -> None:
    settings = ExportersSettings()
    assert names(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == ["otlp"]
    assert names(settings, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/x"}) == ["otlp"]


def test_otlp_timeout_is_in_milliseconds_as_the_spec_says() -> None:
    assert otlp_timeout_s({}, 10.0) == 10.0
    assert otlp_timeout_s({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}, 10.0) == 2.5
    both = {"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "400"}
    assert otlp_timeout_s(both, 10.0) == 0.4
    for bad in ("soon", "0", "-5", "nan", "inf"):
        assert otlp_timeout_s({"OTEL_EXPORTER_OTLP_TIMEOUT": bad}, 10.0) == 10.0


def test_bad_endpoint_is_a_config_error() -> None:
    with pytest.raises(ExporterConfigError, match="OPENOBSERVE_ENDPOINT"):
        build_sinks(ExportersSettings(), {"OPENOBSERVE_ENDPOINT": "openobserve:5080"})
    with pytest.raises(ExporterConfigError):
        build_sinks(ExportersSettings(otlp=OtlpSettings(endpoint="ftp://x")), {})


def test_service_name_precedence() -> None:
    default = ExportersSettings()
    assert resolve_resource(default, {})["service.name"] == "socketio-trace-proxy"
    attrs_env = {"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=dev"}
    resource = resolve_resource(default, attrs_env)
    assert (resource["service.name"], resource["deployment.environment"]) == ("from-attrs", "dev")
    explicit = ExportersSettings(service_name="from-config")
    assert resolve_resource(explicit, attrs_env)["service.name"] == "from-config"
    env = {**attrs_env, "OTEL_SERVICE_NAME": "from-env"}
    assert resolve_resource(explicit, env)["service.name"] == "from-env"


def test_resource_attribute_parsing() -> None:
    parsed = parse_resource_attributes("a=1, b = x%2Cy ,broken,=v,c=")
    assert parsed == {"a": "1", "b": "x,y", "c": ""}


async def test_otlp_env_endpoint_headers_and_resource(double: OpenObserveDouble) -> None:
    # the double speaks OTLP at /api/{org}/v1/traces; point the generic exporter at it
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"{double.url}/api/collector/",
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Basic%20{token},stream-name=otel",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_SERVICE_NAME": "my-proxy",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
    }
    (sink,) = build_sinks(ExportersSettings(), environ)
    record = pair()
    await sink.start()
    sink.submit(record)
    await sink.shutdown(5.0)
    (span,) = double.spans
    assert (span.org, span.stream, span.span_id) == ("collector", "otel", record.span_id)
    assert span.service_name == "my-proxy"
    assert span.resource["deployment.environment"] == "test"
    (request,) = double.requests
    assert request.content_encoding == "gzip"
    assert request.content_type == "application/x-protobuf"


async def test_otlp_config_endpoint_and_headers_uncompressed(double: OpenObserveDouble) -> None:
    # credentials come from the environment; the file may only hold other headers (17.3)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    settings = ExportersSettings(
        otlp=OtlpSettings(
            endpoint=f"{double.url}/api/default/v1/traces", headers={"stream-name": "cfg"}
        )
    )
    environ = {"OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Basic%20{token}"}
    (sink,) = build_sinks(settings, environ)
    await sink.start()
    sink.submit(pair())
    await sink.shutdown(5.0)
    assert len(double.spans) == 1
    assert double.spans[0].stream == "cfg"
    assert double.requests[0].content_encoding is None


def test_credentials_in_the_otlp_headers_of_the_file_are_refused() -> None:
    for name in ("Authorization", "x-api-key", "X-Auth-Token", "Cookie"):
        with pytest.raises(ValueError, match="carries a credential"):
            OtlpSettings(headers={name: "s3cr3t"})
    assert OtlpSettings(headers={"X-Scope-OrgID": "tenant"}).headers == {"X-Scope-OrgID": "tenant"}

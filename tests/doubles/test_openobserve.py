"""The OpenObserve double behaves as OpenObserve's ingestion API is documented to."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.doubles.openobserve import OpenObserveDouble, start_openobserve

USER, PASSWORD = "root@example.com", "Complexpass#123"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


@pytest.fixture
async def double() -> AsyncIterator[OpenObserveDouble]:
    server = await start_openobserve(USER, PASSWORD)
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def proto_request(start_s: float, name: str = "op") -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "svc"
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex(TRACE), bytes.fromhex(SPAN), name
    span.start_time_unix_nano = int(start_s * 1e9)
    span.end_time_unix_nano = int(start_s * 1e9) + 5_000_000
    kv = span.attributes.add()
    kv.key, kv.value.int_value = "n", 7
    link = span.links.add()
    link.trace_id, link.span_id = bytes.fromhex(TRACE), bytes.fromhex("00f067aa0ba902b7")
    data: bytes = request.SerializeToString()
    return data


def json_request(start_s: float) -> dict[str, object]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "s"},
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": SPAN,
                                "parentSpanId": "00f067aa0ba902b7",
                                "name": "json-op",
                                "kind": 2,
                                "startTimeUnixNano": str(int(start_s * 1e9)),
                                "endTimeUnixNano": str(int(start_s * 1e9) + 1000),
                                "attributes": [{"key": "b", "value": {"boolValue": True}}],
                                "status": {"code": 2, "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }


async def test_healthz(double: OpenObserveDouble, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{double.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_protobuf_gzip_and_stream_name(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    headers = {
        **AUTH,
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "stream-name": "mine",
    }
    body = gzip.compress(proto_request(time.time()))
    async with http.post(f"{double.url}/api/acme/v1/traces", data=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/x-protobuf"
        reply = ExportTraceServiceResponse.FromString(await r.read())
        assert reply.partial_success.rejected_spans == 0
    (span,) = double.spans
    assert (span.org, span.stream, span.encoding) == ("acme", "mine", "protobuf")
    assert (span.trace_id, span.span_id, span.name) == (TRACE, SPAN, "op")
    assert span.attributes == {"n": 7}
    assert span.links == ((TRACE, "00f067aa0ba902b7"),)
    assert span.service_name == "svc"
    assert double.requests[-1].content_encoding == "gzip"


async def test_default_stream_and_json_without_content_type(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    body = json.dumps(json_request(time.time())).encode()
    # no Content-Type at all: OpenObserve treats the body as OTLP/JSON
    async with http.post(
        f"{double.url}/api/default/v1/traces",
        data=body,
        headers=AUTH,
        skip_auto_headers=["Content-Type"],
    ) as r:
        assert r.status == 200
    (span,) = double.spans
    assert (span.stream, span.encoding, span.trace_id) == ("default", "json", TRACE)
    assert span.parent_span_id == "00f067aa0ba902b7"
    assert (span.status_code, span.status_message, span.attributes) == (2, "boom", {"b": True})


async def test_other_content_type_is_400(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    headers = {**AUTH, "Content-Type": "text/plain"}
    async with http.post(f"{double.url}/api/o/v1/traces", data=b"x", headers=headers) as r:
        assert r.status == 400
        assert await r.json() == {"code": 400, "message": "Bad Request"}
    assert not double.spans


async def test_old_spans_partial_success(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    old = time.time() - 6 * 3600
    headers = {**AUTH, "Content-Type": "application/json"}
    async with http.post(
        f"{double.url}/api/o/v1/traces", data=json.dumps(json_request(old)), headers=headers
    ) as r:
        assert r.status == 206
        body = await r.json()
        assert body["partialSuccess"]["rejectedSpans"] == 1
    headers = {**AUTH, "Content-Type": "application/x-protobuf"}
    async with http.post(
        f"{double.url}/api/o/v1/traces", data=proto_request(old), headers=headers
    ) as r:
        assert r.status == 200
        reply = ExportTraceServiceResponse.FromString(await r.read())
        assert reply.partial_success.rejected_spans == 1
        assert "Too old data" in reply.partial_success.error_message
    assert not double.spans


async def test_json_stream_array_object_and_failed(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    url = f"{double.url}/api/default/socket-io-traces/_json"
    now_us = int(time.time() * 1e6)
    rows = [{"a": 1, "_timestamp": now_us}, {"a": 2, "_timestamp": now_us - 7 * 3600 * 10**6}]
    async with http.post(url, json=rows, headers=AUTH) as r:
        assert r.status == 200
        body = await r.json()
    assert body["code"] == 200
    status = body["status"][0]
    assert (status["name"], status["successful"], status["failed"]) == ("socket-io-traces", 1, 1)
    assert "Too old data" in status["error"]
    async with http.post(url, json={"a": 3}, headers=AUTH) as r:
        assert (await r.json())["status"] == [
            {"name": "socket-io-traces", "successful": 1, "failed": 0}
        ]
    assert [row["a"] for row in double.json_records("socket-io-traces")] == [1, 3]


async def test_auth_missing_is_json_and_wrong_is_plain_text(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    url = f"{double.url}/api/default/s/_json"
    async with http.post(url, json=[{"a": 1}]) as r:
        assert r.status == 401
        assert await r.json() == {"code": 401, "message": "Unauthorized Access"}
    bad = {"Authorization": "Basic " + base64.b64encode(b"root@example.com:nope").decode()}
    async with http.post(url, json=[{"a": 1}], headers=bad) as r:
        assert r.status == 401
        assert r.headers["Content-Type"].startswith("text/plain")
        assert await r.text() == "Unauthorized Access"
    assert not double.records
    assert [req.status for req in double.requests] == [401, 401]


async def test_scripted_faults_then_normal(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    double.fail_next(503)
    double.fail_next(429, retry_after="3")
    double.fail_next(500)
    url = f"{double.url}/api/default/s/_json"
    statuses = []
    for _ in range(4):
        async with http.post(url, json=[{"a": 1}], headers=AUTH) as r:
            statuses.append((r.status, r.headers.get("Retry-After")))
    assert statuses == [(503, None), (429, "3"), (500, None), (200, None)]
    assert len(double.json_records("s")) == 1


async def test_slow_reply_still_answers(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    double.slow_next(0.05)
    async with http.post(f"{double.url}/api/default/s/_json", json=[{}], headers=AUTH) as r:
        assert r.status == 200


async def test_closed_double_refuses_connections(http: aiohttp.ClientSession) -> None:
    server = await start_openobserve(USER, PASSWORD)
    url = server.url
    await server.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{url}/healthz"):
            pass


async def test_received_endpoint_lists_what_arrived(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    headers = {**AUTH, "Content-Type": "application/x-protobuf"}
    async with http.post(
        f"{double.url}/api/o/v1/traces", data=proto_request(time.time(), "listed"), headers=headers
    ):
        pass
    async with http.get(f"{double.url}/_double/received") as r:
        data = await r.json()
    assert [span["name"] for span in data["spans"]] == ["listed"]
    async with http.delete(f"{double.url}/_double/received"):
        pass
    assert not double.spans

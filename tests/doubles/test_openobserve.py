"""The OpenObserve double behaves as OpenObserve's source says (v0.14.4, and main where they
differ): one test per behaviour its docstring lists."""

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

from socketio_trace_proxy.exporters.openobserve import stored_field, stored_stream_name
from tests.doubles import openobserve_model as model
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
async def main_double() -> AsyncIterator[OpenObserveDouble]:
    server = await start_openobserve(USER, PASSWORD, version="main")
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def proto_request(start_s: float, name: str = "op", span_id: str = SPAN) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "service.name", "svc"
    attr = resource_spans.resource.attributes.add()
    attr.key, attr.value.string_value = "telemetry.sdk.name", "sdk"
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex(TRACE), bytes.fromhex(span_id), name
    span.parent_span_id = bytes.fromhex("00f067aa0ba902b7")
    span.kind = 1
    span.start_time_unix_nano = int(start_s * 1e9)
    span.end_time_unix_nano = int(start_s * 1e9) + 5_000_000
    kv = span.attributes.add()
    kv.key, kv.value.int_value = "n", 7
    kv = span.attributes.add()
    kv.key, kv.value.bool_value = "messaging.Socket.io.OK", True
    kv = span.attributes.add()
    kv.key, kv.value.string_value = "duration", "x"
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


PROTO = {**AUTH, "Content-Type": "application/x-protobuf"}


async def post(
    http: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str], **kw: object
) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(url, data=data, headers=headers, **kw) as r:  # type: ignore[arg-type]
        return r.status, dict(r.headers), await r.read()


async def test_healthz(double: OpenObserveDouble, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{double.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_protobuf_gzip_and_the_stream_name_normalized(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    headers = {**PROTO, "Content-Encoding": "gzip", "stream-name": "My-Socket.IO  traces"}
    body = gzip.compress(proto_request(time.time()))
    status, reply_headers, data = await post(
        http, f"{double.url}/api/acme/v1/traces", body, headers
    )
    assert status == 200
    assert reply_headers["Content-Type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(data).partial_success.rejected_spans == 0
    (span,) = double.spans
    assert (span.org, span.stream, span.encoding) == ("acme", "my_socket_io_traces", "protobuf")
    assert (span.trace_id, span.span_id, span.name) == (TRACE, SPAN, "op")
    assert span.attributes["n"] == 7
    assert span.links == ((TRACE, "00f067aa0ba902b7"),)
    assert span.service_name == "svc"
    assert double.requests[-1].content_encoding == "gzip"
    assert double.stored_spans("My-Socket.IO  traces") == [span.stored]


async def test_stored_span_columns(double: OpenObserveDouble, http: aiohttp.ClientSession) -> None:
    start = time.time()
    await post(http, f"{double.url}/api/o/v1/traces", proto_request(start), PROTO)
    (row,) = double.stored_spans()
    # attributes flattened to columns, keys formatted, values stored as text (get_val)
    assert row["n"] == "7"
    assert row["messaging_socket_io_ok"] == "true"
    assert row["attr_duration"] == "x"  # a reserved column name is renamed
    # resource attributes as service_<key>, service.name as service_name
    assert (row["service_name"], row["service_telemetry_sdk_name"]) == ("svc", "sdk")
    assert row["reference_parent_span_id"] == "00f067aa0ba902b7"
    assert (row["operation_name"], row["span_kind"], row["span_status"]) == ("op", "1", "UNSET")
    assert row["duration"] == 5000  # microseconds
    assert row["_timestamp"] == int(start * 1e9) // 1000
    assert "status_code" not in row  # no Status field sent: no status columns
    assert json.loads(row["links"])[0]["context"]["spanId"] == "00f067aa0ba902b7"


@pytest.mark.parametrize("version", ["v0.14.4", "main"])
async def test_no_content_type_is_form_urlencoded_and_400(
    version: str, http: aiohttp.ClientSession
) -> None:
    server = await start_openobserve(USER, PASSWORD, version=version)
    try:
        status, _, data = await post(
            http,
            f"{server.url}/api/default/v1/traces",
            proto_request(time.time()),
            AUTH,
            skip_auto_headers=["Content-Type"],
        )
    finally:
        await server.close()
    assert (status, json.loads(data)) == (400, {"code": 400, "message": "Bad Request"})
    assert not server.spans


async def test_content_types(double: OpenObserveDouble, http: aiohttp.ClientSession) -> None:
    url = f"{double.url}/api/o/v1/traces"
    for content_type in ("text/plain", "application/x-protobuf; charset=binary"):
        headers = {**AUTH, "Content-Type": content_type}
        status, _, data = await post(http, url, proto_request(time.time()), headers)
        assert (status, json.loads(data)["message"]) == (400, "Bad Request"), content_type
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    status, _, _ = await post(http, url, json_request(time.time()), headers)
    assert status == 200
    (span,) = double.spans
    assert (span.stream, span.encoding, span.trace_id) == ("default", "json", TRACE)
    assert span.parent_span_id == "00f067aa0ba902b7"
    assert (span.status_code, span.status_message, span.attributes) == (2, "boom", {"b": True})
    assert span.stored["span_status"] == "ERROR" and span.stored["status_message"] == "boom"
    status, _, data = await post(http, url, b"\x01\x02garbage", PROTO)
    assert status == 400 and json.loads(data)["message"].startswith("Invalid proto")


async def test_old_spans_and_bad_ids_are_a_partial_success(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    old = time.time() - 6 * 3600
    url = f"{double.url}/api/o/v1/traces"
    status, _, data = await post(
        http, url, json_request(old), {**AUTH, "Content-Type": "application/json"}
    )
    assert status == 206
    assert json.loads(data)["partialSuccess"]["rejectedSpans"] == 1
    for body in (proto_request(old), proto_request(time.time(), span_id="abcd")):
        status, _, data = await post(http, url, body, PROTO)
        assert status == 200
        reply = ExportTraceServiceResponse.FromString(data)
        assert reply.partial_success.rejected_spans == 1
        assert reply.partial_success.error_message == (
            "Some spans were rejected due to exceeding the allowed retention period"
        )
    assert not double.spans


async def test_future_spans_accepted_on_v0_14_4_refused_on_main(
    double: OpenObserveDouble, main_double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    ahead = time.time() + 48 * 3600
    for server, rejected in ((double, 0), (main_double, 1)):
        _, _, data = await post(http, f"{server.url}/api/o/v1/traces", proto_request(ahead), PROTO)
        assert ExportTraceServiceResponse.FromString(data).partial_success.rejected_spans == (
            rejected
        )
    assert len(double.spans) == 1 and not main_double.spans


async def test_json_stream_name_normalized_and_failed_records(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    url = f"{double.url}/api/default/socket-io-traces/_json"
    now_us = int(time.time() * 1e6)
    rows = [
        {"a": 1, "_timestamp": now_us},
        {"a": 2, "_timestamp": now_us - 7 * 3600 * 10**6},
        {"a": 3, "_timestamp": "not a time"},
    ]
    status, _, data = await post(http, url, rows, AUTH)
    assert status == 200
    body = json.loads(data)
    assert body["code"] == 200
    (result,) = body["status"]
    assert (result["name"], result["successful"], result["failed"]) == ("socket_io_traces", 1, 2)
    assert result["error"] == "Can't parse timestamp"  # the last error is reported
    _, _, data = await post(http, url, {"a": 4}, AUTH)
    assert json.loads(data)["status"] == [
        {"name": "socket_io_traces", "successful": 1, "failed": 0}
    ]
    assert list(double.records) == ["socket_io_traces"]
    assert [row["a"] for row in double.json_records("socket_io_traces")] == [1, 4]


async def test_json_one_non_object_fails_the_whole_request(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    url = f"{double.url}/api/default/s/_json"
    status, _, data = await post(http, url, [{"a": 1}, "text", {"a": 2}], AUTH)
    assert (status, json.loads(data)) == (
        400,
        {"code": 400, "message": "flatten value must be an object"},
    )
    assert not double.records


async def test_json_stored_rows_are_flattened(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    row = {
        "socket.request.event": "create_terminal",
        "socket.response.event": None,
        "Level": "INFO",
        "nested": {"Inner.Key": 1},
        "list": [1, 2],
        "_timestamp": int(time.time()),  # seconds: told apart from ms/us/ns
    }
    await post(http, f"{double.url}/api/default/s/_json", [row], AUTH)
    (stored,) = double.stored_records("s")
    assert stored == {
        "socket_request_event": "create_terminal",
        "level": "INFO",
        "nested_inner_key": 1,
        "list": "[1,2]",
        "_timestamp": row["_timestamp"] * 1_000_000,
    }


async def test_auth_v0_14_4(double: OpenObserveDouble, http: aiohttp.ClientSession) -> None:
    url = f"{double.url}/api/default/s/_json"
    status, headers, data = await post(http, url, [{"a": 1}], {})
    assert (status, data) == (401, b"Unauthorized Access")
    assert headers["Content-Type"].startswith("text/plain")
    for value in (
        "Basic " + base64.b64encode(b"root@example.com:nope").decode(),
        AUTH["Authorization"].replace("Basic", "basic"),  # the scheme is case-sensitive
        "Bearer abc",
    ):
        status, headers, data = await post(http, url, [{"a": 1}], {"Authorization": value})
        assert (status, data) == (401, b"Unauthorized Access"), value
        assert headers["Content-Type"].startswith("text/plain")
        assert "WWW-Authenticate" not in headers
    assert not double.records
    assert {req.status for req in double.requests} == {401}


async def test_auth_main(main_double: OpenObserveDouble, http: aiohttp.ClientSession) -> None:
    url = f"{main_double.url}/api/default/s/_json"
    status, _, data = await post(http, url, [{"a": 1}], {})
    assert (status, json.loads(data)) == (401, {"code": 401, "message": "Unauthorized Access"})
    bad = {"Authorization": "Basic " + base64.b64encode(b"root@example.com:nope").decode()}
    status, headers, data = await post(http, url, [{"a": 1}], bad)
    assert (status, data) == (401, b"Unauthorized Access")
    assert headers["WWW-Authenticate"] == 'Bearer realm="openobserve"'


async def test_passcode_members_and_unknown_orgs(http: aiohttp.ClientSession) -> None:
    server = await start_openobserve(USER, PASSWORD, passcode="root-passcode")
    server.add_user("ingest@example.com", "ingest-pw", {"team"}, passcode="ingest-code")
    try:

        def basic(credentials: str) -> dict[str, str]:
            return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}

        cases = [
            ("default", f"{USER}:root-passcode", 200),  # the ingestion passcode
            ("created-on-the-fly", AUTH["Authorization"], 200),  # root: any org, never 404
            ("team", "ingest@example.com:ingest-code", 200),
            ("team", "ingest@example.com:ingest-pw", 200),
            ("other", "ingest@example.com:ingest-pw", 401),  # not a member: 401, not 404
        ]
        for org, credentials, expected in cases:
            headers = AUTH if credentials.startswith("Basic") else basic(credentials)
            status, _, _ = await post(http, f"{server.url}/api/{org}/s/_json", [{}], headers)
            assert status == expected, (org, credentials)
    finally:
        await server.close()


async def test_blocked_org_memtable_and_write_failures(
    double: OpenObserveDouble, main_double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    traces = f"{double.url}/api/acme/v1/traces"
    rows = f"{double.url}/api/acme/s/_json"
    double.blocked_orgs.add("acme")
    status, _, data = await post(http, traces, proto_request(time.time()), PROTO)
    assert (status, json.loads(data)["message"]) == (
        403,
        "Quota exceeded for this organization [acme]",
    )
    status, _, _ = await post(http, rows, [{}], AUTH)
    assert status == 400  # the _json path says 400 for the same condition
    double.blocked_orgs.clear()
    double.memtable_full = main_double.memtable_full = True
    status, _, data = await post(http, traces, proto_request(time.time()), PROTO)
    assert (status, json.loads(data)["message"]) == (503, "MemoryTableOverflowError")
    status, _, data = await post(http, rows, [{}], AUTH)
    assert (status, json.loads(data)["message"]) == (400, "MemoryTableOverflowError")
    status, _, _ = await post(http, f"{main_double.url}/api/acme/s/_json", [{}], AUTH)
    assert status == 503
    double.memtable_full = False
    double.fail_writes = True
    status, _, data = await post(http, traces, proto_request(time.time()), PROTO)
    assert status == 500
    assert json.loads(data)["message"].startswith("error while writing trace data")
    status, _, data = await post(http, rows, [{"a": 1}], AUTH)
    assert status == 200 and json.loads(data)["status"][0]["successful"] == 1
    assert not double.spans and not double.records  # reported successful, yet lost


async def test_scripted_faults_then_normal(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    double.fail_next(503)
    double.fail_next(429, retry_after="3")
    double.fail_next(500)
    url = f"{double.url}/api/default/s/_json"
    statuses = []
    for _ in range(4):
        status, headers, _ = await post(http, url, [{"a": 1}], AUTH)
        statuses.append((status, headers.get("Retry-After")))
    assert statuses == [(503, None), (429, "3"), (500, None), (200, None)]
    assert len(double.json_records("s")) == 1


async def test_slow_reply_still_answers(
    double: OpenObserveDouble, http: aiohttp.ClientSession
) -> None:
    double.slow_next(0.05)
    status, _, _ = await post(http, f"{double.url}/api/default/s/_json", [{}], AUTH)
    assert status == 200


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
    await post(http, f"{double.url}/api/o/v1/traces", proto_request(time.time(), "listed"), PROTO)
    async with http.get(f"{double.url}/_double/received") as r:
        data = await r.json()
    assert [span["name"] for span in data["spans"]] == ["listed"]
    assert data["spans"][0]["stored"]["operation_name"] == "listed"
    async with http.delete(f"{double.url}/_double/received"):
        pass
    assert not double.spans


def test_names_and_keys_the_model_and_the_exporters_agree_on() -> None:
    names = ["socket-io-traces", "Default", "a--b", "x.y:z", "über", "MiXed_09"]
    expected = ["socket_io_traces", "default", "a_b", "x_y:z", "_ber", "mixed_09"]
    assert [model.stream_name(n) for n in names] == expected
    assert [stored_stream_name(n) for n in names] == expected
    keys = ["socket.request.event", "messaging.socket.io.sid", "Error.Type", "a-b c", "ok_1"]
    formatted = ["socket_request_event", "messaging_socket_io_sid", "error_type", "a_b_c", "ok_1"]
    assert [model.format_key(k) for k in keys] == formatted
    assert [stored_field(k) for k in keys] == formatted


def test_timestamp_units() -> None:
    now = 1_700_000_000_000_000
    for value in (1_700_000_000, 1_700_000_000_000, 1_700_000_000_000_000, 1_700_000_000 * 10**9):
        assert model.timestamp_micros(value, now) == 1_700_000_000_000_000
    assert model.timestamp_micros(0, now) == now

"""A test double of OpenObserve's ingestion API (no OpenObserve server can run here).

Built from OpenObserve's documented ingestion behaviour (docs: "Traces ingestion - OTLP",
"Logs ingestion - JSON", "OTLP ingestion"; and its HTTP handlers, which reply 200 with a
protobuf ``ExportTraceServiceResponse`` to protobuf requests and 206 with JSON partial success
to JSON requests), not from running it:

- ``POST /api/{org}/v1/traces`` (and the older ``/api/{org}/traces``):
  ``application/x-protobuf`` is decoded with opentelemetry-proto; ``application/json`` or no
  content type is OTLP/JSON (hex trace/span ids); any other content type -> 400
  ``{"code":400,"message":"Bad Request"}``.  ``Content-Encoding: gzip`` accepted.  The
  ``stream-name`` header picks the stream (default ``default``).  Spans older than
  ``allowed_past_s`` (OpenObserve's ``ZO_INGEST_ALLOWED_UPTO``, default 5 h) or further ahead
  than ``allowed_future_s`` are rejected: protobuf -> 200 with ``partial_success``, JSON ->
  206 ``{"partialSuccess":{"rejectedSpans":N,"errorMessage":...}}``.
- ``POST /api/{org}/{stream}/_json``: a JSON array or one object; reply 200
  ``{"code":200,"status":[{"name":STREAM,"successful":n,"failed":m}]}`` (records whose
  ``_timestamp`` is out of the window fail).
- Basic auth on ingestion: no ``Authorization`` -> 401 JSON
  ``{"code":401,"message":"Unauthorized Access"}``; wrong credentials -> 401 ``text/plain``
  ``Unauthorized Access``.
- ``GET /healthz`` -> 200 ``{"status":"ok"}``.
- Fault modes for tests: :meth:`OpenObserveDouble.fail_next` (500, 503, 429 with
  ``Retry-After``, ...), :meth:`OpenObserveDouble.slow_next` / ``delay_s`` (slow replies), and
  :meth:`OpenObserveDouble.close` (connection refused afterwards).

Not OpenObserve: ``GET /_double/received`` (no auth) lists what arrived, for smoke scripts;
``DELETE /_double/received`` forgets it.  Run standalone with
``python -m tests.doubles.openobserve --host 0.0.0.0 --port 5080 --user U --password P``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

UNAUTHORIZED = "Unauthorized Access"
TOO_OLD = (
    "Too old data, only last {hours} hours data can be ingested. Data discarded. You can "
    "adjust ingestion max time by setting the environment variable "
    "ZO_INGEST_ALLOWED_UPTO=<max_hours>"
)
MAX_STORED = 200_000  # spans/records kept; beyond, the oldest go (counted in ``discarded``)


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    org: str
    stream: str
    encoding: str  # "protobuf" | "json"
    resource: dict[str, Any]
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    links: tuple[tuple[str, str], ...]

    @property
    def service_name(self) -> str | None:
        value = self.resource.get("service.name")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    status: int
    content_type: str | None
    content_encoding: str | None
    stream_name: str | None
    authorized: bool


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted reply: ``status`` None means answer normally (after ``delay_s``)."""

    status: int | None
    retry_after: str | None = None
    delay_s: float = 0.0
    body: str | None = None


@dataclass
class OpenObserveDouble:
    user: str
    password: str
    allowed_past_s: float = 5 * 3600.0
    allowed_future_s: float = 24 * 3600.0
    delay_s: float = 0.0  # every ingestion reply waits this long ("slow" mode)
    clock: Callable[[], float] = time.time
    spans: deque[ReceivedSpan] = field(default_factory=lambda: deque(maxlen=MAX_STORED))
    records: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    requests: deque[ReceivedRequest] = field(default_factory=lambda: deque(maxlen=MAX_STORED))
    faults: deque[Fault] = field(default_factory=deque)
    discarded: int = 0
    started: int = 0  # ingestion requests received so far (answered or not)
    url: str = ""
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition | None = None

    # -- test controls ---------------------------------------------------------------

    def fail_next(
        self, status: int, times: int = 1, retry_after: str | None = None, body: str | None = None
    ) -> None:
        for _ in range(times):
            self.faults.append(Fault(status, retry_after=retry_after, body=body))

    def slow_next(self, delay_s: float, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(None, delay_s=delay_s))

    def json_records(self, stream: str) -> list[dict[str, Any]]:
        return list(self.records.get(stream, ()))

    async def wait_for(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked whenever a request was handled)."""
        changed = self._condition()
        async with changed:
            await asyncio.wait_for(changed.wait_for(predicate), within_s)

    async def wait_for_spans(self, count: int, within_s: float = 10.0) -> list[ReceivedSpan]:
        await self.wait_for(lambda: len(self.spans) >= count, within_s)
        return list(self.spans)

    async def wait_for_records(
        self, stream: str, count: int, within_s: float = 10.0
    ) -> list[dict[str, Any]]:
        await self.wait_for(lambda: len(self.records.get(stream, ())) >= count, within_s)
        return self.json_records(stream)

    async def wait_for_requests(self, count: int, within_s: float = 10.0) -> list[ReceivedRequest]:
        await self.wait_for(lambda: len(self.requests) >= count, within_s)
        return list(self.requests)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()

    # -- the app -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/api/{org}/v1/traces", self._traces)
        app.router.add_post("/api/{org}/traces", self._traces)
        app.router.add_post("/api/{org}/{stream}/_json", self._json)
        app.router.add_get("/_double/received", self._received)
        app.router.add_delete("/_double/received", self._forget)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> OpenObserveDouble:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or ()
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{bound_port}"
        return self

    async def close(self) -> None:
        """Stop listening: from now on connections are refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return web.json_response({"code": 401, "message": UNAUTHORIZED}, status=401)
        scheme, _, token = header.partition(" ")
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if scheme.lower() != "basic" or decoded != f"{self.user}:{self.password}":
            return web.Response(status=401, text=UNAUTHORIZED, content_type="text/plain")
        return None

    async def _scripted(self) -> web.Response | None:
        self.started += 1
        await self._notify()
        fault = self.faults.popleft() if self.faults else None
        delay = self.delay_s + (fault.delay_s if fault else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if fault is None or fault.status is None:
            return None
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        body = (
            fault.body
            if fault.body is not None
            else json.dumps({"code": fault.status, "message": "scripted failure"})
        )
        return web.Response(
            status=fault.status, text=body, content_type="application/json", headers=headers
        )

    async def _record(self, request: web.Request, response: web.StreamResponse) -> None:
        auth = request.headers.get("Authorization")
        self.requests.append(
            ReceivedRequest(
                method=request.method,
                path=request.path,
                status=response.status,
                content_type=request.headers.get("Content-Type"),
                content_encoding=request.headers.get("Content-Encoding"),
                stream_name=request.headers.get("stream-name"),
                authorized=auth is not None and response.status != 401,
            )
        )
        await self._notify()

    async def _traces(self, request: web.Request) -> web.StreamResponse:
        response = await self._handle_traces(request)
        await self._record(request, response)
        return response

    async def _handle_traces(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request)
        if denied is not None:
            return denied
        scripted = await self._scripted()
        if scripted is not None:
            return scripted
        org = request.match_info["org"]
        stream = request.headers.get("stream-name") or "default"
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body = await request.read()  # aiohttp has already undone Content-Encoding gzip
        if content_type == "application/x-protobuf":
            try:
                message = ExportTraceServiceRequest.FromString(body)
            except Exception:
                return _bad_request("Invalid protobuf")
            rejected = self._ingest_spans(org, stream, "protobuf", message)
            reply = ExportTraceServiceResponse()
            if rejected:
                reply.partial_success.rejected_spans = rejected
                reply.partial_success.error_message = self._too_old()
            return web.Response(
                status=200, body=reply.SerializeToString(), content_type="application/x-protobuf"
            )
        if content_type in ("", "application/json"):
            try:
                message = _parse_otlp_json(body)
            except Exception as exc:
                return _bad_request(f"Invalid json: {exc}")
            rejected = self._ingest_spans(org, stream, "json", message)
            if rejected:
                return web.json_response(
                    {
                        "partialSuccess": {
                            "rejectedSpans": rejected,
                            "errorMessage": self._too_old(),
                        }
                    },
                    status=206,
                )
            return web.json_response({"partialSuccess": None})
        return _bad_request("Bad Request")

    def _too_old(self) -> str:
        return TOO_OLD.format(hours=round(self.allowed_past_s / 3600))

    def _in_window(self, micros: float) -> bool:
        now = self.clock() * 1_000_000
        return now - self.allowed_past_s * 1e6 <= micros <= now + self.allowed_future_s * 1e6

    def _ingest_spans(
        self, org: str, stream: str, encoding: str, message: ExportTraceServiceRequest
    ) -> int:
        rejected = 0
        for resource_spans in message.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if not self._in_window(span.start_time_unix_nano / 1000):
                        rejected += 1
                        continue
                    if len(self.spans) == self.spans.maxlen:
                        self.discarded += 1
                    self.spans.append(
                        ReceivedSpan(
                            org=org,
                            stream=stream,
                            encoding=encoding,
                            resource=resource,
                            scope=scope_spans.scope.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex() or None,
                            name=span.name,
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes={kv.key: _value(kv.value) for kv in span.attributes},
                            status_code=span.status.code,
                            status_message=span.status.message,
                            links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
                        )
                    )
        return rejected

    async def _json(self, request: web.Request) -> web.StreamResponse:
        response = await self._handle_json(request)
        await self._record(request, response)
        return response

    async def _handle_json(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request)
        if denied is not None:
            return denied
        scripted = await self._scripted()
        if scripted is not None:
            return scripted
        stream = request.match_info["stream"]
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            return _bad_request(f"Invalid json: {exc}")
        rows = data if isinstance(data, list) else [data]
        stored = self.records.setdefault(stream, deque(maxlen=MAX_STORED))
        ok = failed = 0
        error: str | None = None
        for row in rows:
            if not isinstance(row, dict):
                failed += 1
                error = "record is not a JSON object"
                continue
            stamp = row.get("_timestamp")
            if isinstance(stamp, int | float) and not self._in_window(_micros(stamp)):
                failed += 1
                error = self._too_old()
                continue
            if len(stored) == stored.maxlen:
                self.discarded += 1
            stored.append(row)
            ok += 1
        status: dict[str, Any] = {"name": stream, "successful": ok, "failed": failed}
        if error is not None:
            status["error"] = error
        return web.json_response({"code": 200, "status": [status]})

    async def _received(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "spans": [asdict(span) for span in self.spans],
                "records": {name: list(rows) for name, rows in self.records.items()},
                "requests": [asdict(item) for item in self.requests],
                "discarded": self.discarded,
            }
        )

    async def _forget(self, request: web.Request) -> web.Response:
        self.spans.clear()
        self.records.clear()
        self.requests.clear()
        return web.json_response({"status": "ok"})


def _bad_request(message: str) -> web.Response:
    return web.json_response({"code": 400, "message": message}, status=400)


def _micros(stamp: float) -> float:
    """OpenObserve accepts seconds, milliseconds, microseconds or nanoseconds."""
    if stamp < 1e11:
        return stamp * 1e6
    if stamp < 1e14:
        return stamp * 1e3
    if stamp < 1e17:
        return stamp
    return stamp / 1e3


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _hex_to_b64(value: Any) -> Any:
    if isinstance(value, str) and value:
        return base64.b64encode(bytes.fromhex(value)).decode()
    return value


def _parse_otlp_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON: like protobuf's JSON mapping, but trace/span ids are hex, not base64."""
    data = json.loads(body)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _hex_to_b64(span[key])
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        if key in link:
                            link[key] = _hex_to_b64(link[key])
    message = ExportTraceServiceRequest()
    json_format.ParseDict(data, message, ignore_unknown_fields=True)
    return message


async def start_openobserve(
    user: str = "root@example.com",
    password: str = "Complexpass#123",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> OpenObserveDouble:
    """Start a double on ``host:port`` (0: any free port); ``await double.close()`` after."""
    return await OpenObserveDouble(user, password, **options).start(host, port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5080)
    parser.add_argument("--user", default="root@example.com")
    parser.add_argument("--password", default="Complexpass#123")
    args = parser.parse_args(argv)
    double = OpenObserveDouble(args.user, args.password)
    print(f"OpenObserve test double on http://{args.host}:{args.port}", flush=True)
    web.run_app(double.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

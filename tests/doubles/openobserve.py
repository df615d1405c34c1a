"""A test double of OpenObserve's ingestion API (no OpenObserve server can run here).

Follows OpenObserve's source, not its documentation: tag ``v0.14.4`` (the version the compose
file pins) by default, and ``version="main"`` for the newer behaviour where they differ (main
at fbab9b80a2, 2026-08).  Files read (under ``src/``, v0.14.4):
``handler/http/auth/validator.rs`` and ``common/utils/auth.rs`` (authentication),
``handler/http/request/traces/mod.rs`` and ``service/traces/mod.rs`` (traces),
``handler/http/request/logs/ingest.rs``, ``service/logs/ingest.rs`` and ``service/logs/mod.rs``
(``_json``), ``config/src/utils/{schema,flatten,time}.rs`` (names, keys, timestamps:
:mod:`tests.doubles.openobserve_model`), ``common/meta/{http,ingestion}.rs`` (reply bodies);
on main the same code moved to ``api/common/src/auth/validator.rs``, ``core/src/auth.rs``,
``api/http/src/handler/http/router/mod.rs``, ``api/search/src/traces/mod.rs``,
``api/ingest/src/request/logs/ingest.rs``, ``core/src/{traces,logs}/``.

Authentication (every ``/api`` route):
- no ``Authorization``: 401 ``Unauthorized Access`` as ``text/plain`` (v0.14.4; actix's
  ``ErrorUnauthorized``), as JSON ``{"code":401,"message":"Unauthorized Access"}`` on main;
- the scheme is case-sensitive (``Basic``; main requires ``Basic `` with the space); the
  password may be the user's password or, on ingestion routes, the user's ingestion passcode;
  a user who is not root must be a member of the org; anything else is 401
  ``Unauthorized Access`` (``text/plain``; main: no content type and
  ``WWW-Authenticate: Bearer realm="openobserve"``).  An unknown org is never 404.
- once authenticated, a POST without ``Content-Type`` is given
  ``application/x-www-form-urlencoded`` (a "hack for prometheus" in the validator).

``POST /api/{org}/v1/traces`` (and ``/api/{org}/traces``): ``Content-Type`` exactly
``application/x-protobuf``, or starting with ``application/json`` (OTLP/JSON, hex ids); any
other (so also none) -> 400 ``{"code":400,"message":"Bad Request"}``.  A blocked org
(quota exhausted) -> 403, a full memtable -> 503, an undecodable body -> 400 ``Invalid
proto: ...`` / ``Invalid json: ...``, a failed write -> 500 ``error while writing trace data:
...``.  Spans with a trace id not 16 bytes, a span id not 8 bytes, or older than
``ZO_INGEST_ALLOWED_UPTO`` (5 h; on main also more than 24 h ahead) are rejected: protobuf ->
200 with ``partial_success`` ("Some spans were rejected due to exceeding the allowed retention
period"), JSON -> 206.  The ``stream-name`` header picks the stream, normalized; default
``default``.

``POST /api/{org}/{stream}/_json``: a JSON array or one object; the stream name is normalized
(``socket-io-traces`` is stored as ``socket_io_traces``); one element that is not an object
fails the whole request (400 ``flatten value must be an object``); a blocked org -> 400; a full
memtable -> 400 ``MemoryTableOverflowError`` (main: 503); records older than 5 h (main: or 24 h
ahead) or with an unparsable ``_timestamp`` count as ``failed``; a failed write still answers
200 with every record ``successful`` (v0.14.4 and main: the records are lost).  Reply:
``{"code":200,"status":[{"name":STORED_NAME,"successful":n,"failed":m[,"error":..]}]}``.

``GET /healthz`` -> 200 ``{"status":"ok"}``.

Kept: every span as received (:class:`ReceivedSpan`, OTLP names) and as OpenObserve stores it
(:meth:`OpenObserveDouble.stored_spans`), every ``_json`` row as received and as stored
(:meth:`OpenObserveDouble.stored_records`), by stored stream name.  Conditions and faults:
``blocked_orgs``, ``memtable_full``, ``fail_writes``, :meth:`OpenObserveDouble.fail_next`
(scripted statuses), :meth:`OpenObserveDouble.slow_next` / ``delay_s``, and
:meth:`OpenObserveDouble.close` (connection refused afterwards).

Not OpenObserve: ``GET /_double/received`` (no auth) lists what arrived, for smoke scripts;
``DELETE /_double/received`` forgets it.  Run standalone with
``python -m tests.doubles.openobserve --host 0.0.0.0 --port 5080 --user U --password P``
(``--start-delay-s N``: listen only after N seconds, as a slow first start).
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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.doubles import openobserve_model as model
from tests.doubles.openobserve_received import (
    Fault,
    Member,
    ReceivedRequest,
    ReceivedSpan,
    span_fields,
)

PINNED = "v0.14.4"
VERSIONS = (PINNED, "main")
UNAUTHORIZED = "Unauthorized Access"
TOO_OLD = (
    "Too old data, only last {hours} hours data can be ingested. Data discarded. You can "
    "adjust ingestion max time by setting the environment variable "
    "ZO_INGEST_ALLOWED_UPTO=<max_hours>"
)
TOO_FAR = (
    "Too far data, only future {hours} hours data can be ingested. Data discarded. You can "
    "adjust ingestion max time by setting the environment variable "
    "ZO_INGEST_ALLOWED_IN_FUTURE=<max_hours>"
)
REJECTED_SPANS = "Some spans were rejected due to exceeding the allowed retention period"
MEMTABLE_FULL = "MemoryTableOverflowError"
__all__ = ["OpenObserveDouble", "ReceivedRequest", "ReceivedSpan", "start_openobserve"]
MAX_STORED = 200_000  # spans/records kept; beyond, the oldest go (counted in ``discarded``)


@dataclass
class OpenObserveDouble:
    user: str
    password: str
    version: str = PINNED
    passcode: str | None = None  # the root user's ingestion passcode
    allowed_past_s: float = 5 * 3600.0  # ZO_INGEST_ALLOWED_UPTO
    delay_s: float = 0.0  # every ingestion reply waits this long ("slow" mode)
    clock: Callable[[], float] = time.time
    users: dict[str, Member] = field(default_factory=dict)
    blocked_orgs: set[str] = field(default_factory=set)
    memtable_full: bool = False
    fail_writes: bool = False
    spans: deque[ReceivedSpan] = field(default_factory=lambda: deque(maxlen=MAX_STORED))
    records: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    stored: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    requests: deque[ReceivedRequest] = field(default_factory=lambda: deque(maxlen=MAX_STORED))
    faults: deque[Fault] = field(default_factory=deque)
    discarded: int = 0
    started: int = 0  # ingestion requests received so far (answered or not)
    url: str = ""
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition | None = None

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}")
        self.users.setdefault(self.user, Member(self.password, self.passcode))

    @property
    def allowed_future_s(self) -> float | None:
        """v0.14.4 sets no limit ahead; main refuses beyond ZO_INGEST_ALLOWED_IN_FUTURE."""
        return None if self.version == PINNED else 24 * 3600.0

    # -- test controls ---------------------------------------------------------------

    def fail_next(
        self, status: int, times: int = 1, retry_after: str | None = None, body: str | None = None
    ) -> None:
        for _ in range(times):
            self.faults.append(Fault(status, retry_after=retry_after, body=body))

    def slow_next(self, delay_s: float, times: int = 1) -> None:
        for _ in range(times):
            self.faults.append(Fault(None, delay_s=delay_s))

    def add_user(
        self, email: str, password: str, orgs: set[str], passcode: str | None = None
    ) -> None:
        self.users[email] = Member(password, passcode, frozenset(orgs))

    def json_records(self, stream: str) -> list[dict[str, Any]]:
        """Rows of ``stream`` (configured or stored name) as they were posted."""
        return list(self.records.get(model.stream_name(stream), ()))

    def stored_records(self, stream: str) -> list[dict[str, Any]]:
        """Rows of ``stream`` as OpenObserve stores them (flattened, keys formatted)."""
        return list(self.stored.get(model.stream_name(stream), ()))

    def stored_spans(self, stream: str = "default") -> list[dict[str, Any]]:
        name = model.stream_name(stream)
        return [span.stored for span in self.spans if span.stream == name]

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
        await self.wait_for(lambda: len(self.json_records(stream)) >= count, within_s)
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
        # A hung request (delay_s) must not hold the test's teardown for aiohttp's default 60 s.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = next(a for a in runner.addresses if isinstance(a, tuple))[1]
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{bound}"
        return self

    async def close(self) -> None:
        """Stop listening: from now on connections are refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # -- authentication (handler/http/auth/validator.rs) ----------------------------------

    def _unauthorized(self, missing: bool) -> web.Response:
        if self.version == PINNED:
            return web.Response(status=401, text=UNAUTHORIZED, content_type="text/plain")
        if missing:
            return web.json_response({"code": 401, "message": UNAUTHORIZED}, status=401)
        response = web.Response(status=401, body=UNAUTHORIZED.encode())
        response.headers["WWW-Authenticate"] = 'Bearer realm="openobserve"'
        return response

    def _auth(self, request: web.Request, org: str) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return self._unauthorized(missing=True)
        prefix = "Basic" if self.version == PINNED else "Basic "
        if not header.startswith(prefix):
            return self._unauthorized(missing=False)
        try:
            decoded = base64.b64decode(header[len(prefix) :].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return self._unauthorized(missing=False)
        email, sep, password = decoded.partition(":")
        member = self.users.get(email)
        if not sep or member is None or (member.orgs is not None and org not in member.orgs):
            return self._unauthorized(missing=False)
        if password not in (member.password, member.passcode):
            return self._unauthorized(missing=False)
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
                user_agent=request.headers.get("User-Agent"),
            )
        )
        await self._notify()

    async def _ingest(
        self, request: web.Request, handle: Callable[[web.Request, str], Any]
    ) -> web.StreamResponse:
        org = request.match_info["org"]
        response = self._auth(request, org)
        if response is None:
            response = await self._scripted() or await handle(request, org)
        await self._record(request, response)
        return response

    # -- traces (service/traces/mod.rs) ------------------------------------------------

    async def _traces(self, request: web.Request) -> web.StreamResponse:
        return await self._ingest(request, self._handle_traces)

    async def _handle_traces(self, request: web.Request, org: str) -> web.Response:
        # the validator gives a POST without Content-Type application/x-www-form-urlencoded
        content_type = request.headers.get("Content-Type", "application/x-www-form-urlencoded")
        body = await request.read()  # aiohttp has already undone Content-Encoding gzip
        if content_type == "application/x-protobuf":
            encoding = "protobuf"
            try:
                message = ExportTraceServiceRequest.FromString(body)
            except Exception as exc:
                return _error(400, f"Invalid proto: {exc}")
        elif content_type.startswith("application/json"):
            encoding = "json"
            try:
                message = model.parse_otlp_json(body)
            except Exception as exc:
                return _error(400, f"Invalid json: {exc}")
        else:
            return _error(400, "Bad Request")
        if org in self.blocked_orgs:
            return _error(403, f"Quota exceeded for this organization [{org}]")
        if self.memtable_full:
            return _error(503, MEMTABLE_FULL)
        raw_stream = request.headers.get("stream-name")
        stream = model.stream_name(raw_stream) if raw_stream is not None else "default"
        accepted, rejected = self._spans_of(org, stream, encoding, message)
        if self.fail_writes and accepted:
            return _error(500, "error while writing trace data: disk full (scripted)")
        for span in accepted:
            if len(self.spans) == self.spans.maxlen:
                self.discarded += 1
            self.spans.append(span)
        reply = ExportTraceServiceResponse()
        if rejected:
            reply.partial_success.rejected_spans = rejected
            reply.partial_success.error_message = REJECTED_SPANS
        if encoding == "json":
            partial = {"rejectedSpans": rejected, "errorMessage": REJECTED_SPANS}
            data = {"partialSuccess": partial if rejected else None}
            return web.json_response(data, status=206 if rejected else 200)
        return web.Response(body=reply.SerializeToString(), content_type="application/x-protobuf")

    def _window(self) -> tuple[float, float]:
        now = self.clock() * 1_000_000
        future = self.allowed_future_s
        return now - self.allowed_past_s * 1e6, now + (future * 1e6 if future else float("inf"))

    def _spans_of(
        self, org: str, stream: str, encoding: str, message: ExportTraceServiceRequest
    ) -> tuple[list[ReceivedSpan], int]:
        low, high = self._window()
        accepted: list[ReceivedSpan] = []
        rejected = 0
        for resource_spans in message.resource_spans:
            raw_resource_bytes = resource_spans.resource.SerializeToString()
            resource = {
                kv.key: model.plain_value(kv.value) for kv in resource_spans.resource.attributes
            }
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    micros = span.start_time_unix_nano / 1000
                    ids_ok = len(span.trace_id) == 16 and len(span.span_id) == 8
                    if not ids_ok or not low <= micros <= high:
                        rejected += 1
                        continue
                    fields = span_fields((org, stream, encoding), resource, scope_spans, span)
                    fields["raw"] = span.SerializeToString()
                    fields["raw_resource"] = raw_resource_bytes
                    fields["resource_schema_url"] = resource_spans.schema_url
                    accepted.append(fields)
        return [ReceivedSpan(**fields) for fields in accepted], rejected  # type: ignore[arg-type]

    # -- _json (service/logs/ingest.rs) ------------------------------------------------

    async def _json(self, request: web.Request) -> web.StreamResponse:
        return await self._ingest(request, self._handle_json)

    async def _handle_json(self, request: web.Request, org: str) -> web.Response:
        stream = model.stream_name(request.match_info["stream"])
        try:
            data = json.loads(await request.read())
        except ValueError as exc:
            return _error(400, str(exc))
        if org in self.blocked_orgs:
            return _error(400, f"Quota exceeded for this organization [{org}]")
        if self.memtable_full:
            return _error(400 if self.version == PINNED else 503, MEMTABLE_FULL)
        rows = data if isinstance(data, list) else [data]
        try:
            flat = [model.flatten(row) for row in rows]
        except model.NotAnObject as exc:
            return _error(400, str(exc))
        keep: list[tuple[dict[str, Any], dict[str, Any]]] = []
        failed = 0
        error = ""
        for row, stored in zip(rows, flat, strict=True):
            problem = self._timestamp_problem(stored)
            if problem:
                failed += 1
                error = problem
                continue
            keep.append((row, stored))
        if not self.fail_writes:  # a failed write still reports them successful: lost
            for row, stored in keep:
                self._store(stream, row, stored)
        status: dict[str, Any] = {"name": stream, "successful": len(keep), "failed": failed}
        if error:
            status["error"] = error
        return web.json_response({"code": 200, "status": [status]})

    def _timestamp_problem(self, stored: dict[str, Any]) -> str:
        now_us = int(self.clock() * 1_000_000)
        try:
            micros = (
                model.timestamp_micros(stored["_timestamp"], now_us)
                if "_timestamp" in stored
                else now_us
            )
        except ValueError as exc:
            return str(exc)
        low, high = self._window()
        if micros < low:
            return TOO_OLD.format(hours=round(self.allowed_past_s / 3600))
        if micros > high:
            return TOO_FAR.format(hours=round((self.allowed_future_s or 0) / 3600))
        stored["_timestamp"] = micros
        return ""

    def _store(self, stream: str, row: dict[str, Any], stored: dict[str, Any]) -> None:
        received = self.records.setdefault(stream, deque(maxlen=MAX_STORED))
        kept = self.stored.setdefault(stream, deque(maxlen=MAX_STORED))
        if len(received) == received.maxlen:
            self.discarded += 1
        received.append(row)
        kept.append(stored)

    async def _received(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "spans": [span.shown() for span in self.spans],
                "records": {name: list(rows) for name, rows in self.records.items()},
                "stored": {name: list(rows) for name, rows in self.stored.items()},
                "requests": [asdict(item) for item in self.requests],
                "discarded": self.discarded,
            }
        )

    async def _forget(self, request: web.Request) -> web.Response:
        self.spans.clear()
        self.records.clear()
        self.stored.clear()
        self.requests.clear()
        return web.json_response({"status": "ok"})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


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
    parser.add_argument("--version", choices=VERSIONS, default=PINNED)
    parser.add_argument("--start-delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.start_delay_s > 0:  # a slow first start: nothing listens yet
        print(f"OpenObserve test double: starting in {args.start_delay_s:g} s", flush=True)
        time.sleep(args.start_delay_s)
    double = OpenObserveDouble(args.user, args.password, version=args.version)
    print(f"OpenObserve test double ({args.version}) on http://{args.host}:{args.port}", flush=True)
    web.run_app(double.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

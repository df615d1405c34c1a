"""Plumbing of the end-to-end tests: the proxy exactly as the CLI composes it, the
AetherTerm-like scenario a client plays through it, and the checks of what the tracker made
of that scenario.

The configuration is the packaged ``config/default.yaml`` (AetherTerm's rules) with the
listener on port 0, the admin listener off, local records in a temporary directory and two
short timeouts (``ai_get_info`` and ``wrapper_session_sync``: :data:`SHORT_TIMEOUT`), written
to a file and read back through :func:`proxy.cli.load_configuration` and
:func:`proxy.cli.apply_overrides`, as ``serve --config`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import socketio
import yaml
from aiohttp import web

from socketio_trace_proxy.config.loader import default_config_text
from socketio_trace_proxy.config.settings import Settings
from socketio_trace_proxy.proxy.cli import (
    RunningProxy,
    apply_overrides,
    load_configuration,
    start_proxy,
)
from socketio_trace_proxy.tracking.observer import (
    RequestInfo,
    TrafficObserver,
    UnstampedRequests,
    WebSocketObserver,
)
from socketio_trace_proxy.tracking.records import (
    LifecycleKind,
    LifecycleRecord,
    MessageRecord,
    Outcome,
    PairKind,
    PairRecord,
    Record,
)
from socketio_trace_proxy.tracking.runtime import Tracker
from socketio_trace_proxy.tracking.traffic import Direction, Transport
from tests.doubles.openobserve import OpenObserveDouble

SHORT_TIMEOUT = 0.3  # seconds: ai_get_info and wrapper_session_sync time out after this
LATE_DELAY = 0.8  # seconds: the backend answers wrapper_session_sync this late
TERMINAL_ID = "term-e2e-7"
TEMPLATED_REQUEST = "workspace:tab:tab-1:pane:pane-2:terminal:create"
TEMPLATED_RESPONSE = "workspace:tab:tab-1:pane:pane-2:terminal:created"
TEMPLATED_RULE = "workspace:tab:{tab}:pane:{pane}:terminal:create"
TEMPLATED_OPERATION = f"{TEMPLATED_RULE} -> workspace:tab:{{tab}}:pane:{{pane}}:terminal:created"
MESSAGE_ID = "msg-e2e-1"
CHUNKS = 3
SYNC_TIMESTAMP = 1_717_000_000_123
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def traceparent(span_id: str) -> str:
    """A W3C ``traceparent`` of :data:`TRACE_ID` with the given 16-hex-digit parent span."""
    return f"00-{TRACE_ID}-{span_id}-01"


# --- configuration and the proxy ---------------------------------------------------------


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def write_config(directory: Path, extra: Mapping[str, Any] | None = None) -> Path:
    """The default configuration, adjusted for tests (see the module docstring), as a file."""
    data: dict[str, Any] = yaml.safe_load(default_config_text())
    for rule in data["tracking"]["rules"]:
        if rule["request"] in ("ai_get_info", "wrapper_session_sync"):
            rule["timeout"] = f"{int(SHORT_TIMEOUT * 1000)}ms"
    data["proxy"]["shutdown_timeout_s"] = 5.0
    data["admin"] = {"listen": None}
    data["exporters"] = {
        "local": {"ndjson_path": str(directory / "records.ndjson"), "console": False}
    }
    _merge(data, extra or {})
    path = directory / "e2e.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def e2e_settings(
    directory: Path,
    upstream: str,
    environ: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings as ``serve --config FILE --listen 127.0.0.1:0 --upstream URL --admin off``."""
    settings = load_configuration(write_config(directory, extra), environ)
    return apply_overrides(settings, listen="127.0.0.1:0", upstream=upstream, admin="off")


class Proxy:
    """A proxy started by :func:`proxy.cli.start_proxy`; :meth:`stop` may be called twice."""

    def __init__(self, running: RunningProxy) -> None:
        self.running = running
        self.url = running.url
        self._stopped = False

    @classmethod
    async def start(
        cls,
        settings: Settings,
        environ: Mapping[str, str],
        extra_observers: Sequence[TrafficObserver] = (),
    ) -> Proxy:
        return cls(await start_proxy(settings, environ, extra_observers=extra_observers))

    @property
    def tracker(self) -> Tracker:
        tracker = self.running.tracker
        assert isinstance(tracker, Tracker), "tracking is off"
        return tracker

    async def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            await self.running.stop()


class ServedDouble:
    """The OpenObserve double served with handler cancellation and a short shutdown, so that
    replies it holds back (slow mode) end when the exporter gives up, not minutes later."""

    def __init__(self, double: OpenObserveDouble, runner: web.AppRunner) -> None:
        self.double = double
        self._runner: web.AppRunner | None = runner

    @classmethod
    async def start(cls, user: str, password: str, **options: Any) -> ServedDouble:
        double = OpenObserveDouble(user, password, **options)
        runner = web.AppRunner(
            double.app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = next(a for a in runner.addresses if isinstance(a, tuple))[:2]
        double.url = f"http://{host}:{port}"
        return cls(double, runner)

    async def close(self) -> None:
        """Stop listening: connections are refused from now on."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


# --- waiting and reading the tracker -----------------------------------------------------


async def eventually(check: Callable[[], bool], what: str, limit_s: float = 10.0) -> None:
    """Wait until ``check()`` holds (polling, bounded); fail naming ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not check():
        if loop.time() > end:
            raise AssertionError(f"not within {limit_s}s: {what}")
        await asyncio.sleep(0.01)


def session_records(tracker: Tracker, sid: str) -> list[Record]:
    """Every record the tracker made for Engine.IO session ``sid``, oldest first."""
    return [item.record for item in tracker.recent_activity(limit=100_000, session=sid)]


def exportable_count(tracker: Tracker) -> int:
    """How many records the tracker handed every remote sink (pairs and lifecycle records;
    one-way messages are not exported by default)."""
    return sum(1 for r in all_records(tracker) if not isinstance(r, MessageRecord))


def all_records(tracker: Tracker) -> list[Record]:
    return [item.record for item in tracker.recent_activity(limit=100_000)]


def lifecycle(records: Sequence[Record], kind: LifecycleKind) -> list[LifecycleRecord]:
    return [r for r in records if isinstance(r, LifecycleRecord) and r.kind is kind]


def pairs(records: Sequence[Record]) -> list[PairRecord]:
    return [r for r in records if isinstance(r, PairRecord)]


def closed(tracker: Tracker, sid: str) -> Callable[[], bool]:
    return lambda: bool(lifecycle(session_records(tracker, sid), LifecycleKind.CLOSE))


# --- a tap on the relay: when frames passed -----------------------------------------------


@dataclass
class _TapLeg:
    frames: list[tuple[float, Direction, Transport, str]]

    def message(self, direction: Direction, data: str | bytes) -> None:
        text = data if isinstance(data, str) else data.decode("latin-1")
        self.frames.append((time.time(), direction, Transport.WEBSOCKET, text))

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        pass


@dataclass
class FrameTap(UnstampedRequests):
    """An extra ``TrafficObserver`` (called after the tracker) noting when each polling body
    or WebSocket message passed the proxy, by wall clock."""

    frames: list[tuple[float, Direction, Transport, str]] = field(default_factory=list)

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        self.frames.append(
            (time.time(), Direction.CLIENT_TO_SERVER, Transport.POLLING, body.decode("latin-1"))
        )

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        self.frames.append(
            (time.time(), Direction.SERVER_TO_CLIENT, Transport.POLLING, body.decode("latin-1"))
        )

    def websocket_opened(self, info: RequestInfo) -> WebSocketObserver:
        return _TapLeg(self.frames)

    def first(self, needle: str, direction: Direction) -> tuple[float, Transport]:
        """When (and how) the first frame carrying ``needle`` went ``direction``."""
        for wall, way, transport, text in self.frames:
            if way is direction and needle in text:
                return wall, transport
        raise AssertionError(f"no {direction.value} frame carried {needle!r}")


# --- the scenario ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioRun:
    """What a client saw while playing the scenario."""

    sid: str  # Engine.IO session id
    terminal_session: str  # the session id terminal_ready carried
    started_wall: float
    finished_wall: float


class Inbox:
    """Server events by name (a python-socketio catch-all handler feeds it)."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Any]] = {}

    def _queue(self, event: str) -> asyncio.Queue[Any]:
        return self._queues.setdefault(event, asyncio.Queue())

    async def put(self, event: str, data: Any = None) -> None:
        self._queue(event).put_nowait(data)

    async def get(self, event: str, limit_s: float = 10.0) -> Any:
        try:
            return await asyncio.wait_for(self._queue(event).get(), limit_s)
        except TimeoutError:
            raise AssertionError(f"no {event!r} from the server within {limit_s}s") from None

    def count(self, event: str) -> int:
        return self._queue(event).qsize()


async def _answer(data: Any) -> Any:
    return {"answer": data["n"] * 2}


async def python_scenario(
    url: str,
    transports: list[str] | None,
    parent: str | None = None,
    before_disconnect: Callable[[socketio.AsyncClient], Awaitable[None]] | None = None,
) -> ScenarioRun:
    """The AetherTerm-like scenario with a python-socketio ``AsyncClient`` (the node client
    plays the same one: tests/e2e/scenario.js)."""
    client = socketio.AsyncClient(reconnection=False)
    inbox = Inbox()
    client.on("*", inbox.put)
    client.on("question", _answer)
    headers = {"traceparent": parent} if parent else {}
    started = time.time()
    await client.connect(url, transports=transports, headers=headers, wait_timeout=10)
    try:
        sid = client.eio.sid
        assert isinstance(sid, str)
        await client.emit("create_terminal", {"session": "", "cols": 80})
        await client.emit("ai_get_info", {})
        await client.emit(
            "wrapper_session_sync", {"timestamp": SYNC_TIMESTAMP, "delay": LATE_DELAY}
        )
        ready = await inbox.get("terminal_ready")
        assert await client.call("echo", {"n": 1}, timeout=10) == {"n": 1}
        answer = await client.call("ask_client", {"n": 21}, timeout=10)
        assert answer == {"client_said": {"answer": 42}}, answer
        await client.emit(TEMPLATED_REQUEST, {"terminalId": TERMINAL_ID, "_requestId": "noop"})
        assert (await inbox.get(TEMPLATED_RESPONSE))["terminalId"] == TERMINAL_ID
        await client.emit("ai_chat_message", {"message_id": MESSAGE_ID, "chunks": CHUNKS})
        assert (await inbox.get("ai_chat_complete"))["message_id"] == MESSAGE_ID
        assert inbox.count("ai_chat_chunk") == CHUNKS
        await client.emit("create_terminal", {"session": "s-broken", "fail": True})
        await inbox.get("terminal_error")
        await inbox.get("wrapper_session_sync_response")
        if before_disconnect is not None:
            await before_disconnect(client)
    finally:
        await client.disconnect()
    return ScenarioRun(sid, ready["session"], started, time.time())


def _one(found: list[PairRecord], what: str, count: int = 1) -> PairRecord:
    summary = [(p.operation, p.outcome.value, p.ack_id, p.match_key) for p in found]
    assert len(found) == count, f"{what}: expected {count} record(s), got {summary}"
    return found[0]


def check_scenario(
    records: Sequence[Record],
    run: ScenarioRun,
    *,
    terminal_transports: tuple[Transport, Transport],
    single_transport: Transport | None,
    parent_span: str | None,
    extra_echoes: int = 0,
) -> dict[str, PairRecord]:
    """Assert that the tracker paired the scenario as it should; returns the pairs by name.
    ``extra_echoes``: how many more ``echo`` calls the client made after the scenario."""
    all_pairs = pairs(records)
    by_op: dict[str, list[PairRecord]] = {}
    for p in all_pairs:
        by_op.setdefault(p.operation, []).append(p)
    out: dict[str, PairRecord] = {}

    # One Engine.IO session, whatever the transports.
    sessions = {r.session for r in records}
    assert len(sessions) == 1, sessions
    (session,) = sessions
    assert session.session_id == run.sid
    handshake = lifecycle(records, LifecycleKind.HANDSHAKE)
    assert len(handshake) == 1, handshake
    assert handshake[0].span_id == session.span_id
    if parent_span is not None:
        assert handshake[0].trace_id == TRACE_ID
        assert handshake[0].parent_span_id == parent_span
    connects = lifecycle(records, LifecycleKind.NAMESPACE_CONNECT)
    assert [(c.namespace, c.ok) for c in connects] == [("/", True)]

    # One operation, one name: the failed create is the same operation, ended in error.
    creates = by_op.get("create_terminal -> terminal_ready", [])
    assert len(creates) == 2, creates
    ready = out["terminal"] = _one([p for p in creates if p.outcome is Outcome.OK], "ready")
    assert ready.outcome is Outcome.OK
    assert ready.kind is PairKind.EVENT_PAIR
    assert ready.initiator is Direction.CLIENT_TO_SERVER
    assert (ready.request_event, ready.response_event) == ("create_terminal", "terminal_ready")
    assert (ready.request_transport, ready.response_transport) == terminal_transports

    error = out["error"] = _one([p for p in creates if p.outcome is Outcome.ERROR], "error")
    assert error.outcome is Outcome.ERROR
    assert (error.error_type, error.response_event) == ("terminal_error", "terminal_error")
    assert error.match_key == "s-broken"

    echoes = by_op.get("echo -> ack", [])
    echo = out["echo"] = _one(echoes, "echo ack", 1 + extra_echoes)
    assert all(e.outcome is Outcome.OK for e in echoes)
    assert len({e.ack_id for e in echoes}) == len(echoes)  # each ack matched its own id
    assert (echo.kind, echo.outcome, echo.initiator) == (
        PairKind.ACK,
        Outcome.OK,
        Direction.CLIENT_TO_SERVER,
    )
    assert echo.ack_id is not None
    ask = out["ask"] = _one(by_op.get("ask_client -> ack", []), "ask_client ack")
    assert (ask.kind, ask.outcome) == (PairKind.ACK, Outcome.OK)
    question = out["question"] = _one(by_op.get("question -> ack", []), "server-initiated ack")
    assert (question.kind, question.outcome, question.initiator) == (
        PairKind.ACK,
        Outcome.OK,
        Direction.SERVER_TO_CLIENT,
    )
    # The server asked while the client's own ask_client was pending: nested, not confused.
    assert ask.start_wall <= question.start_wall
    assert question.start_wall + question.duration_s <= ask.start_wall + ask.duration_s + 1e-3

    templated = out["templated"] = _one(by_op.get(TEMPLATED_OPERATION, []), "templated")
    assert templated.outcome is Outcome.OK
    assert templated.rule == TEMPLATED_RULE
    assert (templated.request_event, templated.response_event) == (
        TEMPLATED_REQUEST,
        TEMPLATED_RESPONSE,
    )
    assert templated.match_key == TERMINAL_ID

    stream = out["stream"] = _one(by_op.get("ai_chat_message -> ai_chat_complete", []), "stream")
    assert (stream.kind, stream.outcome) == (PairKind.STREAM, Outcome.OK)
    assert stream.chunk_count == CHUNKS
    assert stream.match_key == MESSAGE_ID
    assert stream.first_chunk_s is not None
    assert 0.0 <= stream.first_chunk_s <= stream.duration_s

    info = out["timeout"] = _one(
        by_op.get("ai_get_info -> ai_info_response", []), "ai_get_info timeout"
    )
    assert info.outcome is Outcome.TIMEOUT
    assert info.error_type == "timeout"
    assert info.response_event is None
    assert abs(info.duration_s - SHORT_TIMEOUT) < 1e-6  # ends at the deadline

    # The timed-out request and its late reply: one operation, two records.
    syncs = by_op.get("wrapper_session_sync -> wrapper_session_sync_response", [])
    assert [p.outcome for p in syncs] == [Outcome.TIMEOUT, Outcome.LATE], syncs
    sync_timeout, late = syncs
    out["late"] = late
    assert sync_timeout.outcome is Outcome.TIMEOUT
    assert late.outcome is Outcome.LATE
    assert late.linked_span_id == sync_timeout.span_id
    assert late.match_key == str(SYNC_TIMESTAMP)
    assert late.duration_s > SHORT_TIMEOUT
    out["late_timeout"] = sync_timeout

    expected_ops = {
        "create_terminal -> terminal_ready",
        "echo -> ack",
        "ask_client -> ack",
        "question -> ack",
        TEMPLATED_OPERATION,
        "ai_chat_message -> ai_chat_complete",
        "ai_get_info -> ai_info_response",
        "wrapper_session_sync -> wrapper_session_sync_response",
    }
    assert set(by_op) == expected_ops, sorted(set(by_op) ^ expected_ops)
    for p in all_pairs:
        assert p.namespace == "/"
        assert run.started_wall - 0.01 <= p.start_wall <= run.finished_wall + 0.01
        if single_transport is not None:
            assert p.request_transport is single_transport, p
            assert p.response_transport in (single_transport, None), p
    return out

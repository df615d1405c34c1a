"""The recorder: a :class:`tracking.observer.TrafficObserver` that queues what the relay saw,
and the thread that writes it as a record file.

On the relay's path each call costs a flag test, a clock read and a ``deque.append`` (or,
when the queue is full, a counter: the observation is dropped, and the sessions then open
get a ``gap`` line).  The writer thread wakes every ``flush_interval``, cuts the queued
observations into lines (:class:`~tracking.recording.splitter.RecordSplitter`), writes
them and rotates the file at ``max_bytes``, keeping ``keep`` old parts.  A write error
stops the recording (counted, logged once); the relay never notices.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from socketio_trace_proxy.config.record import DEFAULT_RECORD_PATH, RecordSettings
from socketio_trace_proxy.config.tracking import TrackingSettings
from socketio_trace_proxy.tracking.observer import RequestInfo, UnstampedRequests
from socketio_trace_proxy.tracking.recording.format import Header, Line, PacketLine, encode
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.recording.splitter import RecordSplitter
from socketio_trace_proxy.tracking.rules import RuleBook
from socketio_trace_proxy.tracking.traffic import Direction

log = logging.getLogger(__name__)

_POLL_REQUEST, _POLL_RESPONSE, _WS_OPEN, _WS_MESSAGE, _WS_CLOSED = range(5)
_Observation = tuple[Any, ...]


def part_paths(path: Path, keep: int) -> list[Path]:
    """The parts of a recording that exist, oldest first (``path.N`` ... ``path``)."""
    parts = [path.with_name(f"{path.name}.{i}") for i in range(keep, 0, -1)] + [path]
    return [p for p in parts if p.is_file()]


class RotatingFile:
    """An append-only file rotated at ``max_bytes``: ``path`` -> ``path.1`` -> ... ->
    ``path.<keep>`` (the oldest is deleted).  Not thread-safe: the writer owns it."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.size = 0
        self.written = 0
        self.rotations = 0
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        """Start a fresh file; an existing one becomes ``path.1``."""
        if self.path.exists() and self.path.stat().st_size > 0:
            self._shift()
        self._file = self.path.open("wb")
        self.size = 0

    def fits(self, n: int) -> bool:
        return self.size + n <= self.max_bytes

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self.size += len(data)
        self.written += len(data)

    def rotate(self) -> None:
        self.close()
        self._shift()
        self._file = self.path.open("wb")
        self.size = 0
        self.rotations += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _shift(self) -> None:
        name = self.path.name
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
            return
        self.path.with_name(f"{name}.{self.keep}").unlink(missing_ok=True)
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{name}.1"))


class _Leg:
    """The recorder's view of one relayed WebSocket."""

    __slots__ = ("_id", "_rec")

    def __init__(self, recorder: Recorder, leg_id: int) -> None:
        self._rec = recorder
        self._id = leg_id

    def message(self, direction: Direction, data: str | bytes) -> None:
        self._rec._put((_WS_MESSAGE, self._id, direction, data), len(data))

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        self._rec._put((_WS_CLOSED, self._id, initiator, code), 0)


class _IdleLeg:
    __slots__ = ()

    def message(self, direction: Direction, data: str | bytes) -> None:
        return None

    def closed(self, initiator: Direction | None, code: int | None) -> None:
        return None


_IDLE = _IdleLeg()


@dataclass(frozen=True, slots=True)
class RecorderStatus:
    active: bool
    path: str | None
    files: tuple[tuple[str, int], ...]  # (name, bytes), oldest first
    bytes_written: int
    rotations: int
    sessions: int
    open_sessions: int
    skipped_sessions: int
    packets: int
    queued: int
    dropped: int
    dropped_too_large: int
    unknown: int
    undecodable: int
    write_errors: int
    last_error: str | None


class Recorder(UnstampedRequests):
    """Records relayed sessions; see the module docstring.  ``start``/``stop``/``flush``
    block briefly (file open, thread join): call them off the event loop."""

    def __init__(
        self,
        settings: RecordSettings,
        tracking: TrackingSettings,
        socketio_path: str = "/socket.io/",
        *,
        version: str = "",
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._tracking = tracking
        self._socketio_path = socketio_path
        self._version = version
        self._monotonic = monotonic
        self._wall = wall
        self._redactor = PacketRedactor(tracking.capture, RuleBook(tracking))
        self._queue: deque[_Observation] = deque()
        self._queued_bytes = 0  # written by the event loop only
        self._drained_bytes = 0  # written by the writer only
        self._max_queue = settings.queue
        self._max_queue_bytes = settings.queue_bytes
        self._legs = itertools.count()
        self._lock = threading.Lock()  # one drain at a time (writer thread or flush)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: RotatingFile | None = None
        self._splitter: RecordSplitter | None = None
        self.active = False
        self.dropped = 0
        self._gaps_written = 0
        self.too_large = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self._stopping = False
        self._watchers: list[Callable[[], None]] = []

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from whichever thread) each time :attr:`active` changes: a
        tee in front of the recorder leaves it out while it is idle."""
        self._watchers.append(callback)

    def _activity_changed(self) -> None:
        for callback in self._watchers:
            callback()

    # --- TrafficObserver (event loop) ---------------------------------------------------

    def polling_request(self, info: RequestInfo, body: bytes) -> None:
        if self.active:
            self._put((_POLL_REQUEST, info.query, body), len(body))

    def polling_response(
        self,
        info: RequestInfo,
        status: int,
        content_type: str | None,
        content_encoding: str | None,
        body: bytes,
    ) -> None:
        if self.active:
            obs = (_POLL_RESPONSE, info.query, info.method, status, content_encoding, body)
            self._put(obs, len(body))

    def websocket_opened(self, info: RequestInfo) -> _Leg | _IdleLeg:
        if not self.active:
            return _IDLE
        leg = next(self._legs)
        self._put((_WS_OPEN, leg, info.query), 0)
        return _Leg(self, leg)

    def _put(self, obs: _Observation, size: int) -> None:
        if (
            len(self._queue) >= self._max_queue
            or self._queued_bytes - self._drained_bytes + size > self._max_queue_bytes
        ):
            self.dropped += 1
            return
        self._queued_bytes += size
        self._queue.append((*obs, size, self._monotonic()))

    # --- control ------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return Path(self.settings.path or DEFAULT_RECORD_PATH)

    def start(self, path: str | None = None) -> None:
        """Start recording to ``path`` (default: the configured one) in a fresh file;
        raises OSError if it cannot be opened.  No-op when already recording."""
        if self.active:
            return
        if path is not None:
            self.settings = self.settings.model_copy(update={"path": path})
        capture = self._tracking.capture
        rotating = RotatingFile(self.path, self.settings.max_bytes, self.settings.keep)
        rotating.open()
        header = Header(
            created=self._wall(),
            path=self._socketio_path,
            redact_keys=capture.redact_keys,
            redact_paths=capture.redact_paths,
            proxy=self._version,
        )
        self._header = header
        rotating.write((encode(header) + "\n").encode())
        self._file = rotating
        self._splitter = RecordSplitter(
            self._redactor,
            wall_offset=self._wall() - self._monotonic(),
            max_sessions=self.settings.sessions,
            max_open_sessions=self.settings.max_open_sessions,
        )
        self._stopping = False
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self.active = True
        self._activity_changed()
        self._thread.start()
        log.info("recording started", extra={"fields": {"path": str(self.path)}})

    def stop(self) -> None:
        """Stop recording: what is queued is written, open sessions get a ``close`` line
        (reason ``stopped``), the file is closed."""
        if self._thread is None:
            return
        self.active = False
        self._activity_changed()
        self._stopping = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        with self._lock:
            self._drain()
            if self._splitter is not None and self._file is not None:
                self._write(self._splitter.close_all("stopped", self._monotonic()))
            if self._file is not None:
                self._file.close()
        log.info("recording stopped", extra={"fields": {"path": str(self.path)}})

    def flush(self) -> None:
        """Write everything queued so far and flush the file."""
        with self._lock:
            self._drain()
            if self._file is not None:
                self._file.flush()

    def files(self) -> list[Path]:
        return part_paths(self.path, self.settings.keep)

    def status(self) -> RecorderStatus:
        sp = self._splitter.stats if self._splitter is not None else None
        rf = self._file
        return RecorderStatus(
            active=self.active,
            path=str(self.path),
            files=tuple((p.name, p.stat().st_size) for p in self.files()),
            bytes_written=rf.written if rf is not None else 0,
            rotations=rf.rotations if rf is not None else 0,
            sessions=sp.sessions if sp else 0,
            open_sessions=len(self._splitter.open_sessions) if self._splitter else 0,
            skipped_sessions=sp.skipped_sessions if sp else 0,
            packets=sp.packets if sp else 0,
            queued=len(self._queue),
            dropped=self.dropped,
            dropped_too_large=self.too_large,
            unknown=sp.unknown if sp else 0,
            undecodable=sp.undecodable if sp else 0,
            write_errors=self.write_errors,
            last_error=self.last_error,
        )

    # --- writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        interval = self.settings.flush_interval
        while not self._stopping:
            self._wake.wait(interval)
            with self._lock:
                self._drain()
                if self._file is not None:
                    try:
                        self._file.flush()
                    except OSError as exc:
                        self._failed(exc)

    def _drain(self) -> None:
        splitter = self._splitter
        if splitter is None or self._file is None:
            self._queue.clear()
            return
        queue = self._queue
        while queue:
            obs = queue.popleft()
            self._drained_bytes += obs[-2]
            self._write(self._split(splitter, obs))
        gap = self.dropped - self._gaps_written
        if gap > 0:
            self._gaps_written += gap
            self._write([splitter.gap(gap, self._monotonic())])

    @staticmethod
    def _split(splitter: RecordSplitter, obs: _Observation) -> list[Line]:
        kind, t = obs[0], obs[-1]
        if kind == _WS_MESSAGE:
            return splitter.websocket_message(obs[1], obs[2], obs[3], t)
        if kind == _POLL_REQUEST:
            return splitter.polling_request(obs[1], obs[2], t)
        if kind == _POLL_RESPONSE:
            return splitter.polling_response(obs[1], obs[2], obs[3], obs[4], obs[5], t)
        if kind == _WS_OPEN:
            return splitter.websocket_opened(obs[1], obs[2], t)
        return splitter.websocket_closed(obs[1], obs[2], obs[3], t)

    def _write(self, lines: list[Line]) -> None:
        rf = self._file
        if rf is None or not lines:
            return
        try:
            for line in lines:
                data = (encode(line) + "\n").encode()
                if not rf.fits(len(data)):
                    if isinstance(line, PacketLine) and len(data) * 2 > rf.max_bytes:
                        self.too_large += 1  # would not fit a part: the session has a gap
                        gap = self._splitter_gap(line)
                        data = (encode(gap) + "\n").encode()
                        if rf.fits(len(data)):
                            rf.write(data)
                            continue
                    self._rotate(rf)
                rf.write(data)
        except OSError as exc:
            self._failed(exc)

    def _splitter_gap(self, line: PacketLine) -> Line:
        assert self._splitter is not None
        return self._splitter.gap(1, self._monotonic(), (line.session,))

    def _rotate(self, rf: RotatingFile) -> None:
        rf.rotate()
        assert self._splitter is not None
        head = [self._header, *self._splitter.continued()]
        for line in head:
            rf.write((encode(line) + "\n").encode())

    def _failed(self, exc: OSError) -> None:
        self.write_errors += 1
        if self.last_error is None or self.active:
            log.error("recording stopped: cannot write %s: %s", self.path, exc)
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.active = False
        self._activity_changed()
        self._stopping = True
        self._queue.clear()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def recorder_status_json(status: RecorderStatus) -> Mapping[str, Any]:
    """The status as a JSON object (admin API)."""
    return {
        **{k: getattr(status, k) for k in status.__slots__ if k != "files"},
        "files": [{"name": n, "bytes": b} for n, b in status.files],
    }

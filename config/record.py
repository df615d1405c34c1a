"""Record and replay settings: where relayed sessions are written, how big the files may
grow, and what a replay ignores when it compares replies.

Recording is off unless ``record.path`` is set (or ``serve --record FILE``); the admin API
can start and stop it at run time.  Disk use is bounded: the file rotates at
``max_bytes`` and ``keep`` rotated files are kept (``path.1`` newest ... ``path.<keep>``).
"""

from __future__ import annotations

from pydantic import Field

from socketio_trace_proxy.config.base import Section
from socketio_trace_proxy.config.tracking import Duration

DEFAULT_RECORD_PATH = "socketio-trace-proxy.record.jsonl"


class RecordSettings(Section):
    path: str | None = Field(
        None, description="record file; set (or serve --record FILE) to record from the start"
    )
    max_bytes: int = Field(
        64 * 1024 * 1024, ge=4096, description="the file rotates when it reaches this size"
    )
    keep: int = Field(3, ge=0, le=100, description="rotated files kept (path.1 ... path.N)")
    sessions: int | None = Field(
        None, gt=0, description="record at most this many sessions per start (null: all)"
    )
    queue: int = Field(
        10_000, gt=0, description="observations waiting for the writer; more are dropped"
    )
    queue_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="bytes waiting for the writer; more are dropped"
    )
    flush_interval: Duration = Field(0.2, description="how often the writer thread writes")
    max_open_sessions: int = Field(
        10_000, gt=0, description="sessions followed at once; the least recent is closed"
    )


class ReplaySettings(Section):
    ignore: tuple[str, ...] = Field(
        ("sid", "timestamp"),
        description="reply fields (key names, at any depth) never reported as different; "
        "a differing string there is remapped in later client packets (ids)",
    )
    ignore_paths: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="reply event name or template -> dotted paths (first argument) ignored",
    )

"""``socketio-trace-proxy replay FILE... --target URL``: the command line of a replay.

Exit status: 0 when every reply matched the recording, 1 when one differed, was missing or
unexpected (or a session failed), 2 on bad usage, configuration or record file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from socketio_trace_proxy.config.settings import Settings
from socketio_trace_proxy.proxy.replay.runner import (
    Progress,
    Replayer,
    ReplayOptions,
    TransportMode,
)
from socketio_trace_proxy.tracking.recording.format import Line, RecordFormatError, read_lines
from socketio_trace_proxy.tracking.recording.redact import PacketRedactor
from socketio_trace_proxy.tracking.replay.script import build_script, load_sessions

EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_USAGE = 2


class ReplayUsageError(Exception):
    """Printed as is; exit status 2."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay", help="replay recorded sessions against a backend and compare the replies"
    )
    p.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="record file(s), oldest first"
    )
    p.add_argument(
        "--target", required=True, help="base URL of the backend, e.g. http://127.0.0.1:5000"
    )
    p.add_argument("--speed", default="1", help="times the recorded pace (e.g. 2, 0.5), or 'max'")
    p.add_argument("--sessions", type=int, help="sessions to run in all (recorded ones cycled)")
    p.add_argument("--concurrency", type=int, default=1, help="sessions at once (default 1)")
    p.add_argument(
        "--transport",
        choices=[m.value for m in TransportMode],
        default=TransportMode.RECORDED.value,
        help="recorded (default), polling, websocket, or upgrade (polling then WebSocket)",
    )
    p.add_argument("--config", type=Path, help="YAML configuration (rules, replay.ignore)")
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help="also ignore this reply field (any depth)",
    )
    p.add_argument("--path", help="Socket.IO path (default: the recording's)")
    p.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE", help="HTTP header to send"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report as JSON")
    p.add_argument(
        "--include-incomplete", action="store_true", help="replay sessions with gaps too"
    )
    return p


def _speed(raw: str) -> float | None:
    if raw.lower() in ("max", "inf", "0"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ReplayUsageError(f"--speed: expected a number or 'max', got {raw!r}") from None
    if value <= 0:
        raise ReplayUsageError("--speed must be positive")
    return value


def _headers(raw: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ReplayUsageError(f"--header: expected NAME:VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _read(files: Sequence[Path]) -> list[Line]:
    lines: list[Line] = []
    for path in files:
        try:
            with path.open(encoding="utf-8") as f:
                lines.extend(read_lines(f, str(path)))
        except OSError as exc:
            raise ReplayUsageError(f"{path}: cannot read: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ReplayUsageError(f"{path}: not UTF-8: {exc}") from None
        except RecordFormatError as exc:
            raise ReplayUsageError(str(exc)) from None
    return lines


def prepare(args: argparse.Namespace, settings: Settings) -> tuple[Replayer, list[str]]:
    """The replayer for ``args``, and notes on sessions left out."""
    if args.concurrency < 1:
        raise ReplayUsageError("--concurrency must be at least 1")
    if args.sessions is not None and args.sessions < 1:
        raise ReplayUsageError("--sessions must be at least 1")
    header, recorded = load_sessions(_read(args.files))
    notes: list[str] = []
    scripts = []
    for s in recorded:
        if s.incomplete and not args.include_incomplete:
            notes.append(f"session {s.session} left out: {s.incomplete}")
            continue
        scripts.append(build_script(s, settings.tracking))
    if not scripts:
        raise ReplayUsageError(
            "no complete session to replay in " + ", ".join(map(str, args.files))
        )
    replay = settings.replay.model_copy(update={"ignore": (*settings.replay.ignore, *args.ignore)})
    redactor = (
        PacketRedactor.from_header(header.redact_keys, header.redact_paths)
        if header is not None
        else PacketRedactor.from_header((), {})
    )
    options = ReplayOptions(
        target=args.target,
        path=args.path or (header.path if header is not None else "/socket.io/"),
        speed=_speed(args.speed),
        sessions=args.sessions,
        concurrency=args.concurrency,
        transport=TransportMode(args.transport),
        headers=_headers(args.header),
    )
    return Replayer(scripts, options, settings.tracking, replay, redactor), notes


def run(
    args: argparse.Namespace,
    settings: Settings,
    runner: Callable[[Coroutine[Any, Any, Any]], Any],
) -> int:
    """Replay, print the report; the exit status."""
    try:
        replayer, notes = prepare(args, settings)
    except ReplayUsageError as exc:
        print(f"socketio-trace-proxy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    summary = runner(replayer.run(Progress()))
    problems = summary.problems()
    if problems:
        print(problems)
        print()
    print(summary.table())
    if args.json is not None:
        args.json.write_text(json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK if summary.ok else EXIT_DIFFERENT

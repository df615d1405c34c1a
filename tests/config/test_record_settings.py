"""The record and replay sections: off by default, and errors that name file, line, field."""

from __future__ import annotations

import pytest

from socketio_trace_proxy.config.loader import ConfigError, parse_settings


def test_off_by_default() -> None:
    settings = parse_settings("{}", "x.yaml", {})
    assert settings.record.path is None
    assert settings.replay.ignore == ("sid", "timestamp")


def test_valid_section() -> None:
    text = (
        "record:\n  path: /tmp/r.jsonl\n  max_bytes: 1048576\n  sessions: 10\n"
        "replay:\n  ignore: [id]\n"
    )
    settings = parse_settings(text, "x.yaml", {})
    assert settings.record.sessions == 10 and settings.replay.ignore == ("id",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("record:\n  max_bytes: 12\n", "x.yaml:2: record.max_bytes: Input should be greater"),
        ("record:\n  path: a\n  sessions: 0\n", "x.yaml:3: record.sessions:"),
        ("record:\n  pth: a\n", "x.yaml:2: record.pth: unknown field"),
        ("replay:\n  ignore: 3\n", "x.yaml:2: replay.ignore:"),
    ],
)
def test_errors_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(text, "x.yaml", {})

"""Payload capture: off by default, redacted keys and paths, truncation; keys and predicates."""

from __future__ import annotations

import json

import pytest

from socketio_trace_proxy.config.tracking import CaptureSettings, Predicate
from socketio_trace_proxy.tracking.capture import REDACTED, Capturer, first_error, key_value
from tests.tracking.engine_kit import Harness, event, settings


def test_capture_is_off_by_default() -> None:
    assert Capturer(CaptureSettings()).capture(event("x", {"a": 1}), "x", None) is None


def test_redacts_secret_keys_at_any_depth_case_insensitively() -> None:
    cap = Capturer(CaptureSettings(enabled=True))
    packet = event(
        "login",
        {"user": "ann", "Password": "pw", "nested": [{"accessToken": "t", "ok": 1}]},
        {"unlock_key": "ctrl_d"},
    )
    text = cap.capture(packet, "login", None)
    assert text is not None
    assert json.loads(text) == [
        {"user": "ann", "Password": REDACTED, "nested": [{"accessToken": REDACTED, "ok": 1}]},
        {"unlock_key": REDACTED},
    ]


def test_redacts_per_event_paths_by_name_or_template() -> None:
    cap = Capturer(
        CaptureSettings(enabled=True, redact_paths={"terminal_input": ("data",), "a:{x}": ("k.v",)})
    )
    keys = event("terminal_input", {"session": "s", "data": "ls\r"})
    text = cap.capture(keys, "terminal_input", None)
    assert text is not None and json.loads(text) == [{"session": "s", "data": REDACTED}]
    text = cap.capture(event("a:1", {"k": {"v": 1, "w": 2}}), "a:1", "a:{x}")
    assert text is not None and json.loads(text) == [{"k": {"v": REDACTED, "w": 2}}]


def test_truncates_to_max_bytes_on_a_character_boundary() -> None:
    cap = Capturer(CaptureSettings(enabled=True, max_bytes=20, redact_keys=()))
    text = cap.capture(event("x", "ブロック解除に失敗しました"), "x", None)
    assert text is not None and text.endswith("…")
    assert len(text[:-1].encode()) <= 20


def test_engine_attaches_redacted_payloads_when_enabled() -> None:
    h = Harness(
        settings(
            capture={"enabled": True},
            rules=[{"request": "unblock_request", "responses": ["unblock_response"]}],
        )
    )
    h.open()
    h.send(event("unblock_request", {"session_id": "s", "unlock_key": "ctrl_d"}))
    h.reply(event("unblock_response", {"status": "ok"}))
    (pair,) = h.pairs()
    assert pair.request_payload == '[{"session_id":"s","unlock_key":"[REDACTED]"}]'
    assert pair.response_payload == '[{"status":"ok"}]'


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ({"id": "a"}, "a"),
        ({"id": 123}, "123"),
        ({"id": ""}, None),
        ({"id": None}, None),
        ({"id": "noop"}, None),
        ({"id": {"x": 1}}, None),
        ({}, None),
        ("not an object", None),
    ],
)
def test_key_values(arg: object, expected: str | None) -> None:
    assert key_value(arg, ("id",), {"noop"}) == expected


def test_nested_key_paths_and_list_indexes() -> None:
    assert key_value({"session": {"ids": ["w1", "w2"]}}, ("session", "ids", "1"), ()) == "w2"


def test_predicates() -> None:
    status = Predicate(path="status", equals="error")
    present = Predicate(path="error", present=True)
    failed = Predicate(path="success", equals=False)
    assert first_error({"status": "error"}, [status, present]) is status
    assert first_error({"error": "x"}, [status, present]) is present
    assert first_error({"error": None, "status": "ok"}, [status, present]) is None
    assert first_error({"success": 0}, [failed]) is None  # 0 is not false
    assert first_error({"success": False}, [failed]) is failed
    assert first_error(None, [status, present]) is None

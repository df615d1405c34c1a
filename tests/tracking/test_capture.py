"""Payload capture: off by default, redacted keys and paths, truncation; keys and predicates."""

from __future__ import annotations

import json

import pytest

from socketio_trace_proxy.config.tracking import CaptureSettings, Predicate
from socketio_trace_proxy.tracking.capture import (
    DEPTH_CUT,
    REDACTED,
    Capturer,
    first_error,
    key_value,
)
from socketio_trace_proxy.tracking.records import Outcome
from socketio_trace_proxy.tracking.wire.packets import SocketPacket, SocketPacketType
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


# --- issue 17: what the defaults must not let through, and hostile nesting -----------------


def _captured(args: list[object], **settings: object) -> list[object]:
    cap = Capturer(CaptureSettings(enabled=True, **settings))  # type: ignore[arg-type]
    text = cap.capture(event("login", *args), "login", None)
    assert text is not None
    value = json.loads(text)
    assert isinstance(value, list)
    return value


def test_default_redaction_covers_the_common_credential_names() -> None:
    secret_keys = [
        "passwd",
        "pwd",
        "pass",
        "Password",
        "passphrase",
        "credential",
        "credentials",
        "apikey",
        "apiKey",
        "api_key",
        "X-API-KEY",
        "secret",
        "client_secret",
        "accessToken",
        "refresh_token",
        "auth",
        "Authorization",
        "cookie",
        "unlock_key",
    ]
    (got,) = _captured([{**dict.fromkeys(secret_keys, "s3cr3t"), "user": "ann", "n": 1}])
    assert got == {**dict.fromkeys(secret_keys, REDACTED), "user": "ann", "n": 1}
    assert "s3cr3t" not in json.dumps(got)


def test_authorization_inside_strings_is_masked_anywhere() -> None:
    got = _captured(
        [
            "GET / HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\nHost: x",
            {"headers": ["authorization=Bearer abc.def.ghi", "Accept: */*"]},
            "token is Bearer eyJhbGciOiJIUzI1NiJ9.e30.x; keep this",
            "nothing to see here",
        ]
    )
    assert got == [
        f"GET / HTTP/1.1\r\nAuthorization: {REDACTED}\r\nHost: x",
        {"headers": [f"authorization={REDACTED}", "Accept: */*"]},
        f"token is Bearer {REDACTED}; keep this",
        "nothing to see here",
    ]


def test_positional_strings_stay_as_configured() -> None:
    # A plain positional string is not a key: only redact_paths (or a credential pattern)
    # masks it.
    assert _captured(["my password is hunter2"]) == ["my password is hunter2"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [40, 900, 5000])
def test_deep_nesting_is_cut_and_marked_never_raised(depth: int) -> None:
    payload = f'["ev",{_nested(depth)}]'
    packet = SocketPacket(SocketPacketType.EVENT, "/", None, "ev", payload, (), len(payload))
    text = Capturer(CaptureSettings(enabled=True)).capture(packet, "ev", None)
    assert text is not None and "nested deeper than 32 levels" in text
    if depth == 40:  # parseable: the outer levels are kept, the rest is one marker
        value = json.loads(text)
        for _ in range(31):
            (value,) = value
        assert value == [DEPTH_CUT]


def test_deep_payloads_through_the_engine_cost_no_record() -> None:
    h = Harness(
        settings(
            capture={"enabled": True},
            rules=[{"request": "q", "responses": ["r"], "match": "id"}],
        )
    )
    h.open()
    deep = f'["q",{_nested(5000)}]'
    h.send(SocketPacket(SocketPacketType.EVENT, "/", 1, "q", deep, (), len(deep)))
    h.reply(SocketPacket(SocketPacketType.CONNECT_ERROR, "/x", None, None, _nested(5000), (), 1))
    h.reply(SocketPacket(SocketPacketType.ACK, "/", 1, None, f"[{_nested(5000)}]", (), 1))
    (pair,) = h.pairs()
    assert pair.operation == "q -> ack" and pair.outcome is Outcome.OK
    assert pair.request_payload is not None and "NOT CAPTURED" in pair.request_payload
    assert h.lifecycle()[-1].error == "connect_error"


def test_payloads_too_large_to_parse_are_not_captured() -> None:
    big = '["ev","' + "x" * (2 * 1024 * 1024) + '"]'
    packet = SocketPacket(SocketPacketType.EVENT, "/", None, "ev", big, (), len(big))
    text = Capturer(CaptureSettings(enabled=True)).capture(packet, "ev", None)
    assert text is not None and text.startswith("[NOT CAPTURED: payload of")


def test_a_lone_surrogate_is_replaced_not_raised() -> None:
    assert _captured(["\ud800 ok"]) == ["? ok"]


def test_long_match_keys_are_cut_but_kept_apart() -> None:
    a, b = "k" * 5000 + "a", "k" * 5000 + "b"
    ka, kb = key_value({"id": a}, ("id",), ()), key_value({"id": b}, ("id",), ())
    assert ka is not None and kb is not None and ka != kb
    assert len(ka) == len(kb) == 256 and ka.startswith("k" * 200)
    assert key_value({"id": "short"}, ("id",), ()) == "short"


def test_payloads_too_large_to_read_match_first_in_first_out() -> None:
    h = Harness(settings(rules=[{"request": "q", "responses": ["r"], "match": "id"}]))
    h.open()
    big = {"id": "A", "blob": "x" * (1024 * 1024)}
    h.send(event("q", big))
    h.reply(event("r", {"id": "B"}))  # its key does not matter: the request had none
    (pair,) = h.pairs()
    assert (pair.outcome, pair.match_key) == (Outcome.OK, None)
    assert h.engine.snapshot().extra["payloads_too_large_to_read"] == 1

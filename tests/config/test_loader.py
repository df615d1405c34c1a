"""Config loading: the packaged default, environment overrides, and error messages that name
the file, line, field and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketio_trace_proxy.config.loader import ConfigError, describe_settings, load_settings
from socketio_trace_proxy.config.tracking import MatchKey, RuleKind, TrackingSettings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ or {})
    return str(info.value)


def test_packaged_default_has_every_aetherterm_rule() -> None:
    s = load_settings(None, {})
    rules = {r.request: r for r in s.tracking.rules if r.kind is RuleKind.PAIR}
    echoes = {r.request: r for r in s.tracking.rules if r.kind is RuleKind.ECHO}
    assert {(r, e.responses, e.match) for r, e in echoes.items()} == {
        ("terminal_input", ("terminal_output",), "session"),
        ("workspace:tab:{tab}:pane:{pane}:terminal:input", ("terminal:data",), "terminalId"),
    }
    assert set(rules) == {
        "create_terminal",
        "get_block_status",
        "unblock_request",
        "get_wrapper_sessions",
        "wrapper_session_sync",
        "ai_get_info",
        "ai_chat_message",
        "terminal:create",
        "workspace:tab:{tab}:pane:{pane}:terminal:create",
        "workspace:tab:create",
        "workspace:tab:close",
        "workspace:sync:request",
        "workspace:initialize",
    }
    assert rules["create_terminal"].errors == ("terminal_error",)
    assert rules["create_terminal"].rejections == ("terminal_closed",)
    assert rules["ai_chat_message"].chunks == ("ai_chat_chunk",)
    assert rules["get_wrapper_sessions"].match is None
    assert s.tracking.defaults.timeout == 5.0 and s.tracking.defaults.slow == 1.0
    assert set(s.tracking.aggregate) == {
        "terminal_output",
        "terminal_input",
        "terminal:data",
        *(
            f"workspace:tab:{{tab}}:pane:{{pane}}:terminal:{what}"
            for what in ("input", "focus", "resize", "buffer_restore")
        ),
    }
    assert not s.tracking.capture.enabled
    assert s.tracking.capture.redact_paths["terminal_input"] == ("data",)


def test_durations_accept_numbers_and_units(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            "tracking:\n  defaults: {timeout: 250ms, slow: 0.5, late_window: 2m}\n"
            "  rules:\n    - {request: a, responses: [b], timeout: '1.5s',"
            " match: {request: id, response: ref}}\n",
        ),
        {},
    )
    d = s.tracking.defaults
    assert (d.timeout, d.slow, d.late_window) == (0.25, 0.5, 120.0)
    assert s.tracking.rules[0].timeout == 1.5
    assert s.tracking.rules[0].match == MatchKey(request="id", response="ref")


def test_bad_duration_names_file_line_field_and_expectation(tmp_path: Path) -> None:
    text = "tracking:\n  rules:\n    - request: a\n      responses: [b]\n      timeout: 5x\n"
    msg = error_of(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'proxy.yaml'}:5: tracking.rules[0].timeout: ")
    assert "invalid duration '5x'" in msg and "'250ms'" in msg


def test_unknown_key_points_at_the_key(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "proxy:\n  listen: 1.2.3.4:80\ntracking:\n  sample_rat: 0.5\n")
    assert msg == (
        f"{tmp_path / 'proxy.yaml'}:4: tracking.sample_rat: unknown field "
        "(misspelt, or not valid in this section)"
    )


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = (
        "tracking:\n"
        "  sample_rate: 2\n"
        "  rules:\n"
        "    - request: x\n"
        "    - request: 'a:{id}'\n"
        "      responses: ['b:{other}']\n"
    )
    lines = error_of(tmp_path, text).splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(
        "proxy.yaml:2: tracking.sample_rate: Input should be less than or equal to 1 (got 2)"
    )
    assert ":4: tracking.rules[0]: a rule needs at least one of 'responses' or 'errors'" in lines[1]
    assert ":5: tracking.rules[1]: 'b:{other}' uses placeholders ['other']" in lines[2]


def test_wrong_type_in_union_field(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "tracking:\n  rules:\n    - {request: a, responses: [b], match: 3}\n")
    assert ":3: tracking.rules[0].match (as str): Input should be a valid string" in msg


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "tracking:\n  rules: [\n    {request: a\n\nproxy: x\n")
    assert msg.startswith(f"{tmp_path / 'proxy.yaml'}:")
    assert "invalid YAML" in msg


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in error_of(tmp_path, "- a\n- b\n")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_settings(Path("/nonexistent/nope.yaml"), {})


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), {})
    assert s.tracking == TrackingSettings()


def test_secrets_in_the_file_are_refused(tmp_path: Path) -> None:
    text = "exporters:\n  openobserve:\n    endpoint: http://o:5080\n    password: hunter2\n"
    msg = error_of(tmp_path, text)
    assert ":4: exporters.openobserve.password: secrets are read only from the environment" in msg
    assert "OPENOBSERVE_PASS" in msg and "hunter2" not in msg
    assert "admin.token" in error_of(tmp_path, "admin:\n  token: abc\n")


def test_environment_overrides_and_secret_masking(tmp_path: Path) -> None:
    env = {
        "SOCKET_TRACKING_ENABLED": "false",
        "OPENOBSERVE_ENDPOINT": "http://openobserve:5080",
        "OPENOBSERVE_ORG": "acme",
        "OPENOBSERVE_USER": "root@example.com",
        "OPENOBSERVE_PASS": "s3cr3t-pass",
        "SOCKET_TRACE_ADMIN_TOKEN": "admintok",
    }
    s = load_settings(write(tmp_path, "tracking:\n  enabled: true\n"), env)
    oo = s.exporters.openobserve
    assert s.tracking.enabled is False
    assert (oo.endpoint, oo.org) == ("http://openobserve:5080", "acme")
    assert oo.user is not None and oo.user.get_secret_value() == "root@example.com"
    assert oo.password is not None and oo.password.get_secret_value() == "s3cr3t-pass"
    assert s.admin.token is not None
    text = describe_settings(s)
    assert "s3cr3t-pass" not in text and "root@example.com" not in text
    assert "admintok" not in text and "s3cr3t-pass" not in repr(s)
    assert "*** (from OPENOBSERVE_PASS)" in text
    assert "http://openobserve:5080" in text and "enabled: false" in text


def test_blank_environment_values_are_ignored() -> None:
    s = load_settings(None, {"SOCKET_TRACKING_ENABLED": " ", "OPENOBSERVE_ENDPOINT": ""})
    assert s.tracking.enabled is True and s.exporters.openobserve.endpoint is None


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="environment SOCKET_TRACKING_ENABLED: expected true"):
        load_settings(None, {"SOCKET_TRACKING_ENABLED": "maybe"})


def test_duplicate_rule_names_are_refused(tmp_path: Path) -> None:
    text = (
        "tracking:\n  rules:\n    - {request: a, responses: [b]}\n    - {request: a, errors: [c]}\n"
    )
    assert "two rules are named 'a'" in error_of(tmp_path, text)


def test_predicate_needs_one_test(tmp_path: Path) -> None:
    text = "tracking:\n  defaults:\n    error_when:\n      - {path: status}\n"
    msg = error_of(tmp_path, text)
    assert ":4: tracking.defaults.error_when[0]: " in msg
    assert "exactly one of 'equals' or 'present'" in msg


def test_websocket_relay_mode_and_its_conflicts(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "proxy:\n  websocket_relay: terminate\n"), {})
    assert settings.proxy.websocket_relay.value == "terminate"
    msg = error_of(tmp_path, "proxy:\n  websocket_relay: tunel\n")
    assert "proxy.websocket_relay" in msg and "'tunnel'" in msg
    msg = error_of(tmp_path, "proxy:\n  upstream_websocket_compression: false\n")
    assert msg.startswith(f"{tmp_path / 'proxy.yaml'}:")
    assert "needs websocket_relay: terminate" in msg

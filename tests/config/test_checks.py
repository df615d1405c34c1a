"""check-config's warnings about tracking rules and aggregate entries."""

from __future__ import annotations

from typing import Any

from socketio_trace_proxy.config.checks import tracking_warnings
from socketio_trace_proxy.config.loader import load_settings
from socketio_trace_proxy.config.tracking import TrackingSettings


def warnings_of(**tracking: Any) -> list[str]:
    return tracking_warnings(TrackingSettings.model_validate(tracking))


def test_the_packaged_default_has_nothing_to_warn_about() -> None:
    assert tracking_warnings(load_settings(None, {}).tracking) == []


def test_names_no_event_can_have() -> None:
    (spaces, star) = warnings_of(
        rules=[{"request": "create_terminal ", "responses": ["terminal:*"]}]
    )
    assert spaces.startswith("tracking.rules[0] (create_terminal ): 'create_terminal '")
    assert "spaces at its ends" in spaces
    assert "'terminal:*'" in star and "not wildcards" in star and "'{name}'" in star


def test_placeholders_of_other_tools() -> None:
    got = warnings_of(aggregate=["tab:<tab>:input", "tab:${tab}:focus", "tab::tab:resize"])
    assert [w.split(": ", 2)[2].split(" is not")[0] for w in got] == [
        "'<tab>'",
        "'${tab}'",
        "'::tab'",
    ]
    assert all("templates use '{name}'" in w for w in got)


def test_duplicates() -> None:
    got = warnings_of(
        rules=[{"request": "a", "responses": ["b"], "errors": ["b"]}],
        aggregate=["x", "x", "pane:{p}:input", "pane:7:input"],
    )
    assert got == [
        "tracking.rules[0] (a): 'b' is listed 2 times among its responses, errors, "
        "rejections and chunks: one role is enough",
        "tracking.aggregate: 'x' is listed 2 times",
        "tracking.aggregate: 'pane:7:input' is already covered by 'pane:{p}:input'",
    ]


def test_an_event_both_aggregated_and_paired() -> None:
    got = warnings_of(
        rules=[
            {"request": "tab:{t}:create", "responses": ["tab:{t}:created"]},
            {"kind": "echo", "request": "in", "responses": ["out"], "match": "k"},
        ],
        aggregate=["tab:{x}:created", "in", "out"],  # the echo rule's events: as meant
    )
    assert got == [
        "tracking.aggregate: 'tab:{x}:created' is also an event of tracking.rules[0] "
        "(tab:{t}:create): its pairs are still recorded, only its unpaired frames are left out"
    ]


def test_fold_entries() -> None:
    assert warnings_of(fold=["a:{x}:close", "a:{x}:close", "plain"]) == [
        "tracking.fold: 'a:{x}:close' is listed 2 times",
        "tracking.fold: 'plain' has no '{name}' placeholder: there is nothing to fold",
    ]


def test_echo_rule_without_a_key() -> None:
    (got,) = warnings_of(rules=[{"kind": "echo", "request": "in", "responses": ["out"]}])
    assert got.startswith("tracking.rules[0] (in): an echo rule without 'match'")

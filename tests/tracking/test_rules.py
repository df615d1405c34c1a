"""Event-name resolution: exact names, templates with captures, the bounded cache, and the
hot path for unconfigured events (no payload parsing)."""

from __future__ import annotations

import pytest

from socketio_trace_proxy.tracking.correlation import dispatch
from socketio_trace_proxy.tracking.rules import Role, RuleBook
from tests.tracking.engine_kit import Harness, event, settings


def book(**kw: object) -> RuleBook:
    return RuleBook(settings(**kw))


def test_exact_and_template_roles() -> None:
    b = book(
        rules=[
            {"request": "a:{x}:go", "responses": ["a:{x}:done"], "errors": ["oops"]},
            {"request": "plain", "responses": ["oops"]},
        ]
    )
    roles = b.roles("a:42:go")
    assert roles.label == "a:{x}:go"
    (req,) = roles.requests
    assert req.captures == (("x", "42"),)
    done = b.roles("a:42:done")
    assert done.label == "a:{x}:done" and done.replies[0].role is Role.RESPONSE
    oops = b.roles("oops")
    assert [(r.rule.name, r.role) for r in oops.replies] == [
        ("a:{x}:go", Role.ERROR),
        ("plain", Role.RESPONSE),
    ]
    assert not b.roles("a:1:2:go").configured  # a capture never spans ':'
    assert not b.roles("unknown").configured


def test_template_with_leading_placeholder() -> None:
    b = book(rules=[{"request": "{ns}:ping", "responses": ["{ns}:pong"]}])
    assert b.roles("x:ping").requests[0].captures == (("ns", "x"),)


def test_cache_is_bounded() -> None:
    b = book(limits={"max_template_cache": 10})
    for i in range(25):
        b.roles(f"e{i}")
    assert b.cache_size <= 10 and b.cache_resets == 2


def test_unconfigured_events_are_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object) -> object:
        raise AssertionError("payload parsed on the hot path")

    monkeypatch.setattr(dispatch, "first_arg", forbidden)
    h = Harness(settings(rules=[{"request": "q", "responses": ["r"]}], aggregate=["noise"]))
    h.open()
    for _ in range(3):
        h.send(event("chatter", {"x": 1}))
        h.reply(event("noise", {"x": 1}))
    # FIFO rules without key or predicates do not parse either.
    h.send(event("q", {"x": 1}))
    h.reply(event("r", {"x": 1}))
    assert [m.event for m in h.messages()] == ["chatter"] * 3
    assert len(h.pairs()) == 1

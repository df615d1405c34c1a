"""Tracking settings: event-pair rules, timeouts, sampling, payload capture, limits.

Durations accept a number of seconds or a string such as ``5s``, ``250ms``, ``2m``.
Event names in rules and ``aggregate`` may be templates (:mod:`config.templates`): ``{name}``
matches one non-empty run of characters without ``:`` and is a capture; a response
template's captures must be the request's.  A rule is a request/reply ``pair`` (records per
request) or an ``echo`` (input -> first following output latency: a histogram, and a record
only for the slow ones).
Field paths are dotted and address the first argument of the event (``session``,
``session.session_id``, ``items.0.id``).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from socketio_trace_proxy.config.base import Section
from socketio_trace_proxy.config.templates import template_captures, template_problem

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Turn ``"250ms"``/``"5s"``/``"2m"``/``"1h"``/``"1.5"`` into seconds; numbers pass."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5, 5s or 250ms, not a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(
                f"invalid duration {value!r}: expected seconds as a number, or a string "
                "like '5s', '250ms', '2m'"
            )
        return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError("expected a duration such as 5, 5s or 250ms")


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class Initiator(Enum):
    """Which side sends a rule's request."""

    CLIENT = "client"
    SERVER = "server"


class RuleKind(Enum):
    """``pair``: a request and its reply, one record each; ``echo``: the time from an input
    to the first following output of the same key, as a histogram (records only when slow,
    never a timeout record)."""

    PAIR = "pair"
    ECHO = "echo"


class Predicate(Section):
    """A test on a field of the response's first argument.

    ``equals`` compares the value; ``present: true`` holds when the field exists and is
    not null (``present: false`` when it is absent or null).  Exactly one of the two.
    """

    path: str = Field(min_length=1, description="dotted field path in the first argument")
    equals: str | int | float | bool | None = None
    present: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_test(cls, data: Any) -> Any:
        if isinstance(data, dict):
            has_eq = "equals" in data
            has_present = "present" in data
            if has_eq == has_present:
                raise ValueError("a predicate needs exactly one of 'equals' or 'present'")
        return data


class MatchKey(Section):
    """A request field equal to a response field (different paths on each side)."""

    request: str = Field(min_length=1)
    response: str = Field(min_length=1)


class RuleSettings(Section):
    """One configured request/response pair (or stream)."""

    name: str | None = Field(None, description="metric/trace name; default: request template")
    kind: RuleKind = Field(
        RuleKind.PAIR, description="pair: request -> reply records; echo: input -> output latency"
    )
    request: str = Field(min_length=1, description="request event name or template")
    responses: tuple[str, ...] = Field(
        (), description="events that complete it as ok (echo: the outputs that answer an input)"
    )
    errors: tuple[str, ...] = Field((), description="events that complete it as error")
    rejections: tuple[str, ...] = Field(
        (),
        description="negative answers: events that complete it as 'rejected' (exported "
        "as an error, counted apart from errors)",
    )
    chunks: tuple[str, ...] = Field((), description="stream chunk events before completion")
    match: str | MatchKey | None = Field(
        None,
        description="field path equal on both sides (or request/response paths); "
        "none, or the value missing/empty: first in, first out",
    )
    timeout: Duration | None = Field(
        None,
        description="default: defaults.timeout (echo: an input unanswered this long is "
        "forgotten and counted, no record)",
    )
    slow: Duration | None = Field(None, description="default: defaults.slow")
    per_key: bool = Field(
        True,
        description="echo: one measurement per match-key value (terminal) at a time; "
        "false: one per session",
    )
    initiator: Initiator = Field(Initiator.CLIENT, description="side that sends the request")
    error_when: tuple[Predicate, ...] | None = Field(
        None, description="response payload predicates meaning error; default: defaults"
    )

    @model_validator(mode="after")
    def _check(self) -> RuleSettings:
        if self.kind is RuleKind.ECHO:
            if not self.responses:
                raise ValueError("an echo rule needs 'responses' (the outputs it waits for)")
            if self.errors or self.chunks or self.rejections or self.error_when:
                raise ValueError(
                    "an echo rule has no 'errors', 'rejections', 'chunks' or 'error_when'"
                )
            if any(template_captures(e) for e in self.responses):
                raise ValueError(
                    "an echo rule's outputs are told apart by its 'match' key: its "
                    "responses cannot have placeholders"
                )
        elif not self.responses and not self.errors and not self.rejections:
            raise ValueError(
                "a rule needs at least one of 'responses' or 'errors' (or 'rejections')"
            )
        for event in (self.request, *self.responses, *self.errors, *self.rejections, *self.chunks):
            problem = template_problem(event)
            if problem is not None:
                raise ValueError(f"event template {event!r}: {problem}")
        captures = set(template_captures(self.request))
        for event in (*self.responses, *self.errors, *self.rejections, *self.chunks):
            extra = set(template_captures(event)) - captures
            if extra:
                raise ValueError(
                    f"{event!r} uses placeholders {sorted(extra)} that the request "
                    f"template {self.request!r} does not capture"
                )
        return self

    @property
    def label(self) -> str:
        return self.name or self.request

    @property
    def request_path(self) -> str | None:
        return self.match.request if isinstance(self.match, MatchKey) else self.match

    @property
    def response_path(self) -> str | None:
        return self.match.response if isinstance(self.match, MatchKey) else self.match


class DefaultsSettings(Section):
    timeout: Duration = Field(5.0, description="a request unanswered this long times out")
    slow: Duration = Field(1.0, description="a reply taking at least this long is slow")
    error_when: tuple[Predicate, ...] = Field(
        (), description="response payload predicates that make a pair an error"
    )
    ignore_key_values: tuple[str, ...] = Field(
        ("noop",), description="match-key values that are never keys (FIFO instead)"
    )
    late_window: Duration = Field(
        60.0, description="how long a timed-out request can still be answered late"
    )


def _default_redact_paths() -> dict[str, tuple[str, ...]]:
    return {"terminal_input": ("data",)}


class CaptureSettings(Section):
    enabled: bool = Field(False, description="attach (redacted, truncated) payloads to records")
    max_bytes: int = Field(1024, gt=0, description="captured payload size cap, UTF-8 bytes")
    redact_keys: tuple[str, ...] = Field(
        ("pass", "pwd", "secret", "token", "auth", "key", "cred", "cookie"),
        description="object keys whose values are masked at any depth (case-insensitive "
        "substring match: 'pass' masks password, passwd, passphrase; 'key' apikey, "
        "api_key, unlock_key; 'cred' credential(s)); 'Authorization: ...' and 'Bearer ...' "
        "inside any string are masked too",
    )
    redact_paths: dict[str, tuple[str, ...]] = Field(
        default_factory=_default_redact_paths,
        description="event name or template -> field paths (first argument) to mask",
    )


class LimitsSettings(Section):
    max_sessions: int = Field(100_000, gt=0, description="sessions tracked at once")
    max_pending: int = Field(100_000, gt=0, description="pending requests, all sessions")
    max_pending_per_session: int = Field(1_000, gt=0)
    max_timed_out_per_session: int = Field(
        100, ge=0, description="timed-out requests remembered per session to link late replies"
    )
    max_event_names: int = Field(
        500, gt=0, description="distinct event names in metrics; more fold into '(other)'"
    )
    max_template_cache: int = Field(4_096, gt=0, description="event-name lookup cache size")
    activity_buffer: int = Field(10_000, gt=0, description="recent-activity ring size")
    timeline_per_session: int = Field(
        50, gt=0, description="timeline entries per session (~150 B each, per live session)"
    )
    closed_timelines: int = Field(100, ge=0, description="timelines kept after sessions close")
    subscriber_queue: int = Field(1_000, gt=0, description="live-stream queue per subscriber")


class TrackingSettings(Section):
    enabled: bool = Field(True, description="decode and correlate; false makes a plain relay")
    acks: bool = Field(True, description="pair EVENTs carrying an ack id with their ACK")
    defaults: DefaultsSettings = Field(default_factory=DefaultsSettings)
    sample_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="share of ok, not-slow pairs exported; "
        "errors, timeouts, late and slow pairs are always kept",
    )
    session_sample_rate: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="share of Engine.IO sessions decoded and correlated, decided once per "
        "session from its sid; the others are relayed undecoded and only counted",
    )
    rules: tuple[RuleSettings, ...] = ()
    aggregate: tuple[str, ...] = Field(
        (),
        description="one-way events (names or templates) counted in metrics only, never "
        "recorded one by one; a template's names share one metric",
    )
    fold: tuple[str, ...] = Field(
        (),
        description="templates whose event names share one metric label (and Prometheus "
        "series) although no rule or aggregate entry names them; recorded as usual",
    )
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)

    @model_validator(mode="after")
    def _unique_names(self) -> TrackingSettings:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.label in seen:
                raise ValueError(f"two rules are named {rule.label!r}; give one a 'name'")
            seen.add(rule.label)
        for field, names in (("aggregate", self.aggregate), ("fold", self.fold)):
            for name in names:
                problem = template_problem(name)
                if problem is not None:
                    raise ValueError(f"{field} entry {name!r}: {problem}")
        return self

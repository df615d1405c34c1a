"""Compiled event-pair rules and the per-event-name role lookup of the correlation engine.

The hot path asks one question per EVENT packet: "what roles does this event name play?"
That is a dict lookup; names matching a template are resolved once (regex only over the
templates sharing the name's first ``:`` segment) and cached in a bounded dict.  A name's
metrics label is the template it matched (a rule's request: the rule's name), so the names
of one template share one metric; ``aggregate`` entries may be templates too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from socketio_trace_proxy.config.templates import (
    first_segment,
    is_template,
    template_captures,
    template_regex,
)
from socketio_trace_proxy.config.tracking import (
    Predicate,
    RuleKind,
    RuleSettings,
    TrackingSettings,
)
from socketio_trace_proxy.tracking.records import PairKind
from socketio_trace_proxy.tracking.traffic import Direction

Captures = tuple[tuple[str, str], ...]


class Role(Enum):
    REQUEST = "request"
    RESPONSE = "response"
    ERROR = "error"
    REJECTION = "rejection"
    CHUNK = "chunk"


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule ready for matching; ``index`` is its position in the configuration.

    ``operation`` names every record of the rule whatever its outcome: ``"<name> ->
    <first response>"``, or the name alone when the rule configures only error events.
    """

    index: int
    name: str
    operation: str
    request: str
    kind: PairKind
    request_direction: Direction
    request_path: tuple[str, ...] | None
    response_path: tuple[str, ...] | None
    timeout_s: float
    slow_s: float
    error_when: tuple[Predicate, ...]
    error_paths: tuple[tuple[str, ...], ...] = ()  # each predicate's path, already split
    per_key: bool = True  # echo rules: one measurement per match-key value


@dataclass(frozen=True, slots=True)
class Binding:
    """One role an event name plays for one rule, with the captures its name yielded."""

    rule: Rule
    role: Role
    template: str
    captures: Captures


@dataclass(frozen=True, slots=True)
class EventRoles:
    """Everything the engine needs to know about one concrete event name."""

    label: str  # template when the name matched one, else the concrete name
    requests: tuple[Binding, ...]
    replies: tuple[Binding, ...]  # RESPONSE, ERROR and REJECTION bindings, rule order
    chunks: tuple[Binding, ...]
    aggregate: bool
    echo: tuple[Binding, ...] | None = None  # bindings of echo rules (inputs and outputs)
    # Derived (fields, not properties: read per frame).
    configured: bool = False  # any requests, replies or chunks
    needs_arg: bool = False  # some binding reads the first argument (match key, error test)

    def __post_init__(self) -> None:
        object.__setattr__(self, "configured", bool(self.requests or self.replies or self.chunks))
        needs = (
            any(b.rule.request_path is not None for b in self.requests)
            or any(
                b.rule.response_path is not None or (b.role is Role.RESPONSE and b.rule.error_when)
                for b in self.replies
            )
            or any(b.rule.response_path is not None for b in self.chunks)
        )
        object.__setattr__(self, "needs_arg", needs)


def split_path(path: str | None) -> tuple[str, ...] | None:
    return tuple(path.split(".")) if path else None


def compile_rule(index: int, rule: RuleSettings, settings: TrackingSettings) -> Rule:
    d = settings.defaults
    error_when = rule.error_when if rule.error_when is not None else d.error_when
    return Rule(
        index=index,
        name=rule.label,
        operation=f"{rule.label} -> {rule.responses[0]}" if rule.responses else rule.label,
        request=rule.request,
        kind=(
            PairKind.ECHO
            if rule.kind is RuleKind.ECHO
            else PairKind.STREAM
            if rule.chunks
            else PairKind.EVENT_PAIR
        ),
        request_direction=(
            Direction.CLIENT_TO_SERVER
            if rule.initiator.value == "client"
            else Direction.SERVER_TO_CLIENT
        ),
        request_path=split_path(rule.request_path),
        response_path=split_path(rule.response_path),
        timeout_s=rule.timeout if rule.timeout is not None else d.timeout,
        slow_s=rule.slow if rule.slow is not None else d.slow,
        error_when=error_when,
        error_paths=tuple(tuple(p.path.split(".")) for p in error_when),
        per_key=rule.per_key,
    )


@dataclass(frozen=True, slots=True)
class _Template:
    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    rule: Rule
    role: Role


class RuleBook:
    """All rules of a configuration, indexed by event name."""

    def __init__(self, settings: TrackingSettings) -> None:
        self.rules: tuple[Rule, ...] = tuple(
            compile_rule(i, r, settings) for i, r in enumerate(settings.rules)
        )
        self._aggregate = frozenset(a for a in settings.aggregate if not is_template(a))
        self._aggregate_templates = tuple(
            (a, template_regex(a)) for a in settings.aggregate if is_template(a)
        )
        self._fold_templates = tuple((f, template_regex(f)) for f in settings.fold)
        self._cache_limit = settings.limits.max_template_cache
        exact: dict[str, list[tuple[Rule, Role]]] = {}
        self._by_head: dict[str, list[_Template]] = {}
        self._wild: list[_Template] = []
        for rule, spec in zip(self.rules, settings.rules, strict=True):
            entries = [(spec.request, Role.REQUEST)]
            entries += [(e, Role.RESPONSE) for e in spec.responses]
            entries += [(e, Role.ERROR) for e in spec.errors]
            entries += [(e, Role.REJECTION) for e in spec.rejections]
            entries += [(e, Role.CHUNK) for e in spec.chunks]
            for name, role in entries:
                names = template_captures(name)
                if not names:
                    exact.setdefault(name, []).append((rule, role))
                    continue
                t = _Template(name, template_regex(name), names, rule, role)
                head = first_segment(name)
                if head is None:
                    self._wild.append(t)
                else:
                    self._by_head.setdefault(head, []).append(t)
        self._exact = exact
        self._cache: dict[str, EventRoles] = {}
        self.cache_resets = 0
        #: The resolved names' roles (the hot path tries this before :meth:`roles`; the
        #: same dict for the book's life: cleared, never replaced, so that the compiled
        #: engine reads it natively).
        self.role_cache = self._cache

    def roles(self, event: str) -> EventRoles:
        found = self._cache.get(event)
        if found is None:
            found = self._resolve(event)
            if len(self._cache) >= self._cache_limit:
                self._cache.clear()
                self.cache_resets += 1
            self._cache[event] = found
        return found

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def _resolve(self, event: str) -> EventRoles:
        bindings: list[Binding] = [
            Binding(rule, role, event, ()) for rule, role in self._exact.get(event, ())
        ]
        label = event
        candidates = self._by_head.get(event.split(":", 1)[0], [])
        for t in (*candidates, *self._wild):
            m = t.regex.fullmatch(event)
            if m is None:
                continue
            caps = tuple((n, m.group(n)) for n in t.names)
            bindings.append(Binding(t.rule, t.role, t.template, caps))
            if label == event:
                request = t.role is Role.REQUEST and t.rule.kind is not PairKind.ECHO
                label = t.rule.name if request else t.template
        bindings.sort(key=lambda b: b.rule.index)
        aggregated = next((a for a, rx in self._aggregate_templates if rx.fullmatch(event)), None)
        if aggregated is not None and label == event:
            label = aggregated
        if label == event:
            label = next((f for f, rx in self._fold_templates if rx.fullmatch(event)), event)
        echo = tuple(b for b in bindings if b.rule.kind is PairKind.ECHO)
        pairs = [b for b in bindings if b.rule.kind is not PairKind.ECHO]
        return EventRoles(
            label=label,
            requests=tuple(b for b in pairs if b.role is Role.REQUEST),
            replies=tuple(b for b in pairs if b.role in _REPLY_ROLES),
            chunks=tuple(b for b in pairs if b.role is Role.CHUNK),
            aggregate=(
                event in self._aggregate or label in self._aggregate or aggregated is not None
            ),
            echo=echo or None,
        )


_REPLY_ROLES = (Role.RESPONSE, Role.ERROR, Role.REJECTION)

"""Echo rules: the time from an input to the first following output of the same key.

An echo rule (``kind: echo``) measures what a terminal user feels: ``terminal_input`` ->
the first ``terminal_output`` for the same terminal.  Per session there is one measurement
slot per (rule, namespace, match-key value) -- one per (rule, namespace) with
``per_key: false`` -- holding the earliest unanswered input: typing ahead does not restart
it.  The first output of the slot's key ends it: its latency goes into the rule's
histogram and the session's echo figures, and a slow one (at least the rule's ``slow``)
becomes a :class:`~tracking.records.PairRecord` of kind ``echo``.  Nothing else is
recorded: an input unanswered for the rule's ``timeout`` is forgotten and counted when the
next input or output of its slot shows up (no timer, no timeout record per keystroke).
Outputs are read (their match key parsed) only while their session has an input waiting.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from socketio_trace_proxy.tracking.capture import MAX_KEY, MAX_PARSE, key_value
from socketio_trace_proxy.tracking.correlation.state import EchoStart, SessionState
from socketio_trace_proxy.tracking.events import PacketObserved
from socketio_trace_proxy.tracking.ids import IdSource, parse_traceparent
from socketio_trace_proxy.tracking.metrics import Metrics
from socketio_trace_proxy.tracking.records import Outcome, PairKind, Record, new_pair_record
from socketio_trace_proxy.tracking.rules import Binding, Role, Rule
from socketio_trace_proxy.tracking.wire.packets import SocketPacket
from socketio_trace_proxy.tracking.wire.socketio import first_arg

MAX_ECHO_SLOTS = 64
"""Echo measurements in flight per session (terminals x echo rules); the oldest is evicted."""
_REQUEST = Role.REQUEST
_ECHO = PairKind.ECHO
_OK = Outcome.OK
_new_start = tuple.__new__


class EchoTracker:
    """See the module docstring."""

    def __init__(
        self,
        emit: Callable[[Record], None],
        ids: IdSource,
        metrics: Metrics,
        ignored: frozenset[str],
    ) -> None:
        self._emit = emit
        self._ids = ids
        self._metrics = metrics
        self._ignored = ignored
        # (event name, match path) -> the text a compact payload starts with when the key is
        # its first argument's first member ("" when the quick read does not apply)
        self._prefixes: dict[tuple[str | None, tuple[str, ...]], str] = {}

    def handle(
        self, s: SessionState, ev: PacketObserved, p: SocketPacket, bindings: tuple[Binding, ...]
    ) -> None:
        for b in bindings:
            rule = b.rule
            if b.role is _REQUEST:
                if ev.direction is rule.request_direction:
                    self._input(s, ev, p, rule)
            elif s.echoes and ev.direction is not rule.request_direction:
                self._output(s, ev, p, rule)

    def _key(self, p: SocketPacket, path: tuple[str, ...] | None, per_key: bool) -> str | None:
        if path is None or not per_key:
            return None
        payload = p.payload
        event = p.event
        prefix = self._prefixes.get((event, path))
        if prefix is None:
            prefix = self._prefix(event, path)
        if prefix and payload.startswith(prefix):
            value = quick_key(payload, prefix)
            if value is not None and value not in self._ignored:
                return value
        if len(payload) > MAX_PARSE:
            self._metrics.extra["payloads_too_large_to_read"] += 1
            return None
        arg: Any = first_arg(p)
        return key_value(arg, path, self._ignored)

    def _prefix(self, event: str | None, path: tuple[str, ...]) -> str:
        if len(self._prefixes) >= _MAX_PREFIXES:
            self._prefixes.clear()
        prefix = self._prefixes[event, path] = key_prefix(event, path)
        return prefix

    def _input(self, s: SessionState, ev: PacketObserved, p: SocketPacket, rule: Rule) -> None:
        slot = (rule.index, p.namespace, self._key(p, rule.request_path, rule.per_key))
        echoes = s.echoes
        if echoes is None:
            echoes = s.echoes = {}
        start = echoes.get(slot)
        if start is not None:
            if ev.at - start.at <= rule.timeout_s:
                return  # typing ahead: the earliest unanswered input keeps the slot
            self._metrics.echo[rule.name].unanswered += 1
            del echoes[slot]
        elif len(echoes) >= MAX_ECHO_SLOTS:
            oldest = next(iter(echoes))
            del echoes[oldest]
            self._metrics.echo[rule.name].evicted += 1
        # tuple.__new__: a NamedTuple's own constructor is a Python call (~0.5 us)
        echoes[slot] = _new_start(
            EchoStart, (ev.at, ev.wall, p.event or "", ev.transport, p.size, ev.traceparent)
        )

    def _output(self, s: SessionState, ev: PacketObserved, p: SocketPacket, rule: Rule) -> None:
        slot = (rule.index, p.namespace, self._key(p, rule.response_path, rule.per_key))
        start = s.echoes.pop(slot, None) if s.echoes else None
        if start is None:
            return
        em = self._metrics.echo[rule.name]
        duration = ev.at - start.at
        if duration > rule.timeout_s:
            em.unanswered += 1
            return
        duration = max(duration, 0.0)
        em.latency.observe(duration)
        s.echo_count += 1
        s.echo_sum_s += duration
        if duration > s.echo_max_s:  # noqa: PLR1730 - max() costs a call per echo
            s.echo_max_s = duration
        if duration >= rule.slow_s:
            em.slow += 1
            self._slow(s, ev, p, rule, slot[2], start, duration)

    def _slow(  # noqa: PLR0917
        self,
        s: SessionState,
        ev: PacketObserved,
        p: SocketPacket,
        rule: Rule,
        key: str | None,
        start: EchoStart,
        duration: float,
    ) -> None:
        parent = parse_traceparent(start.traceparent)
        self._emit(
            new_pair_record(
                parent[0] if parent else self._ids.trace_id(),
                self._ids.span_id(),
                s.ref,
                p.namespace,
                _ECHO,
                rule.name,
                rule.operation,
                rule.request_direction,
                start.event,
                p.event,
                None,
                key,
                _OK,
                None,
                True,
                start.wall,
                duration,
                None,
                0,
                start.transport,
                ev.transport,
                start.size,
                p.size,
                None,
                None,
                None,
                True,
                parent[1] if parent else None,
            )
        )


_PLAIN = re.compile(r"[A-Za-z0-9_:.\- ]+")
_MAX_PREFIXES = 1024


def key_prefix(event: str | None, path: tuple[str, ...]) -> str:
    """``'["<event>",{"<field>":"'``: how a compact payload (what python-socketio and
    socket.io-client send) begins when a one-segment match key is the first member of the
    first argument; ``""`` when the names would need JSON escapes or the path is nested."""
    if not event or len(path) != 1:
        return ""
    field = path[0]
    if _PLAIN.fullmatch(event) is None or _PLAIN.fullmatch(field) is None:
        return ""
    return f'["{event}",{{"{field}":"'


def quick_key(payload: str, prefix: str) -> str | None:
    """The string value after ``prefix`` (see :func:`key_prefix`) when it has no escapes,
    read without parsing the JSON; otherwise ``None``, and the caller parses the payload.

    Safe because JSON escapes every ``"`` inside a string: the first ``"`` after the
    prefix ends the value unless a backslash came first.
    """
    n = len(prefix)
    end = payload.find('"', n)
    if end <= n:
        return None
    value = payload[n:end]
    if "\\" in value or end - n > MAX_KEY:
        return None
    return value


def forget_echoes(s: SessionState, metrics: Metrics, rule_names: dict[int, str]) -> None:
    """A closing session's inputs still waiting for their output: counted as unanswered."""
    for rule_index, _, _ in s.echoes or ():
        name = rule_names.get(rule_index)
        if name is not None:
            metrics.echo[name].unanswered += 1
    s.echoes = None

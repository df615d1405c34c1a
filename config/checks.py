"""What ``check-config`` warns about in a valid tracking configuration.

A configuration can validate and still not do what its author meant: an event name that no
real event can have (spaces at its ends, ``*`` written as a wildcard), entries repeated, an
``aggregate`` entry shadowed by another one, an event that is both aggregated and part of a
request/response pair (its pairs are still recorded: aggregation only hides one-way
frames), an echo rule that cannot tell terminals apart.  Each warning names the entry.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from socketio_trace_proxy.config.templates import is_template, templates_overlap
from socketio_trace_proxy.config.tracking import RuleKind, RuleSettings, TrackingSettings

# Placeholder spellings of other tools: <name>, ${name}, %s, :name (a segment of its own)
_OTHER_PLACEHOLDERS = re.compile(r"<[A-Za-z_]\w*>|\$\{\w*\}|%[sd]|(?:^|:):[A-Za-z_]\w*(?=:|$)")


def tracking_warnings(settings: TrackingSettings) -> list[str]:
    """Warnings about ``tracking.rules`` and ``tracking.aggregate``, one line each."""
    out: list[str] = []
    for i, rule in enumerate(settings.rules):
        where = f"tracking.rules[{i}] ({rule.label})"
        out.extend(f"{where}: {w}" for w in _rule_warnings(rule))
    out.extend(_aggregate_warnings(settings.aggregate))
    out.extend(_fold_warnings(settings.fold))
    out.extend(_aggregated_and_paired(settings))
    return out


def _name_warnings(name: str) -> list[str]:
    out = []
    if name != name.strip():
        out.append(f"{name!r} has spaces at its ends: no event name will match it")
    if "*" in name or "?" in name:
        out.append(
            f"{name!r}: '*' and '?' are not wildcards and will only match themselves; "
            "use a '{name}' placeholder"
        )
    for m in _OTHER_PLACEHOLDERS.finditer(name):
        out.append(
            f"{name!r}: {m.group(0)!r} is not a placeholder and will only match itself; "
            "templates use '{name}'"
        )
    return out


def _rule_warnings(rule: RuleSettings) -> list[str]:
    replies = [*rule.responses, *rule.errors, *rule.rejections, *rule.chunks]
    out = [w for name in (rule.request, *replies) for w in _name_warnings(name)]
    out.extend(
        f"{name!r} is listed {n} times among its responses, errors, rejections and chunks: "
        "one role is enough"
        for name, n in _repeated(replies)
    )
    if rule.kind is RuleKind.ECHO and rule.match is None and rule.per_key:
        out.append(
            "an echo rule without 'match' measures per session: with several terminals in "
            "one session, any output answers any input"
        )
    return out


def _aggregate_warnings(entries: Iterable[str]) -> list[str]:
    entries = list(entries)
    out = [f"tracking.aggregate: {w}" for name in entries for w in _name_warnings(name)]
    out.extend(
        f"tracking.aggregate: {name!r} is listed {n} times" for name, n in _repeated(entries)
    )
    for a in dict.fromkeys(entries):
        for b in dict.fromkeys(entries):
            if a != b and is_template(b) and not is_template(a) and templates_overlap(a, b):
                out.append(f"tracking.aggregate: {a!r} is already covered by {b!r}")
    return out


def _fold_warnings(entries: Iterable[str]) -> list[str]:
    entries = list(entries)
    out = [f"tracking.fold: {w}" for name in entries for w in _name_warnings(name)]
    out.extend(f"tracking.fold: {name!r} is listed {n} times" for name, n in _repeated(entries))
    out.extend(
        f"tracking.fold: {name!r} has no '{{name}}' placeholder: there is nothing to fold"
        for name in dict.fromkeys(entries)
        if not is_template(name)
    )
    return out


def _aggregated_and_paired(settings: TrackingSettings) -> list[str]:
    out: list[str] = []
    for i, rule in enumerate(settings.rules):
        if rule.kind is RuleKind.ECHO:
            continue  # echo rules measure aggregated events by design
        paired = [rule.request, *rule.responses, *rule.errors, *rule.rejections, *rule.chunks]
        for name in dict.fromkeys(paired):
            hits = [a for a in dict.fromkeys(settings.aggregate) if templates_overlap(name, a)]
            out.extend(
                f"tracking.aggregate: {a!r} is also an event of tracking.rules[{i}] "
                f"({rule.label}): its pairs are still recorded, only its unpaired frames are "
                "left out"
                for a in hits
            )
    return out


def _repeated(names: Iterable[str]) -> list[tuple[str, int]]:
    return [(name, n) for name, n in Counter(names).items() if n > 1]

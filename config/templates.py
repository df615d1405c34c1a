"""Event-name templates, shared by rules, ``aggregate`` and ``redact_paths``.

A template is an event name in which ``{name}`` stands for one non-empty run of characters
without ``:`` (a capture): ``workspace:tab:{tab}:pane:{pane}:terminal:input`` matches
``workspace:tab:t1:pane:p2:terminal:input`` with ``tab=t1, pane=p2``.  A name without
placeholders matches only itself.  :func:`template_problem` says what is wrong with a
template's syntax (a brace that opens no placeholder, a placeholder name that is not an
identifier, one repeated), :func:`template_regex` compiles a valid one.
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BRACED = re.compile(r"\{([^{}]*)\}")


def template_captures(template: str) -> tuple[str, ...]:
    """The placeholder names of an event-name template, in order."""
    return tuple(_PLACEHOLDER.findall(template))


def is_template(name: str) -> bool:
    return _PLACEHOLDER.search(name) is not None


def template_problem(template: str) -> str | None:
    """What makes ``template`` unusable as an event-name template, or None when it is fine."""
    for m in _BRACED.finditer(template):
        inner = m.group(1)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", inner):
            return f"placeholder {m.group(0)!r} is not '{{name}}' with an identifier name"
    stripped = _BRACED.sub("", template)
    if "{" in stripped or "}" in stripped:
        return "a '{' or '}' that is not part of a '{name}' placeholder"
    names = template_captures(template)
    if len(set(names)) != len(names):
        return "a placeholder is repeated"
    if re.search(r"\}\{", template):
        return "two placeholders side by side cannot be told apart"
    return None


def template_regex(template: str) -> re.Pattern[str]:
    """A regex that matches the whole event names of ``template``, one group per capture."""
    out: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>[^:]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def first_segment(template: str) -> str | None:
    """The literal text before the first ``:``, or None if a placeholder appears in it."""
    head = template.split(":", 1)[0]
    return None if "{" in head else head


def templates_overlap(a: str, b: str) -> bool:
    """Whether some event name could match both templates (approximate: each template's
    placeholders read as a sample name that the other's regex is tried on)."""
    if a == b:
        return True
    return _sample_matches(a, b) or _sample_matches(b, a)


def _sample_matches(template: str, other: str) -> bool:
    sample = _PLACEHOLDER.sub("x", template)
    return template_regex(other).fullmatch(sample) is not None

"""Keeping secrets out of what is logged, shown or stored: URLs and foreign text.

:func:`redact_url` is the one URL redactor (the relay's logs, the exporters' errors, the CLI):
no user, password, query or fragment.  :func:`scrub` filters text that came from outside (a
receiver's reply body, an exception message) before it is kept or printed: the configured
secrets, anything that looks like an ``Authorization`` value, control characters, and a
length cap.  Here because ``config`` imports nothing else of this project, so every package
may import it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
DEFAULT_CAP = 300  # characters kept of a scrubbed text

# Credentials in the usual shapes: "Authorization: Basic xxx", "Bearer xxx", "api_key=xxx",
# JSON "password": "xxx".  The scheme or key name is kept, the value masked.
_AUTH_SCHEMES = re.compile(
    r"(?i)\b(basic|bearer|digest|negotiate|token|apikey|api-key)(\s+)[A-Za-z0-9._~+/=:-]{4,}"
)
_KEYED = re.compile(
    r"""(?ix)
    ((?:proxy-)?authorization|cookie|set-cookie|x-api-key|api[_-]?key|access[_-]?token
      |refresh[_-]?token|token|secret|password|passwd|pwd|passcode)
    (["']?\s*[:=]\s*["']?)
    ([^\s"',;&}]+)
    """
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]+")


def redact_url(url: str) -> str:
    """``url`` without user, password, query and fragment (which may carry tokens)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable url>"
    if not parts.scheme and not parts.netloc:
        return urlunsplit(("", "", parts.path, "", ""))
    if ":" in host:  # IPv6 literal: urlsplit took the brackets off
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def url_credentials(url: str) -> tuple[str, str] | None:
    """``(user, password)`` given as userinfo in ``url``, or None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


def mask_url_password(url: str) -> str:
    """``url`` with a userinfo password replaced by ``***`` (user, path and query kept), for
    showing a configured value back to its owner (``check-config``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    user, _, rest = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit((parts.scheme, f"{name}:{MASK}@{rest}", parts.path, parts.query, ""))


def secret_forms(*secrets: str | None) -> tuple[str, ...]:
    """Every form a secret may be echoed in: as is, and base64 of it (a Basic token is
    base64 of ``user:password``), longest first; empty and very short values are left out
    (masking "a" would mangle every text)."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < 3:
            continue
        forms.add(secret)
        forms.add(base64.b64encode(secret.encode()).decode("ascii"))
    return tuple(sorted(forms, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] = (), cap: int = DEFAULT_CAP) -> str:
    """``text`` safe to keep and print: ``secrets`` (see :func:`secret_forms`) and
    credential-looking values masked, URL userinfo removed, control characters folded to a
    space, at most ``cap`` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _AUTH_SCHEMES.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _KEYED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _USERINFO.sub(r"\1", text)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > cap:
        text = text[: max(cap - 3, 0)] + "..."
    return text

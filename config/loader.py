"""Reads the YAML configuration and the environment into validated :class:`Settings`.

``load_settings(None, environ)`` uses the packaged ``config/default.yaml`` (AetherTerm's
rules).  Every problem becomes one :class:`ConfigError` whose message names the file, the
line, the field path and what was expected, one line per problem.  Secrets (OpenObserve
credentials, the admin token) come from the environment only; a file that holds them is
refused.  ``describe_settings`` renders the effective settings with secrets masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from socketio_trace_proxy.config.admin import ADMIN_TOKEN_ENV, token_from_environ
from socketio_trace_proxy.config.settings import Settings

DEFAULT_NAME = "default.yaml"

# (path in the file, environment variable): values only the environment may set.
_ENV_ONLY: tuple[tuple[tuple[str, ...], str], ...] = (
    (("exporters", "openobserve", "user"), "OPENOBSERVE_USER"),
    (("exporters", "openobserve", "password"), "OPENOBSERVE_PASS"),
    (("admin", "token"), ADMIN_TOKEN_ENV),
)
# Environment variable -> (path it overrides, is it a secret).
_ENV_OVERRIDES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("SOCKET_TRACKING_ENABLED", ("tracking", "enabled"), False),
    ("OPENOBSERVE_ENDPOINT", ("exporters", "openobserve", "endpoint"), False),
    ("OPENOBSERVE_ORG", ("exporters", "openobserve", "org"), False),
    ("OPENOBSERVE_USER", ("exporters", "openobserve", "user"), True),
    ("OPENOBSERVE_PASS", ("exporters", "openobserve", "password"), True),
    ("OPENOBSERVE_UI_URL", ("admin", "openobserve_ui_url"), False),
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class ConfigError(Exception):
    """The configuration is unusable; ``str()`` is the message to print before exiting."""


def default_config_text() -> str:
    packaged = resources.files(__package__ or "socketio_trace_proxy.config")
    return packaged.joinpath(DEFAULT_NAME).read_text(encoding="utf-8")


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Validate ``path`` (or the packaged default) plus environment overrides."""
    if path is None:
        name, text = f"<packaged {DEFAULT_NAME}>", default_config_text()
    else:
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}: cannot read the configuration: {exc}") from None
    return parse_settings(text, name, environ)


def parse_settings(text: str, name: str, environ: Mapping[str, str]) -> Settings:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}:1: expected a mapping of sections (proxy, tracking, ...)")
    problems = [
        f"{name}:{_line(root, p)}: {_dotted(p)}: secrets are read only from the environment "
        f"({var}); remove it from the file"
        for p, var in _ENV_ONLY
        if _has(data, p)
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    env_sources = _apply_environment(data, environ)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, name, root, env_sources)) from None


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Write environment overrides into ``data``; returns field path -> variable name."""
    sources: dict[str, str] = {}
    for var, path, secret in _ENV_OVERRIDES:
        raw = environ.get(var)
        if raw is None or raw.strip() == "":
            continue
        value: Any = raw.strip()
        if path == ("tracking", "enabled"):
            low = value.lower()
            if low not in _TRUE | _FALSE:
                raise ConfigError(
                    f"environment {var}: expected true or false (1/0, yes/no, on/off), got {raw!r}"
                )
            value = low in _TRUE
        elif secret:
            value = SecretStr(raw)
        _set(data, path, value)
        sources[_dotted(path)] = var
    token = token_from_environ(environ)
    if token is not None:
        _set(data, ("admin", "token"), token)
        sources["admin.token"] = ADMIN_TOKEN_ENV
    return sources


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _has(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _walk(root: yaml.Node | None, loc: tuple[str | int, ...]) -> tuple[yaml.Node | None, int]:
    """The deepest YAML node along ``loc`` and how many parts of ``loc`` it consumed."""
    node = root
    used = 0
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt = value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
        if nxt is None:
            break
        node = nxt
        used += 1
    return node, used


def _key_node(root: yaml.Node | None, loc: tuple[str | int, ...]) -> yaml.Node | None:
    parent, used = _walk(root, loc[:-1])
    if used == len(loc) - 1 and isinstance(parent, yaml.MappingNode):
        for key, _ in parent.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(loc[-1]):
                return key
    return None


def _line(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int:
    node = _key_node(root, loc)
    if node is None:
        node, _ = _walk(root, loc)
    return node.start_mark.line + 1 if node is not None else 1


def _explain(
    exc: ValidationError, name: str, root: yaml.Node | None, env: Mapping[str, str]
) -> str:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        node, used = _walk(root, loc)
        data_loc = loc if kind == "missing" else loc[:used] if used < len(loc) else loc
        variant = "" if kind == "missing" or used >= len(loc) else _variant(loc[used:])
        if kind == "extra_forbidden":
            data_loc = loc
            key = _key_node(root, loc)
            node = key if key is not None else node
        path = _dotted(data_loc)
        msg = _message(err)
        if _dotted(loc) in env:
            path, variant = _dotted(loc), ""
            where = f"environment {env[path]}"
        else:
            line = node.start_mark.line + 1 if node is not None else 1
            where = f"{name}:{line}"
        lines.append(f"{where}: {path}{variant}: {msg}")
    return "\n".join(dict.fromkeys(lines))


def _variant(rest: tuple[str | int, ...]) -> str:
    shown = [str(p) for p in rest if not str(p).startswith("function-")]
    return f" (as {'.'.join(shown)})" if shown else ""


def _message(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "extra_forbidden":
        return "unknown field (misspelt, or not valid in this section)"
    if kind == "missing":
        return "required field is missing"
    value = err.get("input")
    if isinstance(value, SecretStr) or value is None or isinstance(value, dict | list):
        return msg
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg} (got {shown})"


def describe_settings(settings: Settings) -> str:
    """The effective settings as YAML, secrets masked (for ``check-config``)."""
    data = settings.model_dump(mode="json")
    for path, var in _ENV_ONLY:
        node: Any = data
        for part in path[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = f"*** (from {var})" if node[path[-1]] else None
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)

"""Command-line options and configuration: loaded, overridden by flags, and checked.

Owns what ``serve`` and ``demo`` do with their settings before anything starts: the YAML
file and the environment loaded (:func:`load_configuration`), command-line flags applied
over them and validated again (:func:`apply_overrides`), and the checks the composition
needs beyond the schema (:func:`check_settings`).  Every problem is a :class:`UsageError`,
which the CLI prints and exits 2 for before opening any port.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socketio_trace_proxy.config.address import check_upstream_url, split_host_port
from socketio_trace_proxy.config.admin import AdminSettings
from socketio_trace_proxy.config.loader import ConfigError, load_settings
from socketio_trace_proxy.config.proxy import ProxySettings
from socketio_trace_proxy.config.settings import Settings
from socketio_trace_proxy.proxy.admin import AdminBindError, check_admin_binding


class UsageError(Exception):
    """Bad command line or configuration: printed as is, exit status 2."""


def parse_hostport(value: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port)."""
    try:
        return split_host_port(value)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def load_configuration(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Settings from ``path`` (or the packaged default) and the environment."""
    try:
        return load_settings(path, environ)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def apply_overrides(
    settings: Settings,
    *,
    listen: str | None = None,
    upstream: str | None = None,
    admin: str | None = None,
    record: str | None = None,
) -> Settings:
    """Command-line flags win over the file; the result is validated again."""
    proxy_update: dict[str, Any] = {}
    if listen is not None:
        parse_hostport(listen, "--listen")
        proxy_update["listen"] = listen
    if upstream is not None:
        proxy_update["upstream"] = upstream
    try:
        proxy = ProxySettings.model_validate({**settings.proxy.model_dump(), **proxy_update})
        admin_settings = settings.admin
        if admin is not None:
            admin_listen = None if admin.lower() in ("off", "none", "") else admin
            if admin_listen is not None:
                parse_hostport(admin_listen, "--admin")
            admin_settings = AdminSettings.model_validate(
                {**settings.admin.model_dump(), "listen": admin_listen}
            )
    except ValidationError as exc:
        raise UsageError(f"command line: {exc}") from None
    settings = settings.model_copy(update={"proxy": proxy, "admin": admin_settings})
    if record is not None:
        recording = settings.record.model_copy(update={"path": record})
        settings = settings.model_copy(update={"record": recording})
    check_settings(settings)
    return settings


def check_settings(settings: Settings) -> None:
    """What the composition needs beyond the schema: an upstream URL and usable addresses."""
    upstream = settings.proxy.upstream
    if not upstream:
        raise UsageError("proxy.upstream: no upstream set (use --upstream URL or the config)")
    try:
        check_upstream_url(upstream)
    except ValueError as exc:
        raise UsageError(f"proxy.upstream: {exc}") from None
    parse_hostport(settings.proxy.listen, "proxy.listen")
    if settings.admin.listen is not None:
        parse_hostport(settings.admin.listen, "admin.listen")
        try:
            check_admin_binding(settings.admin)
        except AdminBindError as exc:
            raise UsageError(str(exc)) from None

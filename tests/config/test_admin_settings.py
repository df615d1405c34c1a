"""AdminSettings: env-only token, limits validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from socketio_trace_proxy.config.admin import ADMIN_TOKEN_ENV, AdminSettings, token_from_environ
from socketio_trace_proxy.config.loader import ConfigError, load_settings


def test_token_comes_from_the_environment() -> None:
    token = token_from_environ({ADMIN_TOKEN_ENV: "  s3cret  "})
    assert token is not None
    assert token.get_secret_value() == "s3cret"
    assert token_from_environ({ADMIN_TOKEN_ENV: "   "}) is None
    assert token_from_environ({}) is None


def test_token_is_never_shown() -> None:
    settings = AdminSettings(token=token_from_environ({ADMIN_TOKEN_ENV: "hunter2"}))
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


@pytest.mark.parametrize("buckets", [(0.1, 0.1), (0.5, 0.1), (0.0, 1.0), ()])
def test_histogram_buckets_must_increase(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValidationError):
        AdminSettings(duration_buckets_s=buckets)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        AdminSettings.model_validate({"listen": "127.0.0.1:1", "tokn": "x"})


def test_openobserve_ui_url_from_the_environment_and_checked() -> None:
    settings = load_settings(None, {"OPENOBSERVE_UI_URL": "http://127.0.0.1:5080/"})
    assert settings.admin.openobserve_ui_url == "http://127.0.0.1:5080"
    with pytest.raises(ConfigError, match="OPENOBSERVE_UI_URL"):
        load_settings(None, {"OPENOBSERVE_UI_URL": "openobserve:5080"})
    with pytest.raises(ValidationError, match="credentials"):
        AdminSettings(openobserve_ui_url="http://root:pw@127.0.0.1:5080")

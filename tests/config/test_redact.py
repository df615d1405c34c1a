"""config.redact: the one URL redactor, and scrubbing text that came from outside."""

from __future__ import annotations

import base64

from socketio_trace_proxy.config.redact import (
    mask_url_password,
    redact_url,
    scrub,
    secret_forms,
    url_credentials,
)
from socketio_trace_proxy.proxy import logging as proxy_logging


def test_redact_url_drops_userinfo_query_and_fragment() -> None:
    assert redact_url("http://u:p@host:5080/api/x?token=t#f") == "http://host:5080/api/x"
    assert redact_url("https://[::1]:8443/a") == "https://[::1]:8443/a"
    assert redact_url("/socket.io/?EIO=4&sid=x") == "/socket.io/"
    assert redact_url("http://host:notaport/") == "<unparsable url>"
    assert proxy_logging.redact_url is redact_url  # one redactor, not two


def test_url_credentials_and_masking() -> None:
    assert url_credentials("http://a%40b.c:p%3Aw@h/") == ("a@b.c", "p:w")
    assert url_credentials("http://h/") is None
    assert mask_url_password("http://a:pw@h:1/x?q=1") == "http://a:***@h:1/x?q=1"
    assert mask_url_password("http://h/x") == "http://h/x"


def test_scrub_masks_secrets_credentials_and_caps() -> None:
    token = base64.b64encode(b"user@x.io:hunter2-pw").decode()
    text = (
        f'{{"message":"Authorization: Basic {token}","password":"hunter2-pw"}} '
        "Bearer abc.def-123 api_key=K3Y http://u:p@h/\x00\x1b[31m"
    )
    out = scrub(text, secret_forms("hunter2-pw", "user@x.io:hunter2-pw"))
    for secret in (token, "hunter2-pw", "abc.def-123", "K3Y", "u:p@"):
        assert secret not in out
    assert "\x00" not in out and "\x1b" not in out
    assert len(scrub("x" * 5000)) == 300
    assert scrub("plain words stay") == "plain words stay"

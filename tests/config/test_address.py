"""One HOST:PORT parser and one upstream-URL check (issue 11 §5), applied when the settings
load, so a bad address names its file, line and field before any port opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from socketio_trace_proxy.config.address import check_upstream_url, split_host_port
from tests.config.test_loader import error_of


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:9090", ("::1", 9090)),
    ],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "host:", "host:http", "host:65536", ""])
def test_not_host_port(text: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        split_host_port(text)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5000", "https://backend/app", "ws://b:1", "wss://b"]
)
def test_upstream_urls(url: str) -> None:
    assert check_upstream_url(url) == url


@pytest.mark.parametrize(
    "url", ["ftp://b", "127.0.0.1:5000", "http://", "http://b:99999", "http:///path"]
)
def test_not_upstream_urls(url: str) -> None:
    with pytest.raises(ValueError, match="expected an http"):
        check_upstream_url(url)


def test_a_refused_upstream_url_keeps_its_credentials_out_of_the_message() -> None:
    with pytest.raises(ValueError) as info:
        check_upstream_url("ftp://user:s3cret@backend/")
    assert "s3cret" not in str(info.value)


def test_bad_addresses_in_a_file_name_file_line_and_field(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "proxy:\n  listen: '8080'\n")
    assert msg.startswith(f"{tmp_path / 'proxy.yaml'}:2: proxy.listen: ")
    assert "expected HOST:PORT" in msg
    msg = error_of(tmp_path, "proxy:\n  upstream: backend:5000\n")
    assert msg.startswith(f"{tmp_path / 'proxy.yaml'}:2: proxy.upstream: ")
    msg = error_of(tmp_path, "admin:\n  listen: localhost\n")
    assert msg.startswith(f"{tmp_path / 'proxy.yaml'}:2: admin.listen: ")

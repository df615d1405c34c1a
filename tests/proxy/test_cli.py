"""The CLI as a user runs it: a real process, real ports, real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from socketio_trace_proxy.config.settings import Settings
from socketio_trace_proxy.proxy.cli import main, openobserve_trace_link
from tests.proxy.peers import free_port, runner_port

REPO = Path(__file__).resolve().parents[2]
CLI = "socketio_trace_proxy.proxy.cli"


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _cli(*args: str, limit_s: float = 30.0) -> tuple[int, str, str]:
    env = {**os.environ, "SOCKET_TRACE_ADMIN_TOKEN": ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", CLI, *args,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_check_config_accepts_a_valid_file_and_explains_it(tmp_path: Path, capsys: object) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("proxy:\n  upstream: http://127.0.0.1:5000\n  max_message_size: 2048\n")
    assert main(["check-config", str(good)], environ={}) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "max_message_size: 2048" in out
    assert f"{good}: OK" in out


def test_check_config_names_file_line_and_field_and_exits_2(tmp_path: Path, capsys: object) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("proxy:\n  upstream: http://127.0.0.1:5000\n  max_message_size: -5\n")
    assert main(["check-config", str(bad)], environ={}) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert str(bad) in err
    assert "max_message_size" in err
    assert ":3" in err  # the line of the offending field


async def test_serve_refuses_bad_configuration_before_opening_any_port(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("proxy:\n  typo_field: 1\n")
    port = free_port()
    code, _, err = await _cli(
        "serve", "--listen", f"127.0.0.1:{port}", "--upstream", "http://127.0.0.1:1",
        "--config", str(bad),
    )  # fmt: skip
    assert code == 2
    assert "typo_field" in err
    code, _, err = await _cli("serve", "--listen", "nonsense", "--upstream", "http://h:1")
    assert code == 2
    assert "--listen" in err
    code, _, err = await _cli("serve", "--listen", f"127.0.0.1:{port}")
    assert code == 2
    assert "upstream" in err
    code, _, err = await _cli(
        "serve", "--listen", f"127.0.0.1:{port}", "--upstream", "http://127.0.0.1:1",
        "--admin", "0.0.0.0:9",
    )  # fmt: skip
    assert code == 2
    assert "token" in err
    assert _port_is_free(port)


async def test_serve_relays_and_shuts_down_gracefully_on_sigterm() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello " + request.headers.get("X-Forwarded-For", "?"))

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", CLI, "serve", "--listen", f"127.0.0.1:{port}",
        "--upstream", f"http://127.0.0.1:{runner_port(runner)}", "--admin", "off",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SOCKET_TRACKING_ENABLED": "false"},
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(500):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/hello") as resp:
                        assert await resp.text() == "hello 127.0.0.1"
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
            else:
                raise AssertionError("the proxy never came up")
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        assert '"msg": "stopped"' in err.decode()
        assert _port_is_free(port)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()


async def test_demo_drive_runs_the_script_and_prints_decoded_traffic() -> None:
    code, out, err = await _cli("demo", "--drive", "--listen", "127.0.0.1:0", "--admin", "off")
    assert code == 0, err
    assert "demo client: all steps answered" in out
    assert "[traffic] C->S" in out
    assert "create_terminal" in out
    assert "terminal_ready" in out


def test_check_config_names_stored_streams_and_hides_userinfo_passwords(
    tmp_path: Path, capsys: object
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("exporters:\n  openobserve:\n    traces_stream: My.Traces\n")
    environ = {"OPENOBSERVE_ENDPOINT": "http://ingest%40x.io:S3cr3t-pw@oo:5080"}
    assert main(["check-config", str(config)], environ=environ) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "S3cr3t-pw" not in out
    assert "http://ingest%40x.io:***@oo:5080" in out
    assert "'socket-io-traces' is stored by OpenObserve as 'socket_io_traces'" in out
    assert "'My.Traces' is stored by OpenObserve as 'my_traces'" in out


def test_check_config_refuses_credentials_in_otlp_headers(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "exporters:\n  otlp:\n    headers:\n      X-Tenant: a\n      Authorization: Bearer s3cr3t\n"
    )
    assert main(["check-config", str(config)], environ={}) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert f"{config}:4: exporters.otlp.headers:" in err
    assert "Authorization carries a credential" in err
    assert "OTEL_EXPORTER_OTLP_HEADERS" in err
    assert "s3cr3t" not in err


def test_the_dashboard_links_traces_to_openobserve_when_it_is_the_exporter() -> None:
    def settings(**openobserve: object) -> Settings:
        admin = openobserve.pop("admin", {})
        return Settings.model_validate({"exporters": {"openobserve": openobserve}, "admin": admin})

    link = openobserve_trace_link(settings(endpoint="http://u:secret@openobserve:5080/api/acme"))
    assert link is not None
    assert link.url == "http://openobserve:5080/web/traces/trace-details"  # no credentials
    assert dict(link.query) == {"stream": "default", "org_identifier": "acme"}
    link = openobserve_trace_link(
        settings(
            endpoint="http://openobserve:5080",
            traces_stream="socketio",
            admin={"openobserve_ui_url": "http://127.0.0.1:5080/"},
        )
    )
    assert link is not None and link.url == "http://127.0.0.1:5080/web/traces/trace-details"
    assert dict(link.query) == {"stream": "socketio", "org_identifier": "default"}
    assert openobserve_trace_link(settings()) is None  # OpenObserve is not the exporter
    assert openobserve_trace_link(settings(endpoint="http://o:5080", traces=False)) is None


def test_check_config_warns_about_entries_that_cannot_match(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "tracking:\n  aggregate: ['terminal:*', 'terminal:data', 'terminal:data']\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(config)], environ={}) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "warning: tracking.aggregate: 'terminal:*': '*' and '?' are not wildcards" in out
    assert "warning: tracking.aggregate: 'terminal:data' is listed 2 times" in out
    assert out.rstrip().endswith(": OK")

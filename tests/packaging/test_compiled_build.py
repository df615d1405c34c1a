"""``pip install`` on a machine without a C compiler: the build falls back to pure Python.

The wheel is built from a copy of this checkout without build isolation (mypy, hence
mypyc, comes from the test venv) with ``CC=false``, a compiler that always fails, in the
default ``auto`` mode: the build succeeds, says it fell back, and ships every module as
Python and no extension.  With ``SOCKETIO_TRACE_PROXY_COMPILE=mypyc`` the same build fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from socketio_trace_proxy.tracking.compiled import COMPILED_MODULES
from tests.packaging.test_wheel import _NOT_SOURCE, PACKAGE, REPO


def _build(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "tree"
    if not source.exists():
        shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCE)
    out = tmp_path / f"wheel-{mode}"
    env = {**os.environ, "CC": "false", "SOCKETIO_TRACE_PROXY_COMPILE": mode}
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--verbose", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip


@pytest.mark.timeout(900)  # two builds that each run mypyc's type analysis
def test_without_a_compiler_the_build_falls_back_to_pure_python(tmp_path: Path) -> None:
    auto = _build(tmp_path, "auto")
    assert auto.returncode == 0, auto.stderr[-3000:]
    assert "building pure Python" in auto.stdout + auto.stderr
    (wheel,) = (tmp_path / "wheel-auto").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        # A wheel planned with extensions is platform-tagged: its modules sit under
        # <name>.data/purelib/, which installs into site-packages all the same.
        names = {n.split("/purelib/", 1)[-1] for n in zf.namelist()}
    assert not [n for n in names if n.endswith(".so")]
    for module in COMPILED_MODULES:
        assert f"{PACKAGE}/{module.replace('.', '/')}.py" in names
    forced = _build(tmp_path, "mypyc")
    assert forced.returncode != 0
    assert not list((tmp_path / "wheel-mypyc").glob("*.whl"))


def test_the_isolated_build_environment_can_load_every_mypy_plugin() -> None:
    """mypyc type-checks with the repo's ``[tool.mypy]``, plugins included, inside pip's
    isolated build environment, where only ``[build-system] requires`` is installed: a
    plugin missing there made every ``pip install .`` fall back to pure Python (and the
    Docker image, which insists on the compiled core, fail to build)."""
    import tomllib  # noqa: PLC0415

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    required = {
        req.split(">")[0].split("=")[0].split("[")[0].strip().lower()
        for req in pyproject["build-system"]["requires"]
    }
    for plugin in pyproject["tool"]["mypy"].get("plugins", []):
        assert plugin.split(".")[0].lower() in required, plugin

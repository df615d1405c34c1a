"""The built wheel: one import package, every module and data file, a working console script.

Built from this checkout without build isolation (the test extra brings setuptools) and
installed, not editable, into a fresh virtual environment that sees the test venv's
third-party packages through a path entry (so nothing is downloaded) but not its editable
finder: what runs is the wheel's copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "socketio_trace_proxy"
SOURCE_FOLDERS = ("config", "examples", "exporters", "proxy", "tracking")
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "node_modules",
    "__pycache__",
    "*.egg-info",
    ".*_cache",
    "*.so",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy, so that setuptools' build/ directory (which keeps modules deleted
    # since an earlier build) never lands in the checkout nor in the wheel.
    source = tmp_path_factory.mktemp("source") / "tree"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    # The pure build (the compiled one: tests/packaging/test_compiled_build.py).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
        env={**os.environ, "SOCKETIO_TRACE_PROXY_COMPILE": "off"},
    )  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin directory."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    bindir = env_dir / "bin"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(
        subprocess.run(
            [str(bindir / "python"), "-c", purelib], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    # A plain path line: the test venv's packages import, its .pth files (the editable
    # finder of this checkout) are not run.
    (site / "test-venv-packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install",
         "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return bindir


def _wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return [n for n in zf.namelist() if ".dist-info/" not in n]


def test_the_wheel_installs_one_import_package(wheel: Path) -> None:
    top_level = {name.split("/", 1)[0] for name in _wheel_files(wheel)}
    assert top_level == {PACKAGE}


def test_the_wheel_holds_every_module_and_data_file(wheel: Path) -> None:
    files = set(_wheel_files(wheel))
    expected = set()
    for folder in SOURCE_FOLDERS:
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so":
                expected.add(f"{PACKAGE}/{path.relative_to(REPO).as_posix()}")
    assert expected - files == set()
    assert files - expected == set()


def test_the_console_script_runs_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    version = subprocess.run(
        [str(installed / "socketio-trace-proxy"), "--version"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert version.stdout.startswith("socketio-trace-proxy ")
    where = subprocess.run(
        [str(installed / "python"), "-c",
         f"import {PACKAGE}.proxy.cli as m, {PACKAGE}.config.loader as c; print(m.__file__); "
         "print(c.default_config_text()[:1])"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    module_file = Path(where.stdout.splitlines()[0])
    assert REPO not in module_file.parents, "imported the checkout, not the wheel"
    default = REPO / "config" / "default.yaml"
    config = subprocess.run(
        [str(installed / "socketio-trace-proxy"), "check-config", str(default)],
        check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert config.returncode == 0, config.stderr
    assert config.stdout.rstrip().endswith(": OK")

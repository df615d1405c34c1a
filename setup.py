"""Build hook for the optional compiled core (issue 12, decision 2); pyproject.toml holds
everything else.

``SOCKETIO_TRACE_PROXY_COMPILE`` chooses: ``auto`` (default) compiles the modules listed in
``tracking/compiled.py`` with mypyc and falls back to the pure Python modules when mypyc or
the C compiler fails (``CC=false`` shows it); ``mypyc`` fails the build instead; ``off``
builds pure Python.  Editable installs never compile (``.ci/compiled build`` compiles in
place).  mypyc, not Cython: on the tracker bench mypyc's build cost ~30 % less CPU per round
trip, Cython in pure-Python mode 3-5 %, for the same typed sources.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
ENV = "SOCKETIO_TRACE_PROXY_COMPILE"
PACKAGE = "socketio_trace_proxy"
FOLDERS = ("config", "examples", "exporters", "proxy", "tracking")  # package-dir mapping


def _say(message: str) -> None:
    print(f"socketio-trace-proxy build: {message}", file=sys.stderr, flush=True)


def _listed_modules() -> list[str]:
    """``COMPILED_MODULES`` of tracking/compiled.py, read without importing the package."""
    tree = ast.parse((ROOT / "tracking" / "compiled.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "COMPILED_MODULES":
            value = ast.literal_eval(node.value)  # type: ignore[arg-type]
            return [str(v) for v in value]
    raise RuntimeError("tracking/compiled.py has no COMPILED_MODULES")


def _staged_sources(modules: list[str]) -> list[str]:
    """The listed modules' files under their import names (build/mypyc-src/socketio_trace_proxy
    /tracking -> tracking/), which is how mypyc names the extensions it builds."""
    stage = ROOT / "build" / "mypyc-src"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / PACKAGE).mkdir(parents=True)
    for folder in FOLDERS:
        (stage / PACKAGE / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return [str(stage / PACKAGE / (m.replace(".", "/") + ".py")) for m in modules]


def _mypyc_extensions(mode: str) -> list[Any]:
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 - a build requirement, optional

        sources = _staged_sources(_listed_modules())
        cwd = Path.cwd()
        os.chdir(ROOT / "build" / "mypyc-src")  # mypyc derives module names from the paths
        try:
            relative = [str(Path(s).relative_to(Path.cwd())) for s in sources]
            return list(
                mypycify(
                    [*relative, "--explicit-package-bases", "--ignore-missing-imports"],
                    opt_level="3",
                    group_name=f"{PACKAGE}.tracking._core",
                    target_dir=str(ROOT / "build" / "mypyc"),
                )
            )
        finally:
            os.chdir(cwd)
    except BaseException as exc:  # mypy reports type errors with SystemExit
        if mode == "mypyc" or isinstance(exc, KeyboardInterrupt):
            raise
        _say(f"mypyc unavailable or failed ({type(exc).__name__}: {exc}); building pure Python")
        return []


class OptionalBuildExt(build_ext):
    """``build_ext`` that, in ``auto`` mode, drops every compiled module when one fails
    (they share one mypyc runtime library: all or none)."""

    def run(self) -> None:
        try:
            super().run()
        except BaseException as exc:
            if _mode() == "mypyc" or isinstance(exc, KeyboardInterrupt):
                raise
            _say(f"compiling failed ({type(exc).__name__}: {exc}); building pure Python")
            self._drop_outputs()

    def _drop_outputs(self) -> None:
        for ext in self.extensions:
            for path in (Path(self.get_ext_fullpath(ext.name)),):
                path.unlink(missing_ok=True)
        self.extensions = []
        self.distribution.ext_modules = []


def _mode() -> str:
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in {"auto", "mypyc", "off"}:
        raise SystemExit(f"{ENV}={mode!r}: expected auto, mypyc or off")
    return mode


def _editable() -> bool:
    return any(arg in {"editable_wheel", "develop"} for arg in sys.argv[1:])


def _extensions() -> list[Any]:
    mode = _mode()
    if mode == "off" or _editable():
        return []
    return _mypyc_extensions(mode)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})

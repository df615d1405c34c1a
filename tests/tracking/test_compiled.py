"""Which build this suite runs on: the compiled core (mypyc) or the pure Python modules.

``.ci/run`` runs the whole suite twice, with ``SOCKETIO_TRACE_PROXY_EXPECT_COMPILED=0`` on
the pure modules, then with ``=1`` after ``.ci/compiled build``: this test fails if the
build is not the one expected, so that a silent fallback cannot pass as compiled.  Without
the variable it only checks that the build is whole (every listed module, or none).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from socketio_trace_proxy.tracking.compiled import COMPILED_MODULES, compiled_core, compiled_modules

REPO = Path(__file__).resolve().parents[2]
EXPECT = os.environ.get("SOCKETIO_TRACE_PROXY_EXPECT_COMPILED")


def test_every_listed_module_is_a_typed_source_file() -> None:
    for name in COMPILED_MODULES:
        source = REPO / (name.replace(".", "/") + ".py")
        assert source.is_file(), f"{name}: no {source}"
        assert "from __future__ import annotations" in source.read_text(encoding="utf-8")


def test_the_build_is_whole() -> None:
    loaded = compiled_modules()
    assert len(set(loaded.values())) == 1, f"partly compiled: {loaded}"
    assert compiled_core() is all(loaded.values())


@pytest.mark.skipif(EXPECT is None, reason="SOCKETIO_TRACE_PROXY_EXPECT_COMPILED not set")
def test_the_build_is_the_one_expected() -> None:
    expected = EXPECT == "1"
    assert compiled_core() is expected, (
        f"expected the {'compiled' if expected else 'pure Python'} build, got {compiled_modules()}"
    )
    if expected:  # a module object from an extension, not from its .py file
        from socketio_trace_proxy.tracking.sessions import table  # noqa: PLC0415

        assert not str(table.__file__).endswith(".py")


def test_a_fresh_process_reports_the_same_build() -> None:
    code = (
        "from socketio_trace_proxy.tracking.compiled import compiled_core; print(compiled_core())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == str(compiled_core())

#!/usr/bin/env bash
# Install Arize Phoenix (an OTLP/HTTP receiver that stores spans in SQLite and lists them over
# a REST API) into .venv-phoenix, apart from the project's .venv (it brings many packages of
# its own), for tests/receivers/test_phoenix.py.  Several minutes and ~1 GB; optional: the
# test is skipped when Phoenix is not installed.
#   bash tests/receivers/install_phoenix.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m venv .venv-phoenix
.venv-phoenix/bin/pip install -q "arize-phoenix==20.26.1"
.venv-phoenix/bin/phoenix --help >/dev/null && echo "Phoenix installed in .venv-phoenix"

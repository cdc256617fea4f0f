#!/usr/bin/env bash
# The test suite: installs stgcn-rt with every extra CI can install (scripts/setup-tests.sh), then
# runs the linters and pytest. Arguments go to pytest (e.g. scripts/test.sh -k export). GPU tests
# skip without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-tests.sh
export STGCN_RT_SERVE_PYTHON="$PWD/.venv-triton/bin/python"
.venv/bin/python -m ruff check src tests scripts
# the package runs on Python 3.8 (JetPack 5): no newer syntax or standard-library call in src/
.venv/bin/vermin --quiet --violations --no-tips --backport typing --backport dataclasses -t=3.8- src
.venv/bin/python -m pytest "$@"

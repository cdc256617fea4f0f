#!/usr/bin/env bash
# The test suite: installs stgcn-rt with every extra CI can install into ./.venv, then runs pytest.
# Arguments go to pytest (e.g. scripts/test.sh -k export). GPU tests skip without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh "pipeline,bench,dev"
# TensorRT proof without a GPU: TensorRT-RTX's parser and ahead-of-time builder run on the CPU, and
# tensorrt-stubs types the TensorRT 10 API for mypy (--no-deps: it names the full TensorRT, which
# does not install here).
.venv/bin/python -m pip -q --disable-pip-version-check install tensorrt-rtx 2>&1 | grep -v "is ignored" >&2 || true
.venv/bin/python -m pip -q --disable-pip-version-check install --no-deps "tensorrt-stubs>=10" 2>&1 | grep -v "is ignored" >&2 || true
# The [serve] extra (PyTriton's tritonserver, tritonclient[grpc] and Triton's config parser) needs
# protobuf >= 6, which mediapipe 0.10.21 cannot share: it gets a venv of its own, used by
# tests/export/test_triton.py and tests/runtime/test_serve.py.
if [ ! -x .venv-triton/bin/python ]; then python3 -m venv .venv-triton; fi
.venv-triton/bin/python -m pip -q --disable-pip-version-check install "torch==2.13.0" -e ".[serve]" 2>&1 \
    | grep -v "is ignored" >&2 || true
export STGCN_RT_SERVE_PYTHON="$PWD/.venv-triton/bin/python"
.venv/bin/python -m ruff check src tests scripts
# the package runs on Python 3.8 (JetPack 5): no newer syntax or standard-library call in src/
.venv/bin/vermin --quiet --violations --no-tips --backport typing --backport dataclasses -t=3.8- src
.venv/bin/python -m pytest "$@"

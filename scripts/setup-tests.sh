#!/usr/bin/env bash
# Every environment the test suite uses: ./.venv with stgcn-rt and every extra CI can install,
# TensorRT-RTX and the TensorRT stubs in it, and ./.venv-triton for the [serve] extra. Each editable
# install writes into src/, so nothing else should install the package while this runs.
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
bash scripts/setup-venv.sh "serve" .venv-triton

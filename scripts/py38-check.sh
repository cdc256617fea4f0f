#!/usr/bin/env bash
# JetPack 5's environment, as near as an x86 machine gets: Python 3.8 with torch 2.0 (JetPack 5's
# NVIDIA wheels are torch 2.0.0 and 2.1.0a0 for cp38), the newest ONNX Runtime and MediaPipe for
# cp38, and stgcn-rt[pipeline]; then the tests of the model, checkpoint loading, the fp32 export,
# the runners, predict_action, the scheduler, the pipeline and the CLI. Not here: what needs torch
# 2.1 (fp16 ONNX, FLOP counts) or newer exports' graph patterns (the ONNX Runtime runner's CPU
# rewrites of dynamic-batch exports), TensorRT-RTX, Triton.
# Needs a python3.8 (PYTHON38=path, else python3.8 on PATH or under ~/.pyenv); without one it says
# so and exits 0. Arguments go to pytest; PY38_INSTALL_ONLY=1 installs torch and stops (CI runs that
# while the main suite's environments install, then this beside the main suite).
set -euo pipefail
cd "$(dirname "$0")/.."
python38=""
for candidate in "${PYTHON38:-}" "$HOME"/.pyenv/versions/3.8*/bin/python3.8 "$(command -v python3.8 || true)"; do
  # a pyenv shim exists without a usable 3.8 behind it: ask each candidate for its version
  if [ -n "$candidate" ] && "$candidate" -c "import sys; assert sys.version_info[:2] == (3, 8)" 2>/dev/null; then
    python38="$candidate"
    break
  fi
done
if [ -z "$python38" ]; then
  echo "py38-check: skipped, no Python 3.8 here (set PYTHON38=/path/to/python3.8)" >&2
  exit 0
fi
if [ ! -x .venv-py38/bin/python ]; then "$python38" -m venv .venv-py38; fi
pip() { .venv-py38/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" >&2 || true; }
pip install "torch==2.0.1" "numpy<1.25" pytest jsonschema
# the package itself installs in the second run: its editable build writes into src/, as the main
# suite's installs do
if [ "${PY38_INSTALL_ONLY:-}" = 1 ]; then exit 0; fi
pip install -e ".[pipeline]"
.venv-py38/bin/python -c "import stgcn_rt, torch, onnxruntime, mediapipe; print('py38-check:', 'torch', torch.__version__, \
'onnxruntime', onnxruntime.__version__, 'mediapipe', mediapipe.__version__)" >&2
# Left to the main suite: three long runs whose code the others here cover on this Python (M=5
# parity is checked by the export's own validation in their fixture; the pipeline on real videos by
# the other runs of tests/pipeline). CI runs this pass beside the main suite, on the same two cores.
.venv-py38/bin/python -m pytest -q -p no:cacheprovider tests/model tests/export/test_onnx_export.py \
    tests/onnx/test_tidy.py tests/runtime/test_classifier.py tests/runtime/test_environment.py \
    tests/runtime/test_predict.py tests/runtime/test_scheduler.py tests/pipeline tests/test_cli.py \
    tests/test_files.py tests/test_layers.py \
    --deselect "tests/export/test_onnx_export.py::test_parity_on_random_and_real_windows[5]" \
    --deselect tests/pipeline/test_run.py::test_multi_person_windows_on_a_real_video \
    --deselect tests/pipeline/test_run.py::test_two_videos_at_once "$@"

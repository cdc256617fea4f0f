#!/usr/bin/env bash
# Create ./.venv (once) and install stgcn-rt into it with the extras named in $1 (e.g. "pipeline,dev").
# torch is installed first, on its own: STGCN_TORCH overrides the requirement (default: the
# version CI uses). Needs only python3 with venv and pip.
set -euo pipefail
extras="${1:-pipeline}"
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv" >&2
  python3 -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" >&2 || true; }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "installing ${STGCN_TORCH:-torch==2.13.0}" >&2
  pip install "${STGCN_TORCH:-torch==2.13.0}"
fi
echo "installing stgcn-rt[$extras]" >&2
pip install -e ".[$extras]"
.venv/bin/python -c "import stgcn_rt" || { echo "error: installing stgcn-rt failed (see pip's output above)" >&2; exit 1; }

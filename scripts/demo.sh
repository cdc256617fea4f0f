#!/usr/bin/env bash
# The end-to-end demo on shipped data: installs stgcn-rt into ./.venv, then runs `stgcn-rt demo`.
# Arguments go to `stgcn-rt demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh "pipeline"
exec .venv/bin/stgcn-rt demo "$@"

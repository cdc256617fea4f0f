#!/usr/bin/env bash
# Create a virtual environment (once; $2, default ./.venv) and install stgcn-rt into it with the extras
# named in $1 (e.g. "pipeline,dev").
# torch is installed first, on its own: STGCN_TORCH overrides the requirement (default: the
# version CI uses). Needs only python3 with venv and pip.
set -euo pipefail
extras="${1:-pipeline}"
venv="${2:-.venv}"
cd "$(dirname "$0")/.."
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  python3 -m venv "$venv"
fi
pip() { "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" >&2 || true; }
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing ${STGCN_TORCH:-torch==2.13.0}" >&2
  pip install "${STGCN_TORCH:-torch==2.13.0}"
fi
# The editable install follows src/ by itself: it is redone only when pyproject.toml changed or an
# extra is asked for that the last install did not have. The stamp: pyproject.toml's hash, then the extras.
stamp="$venv/.stgcn-rt-installed"
project=$(sha256sum pyproject.toml | cut -d' ' -f1)
stamped_project="" stamped_extras=""
[ -f "$stamp" ] && read -r stamped_project stamped_extras < "$stamp"
missing=""
for extra in ${extras//,/ }; do
  case ",${stamped_extras:-}," in *",$extra,"*) ;; *) missing="$missing $extra" ;; esac
done
if [ "${stamped_project:-}" = "$project" ] && [ -z "$missing" ] && "$venv/bin/python" -c "import stgcn_rt" 2>/dev/null; then
  exit 0
fi
[ "${stamped_project:-}" = "$project" ] && extras="$stamped_extras,${missing# }" && extras="${extras// /,}"
echo "installing stgcn-rt[$extras] into $venv" >&2
pip install -e ".[$extras]"
"$venv/bin/python" -c "import stgcn_rt" || { echo "error: installing stgcn-rt failed (see pip's output above)" >&2; exit 1; }
echo "$project $extras" > "$stamp"

#!/usr/bin/env bash
# Create (once) the project's virtual environment and print its path.
# The environment lives outside the clone, keyed by the lock file and Python version, so CI and
# later runs reuse it instead of reinstalling torch (a multi-GB CUDA build on PyPI).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FRAMEWATCH_CACHE:-$HOME/.cache/framewatch}
PY=${PYTHON:-python3}
UV_VERSION=0.13.9
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "framewatch needs Python >= 3.11" >&2; exit 1; }
KEY=$( { cat "$ROOT/requirements.lock"; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-12)
VENV="$CACHE/venv-$KEY"
TOOLS="$CACHE/tools-uv-$UV_VERSION"
mkdir -p "$CACHE"
if [ ! -x "$TOOLS/bin/uv" ]; then
  echo "bootstrap: installing uv $UV_VERSION into $TOOLS" >&2
  "$PY" -m venv "$TOOLS" && "$TOOLS/bin/pip" install -q "uv==$UV_VERSION" >&2
fi
if [ ! -f "$VENV/.complete" ]; then
  echo "bootstrap: creating $VENV from requirements.lock (first run downloads torch; minutes)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # Every wheel is checked against the lock's hashes (scripts/lock.sh writes them).
  "$TOOLS/bin/uv" pip install --python "$VENV/bin/python" --require-hashes -r "$ROOT/requirements.lock" >&2
  touch "$VENV/.complete"
fi
# The project itself, editable, from this clone (cheap; redone so a venv shared by clones points here).
"$TOOLS/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e "$ROOT" >&2
echo "$VENV"

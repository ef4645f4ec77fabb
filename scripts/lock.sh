#!/usr/bin/env bash
# Regenerate both locks from pyproject.toml, with hashes, keeping every pinned version:
#   requirements.lock          everything, the dev extra included (scripts/bootstrap.sh installs it)
#   requirements.runtime.lock  the runtime dependencies only, same versions (the Dockerfile installs it)
# uv keeps the pins already in an output file; extra arguments go to the first compile, so
# `scripts/lock.sh -P httpx` moves one pin and `scripts/lock.sh --upgrade` moves them all.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${FRAMEWATCH_CACHE:-$HOME/.cache/framewatch}
UV=${UV:-$CACHE/tools-uv-0.13.9/bin/uv}
[ -x "$UV" ] || UV=$(command -v uv) || { echo "lock: uv not found; run scripts/bootstrap.sh once" >&2; exit 1; }
cd "$ROOT"
"$UV" pip compile -q pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
  --custom-compile-command scripts/lock.sh -o requirements.lock "$@"
# Seeded with the full lock, so the runtime resolution prefers exactly its versions
# (tests/deploy/test_locks.py checks that they are equal).
cp requirements.lock requirements.runtime.lock
"$UV" pip compile -q pyproject.toml --python-version 3.11 --generate-hashes \
  --custom-compile-command scripts/lock.sh -o requirements.runtime.lock

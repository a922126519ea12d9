#!/usr/bin/env bash
# Installs the Debian packages the tests run against when they are missing: real
# Prometheus, promtool, Alertmanager, amtool (end-to-end tests), docker-compose (the
# compose stack's `docker-compose config`), systemd-analyze (the unit's checks),
# podman with runc and debootstrap (the container image built and run, tests/container)
# and chromium (the pages rendered by a real headless browser).
# Never starts a service, and leaves the machine's service policy as it found it.
#
# POLICY_RC_D (default /usr/sbin/policy-rc.d) exists so that a test can run the
# policy handling against a scratch file; nothing else should set it.
set -euo pipefail

policy_rc_d=${POLICY_RC_D:-/usr/sbin/policy-rc.d}

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# a font of its own: chromium only recommends one, and a page without glyphs proves little
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
if [ ${#missing[@]} -eq 0 ]; then
  echo "System packages for the tests: all present (prometheus, prometheus-alertmanager, docker-compose, systemd, podman, runc, debootstrap, chromium)"
  exit 0
fi
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')

if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need the Debian packages: $packages" >&2
  echo "Install them as root:  sudo apt-get install --no-install-recommends $packages" >&2
  exit 1
fi

# Debian's postinst would start the services on 0.0.0.0; a policy-rc.d returning 101
# forbids that (this is what it is for). Only for this install: one we create is removed
# when the script exits, however it exits, so services installed later still start. One
# that was there before (e.g. a Docker image's) is left alone.
created_policy=""
remove_created_policy() {
  if [ -n "$created_policy" ]; then
    rm -f "$policy_rc_d"
  fi
}
trap remove_created_policy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ ! -e "$policy_rc_d" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc_d"
  chmod +x "$policy_rc_d"
  created_policy=1
fi

echo "Installing the Debian packages the tests need: $packages (apt-get update, then install) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $packages >/dev/null
echo "Installed: $packages"

#!/usr/bin/env bash
# Installs the Debian packages the tests run against when they are missing: real
# Prometheus, promtool, Alertmanager, amtool (end-to-end tests), docker-compose (the
# compose stack's `docker-compose config`), systemd-analyze (the unit's checks),
# podman with runc and debootstrap (the container image built and run, tests/container)
# and chromium (the pages rendered by a real headless browser).
# Never starts a service, and leaves the machine's service policy as it found it.
#
# On a freshly booted machine unattended-upgrades often holds the package manager's
# locks for minutes: the script waits for them, saying who holds which, up to
# APT_LOCK_TIMEOUT seconds (default 300) in all, then gives up with a message naming the
# lock and its holder. apt-get gets the time left as DPkg::Lock::Timeout too (it waits for
# the dpkg lock itself, but not for the package lists' lock of `apt-get update`).
#
# POLICY_RC_D (default /usr/sbin/policy-rc.d) and APT_LOCK_FILES (the lock files to
# wait for) exist so that a test can run the policy handling and the waiting against
# scratch files; nothing else should set them.
set -euo pipefail

policy_rc_d=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
lock_timeout=${APT_LOCK_TIMEOUT:-300}
read -r -a apt_locks <<<"${APT_LOCK_FILES:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"
if ! [[ $lock_timeout =~ ^[0-9]+$ ]]; then
  echo "APT_LOCK_TIMEOUT must be a whole number of seconds, not '$lock_timeout'" >&2
  exit 2
fi

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

# "<lock> <pid> <command>" of a process holding one of the package manager's locks (apt
# and dpkg take them with fcntl, which lslocks lists with the path), or nothing.
lock_holder() {
  local pid command path lock
  command -v lslocks >/dev/null 2>&1 || return 0 # then apt-get's own timeout waits alone
  while read -r pid command path; do
    for lock in "${apt_locks[@]}"; do
      if [ "$path" = "$lock" ]; then
        echo "$lock $pid $command"
        return 0
      fi
    done
  done < <(lslocks --raw --noheadings --output PID,COMMAND,PATH 2>/dev/null || true)
}

# Waits until no process holds a lock, sharing one deadline between the calls, and sets
# apt_lock_option to the time left, for apt-get.
deadline=$((SECONDS + lock_timeout))
apt_lock_option=()
wait_for_apt_locks() {
  local holder told="" lock pid command
  while holder=$(lock_holder) && [ -n "$holder" ]; do
    read -r lock pid command <<<"$holder"
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "Gave up after waiting ${lock_timeout} s for the package manager: $lock is still held by $command (pid $pid)." >&2
      echo "Let it finish (on a fresh machine usually unattended-upgrades: 'systemctl status unattended-upgrades') and run this again, or wait longer with APT_LOCK_TIMEOUT=<seconds>." >&2
      exit 1
    fi
    if [ "$told" != "$holder" ]; then
      echo "Waiting for the package manager lock $lock, held by $command (pid $pid) - on a freshly booted machine usually unattended-upgrades installing updates; up to $((deadline - SECONDS)) s more (APT_LOCK_TIMEOUT=${lock_timeout}) ..."
      told=$holder
    fi
    sleep 1
  done
  local left=$((deadline - SECONDS))
  apt_lock_option=(-o "DPkg::Lock::Timeout=$((left > 0 ? left : 0))")
}

echo "Installing the Debian packages the tests need: $packages (apt-get update, then install) ..."
export DEBIAN_FRONTEND=noninteractive
trap 'exit 130' INT
trap 'exit 143' TERM
wait_for_apt_locks
apt-get "${apt_lock_option[@]}" update -qq

# Waiting for the locks comes before the policy: one created while unattended-upgrades
# installs would keep its services from restarting.
wait_for_apt_locks
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
if [ ! -e "$policy_rc_d" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc_d"
  chmod +x "$policy_rc_d"
  created_policy=1
fi
# shellcheck disable=SC2086
apt-get "${apt_lock_option[@]}" install -y -qq --no-install-recommends $packages >/dev/null
echo "Installed: $packages"

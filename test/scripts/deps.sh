#!/usr/bin/env bash
#
# deps.sh - install the Debian 12 packages the ec2proxy test suite needs
# (real Keystone under uwsgi, redis, openstack CLI, boto/botocore/awscli for
# real-client signatures, haproxy in front of several replicas, sqlite3, curl)
# and make sure none of their system services keeps running.
#
# Usage: test/scripts/deps.sh [EXTRA_PACKAGE...]
#
# Must run as root (or with password-less sudo). A re-run with everything
# installed only runs dpkg-query and the service check: fast and offline.
# apt-get update runs only when something is missing. The apt output goes to
# ${TMPDIR:-/tmp}/ec2proxy-deps-apt.log and is shown if apt fails.
#
# Package side effects and how they are neutralised:
#   - keystone's postinst asks debconf questions; they are preseeded to
#     "no database setup, no admin tenant, no endpoint registration";
#   - keystone, redis-server and haproxy postinsts start their services
#     (uwsgi on :5000, redis on :6379, haproxy with the packaged
#     /etc/haproxy/haproxy.cfg) via invoke-rc.d / deb-systemd-invoke.
#     A temporary /usr/sbin/policy-rc.d (exit 101) forbids that while apt runs
#     (an existing policy-rc.d is left alone);
#   - afterwards, every run stops the keystone, redis-server and haproxy
#     services if they run and disables them, with systemctl when systemd is
#     PID 1, else with the SysV scripts and update-rc.d (works in containers
#     without systemd). The tests start their own private keystone, redis
#     servers and haproxy.
set -euo pipefail

SCRIPT_NAME=deps
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

PKGS=(
	redis-server redis-tools
	keystone uwsgi-core uwsgi-plugin-python3
	python3-openstackclient
	python3-boto python3-botocore awscli
	haproxy
	sqlite3 curl ca-certificates
	gcc libc6-dev # go test -race needs cgo; --no-install-recommends: name both
	"$@"
)
SERVICES=(keystone redis-server haproxy)
APT_LOG="${TMPDIR:-/tmp}/ec2proxy-deps-apt.log"
export DEBIAN_FRONTEND=noninteractive

T_ALL=$(now)

as_root=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || die "must run as root (or with sudo available)"
	as_root=(sudo -n env DEBIAN_FRONTEND=noninteractive)
fi
root() { "${as_root[@]}" "$@"; }

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script is for Debian"

# ---- install what is missing --------------------------------------------

missing=()
for p in "${PKGS[@]}"; do
	if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]; then
		missing+=("$p")
	fi
done

apt_run() {
	local what=$1
	shift
	if ! root "$@" >>"$APT_LOG" 2>&1; then
		log "${what} failed; last lines of ${APT_LOG}:"
		tail -n 40 "$APT_LOG" >&2 || true
		return 1
	fi
}

created_policy=false
cleanup() {
	if [ "$created_policy" = true ]; then
		root rm -f /usr/sbin/policy-rc.d || true
	fi
}
trap cleanup EXIT

if [ "${#missing[@]}" -eq 0 ]; then
	log "all ${#PKGS[@]} packages already installed"
else
	log "missing: ${missing[*]}"
	: >"$APT_LOG"

	# Answers for keystone's debconf questions (these are also the
	# defaults; set them explicitly so that a changed default or an
	# earlier interactive answer cannot make the postinst create a
	# database, bootstrap an admin or wait for a local keystone).
	root debconf-set-selections <<'EOF'
keystone keystone/configure_db boolean false
keystone keystone/create-admin-tenant boolean false
keystone keystone/register-endpoint boolean false
EOF

	# Forbid service starts from maintainer scripts while apt runs.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# temporary, from ec2proxy test/scripts/deps.sh\nexit 101\n' |
			root tee /usr/sbin/policy-rc.d >/dev/null
		root chmod 0755 /usr/sbin/policy-rc.d
		created_policy=true
	fi

	step "apt-get update" apt_run "apt-get update" \
		apt-get -o DPkg::Lock::Timeout=300 update
	step "apt-get install ${missing[*]}" apt_run "apt-get install" \
		apt-get -o DPkg::Lock::Timeout=300 \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		install -y --no-install-recommends "${missing[@]}"

	cleanup
	created_policy=false
fi

# ---- make sure the packaged services are stopped and disabled ------------

systemd_running=false
if [ -d /run/systemd/system ]; then
	systemd_running=true
fi

quiesce() {
	local svc=$1 did=''
	if [ ! -e "/lib/systemd/system/${svc}.service" ] && [ ! -e "/etc/init.d/${svc}" ]; then
		return 0
	fi
	if [ "$systemd_running" = true ]; then
		if systemctl is-active --quiet "$svc" 2>/dev/null; then
			root systemctl stop "$svc"
			did+=' stopped'
		fi
	elif [ -x "/etc/init.d/${svc}" ] && "/etc/init.d/${svc}" status >/dev/null 2>&1; then
		root "/etc/init.d/${svc}" stop >/dev/null 2>&1 || true
		did+=' stopped'
	fi
	# systemctl enable/disable edits symlinks and also works without a
	# running systemd; it calls update-rc.d for the SysV links too.
	if command -v systemctl >/dev/null 2>&1 && [ -e "/lib/systemd/system/${svc}.service" ]; then
		if [ "$(systemctl is-enabled "$svc" 2>/dev/null || true)" = enabled ]; then
			root systemctl disable --quiet "$svc" >/dev/null 2>&1 || true
			did+=' disabled'
		fi
	elif [ -e "/etc/init.d/${svc}" ] && compgen -G "/etc/rc[2-5].d/S[0-9][0-9]${svc}" >/dev/null; then
		root update-rc.d "$svc" disable >/dev/null 2>&1 || true
		did+=' disabled'
	fi
	if [ -n "$did" ]; then
		log "system service ${svc}:${did}"
	fi
}

for svc in "${SERVICES[@]}"; do
	quiesce "$svc"
done

# Last resort for processes started without a working init script (e.g. a
# policy-rc.d that allowed the start and a service manager we do not know):
# the packaged daemons write these pidfiles.
for pf in /run/keystone/keystone.pid /run/redis/redis-server.pid /run/haproxy.pid; do
	pid=$(read_pidfile "$pf")
	if [ -n "$pid" ] && pid_alive "$pid"; then
		log "stopping leftover system daemon pid ${pid} (${pf})"
		root kill -TERM "$pid" 2>/dev/null || true
		if ! wait_pid_exit "$pid" 10; then
			root kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
done

for port in 5000 6379; do
	if ! port_free "$port"; then
		log "WARNING: something listens on 127.0.0.1:${port} (fine if it is a test instance from keystone-up.sh / redis-up.sh): $(port_owner "$port")"
	fi
done

log "done ($(since "$T_ALL")s)"

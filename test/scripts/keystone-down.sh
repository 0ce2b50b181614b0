#!/usr/bin/env bash
#
# keystone-down.sh - stop the keystone started by keystone-up.sh.
#
# Usage: test/scripts/keystone-down.sh STATE_DIR [--purge]
#        (or KS_STATE=STATE_DIR test/scripts/keystone-down.sh [--purge])
#
# Environment:
#   KS_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 15).
#
# Reads the uwsgi master PID from STATE_DIR/keystone.pid, checks that it is
# the uwsgi of this STATE_DIR, sends SIGTERM (uwsgi runs with --die-on-term)
# and waits for the master to exit; after the bound the master and its
# workers get SIGKILL. The database, keys and env files are kept, so the next
# keystone-up.sh is a quick restart.
#
# --purge also removes STATE_DIR entirely (after stopping a redis started in
# the same STATE_DIR by redis-up.sh, if any).
#
# Idempotent: a missing STATE_DIR, pidfile or process is not an error.
set -euo pipefail

SCRIPT_NAME=keystone-down
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

purge=false
state_arg=''
for a in "$@"; do
	case $a in
	--purge) purge=true ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	-*) die "unknown option $a; usage: $0 STATE_DIR [--purge]" ;;
	*)
		[ -z "$state_arg" ] || die "usage: $0 STATE_DIR [--purge]"
		state_arg=$a
		;;
	esac
done
state_arg=${state_arg:-${KS_STATE:-}}
check_state_dir "$state_arg"
STATE=$(abspath "$state_arg")

if [ ! -d "$STATE" ]; then
	log "no state dir ${STATE}; nothing to do"
	exit 0
fi
STATE=$(cd "$STATE" && pwd)
PIDFILE="${STATE}/keystone.pid"

stop_it() {
	local pid kids t0
	pid=$(read_pidfile "$PIDFILE")
	if [ -z "$pid" ] || ! pid_alive "$pid"; then
		log "not running"
		rm -f "$PIDFILE"
		return 0
	fi
	case $(proc_cmdline "$pid") in
	*uwsgi*"--pidfile ${PIDFILE} "*) ;;
	*)
		log "pid ${pid} from ${PIDFILE} is not the keystone uwsgi of ${STATE}; not killing it"
		rm -f "$PIDFILE"
		return 0
		;;
	esac
	t0=$(now)
	kids=$(proc_children "$pid" | tr '\n' ' ')
	# shellcheck disable=SC2086 # kids is a list of PIDs
	stop_pid "keystone uwsgi" "$pid" "${KS_STOP_TIMEOUT:-15}" $kids
	rm -f "$PIDFILE"
	log "stopped uwsgi master pid ${pid} ($(since "$t0")s)"
}

(
	take_lock "${STATE}/.keystone.lock"
	stop_it
)

if [ "$purge" = true ]; then
	if [ -e "${STATE}/redis.pid" ]; then
		"${SCRIPT_DIR}/redis-down.sh" "$STATE"
	fi
	rm -rf -- "$STATE"
	log "purged ${STATE}"
fi

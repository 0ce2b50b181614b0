#!/usr/bin/env bash
#
# redis-down.sh - stop the private redis-server started by redis-up.sh.
#
# Usage: test/scripts/redis-down.sh STATE_DIR
#
# Environment:
#   REDIS_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 10).
#
# Reads the PID from STATE_DIR/redis.pid, checks that it is a redis-server,
# sends SIGTERM and waits for the process to exit (SIGKILL after the bound).
# Removes redis.pid, redis.port and redis.env; keeps redis.log. Idempotent: a
# missing STATE_DIR, pidfile or process is not an error.
set -euo pipefail

SCRIPT_NAME=redis-down
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
check_state_dir "$1"
STATE=$(abspath "$1")
if [ ! -d "$STATE" ]; then
	log "no state dir ${STATE}; nothing to stop"
	exit 0
fi

PIDFILE="${STATE}/redis.pid"
take_lock "${STATE}/.redis.lock"

pid=$(read_pidfile "$PIDFILE")
if [ -n "$pid" ] && pid_alive "$pid"; then
	exe=$(readlink "/proc/${pid}/exe" 2>/dev/null || true)
	case $exe in
	*/redis-server | */redis-check-rdb)
		t0=$(now)
		stop_pid redis-server "$pid" "${REDIS_STOP_TIMEOUT:-10}"
		log "stopped redis-server pid ${pid} ($(since "$t0")s)"
		;;
	*)
		log "pid ${pid} from ${PIDFILE} is not a redis-server (${exe:-unknown}); not killing it"
		;;
	esac
else
	log "not running"
fi
rm -f "$PIDFILE" "${STATE}/redis.port" "${STATE}/redis.env"

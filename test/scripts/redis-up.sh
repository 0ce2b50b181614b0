#!/usr/bin/env bash
#
# redis-up.sh - start a private, throw-away redis-server for the ec2proxy
# test suite.
#
# Usage: test/scripts/redis-up.sh STATE_DIR
#
# Environment:
#   REDIS_PORT   TCP port to use. Default: the port of the instance already
#                running from STATE_DIR, else a free port picked at run time.
#   REDIS_WAIT   seconds to wait for PING to answer (default 15).
#
# The server listens on 127.0.0.1 only, keeps no data on disk (no RDB, no
# AOF), and is daemonized with STATE_DIR/redis.pid and STATE_DIR/redis.log.
# When it answers PING, STATE_DIR/redis.env is written:
#
#   export EC2PROXY_TEST_REDIS_ADDR=127.0.0.1:PORT
#
# Idempotent: if the instance of STATE_DIR is already up (and on REDIS_PORT
# when that is set) it is reused and only redis.env is rewritten. If
# REDIS_PORT names a different port, the old instance is stopped first.
# Stop it with test/scripts/redis-down.sh STATE_DIR.
set -euo pipefail

SCRIPT_NAME=redis-up
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
check_state_dir "$1"
STATE=$(abspath "$1")
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

PIDFILE="${STATE}/redis.pid"
LOGFILE="${STATE}/redis.log"
PORTFILE="${STATE}/redis.port"
ENVFILE="${STATE}/redis.env"
WAIT=${REDIS_WAIT:-15}

command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run test/scripts/deps.sh"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found; run test/scripts/deps.sh"

take_lock "${STATE}/.redis.lock"

# ping PORT - true if a redis on 127.0.0.1:PORT answers PONG.
ping() {
	[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

# running_pid - PID of the redis-server of this STATE_DIR, if it runs.
running_pid() {
	redis_server_pid "$PIDFILE"
}

write_env() {
	printf 'export EC2PROXY_TEST_REDIS_ADDR=127.0.0.1:%s\n' "$1" | write_file_atomic "$ENVFILE"
}

if [ -n "${REDIS_PORT:-}" ] && ! valid_port "$REDIS_PORT"; then
	die "REDIS_PORT='${REDIS_PORT}' is not a port number"
fi

# Reuse a running instance.
pid=$(running_pid)
if [ -n "$pid" ]; then
	old_port=$(cat "$PORTFILE" 2>/dev/null || true)
	if [ -n "$old_port" ] && { [ -z "${REDIS_PORT:-}" ] || [ "$REDIS_PORT" = "$old_port" ]; } && ping "$old_port"; then
		write_env "$old_port"
		log "already up on 127.0.0.1:${old_port} (pid ${pid}); wrote ${ENVFILE}"
		exit 0
	fi
	log "instance pid ${pid} is not usable (port ${old_port:-?}, wanted ${REDIS_PORT:-any}); restarting it"
	stop_pid redis-server "$pid" 10
fi
rm -f "$PIDFILE"

start_on() {
	local port=$1
	: >"$LOGFILE"
	# shellcheck disable=SC2094 # the redirect only catches errors printed before redis daemonizes
	redis-server \
		--port "$port" \
		--bind 127.0.0.1 \
		--protected-mode yes \
		--save '' \
		--appendonly no \
		--dir "$STATE" \
		--daemonize yes \
		--pidfile "$PIDFILE" \
		--logfile "$LOGFILE" \
		--loglevel notice \
		--databases 16 \
		</dev/null >>"$LOGFILE" 2>&1 9>&-
}

# wait_up PORT - wait until PING answers; false if the server died or the
# bounded wait expired.
wait_up() {
	local port=$1 t0 pid
	t0=$(now)
	while :; do
		if ping "$port"; then
			return 0
		fi
		pid=$(read_pidfile "$PIDFILE")
		if [ -n "$pid" ] && ! pid_alive "$pid"; then
			return 1
		fi
		if awk -v a="$t0" -v b="$(now)" -v l="$WAIT" 'BEGIN { exit !(b - a > l) }'; then
			return 1
		fi
		sleep 0.05
	done
}

fail_with_log() {
	log "redis-server did not answer PING on 127.0.0.1:$1 within ${WAIT}s; last lines of ${LOGFILE}:"
	tail -n 20 "$LOGFILE" >&2 2>/dev/null || true
	pid=$(running_pid)
	if [ -n "$pid" ]; then
		stop_pid redis-server "$pid" 5
	fi
	exit 1
}

t0=$(now)
if [ -n "${REDIS_PORT:-}" ]; then
	port=$REDIS_PORT
	if ! port_free "$port"; then
		port_owner "$port" >&2
		die "REDIS_PORT ${port} on 127.0.0.1 is already in use by another process"
	fi
	start_on "$port" || fail_with_log "$port"
	wait_up "$port" || fail_with_log "$port"
else
	# A port picked now may be grabbed by someone else before redis binds
	# it; retry a few times with a new port in that case.
	attempt=1
	while :; do
		port=$(free_port)
		if start_on "$port" && wait_up "$port"; then
			break
		fi
		if [ "$attempt" -ge 3 ]; then
			fail_with_log "$port"
		fi
		log "start on port ${port} failed (attempt ${attempt}); retrying on another port"
		pid=$(running_pid)
		if [ -n "$pid" ]; then
			stop_pid redis-server "$pid" 5
		fi
		attempt=$((attempt + 1))
	done
fi

printf '%s\n' "$port" >"$PORTFILE"
write_env "$port"
log "up on 127.0.0.1:${port} (pid $(read_pidfile "$PIDFILE")) ($(since "$t0")s); wrote ${ENVFILE}"

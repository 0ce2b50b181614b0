#!/usr/bin/env bash
#
# redis-sentinel.sh - a private, throw-away Redis Sentinel setup on
# loopback: one master, one replica and three sentinels (quorum 2), for the
# ec2proxy topology tests, the benchmark, or an operator trying ec2proxy
# against Sentinel.
#
# Usage: test/scripts/redis-sentinel.sh up STATE_DIR
#        test/scripts/redis-sentinel.sh down STATE_DIR
#
# Environment (up):
#   REDIS_SENTINEL_MASTER_NAME   the monitored master's name (default ec2proxy)
#   REDIS_SENTINEL_DOWN_AFTER    down-after-milliseconds (default 1000)
#   REDIS_SENTINEL_FAILOVER_TIMEOUT  failover-timeout in ms (default 5000)
#   REDIS_WAIT                   seconds to wait for each stage (default 30)
#
# Every process listens on 127.0.0.1 on a port picked free at run time and
# is daemonized with STATE_DIR/{master,replica,sentinel1..3}/{redis.pid,
# redis.log}; the data nodes keep nothing on disk (no RDB, no AOF), the
# sentinels rewrite their own STATE_DIR/sentinelN/sentinel.conf as Sentinel
# does. With the defaults a killed master is replaced within a few seconds.
# When the replica is in sync and every sentinel knows the replica and the
# two other sentinels, STATE_DIR/redis-sentinel.env is written:
#
#   export EC2PROXY_TEST_REDIS_SENTINEL_ADDRS=127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3
#   export EC2PROXY_TEST_REDIS_SENTINEL_MASTER=ec2proxy
#
# (ec2proxy: redis.addrs = the sentinels, redis.master_name = the name.)
# `up` on a STATE_DIR whose setup is healthy reuses it (only the env file is
# rewritten); anything else left there is stopped and started afresh.
# `down` stops every process (SIGTERM, SIGKILL after REDIS_STOP_TIMEOUT,
# default 10 s), removes the env file and the sentinel state, keeps the
# logs; it is idempotent.
set -euo pipefail

SCRIPT_NAME=redis-sentinel
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

[ $# -eq 2 ] || die "usage: $0 up|down STATE_DIR"
CMD=$1
check_state_dir "$2"
STATE=$(abspath "$2")

NAME=${REDIS_SENTINEL_MASTER_NAME:-ec2proxy}
DOWN_AFTER=${REDIS_SENTINEL_DOWN_AFTER:-1000}
FAILOVER_TIMEOUT=${REDIS_SENTINEL_FAILOVER_TIMEOUT:-5000}
WAIT=${REDIS_WAIT:-30}
ENVFILE="${STATE}/redis-sentinel.env"
PROCS=(master replica sentinel1 sentinel2 sentinel3)

for v in DOWN_AFTER FAILOVER_TIMEOUT WAIT; do
	case ${!v} in '' | *[!0-9]*) die "${v}='${!v}' is not a number" ;; esac
done
case $NAME in '' | *[!A-Za-z0-9_.-]*) die "REDIS_SENTINEL_MASTER_NAME='${NAME}': letters, digits, _ . - only" ;; esac

rcli() {
	local port=$1
	shift
	timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# proc_pid NAME - PID of process NAME (master, replica, sentinelN) if it runs.
proc_pid() {
	local pid
	pid=$(read_pidfile "${STATE}/$1/redis.pid")
	if [ -n "$pid" ] && pid_alive "$pid" &&
		[ "$(readlink "/proc/${pid}/exe" 2>/dev/null || true)" = "$(readlink -f "$(command -v redis-server)")" ]; then
		printf '%s' "$pid"
	fi
}

proc_port() {
	cat "${STATE}/$1/port" 2>/dev/null || true
}

stop_all() {
	local p pid stopped=0
	for p in "${PROCS[@]}"; do
		[ -d "${STATE}/${p}" ] || continue
		pid=$(proc_pid "$p")
		if [ -n "$pid" ]; then
			stop_pid "redis ${p}" "$pid" "${REDIS_STOP_TIMEOUT:-10}"
			stopped=$((stopped + 1))
		fi
		rm -f "${STATE}/${p}/redis.pid" "${STATE}/${p}/port" "${STATE}/${p}/sentinel.conf"
	done
	rm -f "$ENVFILE"
	printf '%s' "$stopped"
}

free_ports() {
	"$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
EOF
}

# start_data NAME PORT [MASTER_PORT] - a master, or a replica of MASTER_PORT.
start_data() {
	local p=$1 port=$2 dir="${STATE}/$1" extra=()
	[ $# -lt 3 ] || extra=(--replicaof 127.0.0.1 "$3")
	mkdir -p "$dir"
	rm -f "${dir}/redis.pid"
	: >"${dir}/redis.log"
	redis-server \
		--port "$port" \
		--bind 127.0.0.1 \
		--protected-mode yes \
		--repl-diskless-sync yes \
		--repl-diskless-sync-delay 0 \
		--save '' \
		--appendonly no \
		--dir "$dir" \
		--daemonize yes \
		--pidfile "${dir}/redis.pid" \
		--logfile "${dir}/redis.log" \
		--loglevel notice \
		"${extra[@]}" \
		</dev/null >>"${dir}/redis.log" 2>&1 9>&-
	printf '%s\n' "$port" >"${dir}/port"
}

# start_sentinel NAME PORT MASTER_PORT - a sentinel monitoring the master.
# Sentinel rewrites its configuration file, so each gets its own.
start_sentinel() {
	local p=$1 port=$2 mport=$3 dir="${STATE}/$1"
	mkdir -p "$dir"
	rm -f "${dir}/redis.pid"
	: >"${dir}/redis.log"
	cat >"${dir}/sentinel.conf" <<EOF
port ${port}
bind 127.0.0.1
protected-mode yes
daemonize yes
pidfile ${dir}/redis.pid
logfile ${dir}/redis.log
loglevel notice
dir ${dir}
sentinel monitor ${NAME} 127.0.0.1 ${mport} 2
sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER}
sentinel failover-timeout ${NAME} ${FAILOVER_TIMEOUT}
sentinel parallel-syncs ${NAME} 1
EOF
	redis-server "${dir}/sentinel.conf" --sentinel </dev/null >>"${dir}/redis.log" 2>&1 9>&-
	printf '%s\n' "$port" >"${dir}/port"
}

deadline_passed() {
	awk -v a="$1" -v b="$(now)" -v l="$WAIT" 'BEGIN { exit !(b - a > l) }'
}

# wait_ping NAME - wait until NAME answers PING; false if it died or WAIT
# passed.
wait_ping() {
	local p=$1 t0 port pid
	t0=$(now)
	port=$(proc_port "$p")
	while :; do
		[ "$(rcli "$port" ping)" = PONG ] && return 0
		pid=$(read_pidfile "${STATE}/${p}/redis.pid")
		if [ -n "$pid" ] && ! pid_alive "$pid"; then
			return 1
		fi
		deadline_passed "$t0" && return 1
		sleep 0.05
	done
}

# field NAME - the value after line NAME in a redis-cli RESP2 flat list.
field() {
	awk -v k="$1" 'found { print; exit } $0 == k { found = 1 }'
}

# healthy - the replica is in sync with the master, and every sentinel
# agrees on the master, knows the replica and the two other sentinels.
healthy() {
	local info s out mport
	mport=$(proc_port master)
	info=$(rcli "$(proc_port replica)" info replication) || return 1
	case $info in *master_link_status:up*) ;; *) return 1 ;; esac
	case $info in *"master_port:${mport}"*) ;; *) return 1 ;; esac
	for s in sentinel1 sentinel2 sentinel3; do
		out=$(rcli "$(proc_port "$s")" sentinel master "$NAME") || return 1
		[ "$(field port <<<"$out")" = "$mport" ] || return 1
		[ "$(field flags <<<"$out")" = master ] || return 1
		[ "$(field num-slaves <<<"$out")" = 1 ] || return 1
		[ "$(field num-other-sentinels <<<"$out")" = 2 ] || return 1
	done
}

log_tails() {
	local p
	for p in "${PROCS[@]}"; do
		[ -f "${STATE}/${p}/redis.log" ] || continue
		log "last lines of ${STATE}/${p}/redis.log:"
		tail -n 5 "${STATE}/${p}/redis.log" >&2 || true
	done
}

write_env() {
	local addrs
	addrs="127.0.0.1:$(proc_port sentinel1),127.0.0.1:$(proc_port sentinel2),127.0.0.1:$(proc_port sentinel3)"
	printf 'export EC2PROXY_TEST_REDIS_SENTINEL_ADDRS=%s\nexport EC2PROXY_TEST_REDIS_SENTINEL_MASTER=%s\n' "$addrs" "$NAME" |
		write_file_atomic "$ENVFILE"
	printf '%s' "$addrs"
}

case $CMD in
up) ;;
down)
	if [ ! -d "$STATE" ]; then
		log "no state dir ${STATE}; nothing to stop"
		exit 0
	fi
	take_lock "${STATE}/.redis-sentinel.lock"
	t0=$(now)
	n=$(stop_all)
	log "stopped ${n} process(es) ($(since "$t0")s)"
	exit 0
	;;
*) die "usage: $0 up|down STATE_DIR" ;;
esac

command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run test/scripts/deps.sh"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found; run test/scripts/deps.sh"
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
take_lock "${STATE}/.redis-sentinel.lock"
T_ALL=$(now)

running=0
for p in "${PROCS[@]}"; do
	[ -n "$(proc_pid "$p")" ] && running=$((running + 1))
done
if [ "$running" -eq "${#PROCS[@]}" ] && healthy; then
	addrs=$(write_env)
	log "already up: sentinels ${addrs}, master ${NAME}; wrote ${ENVFILE}"
	exit 0
fi
if [ "$running" -gt 0 ] || [ -d "${STATE}/master" ]; then
	log "stopping what is left in ${STATE} (${running} process(es) running)"
	stop_all >/dev/null
fi

fail() {
	log "$*"
	log_tails
	stop_all >/dev/null
	exit 1
}

# start_one NAME START_FN ARGS... - start NAME on a fresh free port,
# retrying on other ports if it does not come up (the port may be taken
# between the pick and the bind).
start_one() {
	local p=$1 fn=$2 attempt=1 port pid
	shift 2
	while :; do
		port=$(free_ports 1)
		if "$fn" "$p" "$port" "$@" && wait_ping "$p"; then
			return 0
		fi
		pid=$(proc_pid "$p")
		[ -z "$pid" ] || stop_pid "redis ${p}" "$pid" 5
		if [ "$attempt" -ge 3 ]; then
			log "${p} did not start; last lines of ${STATE}/${p}/redis.log:"
			tail -n 20 "${STATE}/${p}/redis.log" >&2 || true
			return 1
		fi
		log "${p} on port ${port} failed (attempt ${attempt}); retrying on another port"
		attempt=$((attempt + 1))
	done
}

start_data_nodes() {
	start_one master start_data &&
		start_one replica start_data "$(proc_port master)"
}
step "started master and replica" start_data_nodes || fail "could not start the data nodes"

start_sentinels() {
	local s
	for s in sentinel1 sentinel2 sentinel3; do
		start_one "$s" start_sentinel "$(proc_port master)" || return 1
	done
}
step "started 3 sentinels (quorum 2, down-after ${DOWN_AFTER} ms)" start_sentinels ||
	fail "could not start the sentinels"

wait_healthy() {
	local t0
	t0=$(now)
	until healthy; do
		deadline_passed "$t0" && return 1
		sleep 0.1
	done
}
step "replica in sync, sentinels know each other and the replica" wait_healthy ||
	fail "the setup did not become healthy within ${WAIT}s"

addrs=$(write_env)
log "up: sentinels ${addrs}, master ${NAME} on 127.0.0.1:$(proc_port master) ($(since "$T_ALL")s); wrote ${ENVFILE}"

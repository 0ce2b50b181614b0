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
# shellcheck source-path=SCRIPTDIR source=redis-lib.sh
. "${SCRIPT_DIR}/redis-lib.sh"
redis_args "$@"

NAME=${REDIS_SENTINEL_MASTER_NAME:-ec2proxy}
DOWN_AFTER=${REDIS_SENTINEL_DOWN_AFTER:-1000}
FAILOVER_TIMEOUT=${REDIS_SENTINEL_FAILOVER_TIMEOUT:-5000}
PROCS=(master replica sentinel1 sentinel2 sentinel3)
# Process NAME lives in STATE_DIR/NAME; stop_all also removes a sentinel's
# rewritten configuration.
PROC_LABEL=redis
PROC_FILES=(sentinel.conf)

need_numbers DOWN_AFTER FAILOVER_TIMEOUT WAIT
case $NAME in '' | *[!A-Za-z0-9_.-]*) die "REDIS_SENTINEL_MASTER_NAME='${NAME}': letters, digits, _ . - only" ;; esac

# procs - the processes of the setup (master, replica, sentinelN).
procs() {
	printf '%s\n' "${PROCS[@]}"
}

# start_data NAME PORT [MASTER_PORT] - a master, or a replica of MASTER_PORT.
start_data() {
	local extra=()
	[ $# -lt 3 ] || extra=(--replicaof 127.0.0.1 "$3")
	start_redis "$1" "$2" "${extra[@]}"
}

# start_sentinel NAME PORT MASTER_PORT - a sentinel monitoring the master.
# Sentinel rewrites its configuration file, so each gets its own.
start_sentinel() {
	local port=$2 mport=$3 dir="${STATE}/$1"
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

# field NAME - the value after line NAME in a redis-cli RESP2 flat list.
field() {
	awk -v k="$1" 'found { print; exit } $0 == k { found = 1 }'
}

# healthy - the replica is in sync with the master, and every sentinel
# agrees on the master, knows the replica and the two other sentinels.
healthy() {
	local info s out mport
	mport=$(redis_port master)
	info=$(rcli "$(redis_port replica)" info replication) || return 1
	case $info in *master_link_status:up*) ;; *) return 1 ;; esac
	case $info in *"master_port:${mport}"*) ;; *) return 1 ;; esac
	for s in sentinel1 sentinel2 sentinel3; do
		out=$(rcli "$(redis_port "$s")" sentinel master "$NAME") || return 1
		[ "$(field port <<<"$out")" = "$mport" ] || return 1
		[ "$(field flags <<<"$out")" = master ] || return 1
		[ "$(field num-slaves <<<"$out")" = 1 ] || return 1
		[ "$(field num-other-sentinels <<<"$out")" = 2 ] || return 1
	done
}

# write_env - write ENVFILE (the sentinels and the master name) and print
# the sentinels.
write_env() {
	local addrs
	addrs=$(redis_addrs sentinel1 sentinel2 sentinel3)
	printf 'export EC2PROXY_TEST_REDIS_SENTINEL_ADDRS=%s\nexport EC2PROXY_TEST_REDIS_SENTINEL_MASTER=%s\n' "$addrs" "$NAME" |
		write_file_atomic "$ENVFILE"
	printf '%s' "$addrs"
}

case $CMD in
up) redis_up_begin ;;
down) redis_down "process(es)" ;;
*) die "usage: $0 up|down STATE_DIR" ;;
esac

running=$(count_running "${PROCS[@]}")
if [ "$running" -eq "${#PROCS[@]}" ] && healthy; then
	addrs=$(write_env)
	log "already up: sentinels ${addrs}, master ${NAME}; wrote ${ENVFILE}"
	exit 0
fi
if [ "$running" -gt 0 ] || [ -d "${STATE}/master" ]; then
	log "stopping what is left in ${STATE} (${running} process(es) running)"
	stop_all >/dev/null
fi

start_data_nodes() {
	start_one master 1 start_data &&
		start_one replica 1 start_data "$(redis_port master)"
}
step "started master and replica" start_data_nodes || fail "could not start the data nodes"

start_sentinels() {
	local s
	for s in sentinel1 sentinel2 sentinel3; do
		start_one "$s" 1 start_sentinel "$(redis_port master)" || return 1
	done
}
step "started 3 sentinels (quorum 2, down-after ${DOWN_AFTER} ms)" start_sentinels ||
	fail "could not start the sentinels"

step "replica in sync, sentinels know each other and the replica" wait_until healthy ||
	fail "the setup did not become healthy within ${WAIT}s"

addrs=$(write_env)
log "up: sentinels ${addrs}, master ${NAME} on 127.0.0.1:$(redis_port master) ($(since "$T_ALL")s); wrote ${ENVFILE}"

#!/usr/bin/env bash
#
# redis-cluster.sh - a private, throw-away Redis Cluster on loopback: 3
# masters and 3 replicas (real redis-server processes in cluster mode),
# for the ec2proxy topology tests, the benchmark, or an operator trying
# ec2proxy against a Cluster.
#
# Usage: test/scripts/redis-cluster.sh up STATE_DIR
#        test/scripts/redis-cluster.sh down STATE_DIR
#
# Environment (up):
#   REDIS_CLUSTER_MASTERS       number of masters (default 3)
#   REDIS_CLUSTER_REPLICAS      replicas per master (default 1; at least 1
#                               for a failover)
#   REDIS_CLUSTER_NODE_TIMEOUT  cluster-node-timeout in ms (default 1000: a
#                               killed master is replaced within a few
#                               seconds)
#   REDIS_WAIT                  seconds to wait for each stage (default 30)
#
# Each node listens on 127.0.0.1 on a port picked free at run time (its
# cluster bus on another free port, cluster-port), keeps no data on disk
# (no RDB, no AOF) and is daemonized with STATE_DIR/nodeN/{redis.pid,
# redis.log, nodes.conf}. Replicas sync diskless without delay, may always
# fail over (cluster-replica-validity-factor 0), and a cluster with a shard
# down keeps serving the other shards (cluster-require-full-coverage no).
# When every node reports cluster_state:ok and every replica is in sync,
# STATE_DIR/redis-cluster.env is written:
#
#   export EC2PROXY_TEST_REDIS_CLUSTER_ADDRS=127.0.0.1:P1,...   (every node:
#                                                              the seed list)
#
# `up` on a STATE_DIR whose cluster is healthy reuses it (only the env file
# is rewritten); anything else left there is stopped and started afresh.
# `down` stops every node (SIGTERM, SIGKILL after REDIS_STOP_TIMEOUT,
# default 10 s), removes the env file and the cluster state, keeps the logs;
# it is idempotent.
set -euo pipefail

SCRIPT_NAME=redis-cluster
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

[ $# -eq 2 ] || die "usage: $0 up|down STATE_DIR"
CMD=$1
check_state_dir "$2"
STATE=$(abspath "$2")

MASTERS=${REDIS_CLUSTER_MASTERS:-3}
REPLICAS=${REDIS_CLUSTER_REPLICAS:-1}
NODE_TIMEOUT=${REDIS_CLUSTER_NODE_TIMEOUT:-1000}
WAIT=${REDIS_WAIT:-30}
ENVFILE="${STATE}/redis-cluster.env"

for v in MASTERS REPLICAS NODE_TIMEOUT WAIT; do
	case ${!v} in '' | *[!0-9]*) die "${v}='${!v}' is not a number" ;; esac
done
[ "$MASTERS" -ge 3 ] || die "a Redis Cluster needs at least 3 masters (REDIS_CLUSTER_MASTERS=${MASTERS})"
NODES=$((MASTERS * (1 + REPLICAS)))

# rcli PORT ARGS... - redis-cli against one node, quiet and bounded.
rcli() {
	local port=$1
	shift
	timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# node_pid N - PID of node N if its redis-server runs.
node_pid() {
	local pid
	pid=$(read_pidfile "${STATE}/node$1/redis.pid")
	if [ -n "$pid" ] && pid_alive "$pid" &&
		[ "$(readlink "/proc/${pid}/exe" 2>/dev/null || true)" = "$(readlink -f "$(command -v redis-server)")" ]; then
		printf '%s' "$pid"
	fi
}

# node_port N - the client port of node N, or nothing.
node_port() {
	cat "${STATE}/node$1/port" 2>/dev/null || true
}

# stop_all - stop every node this STATE_DIR knows of and forget the cluster.
stop_all() {
	local d n pid stopped=0
	for d in "${STATE}"/node*; do
		[ -d "$d" ] || continue
		n=${d##*/node}
		pid=$(node_pid "$n")
		if [ -n "$pid" ]; then
			stop_pid "redis-server node${n}" "$pid" "${REDIS_STOP_TIMEOUT:-10}"
			stopped=$((stopped + 1))
		fi
		rm -f "${d}/redis.pid" "${d}/nodes.conf" "${d}/port" "${d}/bus-port"
	done
	rm -f "$ENVFILE"
	printf '%s' "$stopped"
}

# free_ports N - N distinct TCP ports free on 127.0.0.1 right now (all
# bound at once, so they differ), one a line.
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

# start_node N PORT BUSPORT - start node N daemonized.
start_node() {
	local n=$1 port=$2 bus=$3 dir="${STATE}/node$1"
	mkdir -p "$dir"
	rm -f "${dir}/nodes.conf" "${dir}/redis.pid"
	: >"${dir}/redis.log"
	redis-server \
		--port "$port" \
		--bind 127.0.0.1 \
		--protected-mode yes \
		--cluster-enabled yes \
		--cluster-port "$bus" \
		--cluster-config-file "${dir}/nodes.conf" \
		--cluster-node-timeout "$NODE_TIMEOUT" \
		--cluster-replica-validity-factor 0 \
		--cluster-require-full-coverage no \
		--repl-diskless-sync yes \
		--repl-diskless-sync-delay 0 \
		--save '' \
		--appendonly no \
		--dir "$dir" \
		--daemonize yes \
		--pidfile "${dir}/redis.pid" \
		--logfile "${dir}/redis.log" \
		--loglevel notice \
		</dev/null >>"${dir}/redis.log" 2>&1 9>&-
	printf '%s\n' "$port" >"${dir}/port"
	printf '%s\n' "$bus" >"${dir}/bus-port"
}

# deadline_passed T0 - true once WAIT seconds have passed since T0.
deadline_passed() {
	awk -v a="$1" -v b="$(now)" -v l="$WAIT" 'BEGIN { exit !(b - a > l) }'
}

# wait_ping N - wait until node N answers PING; false if it died or WAIT
# passed.
wait_ping() {
	local n=$1 t0 port pid
	t0=$(now)
	port=$(node_port "$n")
	while :; do
		[ "$(rcli "$port" ping)" = PONG ] && return 0
		pid=$(read_pidfile "${STATE}/node${n}/redis.pid")
		if [ -n "$pid" ] && ! pid_alive "$pid"; then
			return 1
		fi
		deadline_passed "$t0" && return 1
		sleep 0.05
	done
}

# cluster_healthy - every node says cluster_state:ok, sees every other node
# connected, and every replica has its master link up and in sync.
cluster_healthy() {
	local n port info nodes
	for n in $(seq 1 "$NODES"); do
		port=$(node_port "$n")
		[ -n "$port" ] || return 1
		info=$(rcli "$port" cluster info) || return 1
		case $info in *cluster_state:ok*) ;; *) return 1 ;; esac
		nodes=$(rcli "$port" cluster nodes) || return 1
		[ "$(grep -c ' connected' <<<"$nodes")" -eq "$NODES" ] || return 1
		grep -q 'fail\|handshake\|noaddr' <<<"$nodes" && return 1
		info=$(rcli "$port" info replication) || return 1
		case $info in
		*role:slave*)
			case $info in *master_link_status:up*) ;; *) return 1 ;; esac
			case $info in *master_sync_in_progress:1*) return 1 ;; esac
			;;
		esac
	done
	return 0
}

log_tails() {
	local d
	for d in "${STATE}"/node*; do
		[ -f "${d}/redis.log" ] || continue
		log "last lines of ${d}/redis.log:"
		tail -n 5 "${d}/redis.log" >&2 || true
	done
}

write_env() {
	local n addrs=''
	for n in $(seq 1 "$NODES"); do
		addrs+="${addrs:+,}127.0.0.1:$(node_port "$n")"
	done
	printf 'export EC2PROXY_TEST_REDIS_CLUSTER_ADDRS=%s\n' "$addrs" | write_file_atomic "$ENVFILE"
	printf '%s' "$addrs"
}

case $CMD in
up) ;;
down)
	if [ ! -d "$STATE" ]; then
		log "no state dir ${STATE}; nothing to stop"
		exit 0
	fi
	take_lock "${STATE}/.redis-cluster.lock"
	t0=$(now)
	n=$(stop_all)
	log "stopped ${n} node(s) ($(since "$t0")s)"
	exit 0
	;;
*) die "usage: $0 up|down STATE_DIR" ;;
esac

command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run test/scripts/deps.sh"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found; run test/scripts/deps.sh"
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
take_lock "${STATE}/.redis-cluster.lock"
T_ALL=$(now)

# Reuse a healthy cluster of the same shape.
running=0
for n in $(seq 1 "$NODES"); do
	[ -n "$(node_pid "$n")" ] && running=$((running + 1))
done
if [ "$running" -eq "$NODES" ] && [ ! -d "${STATE}/node$((NODES + 1))" ] && cluster_healthy; then
	addrs=$(write_env)
	log "already up: ${addrs}; wrote ${ENVFILE}"
	exit 0
fi
if [ -n "$(ls -d "${STATE}"/node* 2>/dev/null)" ]; then
	log "stopping what is left in ${STATE} (${running} node(s) running)"
	stop_all >/dev/null
	rm -rf "${STATE}"/node*
fi

# Start the nodes. A port picked now may be taken before redis binds it:
# a node that does not come up is retried on new ports.
start_nodes() {
	local n attempt ports port bus pid
	for n in $(seq 1 "$NODES"); do
		attempt=1
		while :; do
			mapfile -t ports < <(free_ports 2)
			port=${ports[0]} bus=${ports[1]}
			if start_node "$n" "$port" "$bus" && wait_ping "$n"; then
				break
			fi
			pid=$(node_pid "$n")
			[ -z "$pid" ] || stop_pid "redis-server node${n}" "$pid" 5
			if [ "$attempt" -ge 3 ]; then
				log "node${n} did not start; last lines of ${STATE}/node${n}/redis.log:"
				tail -n 20 "${STATE}/node${n}/redis.log" >&2 || true
				return 1
			fi
			log "node${n} on ports ${port}/${bus} failed (attempt ${attempt}); retrying on other ports"
			attempt=$((attempt + 1))
		done
	done
}

fail() {
	log "$*"
	log_tails
	stop_all >/dev/null
	exit 1
}

step "started ${NODES} redis-server nodes" start_nodes || fail "could not start the nodes"

# redis-cli --cluster create makes the first MASTERS nodes masters and
# gives each REPLICAS replicas, assigns the 16384 slots and joins them.
create() {
	local n seeds=()
	for n in $(seq 1 "$NODES"); do
		seeds+=("127.0.0.1:$(node_port "$n")")
	done
	if ! out=$(timeout "$WAIT" redis-cli --cluster create "${seeds[@]}" \
		--cluster-replicas "$REPLICAS" --cluster-yes 2>&1); then
		printf '%s\n' "$out" | tail -n 20 >&2
		return 1
	fi
}
step "redis-cli --cluster create (${MASTERS} masters, ${REPLICAS} replica(s) each)" create ||
	fail "redis-cli --cluster create failed"

wait_healthy() {
	local t0
	t0=$(now)
	until cluster_healthy; do
		deadline_passed "$t0" && return 1
		sleep 0.1
	done
}
step "cluster_state:ok on every node, replicas in sync" wait_healthy ||
	fail "the cluster did not become healthy within ${WAIT}s"

addrs=$(write_env)
log "up: ${addrs} ($(since "$T_ALL")s); wrote ${ENVFILE}"

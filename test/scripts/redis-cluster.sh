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
# shellcheck source-path=SCRIPTDIR source=redis-lib.sh
. "${SCRIPT_DIR}/redis-lib.sh"
redis_args "$@"

MASTERS=${REDIS_CLUSTER_MASTERS:-3}
REPLICAS=${REDIS_CLUSTER_REPLICAS:-1}
NODE_TIMEOUT=${REDIS_CLUSTER_NODE_TIMEOUT:-1000}
# Node N lives in STATE_DIR/nodeN; stop_all also forgets its cluster state.
PROC_LABEL=redis-server
PROC_FILES=(nodes.conf bus-port)

need_numbers MASTERS REPLICAS NODE_TIMEOUT WAIT
[ "$MASTERS" -ge 3 ] || die "a Redis Cluster needs at least 3 masters (REDIS_CLUSTER_MASTERS=${MASTERS})"
NODES=$((MASTERS * (1 + REPLICAS)))
# The nodes of this shape: node1 ... nodeNODES.
mapfile -t NODE_NAMES < <(seq -f 'node%g' 1 "$NODES")

# procs - every node directory in STATE_DIR (node1, node2, ...), whatever
# the shape of the cluster that left it.
procs() {
	local d
	for d in "${STATE}"/node*; do
		[ -d "$d" ] || continue
		printf '%s\n' "${d##*/}"
	done
}

# start_node NAME PORT BUSPORT - start node NAME, its cluster bus on
# BUSPORT.
start_node() {
	local bus=$3 dir="${STATE}/$1"
	rm -f "${dir}/nodes.conf"
	start_redis "$1" "$2" \
		--cluster-enabled yes \
		--cluster-port "$bus" \
		--cluster-config-file "${dir}/nodes.conf" \
		--cluster-node-timeout "$NODE_TIMEOUT" \
		--cluster-replica-validity-factor 0 \
		--cluster-require-full-coverage no
	printf '%s\n' "$bus" >"${dir}/bus-port"
}

# cluster_healthy - every node says cluster_state:ok, sees every other node
# connected, and every replica has its master link up and in sync.
cluster_healthy() {
	local n port info nodes
	for n in "${NODE_NAMES[@]}"; do
		port=$(redis_port "$n")
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

# write_env - write ENVFILE (every node: the seed list) and print the list.
write_env() {
	local addrs
	addrs=$(redis_addrs "${NODE_NAMES[@]}")
	printf 'export EC2PROXY_TEST_REDIS_CLUSTER_ADDRS=%s\n' "$addrs" | write_file_atomic "$ENVFILE"
	printf '%s' "$addrs"
}

case $CMD in
up) redis_up_begin ;;
down) redis_down "node(s)" ;;
*) die "usage: $0 up|down STATE_DIR" ;;
esac

# Reuse a healthy cluster of the same shape.
running=$(count_running "${NODE_NAMES[@]}")
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

# Start the nodes, each on a client port and a cluster bus port.
start_nodes() {
	local n
	for n in "${NODE_NAMES[@]}"; do
		start_one "$n" 2 start_node || return 1
	done
}
step "started ${NODES} redis-server nodes" start_nodes || fail "could not start the nodes"

# redis-cli --cluster create makes the first MASTERS nodes masters and
# gives each REPLICAS replicas, assigns the 16384 slots and joins them.
create() {
	local n seeds=()
	for n in "${NODE_NAMES[@]}"; do
		seeds+=("127.0.0.1:$(redis_port "$n")")
	done
	if ! out=$(timeout "$WAIT" redis-cli --cluster create "${seeds[@]}" \
		--cluster-replicas "$REPLICAS" --cluster-yes 2>&1); then
		printf '%s\n' "$out" | tail -n 20 >&2
		return 1
	fi
}
step "redis-cli --cluster create (${MASTERS} masters, ${REPLICAS} replica(s) each)" create ||
	fail "redis-cli --cluster create failed"

step "cluster_state:ok on every node, replicas in sync" wait_until cluster_healthy ||
	fail "the cluster did not become healthy within ${WAIT}s"

addrs=$(write_env)
log "up: ${addrs} ($(since "$T_ALL")s); wrote ${ENVFILE}"

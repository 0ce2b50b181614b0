# shellcheck shell=bash
#
# redis-lib.sh - helpers shared by redis-cluster.sh and redis-sentinel.sh,
# which take `up|down STATE_DIR` and run several redis-server processes on
# loopback, each in its own process directory STATE_DIR/NAME (node1,
# master, sentinel2, ...) holding its redis.pid, redis.log and port (its
# client port). Source it instead of lib.sh (it sources lib.sh), do not
# execute it:
#
#   . "${SCRIPT_DIR}/redis-lib.sh"
#
# The sourcing script sets SCRIPT_NAME and SCRIPT_DIR first, then calls
# redis_args "$@" (which sets CMD, STATE, WAIT and ENVFILE), sets
#   PROC_LABEL  how log lines name a process: "PROC_LABEL NAME"
#   PROC_FILES  (array) what stop_all removes from a process directory
#               besides redis.pid and port
# and defines procs, which prints the NAMEs of its process directories, one
# a line. The env file is STATE_DIR/SCRIPT_NAME.env, the lock
# STATE_DIR/.SCRIPT_NAME.lock.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

# redis_args ARGS... - take the arguments `up|down STATE_DIR`: set CMD,
# STATE (STATE_DIR made absolute), WAIT (REDIS_WAIT: seconds to wait for
# each stage, default 30) and ENVFILE.
# shellcheck disable=SC2034 # CMD is for the sourcing script
redis_args() {
	[ $# -eq 2 ] || die "usage: $0 up|down STATE_DIR"
	CMD=$1
	check_state_dir "$2"
	STATE=$(abspath "$2")
	WAIT=${REDIS_WAIT:-30}
	ENVFILE="${STATE}/${SCRIPT_NAME}.env"
}

# rcli PORT ARGS... - redis-cli against one process, quiet and bounded.
rcli() {
	local port=$1
	shift
	timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# redis_pid NAME - PID of process NAME if its redis-server runs.
redis_pid() {
	redis_server_pid "${STATE}/$1/redis.pid"
}

# redis_port NAME - the client port of process NAME, or nothing.
redis_port() {
	cat "${STATE}/$1/port" 2>/dev/null || true
}

# redis_addrs NAME... - 127.0.0.1:PORT of each NAME, comma-separated.
redis_addrs() {
	local p addrs=''
	for p in "$@"; do
		addrs+="${addrs:+,}127.0.0.1:$(redis_port "$p")"
	done
	printf '%s' "$addrs"
}

# count_running NAME... - how many of the processes NAME... run.
count_running() {
	local p running=0
	for p in "$@"; do
		[ -z "$(redis_pid "$p")" ] || running=$((running + 1))
	done
	printf '%s' "$running"
}

# stop_all - stop every process procs names, remove its redis.pid, port and
# PROC_FILES, and ENVFILE; print how many were running.
stop_all() {
	local p f pid stopped=0
	for p in $(procs); do
		[ -d "${STATE}/${p}" ] || continue
		pid=$(redis_pid "$p")
		if [ -n "$pid" ]; then
			stop_pid "${PROC_LABEL} ${p}" "$pid" "${REDIS_STOP_TIMEOUT:-10}"
			stopped=$((stopped + 1))
		fi
		rm -f "${STATE}/${p}/redis.pid" "${STATE}/${p}/port"
		for f in "${PROC_FILES[@]}"; do
			rm -f "${STATE}/${p}/${f}"
		done
	done
	rm -f "$ENVFILE"
	printf '%s' "$stopped"
}

# start_redis NAME PORT ARGS... - start process NAME: a daemonized
# redis-server on 127.0.0.1:PORT that keeps nothing on disk (no RDB, no
# AOF) and feeds its replicas diskless without delay, with ARGS added.
start_redis() {
	local port=$2 dir="${STATE}/$1"
	shift 2
	mkdir -p "$dir"
	rm -f "${dir}/redis.pid"
	: >"${dir}/redis.log"
	# shellcheck disable=SC2094 # the redirect only catches errors printed before redis daemonizes
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
		"$@" \
		</dev/null >>"${dir}/redis.log" 2>&1 9>&-
	printf '%s\n' "$port" >"${dir}/port"
}

# deadline_passed T0 - true once WAIT seconds have passed since T0.
deadline_passed() {
	awk -v a="$1" -v b="$(now)" -v l="$WAIT" 'BEGIN { exit !(b - a > l) }'
}

# wait_ping NAME - wait until NAME answers PING; false if it died or WAIT
# passed.
wait_ping() {
	local p=$1 t0 port pid
	t0=$(now)
	port=$(redis_port "$p")
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

# wait_until CMD... - run CMD every 0.1 s until it succeeds; false once WAIT
# seconds have passed.
wait_until() {
	local t0
	t0=$(now)
	until "$@"; do
		deadline_passed "$t0" && return 1
		sleep 0.1
	done
}

# start_one NAME NPORTS FN ARGS... - run `FN NAME PORT... ARGS...` with
# NPORTS ports free right now and wait until NAME answers PING; a port may
# be taken between the pick and the bind, so a process that does not come
# up is retried on other ports, three attempts in all.
start_one() {
	local p=$1 nports=$2 fn=$3 attempt=1 ports pid
	shift 3
	while :; do
		mapfile -t ports < <(free_ports "$nports")
		if "$fn" "$p" "${ports[@]}" "$@" && wait_ping "$p"; then
			return 0
		fi
		pid=$(redis_pid "$p")
		[ -z "$pid" ] || stop_pid "${PROC_LABEL} ${p}" "$pid" 5
		if [ "$attempt" -ge 3 ]; then
			log "${p} did not start; last lines of ${STATE}/${p}/redis.log:"
			tail -n 20 "${STATE}/${p}/redis.log" >&2 || true
			return 1
		fi
		if [ "$nports" -eq 1 ]; then
			log "${p} on port ${ports[0]} failed (attempt ${attempt}); retrying on another port"
		else
			log "${p} on ports $(IFS=/ && printf '%s' "${ports[*]}") failed (attempt ${attempt}); retrying on other ports"
		fi
		attempt=$((attempt + 1))
	done
}

# log_tails - log the last lines of every process's redis.log.
log_tails() {
	local p
	for p in $(procs); do
		[ -f "${STATE}/${p}/redis.log" ] || continue
		log "last lines of ${STATE}/${p}/redis.log:"
		tail -n 5 "${STATE}/${p}/redis.log" >&2 || true
	done
}

# fail MSG... - log MSG and the tails of the logs, stop everything, exit 1.
fail() {
	log "$*"
	log_tails
	stop_all >/dev/null
	exit 1
}

# redis_down WHAT - the `down` command: stop every process, log how many
# WHAT (e.g. "node(s)") were stopped and exit 0.
redis_down() {
	local t0 n
	if [ ! -d "$STATE" ]; then
		log "no state dir ${STATE}; nothing to stop"
		exit 0
	fi
	take_lock "${STATE}/.${SCRIPT_NAME}.lock"
	t0=$(now)
	n=$(stop_all)
	log "stopped ${n} $1 ($(since "$t0")s)"
	exit 0
}

# redis_up_begin - the start of `up`: check for the Redis tools, create
# STATE_DIR (STATE becomes its canonical path), take its lock and set T_ALL
# (when `up` began).
redis_up_begin() {
	command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run test/scripts/deps.sh"
	command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found; run test/scripts/deps.sh"
	mkdir -p "$STATE"
	STATE=$(cd "$STATE" && pwd)
	take_lock "${STATE}/.${SCRIPT_NAME}.lock"
	# shellcheck disable=SC2034 # for the sourcing script
	T_ALL=$(now)
}

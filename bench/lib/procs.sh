# shellcheck shell=bash
#
# procs.sh - start, pin, wait for and stop the benchmark's processes.
# Sourced by bench/run.sh after test/scripts/lib.sh. Every process started
# with start_bg is stopped by cleanup (the EXIT trap), as are Redis and
# Keystone once run.sh has started them.

BG_NAMES=()
BG_PIDS=()
STARTED_REDIS=0
STARTED_KEYSTONE=0

# on CPUS CMD... - run CMD pinned to CPUS (no pinning if CPUS is empty).
on() {
	local cpus=$1
	shift
	if [ -n "$cpus" ]; then
		taskset -c "$cpus" "$@"
	else
		"$@"
	fi
}

# pin_running CPUS PID... - move running processes (all their threads, and
# their children) to CPUS; for daemons started in an earlier run.
pin_running() {
	local cpus=$1 pid kid
	shift
	[ -n "$cpus" ] || return 0
	for pid in "$@"; do
		[ -n "$pid" ] || continue
		for kid in "$pid" $(proc_children "$pid"); do
			taskset -a -p -c "$cpus" "$kid" >/dev/null 2>&1 || true
		done
	done
}

# start_bg NAME CPUS CMD... - start CMD in the background, output to
# RUN/NAME.log. CMD is started directly (taskset execs it), so the PID kept
# is the program's own, which stop_bg can signal.
start_bg() {
	local name=$1 cpus=$2
	shift 2
	local cmd=("$@")
	if [ -n "$cpus" ]; then
		cmd=(taskset -c "$cpus" "$@")
	fi
	"${cmd[@]}" >"${RUN}/${name}.log" 2>&1 &
	BG_NAMES+=("$name")
	BG_PIDS+=("$!")
}

bg_pid() {
	local i
	for i in "${!BG_NAMES[@]}"; do
		if [ "${BG_NAMES[$i]}" = "$1" ]; then
			printf '%s' "${BG_PIDS[$i]}"
			return
		fi
	done
}

# stop_bg NAME - SIGTERM (nginx: fast shutdown; ec2proxy: drain), then
# SIGKILL after 15 s.
stop_bg() {
	local i
	for i in "${!BG_NAMES[@]}"; do
		if [ "${BG_NAMES[$i]}" = "$1" ]; then
			if pid_alive "${BG_PIDS[$i]}"; then
				stop_pid "$1" "${BG_PIDS[$i]}" 15
			fi
			wait "${BG_PIDS[$i]}" 2>/dev/null || true
			unset "BG_NAMES[$i]" "BG_PIDS[$i]"
		fi
	done
}

cleanup() {
	local rc=$? i
	for i in "${!BG_NAMES[@]}"; do
		stop_bg "${BG_NAMES[$i]}"
	done
	if [ "$STARTED_KEYSTONE" = 1 ]; then
		bash "${REPO}/test/scripts/keystone-down.sh" "${STATE}/keystone" || true
	fi
	if [ "$STARTED_REDIS" = 1 ]; then
		bash "${REPO}/test/scripts/redis-down.sh" "${STATE}/redis" || true
	fi
	if [ "$rc" -ne 0 ]; then
		log "FAILED (status ${rc}); logs in ${RUN}"
	fi
	exit "$rc"
}

# wait_http URL STATUS SECONDS - wait until GET URL answers STATUS.
wait_http() {
	local url=$1 want=$2 limit=$3 t0 got
	t0=$(now)
	while :; do
		got=$(curl --noproxy '*' -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)
		[ "$got" = "$want" ] && return 0
		if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
			die "${url} did not answer ${want} within ${limit}s (last: ${got:-nothing}); logs in ${RUN}"
		fi
		sleep 0.1
	done
}

# env_get FILE VAR - the value of VAR in an env file of export lines.
env_get() {
	(
		# shellcheck disable=SC1090
		. "$1"
		printf '%s' "${!2:-}"
	)
}

# vm_kib PID FIELD - a /proc/PID/status memory field (VmRSS, VmHWM) in KiB.
vm_kib() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

# prune_runs N - keep the N newest run directories.
prune_runs() {
	local keep=$1
	# shellcheck disable=SC2012 # names are timestamps without spaces
	ls -1d "${STATE}"/runs/*/ 2>/dev/null | sort | head -n "-${keep}" | while read -r d; do
		rm -rf -- "$d"
	done
}

#!/usr/bin/env bash
#
# keystone-up.sh - run a real Keystone (Debian 12 package, 22.x / Zed) on
# loopback with sqlite for the ec2proxy integration tests, and create the
# users, projects, roles and EC2 credentials the tests use.
#
# Usage: test/scripts/keystone-up.sh STATE_DIR
#        (or KS_STATE=STATE_DIR test/scripts/keystone-up.sh)
#
# Environment (all optional):
#   KS_PORT            TCP port on 127.0.0.1. Default: the port recorded in
#                      STATE_DIR by the previous run, else 5000. "auto" picks
#                      a free port (or keeps the recorded one). If the port is
#                      held by anything other than this STATE_DIR's keystone
#                      the script fails with a clear message; it never
#                      silently moves to another port.
#   KS_PROCESSES       uwsgi worker processes (default 2).
#   KS_CACHE           "memory_pickle" (default: dogpile.cache.memory_pickle)
#                      or "none" (no cache; ec2tokens ~0.4 s per call).
#   KS_CACHE_TTL       seconds every cache entry lives, in every section
#                      (expiration_time and each cache_time; default 5).
#   KS_AUTH_TTL        [credential] auth_ttl in minutes (default 15).
#   KS_INSECURE_DEBUG  true/false (default false): detailed 401 messages.
#   KS_WAIT            seconds to wait for GET /v3 after start (default 90).
#   KS_STOP_TIMEOUT    seconds before SIGKILL when a restart is needed (15).
#   Only the port is remembered between runs; the other knobs are not, so a
#   re-run without KS_CACHE=none (say) restarts keystone with the defaults.
#
# What it does (see /work/shared/research/keystone-real.md §1):
#   - renders STATE_DIR/etc/keystone.conf (sqlite STATE_DIR/keystone.db,
#     fernet keys STATE_DIR/fernet-keys, credential keys
#     STATE_DIR/credential-keys, policy_dirs = empty STATE_DIR/etc/policy.d,
#     logs in STATE_DIR/log);
#   - first run only: keystone-manage db_sync + PRAGMA journal_mode=WAL,
#     fernet_setup, credential_setup (these two in parallel with db_sync),
#     bootstrap (in parallel with the uwsgi start; admin / admin-secret,
#     project admin, RegionOne, public endpoint http://127.0.0.1:PORT/v3);
#   - starts uwsgi (master, no lazy-apps, --http-socket as Debian's
#     init script: no keep-alive, so a client's idle connection cannot hold
#     one of the few single-threaded workers while other connections wait
#     in the listen queue until they time out; daemonized,
#     pidfile STATE_DIR/keystone.pid, log STATE_DIR/log/uwsgi.log) and waits
#     until GET /v3 answers;
#   - runs keystone-resources.py (idempotent) which writes
#     STATE_DIR/keystone.env, STATE_DIR/demo-ec2.env, STATE_DIR/admin-openrc.sh.
#
# Idempotent. If this STATE_DIR's keystone is already up with the same
# rendered config (port and process count included), only the health check
# and the resource check run (~2 s). If the config changed, keystone is
# restarted. Stop it with test/scripts/keystone-down.sh STATE_DIR [--purge].
set -euo pipefail

SCRIPT_NAME=keystone-up
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "${SCRIPT_DIR}/lib.sh"

T_ALL=$(now)

if [ $# -gt 1 ]; then
	die "usage: $0 STATE_DIR"
fi
STATE_ARG=${1:-${KS_STATE:-}}
check_state_dir "$STATE_ARG"
STATE=$(abspath "$STATE_ARG")
mkdir -p "${STATE}/etc/policy.d" "${STATE}/log"
STATE=$(cd "$STATE" && pwd)

ETC="${STATE}/etc"
CONF="${ETC}/keystone.conf"
PIDFILE="${STATE}/keystone.pid"
PORTFILE="${STATE}/keystone.port"
DB="${STATE}/keystone.db"
LOGDIR="${STATE}/log"
UWSGI_LOG="${LOGDIR}/uwsgi.log"
WSGI_APP=/usr/bin/keystone-wsgi-public
MANAGE=/usr/bin/keystone-manage

for f in "$MANAGE" "$WSGI_APP" /usr/bin/uwsgi /usr/lib/uwsgi/plugins/python3_plugin.so /usr/bin/curl "$PY"; do
	[ -e "$f" ] || die "$f is missing; run test/scripts/deps.sh"
done

# ---- knobs ---------------------------------------------------------------

KS_PROCESSES=${KS_PROCESSES:-2}
KS_CACHE=${KS_CACHE:-memory_pickle}
KS_CACHE_TTL=${KS_CACHE_TTL:-5}
KS_AUTH_TTL=${KS_AUTH_TTL:-15}
KS_WAIT=${KS_WAIT:-90}
KS_STOP_TIMEOUT=${KS_STOP_TIMEOUT:-15}

is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac }
if ! is_uint "$KS_PROCESSES" || [ "$KS_PROCESSES" -lt 1 ]; then
	die "KS_PROCESSES='${KS_PROCESSES}' must be a positive integer"
fi
is_uint "$KS_CACHE_TTL" || die "KS_CACHE_TTL='${KS_CACHE_TTL}' must be an integer (seconds)"
is_uint "$KS_AUTH_TTL" || die "KS_AUTH_TTL='${KS_AUTH_TTL}' must be an integer (minutes)"
is_uint "$KS_WAIT" || die "KS_WAIT='${KS_WAIT}' must be an integer (seconds)"
case $KS_CACHE in
none | off | false | 0) KS_CACHE=none ;;
memory_pickle | dogpile.cache.memory_pickle) KS_CACHE=memory_pickle ;;
*) die "KS_CACHE='${KS_CACHE}' must be memory_pickle or none (dogpile.cache.memory is broken with ec2tokens)" ;;
esac
case ${KS_INSECURE_DEBUG:-false} in
1 | true | True | TRUE | yes | on) INSECURE_DEBUG=true ;;
0 | false | False | FALSE | no | off | '') INSECURE_DEBUG=false ;;
*) die "KS_INSECURE_DEBUG='${KS_INSECURE_DEBUG}' must be true or false" ;;
esac
export KS_CACHE KS_CACHE_TTL KS_AUTH_TTL KS_PROCESSES
export KS_INSECURE_DEBUG_NORM=$INSECURE_DEBUG

take_lock "${STATE}/.keystone.lock"

# ---- helpers -------------------------------------------------------------

# ks_pid - PID of this STATE_DIR's uwsgi master, if it runs.
ks_pid() {
	local pid
	pid=$(read_pidfile "$PIDFILE")
	if [ -n "$pid" ] && pid_alive "$pid"; then
		case $(proc_cmdline "$pid") in
		*uwsgi*"--pidfile ${PIDFILE} "*) printf '%s' "$pid" ;;
		esac
	fi
}

# http_ok URL - true if GET URL answers 200 within 3 s.
http_ok() {
	[ "$(curl --noproxy '*' -s -o /dev/null -m 3 -w '%{http_code}' "$1" 2>/dev/null || true)" = 200 ]
}

# manage NAME ARGS... - keystone-manage with our config; its output (mostly a
# harmless eventlet "Exception ignored ... _removeHandlerRef" on exit) goes to
# log/manage-NAME.log and is shown only if the command fails.
manage() {
	local name=$1 out rc=0
	shift
	out="${LOGDIR}/manage-${name}.log"
	"$MANAGE" --config-file "$CONF" "$@" </dev/null >"$out" 2>&1 9>&- || rc=$?
	if [ "$rc" -ne 0 ]; then
		log "keystone-manage $* failed (status ${rc}); output:"
		cat "$out" >&2
		log "last lines of ${LOGDIR}/keystone.log:"
		tail -n 30 "${LOGDIR}/keystone.log" >&2 2>/dev/null || true
	fi
	return "$rc"
}

owner_args=()
if [ "$(id -u)" -eq 0 ]; then
	owner_args=(--keystone-user root --keystone-group root)
fi

do_db_sync() {
	manage db_sync db_sync || return
	local mode
	mode=$("$PY" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("PRAGMA journal_mode=WAL").fetchone()[0]); c.close()' "$DB") || return
	[ "$mode" = wal ] || {
		log "PRAGMA journal_mode=WAL returned '${mode}'"
		return 1
	}
	touch "${STATE}/.db_synced"
}

do_bootstrap() {
	manage bootstrap bootstrap \
		--bootstrap-username admin \
		--bootstrap-password admin-secret \
		--bootstrap-project-name admin \
		--bootstrap-role-name admin \
		--bootstrap-service-name keystone \
		--bootstrap-region-id RegionOne \
		--bootstrap-public-url "http://127.0.0.1:${PORT}/v3" || return
	touch "${STATE}/.bootstrapped"
}

render_conf() {
	local cache ttl="" section
	if [ "$KS_CACHE" = none ]; then
		cache="enabled = false"
	else
		cache="enabled = true
backend = dogpile.cache.memory_pickle
expiration_time = ${KS_CACHE_TTL}"
		# Each uwsgi worker caches in its own memory, and a change clears
		# only the cache of the worker that made it. Some sections keep a
		# cache_time of their own ([identity] 600 s, [revoke] 3600 s): the
		# other worker still saw a user enabled 15 s after it was disabled,
		# and minted tokens for it. One TTL everywhere bounds how long
		# workers disagree.
		for section in application_credential catalog credential domain_config \
			identity receipt resource revoke role token unified_limit; do
			ttl="${ttl}
[${section}]
cache_time = ${KS_CACHE_TTL}
"
		done
	fi
	cat <<EOF
# Generated by test/scripts/keystone-up.sh; rewritten on every run.
# uwsgi: port=${PORT} processes=${KS_PROCESSES}

[DEFAULT]
log_dir = ${LOGDIR}
log_file = keystone.log
use_stderr = false
debug = false
insecure_debug = ${INSECURE_DEBUG}

[database]
connection = sqlite:///${DB}

[token]
provider = fernet

[fernet_tokens]
key_repository = ${STATE}/fernet-keys

[fernet_receipts]
key_repository = ${STATE}/fernet-keys

[credential]
key_repository = ${STATE}/credential-keys
auth_ttl = ${KS_AUTH_TTL}

[oslo_policy]
policy_dirs = ${ETC}/policy.d

[cache]
${cache}
${ttl}
EOF
}

stop_keystone() {
	local pid=$1 kids
	kids=$(proc_children "$pid" | tr '\n' ' ')
	# shellcheck disable=SC2086 # kids is a list of PIDs
	stop_pid "keystone uwsgi" "$pid" "$KS_STOP_TIMEOUT" $kids
	rm -f "$PIDFILE"
}

start_uwsgi() {
	: >"$UWSGI_LOG"
	# shellcheck disable=SC2094 # the redirect only catches errors printed before uwsgi daemonizes
	uwsgi \
		--plugins python3 \
		--http-socket "127.0.0.1:${PORT}" \
		--add-header "Connection: close" \
		--wsgi-file "$WSGI_APP" \
		--master \
		--processes "$KS_PROCESSES" \
		--threads 1 \
		--need-app \
		--die-on-term \
		--no-orphans \
		--buffer-size 65535 \
		--env "OS_KEYSTONE_CONFIG_DIR=${ETC}" \
		--chdir "$STATE" \
		--pidfile "$PIDFILE" \
		--logto "$UWSGI_LOG" \
		--daemonize "$UWSGI_LOG" \
		</dev/null >>"$UWSGI_LOG" 2>&1 9>&-
}

wait_v3() {
	local t0 pid
	t0=$(now)
	# Give the daemonized master a moment to write its pidfile.
	while :; do
		if http_ok "http://127.0.0.1:${PORT}/v3"; then
			return 0
		fi
		pid=$(read_pidfile "$PIDFILE")
		if [ -n "$pid" ] && ! pid_alive "$pid"; then
			log "uwsgi (pid ${pid}) exited during start-up"
			break
		fi
		if [ -z "$pid" ] && awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 10) }'; then
			log "uwsgi wrote no pidfile within 10s"
			break
		fi
		if awk -v a="$t0" -v b="$(now)" -v l="$KS_WAIT" 'BEGIN { exit !(b - a > l) }'; then
			log "GET /v3 did not answer 200 within ${KS_WAIT}s"
			break
		fi
		sleep 0.2
	done
	log "last lines of ${UWSGI_LOG}:"
	tail -n 30 "$UWSGI_LOG" >&2 2>/dev/null || true
	log "last lines of ${LOGDIR}/keystone.log:"
	tail -n 30 "${LOGDIR}/keystone.log" >&2 2>/dev/null || true
	pid=$(ks_pid)
	if [ -n "$pid" ]; then
		stop_keystone "$pid"
	fi
	return 1
}

# ---- port ----------------------------------------------------------------

PID=$(ks_pid)
RECORDED_PORT=$(cat "$PORTFILE" 2>/dev/null || true)
valid_port "$RECORDED_PORT" || RECORDED_PORT=''
case ${KS_PORT:-} in
'') PORT=${RECORDED_PORT:-5000} ;;
auto)
	if [ -n "$RECORDED_PORT" ] && { [ -n "$PID" ] || port_free "$RECORDED_PORT"; }; then
		PORT=$RECORDED_PORT
	else
		PORT=$(free_port)
	fi
	;;
*)
	valid_port "$KS_PORT" || die "KS_PORT='${KS_PORT}' is not a port number (or 'auto')"
	PORT=$KS_PORT
	;;
esac
BASE="http://127.0.0.1:${PORT}"

# ---- config, fast path ---------------------------------------------------

NEW_CONF="${CONF}.new"
render_conf >"$NEW_CONF"

if [ -n "$PID" ]; then
	if cmp -s "$NEW_CONF" "$CONF" && [ "$RECORDED_PORT" = "$PORT" ] && http_ok "${BASE}/v3"; then
		rm -f "$NEW_CONF"
		log "already up on ${BASE}/v3 (pid ${PID})"
		step resources "$PY" "${SCRIPT_DIR}/keystone-resources.py" "$STATE" "$BASE"
		log "ready: ${BASE}/v3 ($(since "$T_ALL")s total); env: ${STATE}/keystone.env ${STATE}/demo-ec2.env ${STATE}/admin-openrc.sh"
		exit 0
	fi
	if cmp -s "$NEW_CONF" "$CONF"; then
		log "pid ${PID} is running but ${BASE}/v3 does not answer; restarting"
	else
		log "configuration changed; restarting pid ${PID}"
	fi
	step "stop old instance" stop_keystone "$PID"
	PID=''
fi
rm -f "$PIDFILE"
mv -f "$NEW_CONF" "$CONF"

if ! port_free "$PORT"; then
	owner=$(port_owner "$PORT")
	die "port ${PORT} on 127.0.0.1 is in use by another process, not by the keystone of ${STATE}${owner:+ (${owner})}. Stop it, or set KS_PORT to a free port or KS_PORT=auto."
fi

# ---- first-run initialisation -------------------------------------------

init_failed() {
	die "initialisation failed (state kept in ${STATE}; fix and re-run, or purge with keystone-down.sh ${STATE} --purge)"
}

# fernet_setup and credential_setup only write key files: run them while
# db_sync runs (each keystone-manage spends ~3 s importing keystone).
bg_pids=()
bg_names=()
if [ ! -e "${STATE}/fernet-keys/0" ]; then
	step fernet_setup manage fernet_setup fernet_setup "${owner_args[@]}" &
	bg_pids+=("$!")
	bg_names+=(fernet_setup)
fi
if [ ! -e "${STATE}/credential-keys/0" ]; then
	step credential_setup manage credential_setup credential_setup "${owner_args[@]}" &
	bg_pids+=("$!")
	bg_names+=(credential_setup)
fi
init_rc=0
if [ ! -e "${STATE}/.db_synced" ]; then
	step "db_sync + WAL" do_db_sync || init_rc=$?
fi
for i in "${!bg_pids[@]}"; do
	if ! wait "${bg_pids[$i]}"; then
		init_rc=1
		log "${bg_names[$i]} failed"
	fi
done
[ "$init_rc" -eq 0 ] || init_failed

# ---- start ---------------------------------------------------------------

# bootstrap runs while uwsgi imports keystone: the app opens no database
# connection before the first request, and GET /v3 needs none.
boot_pid=''
if [ ! -e "${STATE}/.bootstrapped" ]; then
	step bootstrap do_bootstrap &
	boot_pid=$!
fi
printf '%s\n' "$PORT" >"$PORTFILE"
up_rc=0
step "uwsgi start" start_uwsgi || up_rc=$?
if [ "$up_rc" -eq 0 ]; then
	step "uwsgi up (GET /v3)" wait_v3 || up_rc=$?
fi
if [ -n "$boot_pid" ] && ! wait "$boot_pid"; then
	pid=$(ks_pid)
	if [ -n "$pid" ]; then
		stop_keystone "$pid"
	fi
	init_failed
fi
[ "$up_rc" -eq 0 ] || die "keystone did not come up on ${BASE}/v3; see ${UWSGI_LOG} and ${LOGDIR}/keystone.log"
step resources "$PY" "${SCRIPT_DIR}/keystone-resources.py" "$STATE" "$BASE"
log "ready: ${BASE}/v3 (pid $(read_pidfile "$PIDFILE"), $(since "$T_ALL")s total); env: ${STATE}/keystone.env ${STATE}/demo-ec2.env ${STATE}/admin-openrc.sh"

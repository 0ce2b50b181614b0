#!/usr/bin/env bash
#
# run.sh - the ec2proxy benchmark (issue 5), in one command:
#
#   make bench            (or: bash bench/run.sh)
#
# Builds ec2proxy and the bench programs, installs nginx if missing, starts
# a private Redis and a real Keystone (test/scripts), creates KEYS EC2
# credentials in Keystone and copies them into Redis, then drives with the
# same load generator, one after another:
#   backend direct | nginx plain proxy | nginx also sending the backend
#   the headers ec2proxy adds (what the backend's extra reading costs) |
#   a plain fasthttp proxy (the Go reference) | a Go event-loop proxy, plain and doing ec2proxy's
#   verification (bench/loopproxy: what an event loop could reach) |
#   ec2proxy warm (its defaults: the event loop, io_uring on) | the same
#   with io_uring off | the goroutine server (server.event_loop: false) |
#   ec2proxy with every protection on | invalid signatures against
#   ec2proxy and the goroutine server (repeated, and all distinct)
# and measures Keystone and Redis load per request, RSS with RSS_KEYS
# credentials cached, and the sigv2/sigv4 Go micro-benchmarks. Writes
# bench/results.md (and prints it); stops everything it started.
#
# Settings (environment):
#   CONNS=64        connections of the load generator
#   FILL_CONNS=4    connections of the cache-filling passes (one request per
#                   key, each a cold ec2tokens call: Keystone's two uwsgi
#                   workers take ~7-100 ms each, and 64 at once would queue
#                   past ec2proxy's 5 s keystone.timeout)
#   WARMUP=2s       load before each measured window (seconds, "Ns")
#   DURATION=8s     measured window per pass (seconds, "Ns")
#   ROUNDS=5        passes of fasthttp, nginx, the event loops and warm
#                   ec2proxy, in turn
#                   (and of ec2proxy with every protection on)
#   LAT_RATE=3000   requests/s of the equal-load latency passes (open loop,
#                   the same schedule for fasthttp, nginx, the verifying
#                   event loop and ec2proxy;
#                   0 skips them)
#   LAT_ROUNDS=5    rounds of the equal-load passes, in turn (their p99
#                   moves more between passes than req/s does)
#   KEYS=200        EC2 credentials (Keystone + Redis) the load is spread over
#   RSS_KEYS=100000 credentials cached for the RSS measurement (0 skips it)
#   PIN=auto        auto: pin with taskset when there are 2+ cores; 0: never
#   PROFILE=auto    CPU-profile ec2proxy under load: auto (when it misses
#                   the 0.95x-nginx target), 1 (always: the warm load, and
#                   every protection on) or 0 (never)
#   MICRO_COUNT=3   rounds of the Go micro-benchmarks (0 skips them)
#   MICRO_BENCHTIME=500ms  -test.benchtime of each micro-benchmark
#   PERF=auto       count system calls and context switches per request of
#                   nginx, fasthttp and ec2proxy with perf stat, in an extra
#                   short pass each (tracing slows the process): auto (if
#                   perf works here), 0 (never)
#   PHASES=all      all: everything above; rss: only the RSS measurement
#                   (Redis, fakekeystone, backend and ec2proxy; no real
#                   Keystone, nginx or load passes; about a minute): the
#                   report goes to the run directory and is printed, and
#                   bench/results.md is left alone (it is a partial run)
#   RSS_GOMEMLIMIT  if set, GOMEMLIMIT for the ec2proxy of the RSS
#                   measurement only (default: unset, Go's default)
#   CHECK=0         1: after the report, fail (exit 1) if a pass is missing,
#                   answered a status it should not or had transport errors,
#                   or a target that counts calls (Keystone during floods,
#                   ec2tokens per key, Redis on the warm path) is missed
#                   (report -check); bench/results.md is left alone. The
#                   test suite runs the harness so, with 1 s passes.
#   EC2PROXY_*      ec2proxy's own settings (configs/load.go) reach every
#                   ec2proxy the harness starts, e.g.
#                   EC2PROXY_SERVER_GC_PERCENT=0 for Go's default GC target
#                   (the report names it when it measured RSS)
#   BENCH_STATE     state directory (default bench/.state): Keystone's
#                   database survives between runs, so only the first run
#                   pays for its initialisation; runs/<time>/ keeps each
#                   run's configurations, logs and raw results.
#
# Must run as root (apt-get, taskset). Whole run: about 12 minutes, plus
# about a minute the first time (nginx install, Keystone initialisation,
# creating the credentials).
set -euo pipefail

SCRIPT_NAME=bench
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "${BENCH}/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../test/scripts/lib.sh
. "${REPO}/test/scripts/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib/nginx.sh
. "${BENCH}/lib/nginx.sh"
# shellcheck source-path=SCRIPTDIR source=lib/proxy.sh
. "${BENCH}/lib/proxy.sh"
# shellcheck source-path=SCRIPTDIR source=lib/procs.sh
. "${BENCH}/lib/procs.sh"
# shellcheck source-path=SCRIPTDIR source=lib/phases.sh
. "${BENCH}/lib/phases.sh"
export PATH="/usr/local/go/bin:${PATH}"

CONNS=${CONNS:-64}
FILL_CONNS=${FILL_CONNS:-4}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-5}
LAT_RATE=${LAT_RATE:-3000}
LAT_ROUNDS=${LAT_ROUNDS:-5}
KEYS=${KEYS:-200}
RSS_KEYS=${RSS_KEYS:-100000}
PIN=${PIN:-auto}
PROFILE=${PROFILE:-auto}
MICRO_COUNT=${MICRO_COUNT:-3}
MICRO_BENCHTIME=${MICRO_BENCHTIME:-500ms}
CHECK=${CHECK:-0}
PERF=${PERF:-auto}
PHASES=${PHASES:-all}
RSS_GOMEMLIMIT=${RSS_GOMEMLIMIT:-}
case "$PHASES" in
all | rss) ;;
*) die "PHASES=${PHASES}: want all or rss" ;;
esac
if [ "$PHASES" = rss ] && [ "$RSS_KEYS" -le 0 ]; then
	die "PHASES=rss with RSS_KEYS=0 measures nothing"
fi
if [ "$PHASES" = rss ] && [ "${CHECK:-0}" = 1 ]; then
	die "CHECK=1 checks a whole run: it needs PHASES=all"
fi
WARM_LIFETIME='' WARM_RSS_KIB=''
STATE=$(abspath "${BENCH_STATE:-${BENCH}/.state}")
RUN="${STATE}/runs/$(date -u +%Y%m%dT%H%M%SZ)"
BIN="${STATE}/bin"
PREFIX='ec2bench:v1:'
RSS_PREFIX='ec2bench-rss:v1:'
mkdir -p "$RUN" "$BIN"
[ "$(id -u)" -eq 0 ] || die "run as root (apt-get install, taskset)"
T_ALL=$(now)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- pinning ----------------------------------------------------------------

NCPU=$(nproc)
if [ "$PIN" != 0 ] && [ "$NCPU" -ge 2 ]; then
	# The load generator gets cpu0 and the system under test cpu1, the same
	# for every target; Redis and Keystone (idle while measuring) sit with
	# the generator so that they never take the proxy's core.
	LG_CPU=0 SUT_CPU=1 AUX_CPU=0
	NGINX_WORKERS=1
	PINNING="Pinned with taskset: load generator on cpu0; the target on cpu1 (backend alone, nginx + backend, or ec2proxy + backend); Redis and Keystone on cpu0 (idle during measured windows). Go programs thus run with GOMAXPROCS=1 and nginx with 1 worker: one core per proxy, the same for every target."
else
	LG_CPU='' SUT_CPU='' AUX_CPU=''
	NGINX_WORKERS=auto
	PINNING="Not pinned (PIN=0 or one core): load generator, proxy and backend share ${NCPU} core(s); nginx runs worker_processes auto."
fi

# ---- build and dependencies ---------------------------------------------------

build() {
	(cd "$REPO" && go build -o "${BIN}/ec2proxy" ./cmd/ec2proxy &&
		go build -o "${BIN}/" ./bench/backend ./bench/loadgen ./bench/seed ./bench/fakekeystone ./bench/profproxy ./bench/report ./bench/fastproxy ./bench/loopproxy)
}
step "build ec2proxy and bench programs" build

if ! command -v redis-server >/dev/null 2>&1 || { [ "$PHASES" = all ] && { [ ! -x /usr/bin/keystone-manage ] || ! command -v uwsgi >/dev/null 2>&1; }; }; then
	step "install Redis and Keystone (test/scripts/deps.sh)" bash "${REPO}/test/scripts/deps.sh"
fi
if [ "$PHASES" = all ]; then
	step "nginx installed, system service stopped" ensure_nginx
fi
if [ "$PHASES" = rss ]; then
	PERF=0
elif [ "$PERF" = auto ]; then
	PERF=0
	if command -v perf >/dev/null 2>&1 && perf stat -e raw_syscalls:sys_enter -e context-switches -p $$ -- true >/dev/null 2>&1; then
		PERF=1
	fi
fi

# start_proxy NAME CONFIG CMD [ARGS...] - ec2proxy (or the profiling
# copy) on the target's core; waits for /readyz (Redis PING and a Keystone
# service token).
start_proxy() {
	local name=$1 conf=$2
	shift 2
	start_bg "$name" "$SUT_CPU" "$@"
	wait_http "http://127.0.0.1:$(admin_port "$conf")/readyz" 200 30
}
admin_port() { sed -n 's/^admin_listen: 127.0.0.1:\([0-9]*\)$/\1/p' "$1"; }

# ---- Redis and Keystone --------------------------------------------------------

STARTED_REDIS=1 # from here on cleanup stops it (redis-down.sh is idempotent)
step "redis up" on "$AUX_CPU" bash "${REPO}/test/scripts/redis-up.sh" "${STATE}/redis"
REDIS_PORT=$(cat "${STATE}/redis/redis.port")
# Secrets sealed at rest, as ec2proxy requires by default for Redis.
KEY_FILE="${RUN}/secret.key"
(umask 077 && "${BIN}/ec2proxy" creds genkey >"$KEY_FILE")

# PHASES=rss: the RSS measurement alone (it needs no real Keystone).
if [ "$PHASES" = rss ]; then
	pin_running "$AUX_CPU" "$(read_pidfile "${STATE}/redis/redis.pid")"
	BACKEND_PORT=$(free_port)
	start_bg backend "$SUT_CPU" "${BIN}/backend" -listen "127.0.0.1:${BACKEND_PORT}"
	wait_http "http://127.0.0.1:${BACKEND_PORT}/" 200 10
	step "RSS with ${RSS_KEYS} credentials" measure_rss
	stop_bg backend
	MICRO_COUNT=0
	write_facts >"${RUN}/facts.env"
	"${BIN}/report" -run "$RUN" >"${RUN}/results.md"
	cat "${RUN}/results.md"
	prune_runs 5
	log "done in $(since "$T_ALL")s (PHASES=rss: bench/results.md not updated); raw results, configuration and logs: ${RUN}"
	exit 0
fi

# KS_PORT=auto: never the test suite's 5000.
export KS_PORT=auto KS_PROCESSES=2
STARTED_KEYSTONE=1
step "keystone up" on "$AUX_CPU" bash "${REPO}/test/scripts/keystone-up.sh" "${STATE}/keystone"
pin_running "$AUX_CPU" "$(read_pidfile "${STATE}/redis/redis.pid")" "$(read_pidfile "${STATE}/keystone/keystone.pid")"
KS_URL=$(env_get "${STATE}/keystone/keystone.env" EC2PROXY_TEST_KEYSTONE_URL)
KS_USER=$(env_get "${STATE}/keystone/keystone.env" EC2PROXY_TEST_KEYSTONE_SERVICE_USER)
KS_PASSWORD=$(env_get "${STATE}/keystone/keystone.env" EC2PROXY_TEST_KEYSTONE_SERVICE_PASSWORD)
DEMO_USER_ID=$(env_get "${STATE}/keystone/demo-ec2.env" DEMO_USER_ID)
DEMO_PROJECT_ID=$(env_get "${STATE}/keystone/demo-ec2.env" DEMO_PROJECT_ID)

step "${KEYS} EC2 credentials in Keystone and Redis" "${BIN}/seed" keystone -n "$KEYS" \
	-keystone "$KS_URL" -user-id "$DEMO_USER_ID" -project-id "$DEMO_PROJECT_ID" \
	-redis "127.0.0.1:${REDIS_PORT}" -prefix "$PREFIX" -key "$KEY_FILE" -out "${RUN}/creds.tsv"

# ---- the targets -------------------------------------------------------------------

# load LABEL PORT [loadgen flags...] - one pass of the load generator.
load() {
	local label=$1 port=$2
	shift 2
	on "$LG_CPU" "${BIN}/loadgen" -label "$label" -target "127.0.0.1:${port}" -creds "${RUN}/creds.tsv" \
		-conns "$CONNS" -warmup "$WARMUP" -duration "$DURATION" -out "${RUN}/results.jsonl" "$@" >/dev/null
}

BACKEND_PORT=$(free_port)
start_bg backend "$SUT_CPU" "${BIN}/backend" -listen "127.0.0.1:${BACKEND_PORT}" -dump-headers "${RUN}/identity-headers.txt"
wait_http "http://127.0.0.1:${BACKEND_PORT}/" 200 10
B_PID=$(bg_pid backend)
step "load: backend direct" load backend "$BACKEND_PORT" -pids "backend=${B_PID}"

# fill LABEL PORT [loadgen flags...] - one request per key, few at a time:
# the cold pass that reads every credential and calls ec2tokens.
fill() {
	local label=$1 port=$2
	shift 2
	load "$label" "$port" -once -conns "$FILL_CONNS" "$@"
}

# Every protection on first: the floods below lock access keys out (the
# lockout state lives in Redis, shared by every ec2proxy on this prefix).
# Requests are signed as they are sent (-fresh): replay protection refuses
# a request seen before.
protections_overlay >"${RUN}/protections.yaml"
X_PORT=$(free_port) X_ADMIN=$(free_port)
proxy_conf "$X_PORT" "$X_ADMIN" "$PREFIX" "$KS_URL" "$KS_USER" "$KS_PASSWORD" "${RUN}/protections.yaml" >"${RUN}/ec2proxy-protections.yaml"
start_proxy ec2proxy-protections "${RUN}/ec2proxy-protections.yaml" "${BIN}/ec2proxy" serve -config "${RUN}/ec2proxy-protections.yaml"
PROBES=(-metrics "http://127.0.0.1:${X_ADMIN}/metrics" -redis "127.0.0.1:${REDIS_PORT}")
step "fill ec2proxy-protections caches (${KEYS} keys)" fill ec2proxy-protections-fill "$X_PORT" "${PROBES[@]}"
# ROUNDS passes, the median shown: one slow spell on the host moved a
# single pass by a third.
for round in $(seq "$ROUNDS"); do
	step "load: ec2proxy with protections (round ${round})" load "ec2proxy-protections#${round}" "$X_PORT" -fresh "${PROBES[@]}" \
		-pids "proxy=$(bg_pid ec2proxy-protections),backend=${B_PID}"
done
perf_pass ec2proxy-protections "$X_PORT" "$(bg_pid ec2proxy-protections)" -fresh
stop_bg ec2proxy-protections
if [ "$PROFILE" = 1 ]; then
	step "profile ec2proxy with every protection on" profile_proxy protections "${RUN}/protections.yaml" -fresh
fi

# ec2proxy with defaults, filled first (one request per key: credential
# reads and ec2tokens calls happen here).
P_PORT=$(free_port) P_ADMIN=$(free_port)
proxy_conf "$P_PORT" "$P_ADMIN" "$PREFIX" "$KS_URL" "$KS_USER" "$KS_PASSWORD" >"${RUN}/ec2proxy.yaml"
start_proxy ec2proxy "${RUN}/ec2proxy.yaml" "${BIN}/ec2proxy" serve -config "${RUN}/ec2proxy.yaml"
T_WARM=$(now)
PROBES=(-metrics "http://127.0.0.1:${P_ADMIN}/metrics" -redis "127.0.0.1:${REDIS_PORT}" -pids "proxy=$(bg_pid ec2proxy),backend=${B_PID}")
step "fill ec2proxy caches (${KEYS} keys)" fill ec2proxy-fill "$P_PORT" "${PROBES[@]}"

# The same with the goroutine server (server.event_loop: false: what
# serves TLS and PROXY-protocol listeners), filled the same way.
printf 'server:\n  event_loop: false\n' >"${RUN}/goroutines.yaml"
G_PORT=$(free_port) G_ADMIN=$(free_port)
proxy_conf "$G_PORT" "$G_ADMIN" "$PREFIX" "$KS_URL" "$KS_USER" "$KS_PASSWORD" "${RUN}/goroutines.yaml" >"${RUN}/ec2proxy-goroutines.yaml"
start_proxy ec2proxy-goroutines "${RUN}/ec2proxy-goroutines.yaml" "${BIN}/ec2proxy" serve -config "${RUN}/ec2proxy-goroutines.yaml"
PROBES_G=(-metrics "http://127.0.0.1:${G_ADMIN}/metrics" -redis "127.0.0.1:${REDIS_PORT}" -pids "proxy=$(bg_pid ec2proxy-goroutines),backend=${B_PID}")
step "fill ec2proxy-goroutines caches (${KEYS} keys)" fill ec2proxy-goroutines-fill "$G_PORT" "${PROBES_G[@]}"
# And the event loop without io_uring (server.io_uring: false): one system
# call per read and per write, what the batching saves.
printf 'server:\n  io_uring: false\n' >"${RUN}/event-loop-plain.yaml"
EP_PORT=$(free_port) EP_ADMIN=$(free_port)
proxy_conf "$EP_PORT" "$EP_ADMIN" "$PREFIX" "$KS_URL" "$KS_USER" "$KS_PASSWORD" "${RUN}/event-loop-plain.yaml" >"${RUN}/ec2proxy-loop-plain.yaml"
start_proxy ec2proxy-loop-plain "${RUN}/ec2proxy-loop-plain.yaml" "${BIN}/ec2proxy" serve -config "${RUN}/ec2proxy-loop-plain.yaml"
PROBES_EP=(-metrics "http://127.0.0.1:${EP_ADMIN}/metrics" -redis "127.0.0.1:${REDIS_PORT}" -pids "proxy=$(bg_pid ec2proxy-loop-plain),backend=${B_PID}")
step "fill ec2proxy-loop-plain caches (${KEYS} keys)" fill ec2proxy-loop-plain-fill "$EP_PORT" "${PROBES_EP[@]}"

# The Go reference, a plain fasthttp proxy (what Go and fasthttp cost
# before any of ec2proxy's own work), and nginx.
F_PORT=$(free_port)
start_bg fastproxy "$SUT_CPU" "${BIN}/fastproxy" -listen "127.0.0.1:${F_PORT}" -backend "127.0.0.1:${BACKEND_PORT}"
wait_http "http://127.0.0.1:${F_PORT}/" 200 10
# bench/loopproxy: the same proxying on one epoll loop of raw system calls
# (nginx's way, in Go), and that loop doing ec2proxy's verification too.
L_PORT=$(free_port)
start_bg loopproxy "$SUT_CPU" "${BIN}/loopproxy" -listen "127.0.0.1:${L_PORT}" -backend "127.0.0.1:${BACKEND_PORT}"
wait_http "http://127.0.0.1:${L_PORT}/" 200 10
LV_PORT=$(free_port)
start_bg loopverify "$SUT_CPU" "${BIN}/loopproxy" -listen "127.0.0.1:${LV_PORT}" -backend "127.0.0.1:${BACKEND_PORT}" -verify-creds "${RUN}/creds.tsv"
wait_http "http://127.0.0.1:${LV_PORT}/" 403 10 # unsigned: refused
NGINX_PORT=$(free_port)
mkdir -p "${RUN}/nginx"
nginx_conf "$NGINX_PORT" "$BACKEND_PORT" "${RUN}/nginx" >"${RUN}/nginx/nginx.conf"
start_bg nginx "$SUT_CPU" /usr/sbin/nginx -c "${RUN}/nginx/nginx.conf" -p "${RUN}/nginx" -e "${RUN}/nginx/error.log"
wait_http "http://127.0.0.1:${NGINX_PORT}/" 200 10
N_PIDS=$(bg_pid nginx)
for kid in $(proc_children "$N_PIDS"); do
	N_PIDS+="+${kid}"
done
# nginx sending the backend what ec2proxy adds (identity headers, token,
# request IDs, X-Forwarded-*; values from a request ec2proxy forwarded):
# what the backend's extra reading costs any proxy that sends them.
NI_PORT=$(free_port) NI_PIDS=""
mkdir -p "${RUN}/nginx-identity"
if identity_directives "${RUN}/identity-headers.txt" >"${RUN}/nginx-identity/directives" 2>"${RUN}/nginx-identity/directives.err"; then
	nginx_conf "$NI_PORT" "$BACKEND_PORT" "${RUN}/nginx-identity" "${RUN}/nginx-identity/directives" >"${RUN}/nginx-identity/nginx.conf"
	start_bg nginx-identity "$SUT_CPU" /usr/sbin/nginx -c "${RUN}/nginx-identity/nginx.conf" -p "${RUN}/nginx-identity" -e "${RUN}/nginx-identity/error.log"
	wait_http "http://127.0.0.1:${NI_PORT}/" 200 10
	NI_PIDS=$(bg_pid nginx-identity)
	for kid in $(proc_children "$NI_PIDS"); do
		NI_PIDS+="+${kid}"
	done
else
	log "no nginx-with-identity-headers row: $(cat "${RUN}/nginx-identity/directives.err")"
fi

# The three proxies compared head to head take turns, ROUNDS times: a busy
# spell on a shared machine then spoils one round of each rather than every
# measurement of one, and the report takes each one's median round. The
# idle ones wait on the same core (an idle process costs nothing).
for round in $(seq "$ROUNDS"); do
	step "load: plain fasthttp proxy (round ${round})" load "fastproxy#${round}" "$F_PORT" -pids "proxy=$(bg_pid fastproxy),backend=${B_PID}"
	step "load: nginx (round ${round})" load "nginx#${round}" "$NGINX_PORT" -pids "proxy=${N_PIDS},backend=${B_PID}"
	if [ -n "$NI_PIDS" ]; then
		step "load: nginx + identity headers (round ${round})" load "nginx-identity#${round}" "$NI_PORT" -pids "proxy=${NI_PIDS},backend=${B_PID}"
	fi
	step "load: ec2proxy warm (round ${round})" load "ec2proxy#${round}" "$P_PORT" "${PROBES[@]}"
	step "load: ec2proxy warm, goroutine server (round ${round})" load "ec2proxy-goroutines#${round}" "$G_PORT" "${PROBES_G[@]}"
	step "load: ec2proxy warm, event loop without io_uring (round ${round})" load "ec2proxy-loop-plain#${round}" "$EP_PORT" "${PROBES_EP[@]}"
	step "load: event-loop proxy (round ${round})" load "loopproxy#${round}" "$L_PORT" -pids "proxy=$(bg_pid loopproxy),backend=${B_PID}"
	step "load: event loop + verification (round ${round})" load "loopverify#${round}" "$LV_PORT" -pids "proxy=$(bg_pid loopverify),backend=${B_PID}"
done
perf_pass fastproxy "$F_PORT" "$(bg_pid fastproxy)"
perf_pass nginx "$NGINX_PORT" "${N_PIDS//+/,}"
perf_pass ec2proxy "$P_PORT" "$(bg_pid ec2proxy)"
perf_pass ec2proxy-goroutines "$G_PORT" "$(bg_pid ec2proxy-goroutines)"
perf_pass ec2proxy-loop-plain "$EP_PORT" "$(bg_pid ec2proxy-loop-plain)"
perf_pass loopverify "$LV_PORT" "$(bg_pid loopverify)"
# Latency at equal load: each proxy gets the same open-loop schedule of
# LAT_RATE requests/s, well below every one's capacity (each request then
# costs more CPU than at saturation, where reads and writes batch: 3000/s
# keeps ec2proxy and the backend under half of their core). At saturation (the
# passes above) a slower proxy's p99 is mostly queueing, which follows from
# its throughput; at equal load p99 is the time a request spends in it.
# In turn, LAT_ROUNDS times: a p99 moves by a millisecond between passes
# here (more than req/s does, hence more rounds), and the target compares
# ec2proxy's with nginx's of the same round.
if [ "$LAT_RATE" -gt 0 ]; then
	for round in $(seq "$LAT_ROUNDS"); do
		step "load: fasthttp proxy at ${LAT_RATE} req/s (round ${round})" load "fastproxy@rate#${round}" "$F_PORT" -rate "$LAT_RATE" -pids "proxy=$(bg_pid fastproxy),backend=${B_PID}"
		step "load: nginx at ${LAT_RATE} req/s (round ${round})" load "nginx@rate#${round}" "$NGINX_PORT" -rate "$LAT_RATE" -pids "proxy=${N_PIDS},backend=${B_PID}"
		# CPU only: a /metrics scrape on the proxy's core as the window opens
		# would show up in a tail this short.
		step "load: ec2proxy warm at ${LAT_RATE} req/s (round ${round})" load "ec2proxy@rate#${round}" "$P_PORT" -rate "$LAT_RATE" -pids "proxy=$(bg_pid ec2proxy),backend=${B_PID}"
		step "load: ec2proxy warm, goroutine server, at ${LAT_RATE} req/s (round ${round})" load "ec2proxy-goroutines@rate#${round}" "$G_PORT" -rate "$LAT_RATE" -pids "proxy=$(bg_pid ec2proxy-goroutines),backend=${B_PID}"
		step "load: event loop + verification at ${LAT_RATE} req/s (round ${round})" load "loopverify@rate#${round}" "$LV_PORT" -rate "$LAT_RATE" -pids "proxy=$(bg_pid loopverify),backend=${B_PID}"
	done
fi
# The floods below against the goroutine server too: last, as lockouts
# would spoil its valid passes.
step "load: goroutine server, invalid signatures, repeated" load ec2proxy-goroutines-badsig "$G_PORT" -wrong-secret -expect 403 "${PROBES_G[@]}"
step "load: goroutine server, invalid signatures, distinct" load ec2proxy-goroutines-badsig-distinct "$G_PORT" -wrong-secret -fresh -expect 403 "${PROBES_G[@]}"
stop_bg loopproxy
stop_bg loopverify
stop_bg ec2proxy-goroutines
stop_bg ec2proxy-loop-plain
stop_bg fastproxy
stop_bg nginx
if [ -n "$NI_PIDS" ]; then
	stop_bg nginx-identity
fi

ratio=$("${BIN}/report" -run "$RUN" -ratio ec2proxy/nginx)
if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && awk -v r="$ratio" 'BEGIN { exit !(r < 0.95) }'; }; then
	log "profiling ec2proxy (warm req/s = ${ratio}x nginx's)"
	step "profile ec2proxy under the warm load" profile_proxy
fi

# The invalid-signature floods, against the same warm process: the same
# few bad signatures repeated (a client with a wrong secret), then every
# one distinct (varied requests, or guessing: what lockout counts).
step "load: invalid signatures, repeated" load ec2proxy-badsig "$P_PORT" -wrong-secret -expect 403 "${PROBES[@]}"
step "load: invalid signatures, distinct" load ec2proxy-badsig-distinct "$P_PORT" -wrong-secret -fresh -expect 403 "${PROBES[@]}"
WARM_LIFETIME=$(since "$T_WARM")
WARM_RSS_KIB=$(vm_kib "$(bg_pid ec2proxy)" VmRSS)
stop_bg ec2proxy

# ---- RSS with many credentials ---------------------------------------------------

if [ "$RSS_KEYS" -gt 0 ]; then
	step "RSS with ${RSS_KEYS} credentials" measure_rss
fi
stop_bg backend

# ---- micro-benchmarks --------------------------------------------------------------

if [ "$MICRO_COUNT" -gt 0 ]; then
	step "go micro-benchmarks (sigv2, sigv4)" micro
fi

# ---- report ---------------------------------------------------------------------------

write_facts >"${RUN}/facts.env"
"${BIN}/report" -run "$RUN" >"${RUN}/results.md"
cat "${RUN}/results.md"
# bench/results.md is the record of a whole run: a run that skipped a
# phase, or a check run, leaves it alone.
if [ "$CHECK" = 1 ]; then
	step "check the run (report -check)" "${BIN}/report" -run "$RUN" -check
	log "a check run: bench/results.md left as it was"
elif [ "$RSS_KEYS" -gt 0 ] && [ "$MICRO_COUNT" -gt 0 ] && [ "$LAT_RATE" -gt 0 ]; then
	cp "${RUN}/results.md" "${BENCH}/results.md"
	log "bench/results.md updated"
else
	log "a phase was skipped (RSS_KEYS, MICRO_COUNT or LAT_RATE is 0): bench/results.md left as it was"
fi
prune_runs 5
log "done in $(since "$T_ALL")s; raw results, configurations and logs: ${RUN}"

# shellcheck shell=bash
#
# phases.sh - the benchmark's longer phases: profiling, the RSS
# measurement, the micro-benchmarks and the facts for the report. Sourced
# by bench/run.sh; they use its variables (RUN, BIN, ports, CPUs).

# profile_proxy [NAME OVERLAY LOADGEN_ARGS...] - the warm pass again,
# against bench/profproxy (ec2proxy wired by internal/app, plus
# net/http/pprof), with a CPU profile of the measured window (DURATION -
# 1 s). Writes cpu.pprof and the top functions (flat and cumulative) to
# RUN; given NAME, a configuration OVERLAY and load generator arguments
# (every protection on: its overlay and -fresh), cpu-NAME.pprof and
# profile-NAME-*.txt under that configuration and load instead.
profile_proxy() {
	local overlay="" port admin pprof conf lg suffix=""
	if [ $# -ge 2 ]; then
		suffix="-$1" overlay=$2
		shift 2
	fi
	port=$(free_port) admin=$(free_port) pprof=$(free_port)
	conf="${RUN}/ec2proxy-profile${suffix}.yaml"
	proxy_conf "$port" "$admin" "$PREFIX" "$KS_URL" "$KS_USER" "$KS_PASSWORD" "$overlay" >"$conf"
	start_proxy profproxy "$conf" "${BIN}/profproxy" -config "$conf" -pprof "127.0.0.1:${pprof}"
	on "$LG_CPU" "${BIN}/loadgen" -label "profile${suffix}-fill" -target "127.0.0.1:${port}" -creds "${RUN}/creds.tsv" \
		-conns "$FILL_CONNS" -once -out "${RUN}/profile.jsonl" >/dev/null
	on "$LG_CPU" "${BIN}/loadgen" -label "profile${suffix}" -target "127.0.0.1:${port}" -creds "${RUN}/creds.tsv" \
		-conns "$CONNS" -warmup "$WARMUP" -duration "$DURATION" -out "${RUN}/profile.jsonl" "$@" >/dev/null &
	lg=$!
	sleep "$(awk -v w="${WARMUP%s}" 'BEGIN { print w + 0.5 }')"
	curl --noproxy '*' -s -o "${RUN}/cpu${suffix}.pprof" "http://127.0.0.1:${pprof}/debug/pprof/profile?seconds=$(awk -v d="${DURATION%s}" 'BEGIN { print int(d - 1) }')"
	wait "$lg"
	stop_bg profproxy
	go tool pprof -top -nodecount=30 "${BIN}/profproxy" "${RUN}/cpu${suffix}.pprof" >"${RUN}/profile${suffix}-top.txt" 2>/dev/null
	go tool pprof -top -cum -nodecount=40 "${BIN}/profproxy" "${RUN}/cpu${suffix}.pprof" >"${RUN}/profile${suffix}-cum.txt" 2>/dev/null
}

# measure_rss - RSS of ec2proxy holding RSS_KEYS credentials and tokens.
# The credentials are random ones in Redis; Keystone is bench/fakekeystone,
# which answers every ec2tokens call (the real one would need RSS_KEYS
# credentials and ~7 ms per call). One signed request per key fills both
# caches; then /proc/PID/status is read, with the Go heap figures and a
# heap profile. The process is bench/profproxy: ec2proxy wired by the same
# internal/app, plus a pprof listener, which adds no measurable memory.
# RSS is read first, as the process left it; then the heap profile is taken
# after a forced collection (?gc=1), so that it and the live heap reported
# beside it count what the caches hold, not garbage awaiting a collection.
# RSS_GOMEMLIMIT, if set, is this process's GOMEMLIMIT.
measure_rss() {
	local ks port admin pprof conf pid metrics env=()
	ks=$(free_port) port=$(free_port) admin=$(free_port) pprof=$(free_port)
	start_bg fakekeystone "$AUX_CPU" "${BIN}/fakekeystone" -listen "127.0.0.1:${ks}"
	wait_http "http://127.0.0.1:${ks}/v3" 200 10
	"${BIN}/seed" synthetic -n "$RSS_KEYS" -redis "127.0.0.1:${REDIS_PORT}" -prefix "$RSS_PREFIX" -key "$KEY_FILE" -out "${RUN}/rss-creds.tsv" || return
	conf="${RUN}/ec2proxy-rss.yaml"
	proxy_conf "$port" "$admin" "$RSS_PREFIX" "http://127.0.0.1:${ks}" fake fake >"$conf"
	if [ -n "${RSS_GOMEMLIMIT:-}" ]; then
		env=(env "GOMEMLIMIT=${RSS_GOMEMLIMIT}")
	fi
	start_proxy ec2proxy-rss "$conf" "${env[@]}" "${BIN}/profproxy" -config "$conf" -pprof "127.0.0.1:${pprof}" || return
	on "$LG_CPU" "${BIN}/loadgen" -label rss-fill -target "127.0.0.1:${port}" -creds "${RUN}/rss-creds.tsv" \
		-conns "$CONNS" -once -metrics "http://127.0.0.1:${admin}/metrics" -out "${RUN}/results.jsonl" >/dev/null || return
	sleep 1
	pid=$(bg_pid ec2proxy-rss)
	RSS_KIB=$(vm_kib "$pid" VmRSS)
	RSS_HWM_KIB=$(vm_kib "$pid" VmHWM)
	metrics=$(curl --noproxy '*' -s "http://127.0.0.1:${admin}/metrics")
	grep '^go_' <<<"$metrics" >"${RUN}/rss-go-metrics.txt" || true
	RSS_CREDS=$(awk '/^ec2proxy_cache_entries\{cache="credential"\}/ { print $2 }' <<<"$metrics")
	RSS_TOKENS=$(awk '/^ec2proxy_cache_entries\{cache="token"\}/ { print $2 }' <<<"$metrics")
	RSS_HEAP_INUSE=$(awk '/^go_memstats_heap_inuse_bytes / { printf "%d", $2 / 1024 }' <<<"$metrics")
	RSS_NEXT_GC=$(awk '/^go_memstats_next_gc_bytes / { printf "%d", $2 / 1024 }' <<<"$metrics")
	curl --noproxy '*' -s -o "${RUN}/heap.pprof" "http://127.0.0.1:${pprof}/debug/pprof/heap?gc=1"
	curl --noproxy '*' -s "http://127.0.0.1:${admin}/metrics" | grep '^go_' >"${RUN}/rss-go-metrics-after-gc.txt" || true
	RSS_LIVE_HEAP=$(awk '/^go_memstats_heap_alloc_bytes / { printf "%d", $2 / 1024 }' "${RUN}/rss-go-metrics-after-gc.txt")
	RSS_AFTER_GC_KIB=$(vm_kib "$pid" VmRSS)
	go tool pprof -sample_index=inuse_space -top -nodecount=25 "${BIN}/profproxy" "${RUN}/heap.pprof" >"${RUN}/heap-top.txt" 2>/dev/null || true
	stop_bg ec2proxy-rss
	stop_bg fakekeystone
}

# micro - the sigv2/sigv4 Go benchmarks, compiled first (on both cores)
# and then run on the target core alone, MICRO_COUNT rounds of -count 1
# rather than -count MICRO_COUNT: on a shared machine a busy spell then
# slows one sample of every benchmark, not every sample of one, and the
# report's median drops it.
micro() {
	local pkg _
	: >"${RUN}/micro.txt"
	for pkg in sigv2 sigv4; do
		(cd "$REPO" && go test -c -o "${BIN}/${pkg}.test" "./${pkg}") || return
	done
	for _ in $(seq "$MICRO_COUNT"); do
		for pkg in sigv2 sigv4; do
			(cd "${REPO}/${pkg}" && on "$SUT_CPU" "${BIN}/${pkg}.test" -test.run '^$' -test.bench . \
				-test.benchmem -test.count 1 -test.benchtime "$MICRO_BENCHTIME") >>"${RUN}/micro.txt" || return
		done
	done
}

# perf_pass LABEL PORT PID[,PID...] [loadgen flags...] - if perf works
# here, a pass of its own (WARMUP, then 4 s, reported as LABEL@perf) during
# which perf stat counts the system calls, context switches and CPU time of
# the proxy process(es) for 3 s. Not during the measured passes: perf's
# system-call tracepoint slows the traced process (the protections pass
# measured 65 µs per request without it, 97 with it).
PERF_WINDOW_S=3

perf_pass() {
	[ "$PERF" = 1 ] || return 0
	local label=$1 port=$2 pids=$3 delay
	shift 3
	delay=$(awk -v w="${WARMUP%s}" 'BEGIN { print w + 0.5 }')
	start_bg "perf-${label}" "$AUX_CPU" bash -c "sleep ${delay}; exec perf stat -x, -e raw_syscalls:sys_enter -e context-switches -e task-clock -p ${pids} -o ${RUN}/perf-${label}.txt -- sleep ${PERF_WINDOW_S}"
	step "perf: ${label}" load "${label}@perf" "$port" -duration 4s "$@"
	stop_bg "perf-${label}"
}

write_facts() {
	cat <<EOF
date=$(date -u '+%Y-%m-%d %H:%M UTC')
nproc=${NCPU}
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kernel=$(uname -r)
go_version=$(go version | awk '{ print $3 " " $4 }')
nginx_version=$(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///')
redis_version=$(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/')
keystone_version=$(dpkg-query -W -f '${Version}' keystone 2>/dev/null)
loadavg=${LOADAVG}
pinning=${PINNING}
conns=${CONNS}
warmup=${WARMUP}
duration=${DURATION}
rounds=${ROUNDS}
lat_rate=${LAT_RATE}
lat_rounds=${LAT_ROUNDS}
keys=${KEYS}
cache_ttl=60s
token_lifetime=1h (Keystone [token] expiration default)
token_margin=5m (keystone.token_margin default)
warm_lifetime_s=${WARM_LIFETIME}
warm_rss_kib=${WARM_RSS_KIB}
rss_keys=${RSS_KEYS}
rss_kib=${RSS_KIB:-}
rss_hwm_kib=${RSS_HWM_KIB:-}
rss_cached_credentials=${RSS_CREDS:-}
rss_cached_tokens=${RSS_TOKENS:-}
rss_heap_inuse_kib=${RSS_HEAP_INUSE:-}
rss_next_gc_kib=${RSS_NEXT_GC:-}
rss_live_heap_kib=${RSS_LIVE_HEAP:-}
rss_after_gc_kib=${RSS_AFTER_GC_KIB:-}
rss_gomemlimit=${RSS_GOMEMLIMIT:-}
rss_gc_percent=${EC2PROXY_SERVER_GC_PERCENT:-}
phases=${PHASES:-all}
auth_options=$(option_keys)
micro_count=${MICRO_COUNT}
perf_window_s=${PERF_WINDOW_S}
micro_pinning=${SUT_CPU:+run on cpu${SUT_CPU} alone (GOMAXPROCS=1)}
EOF
}

#!/usr/bin/env bash
# The whole ec2proxy test suite, from a fresh machine to a verdict.
#
# Installs what is missing (Debian packages: Redis, Keystone, boto, botocore,
# awscli), starts a private Redis and a real Keystone on loopback, runs
# gofmt/vet/staticcheck, the unit and end-to-end tests with the race detector, the
# allocation tests, the proxy and end-to-end tests again without it (raw
# socket calls), the benchmark harness with short passes, and a bounded
# fuzzing pass; then stops the services.
#
# Usage: test/run.sh              (as root, or with sudo available for apt)
# Env:   EC2PROXY_TEST_STATE     where services keep state (default .state/test)
#        FUZZTIME                fuzzing time per target (default 10s; 0 skips)
#        KEEP_SERVICES=1         leave Redis and Keystone running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
STATE=${EC2PROXY_TEST_STATE:-$PWD/.state/test}
FUZZTIME=${FUZZTIME:-10s}
mkdir -p "$STATE"

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

cleanup() {
	local rc=$?
	if [[ ${KEEP_SERVICES:-0} != 1 ]]; then
		step "stopping services"
		bash test/scripts/keystone-down.sh "$STATE/keystone" || true
		bash test/scripts/redis-down.sh "$STATE/redis" || true
	fi
	if [[ $rc == 0 ]]; then echo "ALL TESTS PASSED"; else echo "TESTS FAILED (exit $rc)"; fi
	exit $rc
}
trap cleanup EXIT

step "dependencies"
command -v go >/dev/null || { echo "go not found: install Go 1.26 (https://go.dev/dl/)" >&2; exit 1; }
bash test/scripts/deps.sh
go mod download

step "static checks"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.state/*'))
if [[ -n $unformatted ]]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
# go.mod must say which modules are imported directly, and go.sum hold every hash.
go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }
go vet ./...
# The event loop and io_uring are Linux-only; the rest (and its tests) must
# still build elsewhere, so a developer on a Mac can run the unit tests.
GOOS=darwin go vet ./...
# staticcheck at a fixed version; go run fetches it without touching go.mod.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "static build, as the Dockerfile does"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$STATE/ec2proxy" ./cmd/ec2proxy
if ldd "$STATE/ec2proxy" >/dev/null 2>&1; then echo "ec2proxy is not a static binary" >&2; exit 1; fi
"$STATE/ec2proxy" version

step "services"
bash test/scripts/redis-up.sh "$STATE/redis"
# shellcheck disable=SC1091
source "$STATE/redis/redis.env"
bash test/scripts/keystone-up.sh "$STATE/keystone"
export EC2PROXY_TEST_STATE="$STATE" EC2PROXY_TEST_REQUIRE_SERVICES=1

step "unit and end-to-end tests (race detector)"
go test -race -count=1 -timeout 15m ./...

step "allocation tests (built without the race detector)"
go test -count=1 -run 'Allocs' ./...

# Under -race, internal/rawsock reads and writes through package syscall
# (whose calls the detector understands) and internal/uring refuses (the
# detector cannot see what the kernel copies); the raw system calls and
# io_uring rounds that production makes run here.
step "raw socket calls and io_uring: proxy and end-to-end tests without the race detector"
go test -count=1 -timeout 10m ./internal/rawsock ./internal/uring ./proxy ./test

# The stages above serve the end-to-end stacks from the event loop (the
# default). The goroutine server still serves TLS and PROXY-protocol
# listeners, and operators may turn the loop off: the same tests again,
# served by it.
step "goroutine server: end-to-end tests with server.event_loop off"
EC2PROXY_TEST_EVENT_LOOP=0 go test -count=1 -timeout 10m ./test

# make bench's harness end to end, with 1 s passes: it builds, drives the
# backend, nginx, every ec2proxy variant and the floods, and report -check
# fails on a pass missing or answered wrongly, or a target that counts
# calls (Keystone during floods, ec2tokens per key, Redis on the warm path)
# missed. Speed is not judged here; `make bench` measures it.
step "the benchmark harness: make bench with 1 s passes, checked"
if [[ $(id -u) == 0 ]]; then
	if ! BENCH_STATE="$STATE/bench" CHECK=1 ROUNDS=1 WARMUP=1s DURATION=1s KEYS=20 RSS_KEYS=2000 \
		MICRO_COUNT=1 MICRO_BENCHTIME=10ms LAT_RATE=1000 LAT_ROUNDS=1 PROFILE=0 PERF=0 \
		bash bench/run.sh >"$STATE/bench.log" 2>&1; then
		cat "$STATE/bench.log"
		echo "the benchmark harness failed (its output above; run directory under $STATE/bench/runs)" >&2
		exit 1
	fi
	grep -E '^(bench|loadgen):|^the run is whole' "$STATE/bench.log"
else
	echo "skipped: bench/run.sh needs root (apt-get, taskset)"
fi

# corpus_files DIR - the inputs saved under DIR; none for a target that
# never saved one (no directory is not an error).
corpus_files() { if [[ -d $1 ]]; then ls "$1" | sort; fi; }

# fuzz_one PKG DIR TARGET - fuzz one target for FUZZTIME. Go 1.26's fuzz
# coordinator can fail a run with a bare "context deadline exceeded" at the
# end of -fuzztime when its workers are starved of CPU (golang/go#75804,
# fixed in Go 1.27): that failure writes no failing input. A run that fails
# without writing one is therefore confirmed by replaying the corpus, and
# only a written input or a failing replay fails the suite.
fuzz_one() {
	local pkg=$1 dir=$2 target=$3 corpus before log
	corpus="$dir/testdata/fuzz/$target"
	before=$(corpus_files "$corpus")
	log=$(mktemp)
	if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; [[ ${PIPESTATUS[0]} == 0 ]]; then
		rm -f "$log"
		return 0
	fi
	if [[ $(corpus_files "$corpus") != "$before" ]] || ! grep -q 'context deadline exceeded' "$log"; then
		rm -f "$log"
		echo "FUZZ FAILURE in $pkg $target (failing input, if any, under $corpus)" >&2
		return 1
	fi
	rm -f "$log"
	echo "--- $target: the Go fuzz coordinator's deadline race (golang/go#75804), no failing input; replaying the corpus"
	go test -count=1 -run "^${target}\$" "$pkg"
}

if [[ $FUZZTIME != 0 ]]; then
	step "fuzzing, $FUZZTIME per target"
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
			echo "--- $pkg $target"
			fuzz_one "$pkg" "$dir" "$target"
		done
	done
fi

#!/usr/bin/env bash
# The whole ec2proxy test suite, from a fresh machine to a verdict.
#
# Installs what is missing (Debian packages: Redis, Keystone, boto, botocore,
# awscli), starts a private Redis and a real Keystone on loopback, runs
# gofmt/vet, the unit and end-to-end tests with the race detector, the
# allocation tests, and a bounded fuzzing pass; then stops the services.
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
go vet ./...

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

if [[ $FUZZTIME != 0 ]]; then
	step "fuzzing, $FUZZTIME per target"
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
			echo "--- $pkg $target"
			go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
		done
	done
fi

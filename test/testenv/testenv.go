// Package testenv gives tests the real services test/run.sh started (Redis,
// Keystone). Without them a test is skipped, unless
// EC2PROXY_TEST_REQUIRE_SERVICES=1 (set by test/run.sh), where a missing
// service fails the test: CI must never pass by skipping.
package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Env names test/run.sh exports.
const (
	RequireServices = "EC2PROXY_TEST_REQUIRE_SERVICES"
	RedisAddrVar    = "EC2PROXY_TEST_REDIS_ADDR"
	StateDirVar     = "EC2PROXY_TEST_STATE"
)

func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv(RequireServices) == "1" {
		t.Fatalf("%s is not available but %s=1: test/run.sh should have started it", what, RequireServices)
	}
	t.Skipf("%s is not available; run the whole suite with test/run.sh", what)
}

// RedisAddr is the address of a Redis server tests may use (and flush).
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(RedisAddrVar)
	if addr == "" {
		missing(t, "Redis ("+RedisAddrVar+")")
	}
	return addr
}

// Keystone describes the real Keystone started by test/scripts/keystone-up.sh.
type Keystone struct {
	URL                           string // base URL without /v3
	ServiceUser, ServicePassword  string
	ServiceProject, ServiceDomain string
	vars                          map[string]string
}

// Var returns a variable from the Keystone state files (keystone.env,
// demo-ec2.env), e.g. DEMO_EC2_ACCESS.
func (k Keystone) Var(t testing.TB, name string) string {
	t.Helper()
	v, ok := k.vars[name]
	if !ok || v == "" {
		t.Fatalf("keystone state has no %s", name)
	}
	return v
}

// KeystoneEnv reads the Keystone state written by keystone-up.sh.
func KeystoneEnv(t testing.TB) Keystone {
	t.Helper()
	dir := os.Getenv(StateDirVar)
	if dir == "" {
		missing(t, "Keystone ("+StateDirVar+")")
	}
	vars := map[string]string{}
	for _, f := range []string{"keystone.env", "demo-ec2.env"} {
		path := filepath.Join(dir, "keystone", f)
		if err := ReadEnvFile(path, vars); err != nil {
			missing(t, "Keystone state "+path)
		}
	}
	k := Keystone{vars: vars, URL: vars["EC2PROXY_TEST_KEYSTONE_URL"]}
	k.ServiceUser = k.Var(t, "EC2PROXY_TEST_KEYSTONE_SERVICE_USER")
	k.ServicePassword = k.Var(t, "EC2PROXY_TEST_KEYSTONE_SERVICE_PASSWORD")
	k.ServiceProject = k.Var(t, "EC2PROXY_TEST_KEYSTONE_SERVICE_PROJECT")
	k.ServiceDomain = k.Var(t, "EC2PROXY_TEST_KEYSTONE_SERVICE_DOMAIN")
	if k.URL == "" {
		t.Fatal("keystone.env has no EC2PROXY_TEST_KEYSTONE_URL")
	}
	return k
}

// ReadEnvFile parses `export NAME=value` lines (values optionally quoted),
// as the scripts under test/scripts write them, into into.
func ReadEnvFile(path string, into map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "))
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		into[name] = strings.Trim(value, `"'`)
	}
	return sc.Err()
}

// Clients checks that Debian's python3 has the real client libraries the
// tests drive (boto 2, botocore, awscrt); test/run.sh installs them.
func Clients(t testing.TB) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-c", "import boto, botocore, awscrt")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if err := cmd.Run(); err != nil {
		missing(t, "Debian's python3 with boto, botocore and awscrt")
	}
}

package test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/demobackend"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// ---------------------------------------------------------------------------
// Replicas: `ec2proxy serve` processes.

// fleet is what replicas share: Redis (a private redis-server, one key
// prefix), the encryption key, Keystone and the backend.
type fleet struct {
	redis      *privateRedis // its own: a test stops it
	client     *redis.Client
	prefix     string
	keyFile    string
	redisAddr  string
	backend    *demobackend.Backend
	backendURL string
	store      *credstore.Redis
	replicas   []*replica
}

type replica struct {
	f         *fleet
	name      string
	addr      string // EC2 listener, 127.0.0.1:port
	adminAddr string
	conf      string
	server    string // the server section's settings
	cmd       *exec.Cmd
	done      chan struct{}
	exitErr   error
	log       *syncBuffer
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	testenv.KeystoneEnv(t) // skip (or fail in CI) before anything starts
	f := &fleet{redis: startPrivateRedis(t)}
	f.redisAddr = f.redis.addr
	f.prefix = fmt.Sprintf("ec2proxy-fleet:%s:%d:", t.Name(), time.Now().UnixNano())
	f.keyFile = filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(f.keyFile, []byte(credstore.GenerateKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.backend = &demobackend.Backend{Max: 1 << 20}
	srv := httptest.NewServer(f.backend)
	t.Cleanup(srv.Close)
	f.backendURL = srv.URL

	// The test's own client, for setting up records (the private Redis and
	// its keys go away with the test).
	f.client = redis.NewClient(&redis.Options{Addr: f.redisAddr})
	t.Cleanup(func() { f.client.Close() })
	keyring, err := credstore.LoadKeyring(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	f.store = credstore.NewRedis(f.client, f.prefix, keyring)
	return f
}

// config is a replica's configuration file: production-like settings
// (credentials cached for the default minute, so only invalidation can
// make a change take effect sooner), loopback ports.
func (f *fleet) config(t *testing.T, r *replica) string {
	ks := testenv.KeystoneEnv(t)
	return fmt.Sprintf(`listen: %q
admin_listen: %q
server: {%s}
routes: [{path_prefix: /, backend: %q}]
credentials:
  store: redis
  cache_ttl: 60s
  encryption_key_file: %q
redis: {addrs: [%q], key_prefix: %q}
identity: {mode: keystone}
keystone:
  auth_url: %q
  service_user: {name: %q, password: %q, domain_name: %q, project_name: %q, project_domain_name: %q}
protection: {lockout: {max_failures: 1000}}
log: {level: info, format: json}
`, r.addr, r.adminAddr, r.server, f.backendURL, f.keyFile, f.redisAddr, f.prefix,
		ks.URL, ks.ServiceUser, ks.ServicePassword, ks.ServiceDomain, ks.ServiceProject, ks.ServiceDomain)
}

// defaultServer: haproxy (on loopback) is the trusted balancer.
const defaultServer = `trusted_proxies: ["127.0.0.1/32"], shutdown_timeout: 10s`

// addReplica writes a configuration (server: the server section's
// settings) and starts `ec2proxy serve` with it; it returns once /readyz
// answers 200 (Redis and Keystone reachable).
func (f *fleet) addReplica(t *testing.T, name, server string) *replica {
	t.Helper()
	return f.addReplicas(t, server, name)[0]
}

// addReplicas is addReplica for several, started together. They stop
// when t ends.
func (f *fleet) addReplicas(t *testing.T, server string, names ...string) []*replica {
	t.Helper()
	var rs []*replica
	for _, name := range names {
		r := &replica{f: f, name: name, addr: freePort(t), adminAddr: freePort(t), server: server}
		r.conf = filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(r.conf, []byte(f.config(t, r)), 0o600); err != nil {
			t.Fatal(err)
		}
		f.replicas = append(f.replicas, r)
		t.Cleanup(func() { r.stop(t) })
		r.start(t)
		rs = append(rs, r)
	}
	for _, r := range rs {
		r.waitReady(t)
	}
	return rs
}

// start runs the process; restart with start then waitReady.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.log = &syncBuffer{}
	r.cmd = exec.Command(binary(t), "serve", "-config", r.conf)
	r.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.SysProcAttr = diesWithTest()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { r.exitErr = cmd.Wait(); close(done) }(r.cmd, r.done)
}

// waitReady waits until /readyz answers 200.
func (r *replica) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		select {
		case <-r.done:
			t.Fatalf("%s exited at start-up (%v):\n%s", r.name, r.exitErr, r.log.String())
		default:
		}
		if code, _, err := httpGet(r.adminURL() + "/readyz"); err == nil && code == 200 {
			return
		}
		if time.Now().After(deadline) {
			_, body, err := httpGet(r.adminURL() + "/readyz")
			t.Fatalf("%s not ready within 40s (/readyz: %q %v):\n%s", r.name, body, err, r.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *replica) url() string      { return "http://" + r.addr }
func (r *replica) adminURL() string { return "http://" + r.adminAddr }

func (r *replica) running() bool {
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL: no drain, no goodbye.
func (r *replica) kill() {
	if r.running() {
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// terminate sends SIGTERM and waits for the drain; it returns the exit
// status error (nil for exit 0).
func (r *replica) terminate(limit time.Duration) error {
	if !r.running() {
		return fmt.Errorf("%s is not running", r.name)
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return r.exitErr
	case <-time.After(limit):
		r.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM", r.name, limit)
	}
}

func (r *replica) stop(t *testing.T) {
	if r.running() {
		_ = r.terminate(15 * time.Second)
	}
	if t.Failed() && r.log != nil {
		t.Logf("%s log (last 4000 bytes):\n%s", r.name, tail(r.log.String(), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

var metricsClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(u string) (int, string, error) {
	resp, err := metricsClient.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric sums the samples of name whose labels include all of labels
// (name=value pairs), from the replica's /metrics.
func (r *replica) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	code, body, err := httpGet(r.adminURL() + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("%s /metrics: %d %v", r.name, code, err)
	}
	return sumMetric(body, name, labels...)
}

func sumMetric(text, name string, labels ...string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		series, value := line[:i], line[i+1:]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		match := true
		for j := 0; j+1 < len(labels); j += 2 {
			if !strings.Contains(series, labels[j]+`="`+labels[j+1]+`"`) {
				match = false
			}
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil && match {
			sum += v
		}
	}
	return sum
}

// fleetMetric sums a metric over every running replica.
func (f *fleet) fleetMetric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	sum := 0.0
	for _, r := range f.replicas {
		if r.running() {
			sum += r.metric(t, name, labels...)
		}
	}
	return sum
}

// ---------------------------------------------------------------------------
// haproxy.

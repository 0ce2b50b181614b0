package test

// Issue 7, the fleet: several `ec2proxy serve` processes behind a real
// haproxy (the Debian package), sharing one Redis and one real Keystone,
// as a cloud's EC2 endpoint runs them. What is checked:
//   - boto 2 and botocore through haproxy;
//   - a Keystone token fetched once for the whole fleet (shared in Redis);
//   - a credential disabled with the CLI is refused by every replica
//     within 1 s (publish/subscribe), although replicas cache credentials;
//   - a replica killed (SIGKILL) under load: no read-only request fails
//     (haproxy retries them elsewhere); requests haproxy must not replay
//     fail at most once per request in flight on the dead replica, and none
//     reaches the backend twice;
//   - a rolling restart (SIGTERM, drain, start again) under the same load;
//   - the PROXY protocol (haproxy send-proxy-v2) and X-Forwarded-Host from
//     trusted peers, and neither from anyone else.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/demobackend"
	"github.com/ec2proxy/ec2proxy/sigv2"
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
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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

type haproxy struct {
	addr  string // the frontend, 127.0.0.1:port
	stats string // stats listener, 127.0.0.1:port
	cmd   *exec.Cmd
	done  chan struct{}
	log   *syncBuffer
}

// haproxyGlobal is the start of every generated configuration: logs to
// stdout (the test shows them on failure), a stats page for server states
// and retry counters.
const haproxyGlobal = `global
    maxconn 4000
    log stdout format raw local0 info

defaults
    log global
    timeout connect 500ms
    timeout client 30s
    timeout server 30s
    timeout check 1s

listen stats
    mode http
    bind %s
    stats enable
    stats uri /stats
`

// haproxyBackend is the recommended EC2 backend section (the one in
// configs/examples/haproxy.cfg, with test timings), checking check on the
// admin listener: a failed connection is retried, on another replica each
// time; a request sent to a replica that then died without answering is
// replayed only if it is read-only (Describe*, Get*: the signature is then
// checked again, nothing else happens twice). Server lines follow.
func haproxyBackend(name, check string) string {
	return fmt.Sprintf(`
backend %s
    mode http
    balance roundrobin
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-buffer-request
    acl ec2_read_only url_param(Action) -m beg Describe Get
    acl ec2_read_only req.body_param(Action) -m beg Describe Get
    http-request disable-l7-retry unless ec2_read_only
    option httpchk GET %s
    http-check expect status 200
    default-server inter 300ms fastinter 200ms downinter 300ms fall 2 rise 2
`, name, check)
}

// haproxyBinary finds haproxy, which Debian installs in /usr/sbin (not
// always on a non-root PATH).
func haproxyBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
			return "/usr/sbin/haproxy"
		}
	}
	return requireTool(t, "haproxy")
}

// startHAProxy runs haproxy with config, whose EC2 frontend binds front
// and whose stats page binds stats.
func startHAProxy(t *testing.T, front, stats, config string) *haproxy {
	t.Helper()
	bin := haproxyBinary(t)
	h := &haproxy{addr: front, stats: stats, log: &syncBuffer{}}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c refused the configuration: %v\n%s\n%s", err, out, config)
	}
	h.cmd = exec.Command(bin, "-db", "-f", path)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.done = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("haproxy log (last 6000 bytes):\n%s", tail(h.log.String(), 6000))
		}
	})
	return h
}

func (h *haproxy) url() string { return "http://" + h.addr }

// serverStates reads the stats page: server → status (UP, DOWN, ...), the
// server named alone in backend ec2proxy, as backend/server in others; and
// backend ec2proxy's counters.
func (h *haproxy) serverStates() (map[string]string, map[string]string) {
	code, body, err := httpGet("http://" + h.stats + "/stats;csv")
	if err != nil || code != 200 {
		return nil, nil
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
		return nil, nil
	}
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	states, counters := map[string]string{}, map[string]string{}
	for _, line := range lines[1:] {
		fields := strings.Split(line, ",")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(fields) {
				row[c] = fields[i]
			}
		}
		switch {
		case row["pxname"] == "ec2proxy" && row["svname"] == "BACKEND":
			for _, c := range []string{"stot", "wretr", "wredis", "eresp", "econ", "hrsp_5xx"} {
				counters[c] = row[c]
			}
		case row["svname"] == "FRONTEND" || row["svname"] == "BACKEND" || row["pxname"] == "stats":
		case row["pxname"] == "ec2proxy":
			states[row["svname"]] = row["status"]
		default:
			states[row["pxname"]+"/"+row["svname"]] = row["status"]
		}
	}
	return states, counters
}

// waitStates waits until every named server has the wanted status (UP or
// DOWN); it returns how long that took.
func (h *haproxy) waitStates(t *testing.T, limit time.Duration, want map[string]string) time.Duration {
	t.Helper()
	var states map[string]string
	took, ok := eventually(limit, func() bool {
		states, _ = h.serverStates()
		for name, w := range want {
			if states[name] != w {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("haproxy servers %v after %v; want %v", states, limit, want)
	}
	return took
}

// serverLine is one `server` line for replica r: traffic to its EC2
// listener, health checks to its admin listener.
func serverLine(r *replica, options string) string {
	_, adminPort, _ := net.SplitHostPort(r.adminAddr)
	return fmt.Sprintf("    server %s %s check port %s %s\n", r.name, r.addr, adminPort, options)
}

// ---------------------------------------------------------------------------
// Signed requests from Go, on any client (keep-alive, source address).

var nonce atomic.Int64

// signedV2 builds a SigV2 request for endpoint (what the client connects
// to) signed for host (what it says in Host; normally the endpoint's).
func signedV2(method, endpoint, host, access, secret string, params map[string]string) *http.Request {
	p := map[string]string{
		"AWSAccessKeyId": access, "Action": "DescribeRegions", "Version": "2016-11-15",
		"SignatureMethod": "HmacSHA256", "SignatureVersion": "2",
		"Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05Z"),
		"Nonce":     strconv.FormatInt(nonce.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	for k, v := range params {
		p[k] = v
	}
	var pairs []sigv2.Pair
	form := url.Values{}
	for k, v := range p {
		pairs = append(pairs, sigv2.Pair{Name: k, Value: v})
		form.Set(k, v)
	}
	form.Set("Signature", sigv2.NewKey([]byte(secret)).Sign(sigv2.HmacSHA256, sigv2.StringToSign(method, host, "/", pairs)))
	encoded := strings.ReplaceAll(form.Encode(), "+", "%20")
	var req *http.Request
	if method == http.MethodGet {
		req, _ = http.NewRequest(method, endpoint+"/?"+encoded, nil)
	} else {
		req, _ = http.NewRequest(method, endpoint+"/", strings.NewReader(encoded))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	req.Host = host
	return req
}

// fleetResult is one answer: status, EC2 code, the identity the backend
// saw (X-Demo-Identity, passed back through ec2proxy), the body.
type fleetResult struct {
	status   int
	code     string
	identity string
	body     string
	start    time.Time
	took     time.Duration
	err      error
	token    string // the ClientToken sent, if any
}

func (r fleetResult) String() string {
	if r.err != nil {
		return fmt.Sprintf("error %v after %v", r.err, r.took)
	}
	return fmt.Sprintf("%d %s after %v: %.200s", r.status, r.code, r.took, r.body)
}

func do(c *http.Client, req *http.Request) fleetResult {
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return fleetResult{err: err, start: start, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := fleetResult{status: resp.StatusCode, body: string(b), identity: resp.Header.Get("X-Demo-Identity"), start: start, took: time.Since(start), err: err}
	if m := codeRE.FindStringSubmatch(r.body); m != nil {
		r.code = m[1]
	}
	return r
}

// correct says whether r is the backend's answer to action for k.
func (r fleetResult) correct(action string, k keyPair) bool {
	return r.err == nil && r.status == 200 && strings.Contains(r.body, "<"+action+"Response") &&
		strings.Contains(r.identity, "user="+k.user+" ") && strings.Contains(r.identity, "project="+k.project+" ")
}

// sourceClient connects from the given loopback address (127.0.0.2 is not
// a trusted proxy; 127.0.0.1 is).
func sourceClient(source string, keepAlive bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4,
	}}
}

// ---------------------------------------------------------------------------
// Load through haproxy, with a kind of request per goroutine.

type loadKind struct {
	name     string
	method   string
	action   string
	readOnly bool // haproxy may replay it
}

var loadKinds = []loadKind{
	{"GET DescribeRegions", http.MethodGet, "DescribeRegions", true},
	{"POST DescribeAvailabilityZones", http.MethodPost, "DescribeAvailabilityZones", true},
	{"POST CreateTags", http.MethodPost, "CreateTags", false},
}

type loadRun struct {
	mu      sync.Mutex
	results map[string][]fleetResult // by kind name
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startLoad runs perKind goroutines of every load kind against endpoint,
// each on its own keep-alive connection, until stop.
func startLoad(endpoint string, k keyPair, perKind int) *loadRun {
	l := &loadRun{results: map[string][]fleetResult{}, stop: make(chan struct{})}
	host := strings.TrimPrefix(endpoint, "http://")
	for _, kind := range loadKinds {
		for i := 0; i < perKind; i++ {
			l.wg.Add(1)
			go func(kind loadKind, i int) {
				defer l.wg.Done()
				c := sourceClient("127.0.0.1", true)
				defer c.CloseIdleConnections()
				for n := 0; ; n++ {
					select {
					case <-l.stop:
						return
					default:
					}
					params := map[string]string{"Action": kind.action}
					token := ""
					if !kind.readOnly {
						token = fmt.Sprintf("tok-%d-%d-%d", i, n, time.Now().UnixNano())
						params["ClientToken"], params["ResourceId.1"], params["Tag.1.Key"] = token, "i-1", "k"
					}
					r := do(c, signedV2(kind.method, endpoint, host, k.access, k.secret, params))
					r.token = token
					l.mu.Lock()
					l.results[kind.name] = append(l.results[kind.name], r)
					l.mu.Unlock()
				}
			}(kind, i)
		}
	}
	return l
}

func (l *loadRun) finish() {
	close(l.stop)
	l.wg.Wait()
}

// check reports what each kind of request got: read-only ones must all be
// right; the others may fail at most maxLost times in all, and only with a
// balancer error (never an EC2 error from a replica, never a wrong
// answer), and none may reach the backend twice. It returns the
// non-replayable requests that failed.
func (l *loadRun) check(t *testing.T, f *fleet, what string, k keyPair, maxLost int) []fleetResult {
	t.Helper()
	var lost []fleetResult
	for _, kind := range loadKinds {
		rs := l.results[kind.name]
		var bad []string
		for _, r := range rs {
			if r.correct(kind.action, k) {
				continue
			}
			// A request haproxy must not replay that died with its replica:
			// haproxy answers with its own error page (no EC2 code), or
			// closes the client's keep-alive connection without an answer
			// (the client sees EOF; this is what haproxy 2.6 did here).
			if !kind.readOnly && (r.err != nil || r.code == "" && (r.status == 502 || r.status == 503 || r.status == 504)) {
				lost = append(lost, r)
				continue
			}
			bad = append(bad, r.String())
		}
		t.Logf("%s: %s: %d requests, %d wrong", what, kind.name, len(rs), len(bad))
		if len(rs) < 10 {
			t.Errorf("%s: only %d %s requests: the load did not run", what, len(rs), kind.name)
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			t.Errorf("%s: %d of %d %s requests failed or were answered wrongly, e.g.:\n%s", what, len(bad), len(rs), kind.name, strings.Join(bad[:min(len(bad), 10)], "\n"))
		}
	}
	seen := f.backendTokens()
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	executed := 0
	for _, r := range lost {
		if seen[r.token] > 0 {
			executed++
		}
	}
	t.Logf("%s: %d non-replayable requests failed (%d of them had reached the backend before the replica died); %d reached the backend twice", what, len(lost), executed, dups)
	for _, r := range lost {
		t.Logf("%s: not replayed by haproxy: %s", what, r)
	}
	if len(lost) > maxLost {
		t.Errorf("%s: %d non-replayable requests lost; want at most %d (one per such request in flight on the stopped replica)", what, len(lost), maxLost)
	}
	if dups > 0 {
		t.Errorf("%s: %d non-replayable requests reached the backend twice", what, dups)
	}
	return lost
}

// backendTokens counts the backend's receipts of each ClientToken.
func (f *fleet) backendTokens() map[string]int {
	seen := map[string]int{}
	for _, r := range f.backend.Requests() {
		if r.Action != "CreateTags" {
			continue
		}
		q, _ := url.ParseQuery(r.Body)
		if tok := q.Get("ClientToken"); tok != "" {
			seen[tok]++
		}
	}
	return seen
}

// ---------------------------------------------------------------------------
// The tests.

func TestFleetBehindHAProxy(t *testing.T) {
	haproxyBinary(t)
	f := newFleet(t)
	demo, other := demoKey(t), stackKey(t)
	putKeys(t, f.store, demo, other)
	rs := f.addReplicas(t, defaultServer, "r1", "r2", "r3")
	r1, r2, r3 := rs[0], rs[1], rs[2]

	front, stats := freePort(t), freePort(t)
	cfg := fmt.Sprintf(haproxyGlobal, stats) + fmt.Sprintf(`
frontend ec2
    mode http
    option httplog
    bind %s
    option forwardfor
    http-request del-header X-Forwarded-Host
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http unless { ssl_fc }
    use_backend ec2proxy_live if { nbsrv(ec2proxy) eq 0 }
    default_backend ec2proxy
`, front) + haproxyBackend("ec2proxy", "/readyz") + serverLine(r1, "") + serverLine(r2, "") + serverLine(r3, "") +
		haproxyBackend("ec2proxy_live", "/healthz") + serverLine(r1, "") + serverLine(r2, "") + serverLine(r3, "")
	h := startHAProxy(t, front, stats, cfg)
	took := h.waitStates(t, 20*time.Second, map[string]string{"r1": "UP", "r2": "UP", "r3": "UP"})
	t.Logf("3 replicas up behind haproxy %v after start", took)

	t.Run("boto 2 and botocore through haproxy", func(t *testing.T) {
		clients := [][]string{
			{"--client", "boto2", "--sigv2", "HmacSHA1", "--verb", "GET"},
			{"--client", "boto2"},    // SigV4 (boto 2.49's default for EC2)
			{"--client", "botocore"}, // SigV4
			{"--client", "botocore", "--sigv2", "HmacSHA256", "--action", "DescribeAvailabilityZones"},
		}
		for _, c := range clients {
			res := (&stack{t: t}).call(append([]string{"--endpoint", h.url() + "/", "--access", demo.access, "--secret", demo.secret}, c...)...)
			if !res.OK {
				t.Errorf("%v through haproxy: %+v", c, res)
			}
		}
		last, ok := f.backend.Last()
		if !ok {
			t.Fatal("the backend saw nothing")
		}
		if got := last.Header.Get("X-User-Id"); got != demo.user {
			t.Errorf("backend X-User-Id = %q; want the demo user %q", got, demo.user)
		}
		// haproxy added the client (127.0.0.1), ec2proxy kept it (trusted
		// peer) and appended haproxy's address.
		if got := last.Header.Get("X-Forwarded-For"); got != "127.0.0.1, 127.0.0.1" {
			t.Errorf("backend X-Forwarded-For = %q; want haproxy's value extended by ec2proxy", got)
		}
		// A client-sent X-Forwarded-Host is removed by haproxy (as in
		// configs/examples/haproxy.cfg): a request signed for it fails.
		req := signedV2(http.MethodPost, h.url(), "other.example", demo.access, demo.secret, nil)
		req.Host = h.addr
		req.Header.Set("X-Forwarded-Host", "other.example")
		if res := do(metricsClient, req); res.status != 403 || res.code != "SignatureDoesNotMatch" {
			t.Errorf("client-sent X-Forwarded-Host through haproxy: %s; want 403 SignatureDoesNotMatch", res)
		}
		for _, r := range f.replicas {
			if n := r.metric(t, "ec2proxy_requests_total", "outcome", "forwarded"); n < 1 {
				t.Errorf("%s forwarded %v requests; want round-robin to reach every replica", r.name, n)
			}
		}
	})

	t.Run("one Keystone token for the whole fleet", func(t *testing.T) {
		before := f.fleetMetric(t, "ec2proxy_keystone_requests_total", "op", "ec2tokens", "result", "ok")
		for _, r := range f.replicas { // in turn: each can find the previous one's token
			res := do(metricsClient, signedV2(http.MethodPost, r.url(), r.addr, other.access, other.secret, nil))
			if !res.correct("DescribeRegions", other) {
				t.Fatalf("stack key on %s: %s", r.name, res)
			}
		}
		calls := f.fleetMetric(t, "ec2proxy_keystone_requests_total", "op", "ec2tokens", "result", "ok") - before
		all := f.fleetMetric(t, "ec2proxy_keystone_requests_total", "op", "ec2tokens")
		t.Logf("ec2tokens calls for one key warmed on 3 replicas: %v (fleet total, all results, both keys: %v; shared token hits: %v)",
			calls, all, f.fleetMetric(t, "ec2proxy_shared_tokens_total", "result", "hit"))
		if calls != 1 {
			t.Errorf("%v successful ec2tokens calls across the fleet for one access key used on 3 replicas; want exactly 1 (tokens shared through Redis)", calls)
		}
	})

	t.Run("a credential disabled with the CLI is refused by every replica within 1s", func(t *testing.T) {
		for _, r := range f.replicas { // cached on every replica
			if res := do(metricsClient, signedV2(http.MethodPost, r.url(), r.addr, other.access, other.secret, nil)); !res.correct("DescribeRegions", other) {
				t.Fatalf("stack key on %s before the change: %s", r.name, res)
			}
		}
		cliStart := time.Now()
		cli(t, []string{"EC2PROXY_CONFIG=" + r1.conf}, "creds", "disable", other.access).want(t, 0, "disabled")
		changed := time.Now()
		const limit = time.Second
		type seen struct {
			name  string
			after time.Duration
			last  fleetResult
		}
		out := make(chan seen, len(f.replicas))
		for _, r := range f.replicas {
			go func(r *replica) {
				c := sourceClient("127.0.0.1", true)
				defer c.CloseIdleConnections()
				var last fleetResult
				for time.Since(changed) < 5*time.Second {
					last = do(c, signedV2(http.MethodPost, r.url(), r.addr, other.access, other.secret, nil))
					if last.status == 401 && last.code == "AuthFailure" {
						out <- seen{r.name, time.Since(changed), last}
						return
					}
					if !last.correct("DescribeRegions", other) {
						break // neither the old answer nor the refusal
					}
					time.Sleep(10 * time.Millisecond)
				}
				out <- seen{r.name, -1, last}
			}(r)
		}
		var report []string
		for range f.replicas {
			s := <-out
			if s.after < 0 {
				t.Errorf("%s: still not refusing the disabled credential 5s after the CLI returned; last answer %s", s.name, s.last)
				report = append(report, s.name+": not refused within 5s")
				continue
			}
			report = append(report, fmt.Sprintf("%s: %v", s.name, s.after.Round(time.Millisecond)))
			if s.after > limit {
				t.Errorf("%s refused the disabled credential %v after the CLI returned; want within %v", s.name, s.after, limit)
			}
		}
		sort.Strings(report)
		t.Logf("disable took effect (after the CLI returned, which took %v): %s", changed.Sub(cliStart).Round(time.Millisecond), strings.Join(report, ", "))
	})

	t.Run("one replica killed under load", func(t *testing.T) {
		before := map[string]float64{}
		for _, r := range f.replicas {
			before[r.name] = r.metric(t, "ec2proxy_requests_total", "outcome", "forwarded")
		}
		_, c0 := h.serverStates()
		l := startLoad(h.url(), demo, 2)
		time.Sleep(time.Second)
		r3.kill()
		down := h.waitStates(t, 10*time.Second, map[string]string{"r3": "DOWN"})
		time.Sleep(2 * time.Second)
		l.finish()
		_, c1 := h.serverStates()
		t.Logf("r3 killed; haproxy marked it DOWN %v later; haproxy backend counters before %v, after %v", down.Round(time.Millisecond), c0, c1)
		// Two goroutines send non-replayable requests: at most two can be
		// in flight on r3 when it dies.
		l.check(t, f, "kill -9", demo, 2)
		for _, r := range []*replica{r1, r2} {
			if n := r.metric(t, "ec2proxy_requests_total", "outcome", "forwarded"); n-before[r.name] < 20 {
				t.Errorf("%s forwarded %v requests during the load; the survivors should carry it", r.name, n-before[r.name])
			}
		}
	})

	t.Run("rolling restart: SIGTERM drains, the others carry the load", func(t *testing.T) {
		r3.start(t) // back from the kill
		r3.waitReady(t)
		h.waitStates(t, 10*time.Second, map[string]string{"r1": "UP", "r2": "UP", "r3": "UP"})
		l := startLoad(h.url(), demo, 2)
		time.Sleep(time.Second)
		start := time.Now()
		if err := r2.terminate(15 * time.Second); err != nil {
			t.Errorf("r2 after SIGTERM: %v", err)
		}
		drained := time.Since(start)
		h.waitStates(t, 10*time.Second, map[string]string{"r2": "DOWN"})
		r2.start(t)
		r2.waitReady(t)
		h.waitStates(t, 10*time.Second, map[string]string{"r2": "UP"})
		time.Sleep(500 * time.Millisecond)
		l.finish()
		_, c := h.serverStates()
		t.Logf("r2 drained and exited %v after SIGTERM; haproxy backend counters %v", drained.Round(time.Millisecond), c)
		l.check(t, f, "SIGTERM", demo, 2)
	})

	// A Redis outage hits every replica alike: /readyz fails everywhere and
	// haproxy would have no server left. The frontend then falls back to
	// the replicas that are alive (/healthz), which still serve cached
	// credentials and tokens, and answer 503 ServiceUnavailable for others.
	t.Run("Redis down for every replica: cached keys still served through haproxy", func(t *testing.T) {
		for _, r := range f.replicas {
			if res := do(metricsClient, signedV2(http.MethodPost, r.url(), r.addr, demo.access, demo.secret, nil)); !res.correct("DescribeRegions", demo) {
				t.Fatalf("demo key on %s before the outage: %s", r.name, res)
			}
		}
		f.client.Close() // quiet: it would log its failed reconnections
		f.redis.stop()
		took := h.waitStates(t, 10*time.Second, map[string]string{"r1": "DOWN", "r2": "DOWN", "r3": "DOWN",
			"ec2proxy_live/r1": "UP", "ec2proxy_live/r2": "UP", "ec2proxy_live/r3": "UP"})
		t.Logf("Redis stopped; every replica out of the ready pool %v later", took.Round(time.Millisecond))
		for i := 0; i < 6; i++ {
			if res := do(metricsClient, signedV2(http.MethodPost, h.url(), h.addr, demo.access, demo.secret, nil)); !res.correct("DescribeRegions", demo) {
				t.Errorf("cached key through haproxy, Redis down: %s", res)
			}
		}
		unknown := keyPair{access: "0123456789abcdef0123456789abcdef", secret: "0123456789abcdef0123456789abcdef"}
		if res := do(metricsClient, signedV2(http.MethodPost, h.url(), h.addr, unknown.access, unknown.secret, nil)); res.status != 503 || res.code != "ServiceUnavailable" {
			t.Errorf("uncached key through haproxy, Redis down: %s; want ec2proxy's 503 ServiceUnavailable", res)
		}
	})
}

// The PROXY protocol (haproxy send-proxy-v2, mode tcp) and X-Forwarded-Host
// (haproxy rewriting Host, mode http): both honoured from the trusted
// balancer only.
func TestFleetTrustedProxyHeaders(t *testing.T) {
	haproxyBinary(t)
	f := newFleet(t)
	demo := demoKey(t)
	putKeys(t, f.store, demo)
	untrusted := sourceClient("127.0.0.2", false)

	t.Run("PROXY protocol v2 from haproxy", func(t *testing.T) {
		r := f.addReplica(t, "pp", defaultServer+", proxy_protocol: true")
		front, stats := freePort(t), freePort(t)
		cfg := fmt.Sprintf(haproxyGlobal, stats) + fmt.Sprintf(`
frontend ec2tcp
    mode tcp
    bind %s
    default_backend ec2proxy

backend ec2proxy
    mode tcp
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1
`, front) + serverLine(r, "send-proxy-v2")
		h := startHAProxy(t, front, stats, cfg)
		h.waitStates(t, 20*time.Second, map[string]string{"pp": "UP"})

		// A real client through haproxy.
		if res := (&stack{t: t}).call("--client", "botocore", "--endpoint", h.url()+"/", "--access", demo.access, "--secret", demo.secret); !res.OK {
			t.Errorf("botocore through haproxy send-proxy-v2: %+v", res)
		}
		// From 127.0.0.2: the backend sees that address, announced by haproxy.
		res := do(untrusted, signedV2(http.MethodPost, h.url(), h.addr, demo.access, demo.secret, nil))
		if !res.correct("DescribeRegions", demo) {
			t.Fatalf("through haproxy from 127.0.0.2: %s", res)
		}
		if last, _ := f.backend.Last(); last.Header.Get("X-Forwarded-For") != "127.0.0.2" {
			t.Errorf("backend X-Forwarded-For = %q; want 127.0.0.2, the client haproxy announced", last.Header.Get("X-Forwarded-For"))
		}
		// A trusted peer without the header: closed, counted.
		missing := r.metric(t, "ec2proxy_proxy_protocol_errors_total", "reason", "missing")
		res = do(sourceClient("127.0.0.1", false), signedV2(http.MethodPost, r.url(), r.addr, demo.access, demo.secret, nil))
		if res.err == nil {
			t.Errorf("a trusted peer without a PROXY header was served: %s", res)
		}
		if n := r.metric(t, "ec2proxy_proxy_protocol_errors_total", "reason", "missing"); n != missing+1 {
			t.Errorf("proxy_protocol_errors_total{reason=missing} %v -> %v; want one more", missing, n)
		}
		// An untrusted peer is served without one, and a header it sends is
		// not believed: 10.9.9.9 never reaches the backend.
		res = do(untrusted, signedV2(http.MethodPost, r.url(), r.addr, demo.access, demo.secret, nil))
		if !res.correct("DescribeRegions", demo) {
			t.Errorf("untrusted peer, no PROXY header: %s", res)
		} else if last, _ := f.backend.Last(); last.Header.Get("X-Forwarded-For") != "127.0.0.2" {
			t.Errorf("untrusted peer: backend X-Forwarded-For = %q; want 127.0.0.2", last.Header.Get("X-Forwarded-For"))
		}
		f.backend.Reset()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := signedV2(http.MethodPost, r.url(), r.addr, demo.access, demo.secret, nil)
		fmt.Fprintf(conn, "PROXY TCP4 10.9.9.9 127.0.0.1 4242 8773\r\n")
		req.Write(conn)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Errorf("a PROXY header from an untrusted peer was accepted as a request prefix: %d", resp.StatusCode)
			}
		}
		for _, rec := range f.backend.Requests() {
			if strings.Contains(rec.Header.Get("X-Forwarded-For"), "10.9.9.9") {
				t.Errorf("an untrusted peer's PROXY header was believed: X-Forwarded-For %q", rec.Header.Get("X-Forwarded-For"))
			}
		}
	})

	t.Run("X-Forwarded-Host from haproxy", func(t *testing.T) {
		r := f.addReplica(t, "xfh", defaultServer)
		front, stats := freePort(t), freePort(t)
		// The balancer sends its own Host to the replicas and the client's in
		// X-Forwarded-Host: the signature covers the client's.
		cfg := fmt.Sprintf(haproxyGlobal, stats) + fmt.Sprintf(`
frontend ec2
    mode http
    option httplog
    bind %s
    option forwardfor
    http-request set-header X-Forwarded-Host %%[req.hdr(host)]
    http-request set-header Host ec2proxy.internal:8773
    default_backend ec2proxy
`, front) + haproxyBackend("ec2proxy", "/readyz") + serverLine(r, "")
		h := startHAProxy(t, front, stats, cfg)
		h.waitStates(t, 20*time.Second, map[string]string{"xfh": "UP"})

		res := do(sourceClient("127.0.0.1", false), signedV2(http.MethodPost, h.url(), h.addr, demo.access, demo.secret, nil))
		if !res.correct("DescribeRegions", demo) {
			t.Errorf("signed for the balancer's host, Host rewritten by haproxy: %s; want it verified against X-Forwarded-Host", res)
		}
		if last, ok := f.backend.Last(); ok && last.Header.Get("X-Forwarded-Host") != "" {
			t.Errorf("backend got X-Forwarded-Host %q; ec2proxy should drop forwarding headers", last.Header.Get("X-Forwarded-Host"))
		}
		for _, c := range [][]string{{"--client", "boto2", "--sigv2", "HmacSHA256"}, {"--client", "botocore"}} {
			if res := (&stack{t: t}).call(append([]string{"--endpoint", h.url() + "/", "--access", demo.access, "--secret", demo.secret}, c...)...); !res.OK {
				t.Errorf("%v through haproxy rewriting Host: %+v", c, res)
			}
		}
		// A client's own X-Forwarded-Host is replaced by haproxy's.
		req := signedV2(http.MethodPost, h.url(), "other.example", demo.access, demo.secret, nil)
		req.Host = h.addr
		req.Header.Set("X-Forwarded-Host", "other.example")
		if res := do(metricsClient, req); res.status != 403 || res.code != "SignatureDoesNotMatch" {
			t.Errorf("client-sent X-Forwarded-Host through haproxy: %s; want 403 SignatureDoesNotMatch", res)
		}
		// From an untrusted peer X-Forwarded-Host is ignored: a request
		// signed for it does not verify, one signed for Host does.
		req = signedV2(http.MethodPost, r.url(), "evil.example", demo.access, demo.secret, nil)
		req.Host = r.addr
		req.Header.Set("X-Forwarded-Host", "evil.example")
		if res := do(untrusted, req); res.status != 403 || res.code != "SignatureDoesNotMatch" {
			t.Errorf("untrusted peer, signed for its X-Forwarded-Host: %s; want 403 SignatureDoesNotMatch", res)
		}
		req = signedV2(http.MethodPost, r.url(), r.addr, demo.access, demo.secret, nil)
		req.Header.Set("X-Forwarded-Host", "evil.example")
		if res := do(untrusted, req); !res.correct("DescribeRegions", demo) {
			t.Errorf("untrusted peer, signed for Host, with an X-Forwarded-Host: %s", res)
		}
	})
}

// The example haproxy configuration shipped in configs/examples parses.
func TestHAProxyExampleConfig(t *testing.T) {
	bin := haproxyBinary(t)
	if out, err := exec.Command(bin, "-c", "-f", "../configs/examples/haproxy.cfg").CombinedOutput(); err != nil {
		t.Errorf("haproxy -c -f configs/examples/haproxy.cfg: %v\n%s", err, out)
	}
}

package test

// Fault tests (issue 6, "Faults"): ec2proxy with real Redis and real
// Keystone (startStack), with fault-injecting fakes in between: a private
// redis-server this test starts and kills, a TCP proxy that slows Redis
// down, an HTTP proxy in front of Keystone that can hang, fail or go away,
// and backends that are down, slow, reset or talk garbage. Every failure
// must be the right EC2 error within the configured timeouts, cached
// credentials and tokens must keep working, and nothing may hang or leak.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/internal/app"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// ---------------------------------------------------------------------------
// Clients and credentials.

// ec2Result is one EC2 call as a client saw it.
type ec2Result struct {
	status int
	code   string
	body   string
	took   time.Duration
	err    error // transport error (the call never got an answer)
}

func (r ec2Result) String() string {
	if r.err != nil {
		return fmt.Sprintf("error %v after %v", r.err, r.took)
	}
	return fmt.Sprintf("%d %s after %v: %.300s", r.status, r.code, r.took, r.body)
}

// faultClient never reuses connections (so goroutine counts are not
// muddled by idle ones) and gives up after 30 s: a hang shows as a failure,
// not as a stuck test.
var faultClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

var codeRE = regexp.MustCompile(`<Code>([^<]*)</Code>`)

// ec2Call sends a SigV2-signed POST for path on endpoint (http://host:port).
// It is safe to call from any goroutine.
func ec2Call(endpoint, path, access, secret string, params map[string]string) ec2Result {
	return ec2Post(endpoint, path, signV2("POST", strings.TrimPrefix(endpoint, "http://"), path, access, secret, params))
}

// ec2Post sends a signed form to path on endpoint.
func ec2Post(endpoint, path string, form url.Values) ec2Result {
	return ec2PostWith(faultClient, endpoint, path, form)
}

// ec2PostWith is ec2Post through client (one that keeps connections open,
// as the event loop serves them).
func ec2PostWith(client *http.Client, endpoint, path string, form url.Values) ec2Result {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, endpoint+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	resp, err := client.Do(req)
	if err != nil {
		return ec2Result{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r := ec2Result{status: resp.StatusCode, body: string(body), took: time.Since(start), err: err}
	if m := codeRE.FindStringSubmatch(r.body); m != nil {
		r.code = m[1]
	}
	return r
}

// ec2Get is ec2Call with GET (the query signed).
func ec2Get(endpoint, path, access, secret string, params map[string]string) ec2Result {
	q := signV2("GET", strings.TrimPrefix(endpoint, "http://"), path, access, secret, params)
	start := time.Now()
	resp, err := faultClient.Get(endpoint + path + "?" + encodeRFC3986(q))
	if err != nil {
		return ec2Result{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r := ec2Result{status: resp.StatusCode, body: string(body), took: time.Since(start), err: err}
	if m := codeRE.FindStringSubmatch(r.body); m != nil {
		r.code = m[1]
	}
	return r
}

func wantOK(t *testing.T, what string, r ec2Result) {
	t.Helper()
	if r.err != nil || r.status != 200 {
		t.Errorf("%s: %s; want 200", what, r)
	}
}

// wantFault checks an EC2 error and that it came within limit.
func wantFault(t *testing.T, what string, r ec2Result, status int, code string, limit time.Duration) {
	t.Helper()
	if r.err != nil || r.status != status || r.code != code {
		t.Errorf("%s: %s; want %d %s", what, r, status, code)
	}
	if r.took > limit {
		t.Errorf("%s: answered after %v; want within %v", what, r.took, limit)
	}
}

// keyPair is an EC2 credential Keystone knows, and who it belongs to.
type keyPair struct{ access, secret, user, project string }

func demoKey(t *testing.T) keyPair {
	ks := testenv.KeystoneEnv(t)
	return keyPair{ks.Var(t, "DEMO_EC2_ACCESS"), ks.Var(t, "DEMO_EC2_SECRET"), ks.Var(t, "DEMO_USER_ID"), ks.Var(t, "DEMO_PROJECT_ID")}
}

func stackKey(t *testing.T) keyPair {
	ks := testenv.KeystoneEnv(t)
	return keyPair{ks.Var(t, "STACK_EC2_ACCESS"), ks.Var(t, "STACK_EC2_SECRET"), ks.Var(t, "STACK_USER_ID"), ks.Var(t, "STACK_PROJECT_ID")}
}

// storeAt is a credential store on the Redis at addr, with s's prefix and
// encryption key.
func storeAt(t *testing.T, s *stack, addr string) *credstore.Redis {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 3, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	keyring, err := app.LoadKeyring(s.cfg.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	return credstore.NewRedis(client, s.cfg.Redis.KeyPrefix, keyring)
}

func putKeys(t *testing.T, store *credstore.Redis, keys ...keyPair) {
	t.Helper()
	for _, k := range keys {
		if err := store.Put(context.Background(), credRecord(k.access, k.secret, k.user, k.project)); err != nil {
			t.Fatal(err)
		}
	}
}

// putKeysSettled is putKeys for tests that rely on what s caches next: it
// waits until s has applied the change events the writes announce, so that
// a late one cannot drop the credential or token the test has just warmed.
func putKeysSettled(t *testing.T, s *stack, store *credstore.Redis, keys ...keyPair) {
	t.Helper()
	if _, ok := eventually(5*time.Second, func() bool { return s.metric("ec2proxy_events_subscribed") == 1 }); !ok {
		t.Fatal("the proxy never subscribed to change events")
	}
	before := s.metric("ec2proxy_invalidations_total")
	putKeys(t, store, keys...)
	if _, ok := eventually(5*time.Second, func() bool {
		return s.metric("ec2proxy_invalidations_total") >= before+float64(len(keys))
	}); !ok {
		t.Fatalf("the proxy did not hear the %d changes within 5 s", len(keys))
	}
}

// warmUp calls until the key is served: the first call authenticates the
// service user and exchanges a token with the real Keystone, which can be
// slow on a loaded machine. What is under test comes after.
func warmUp(t *testing.T, s *stack, k keyPair) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		r := ec2Call(s.url, "/", k.access, k.secret, nil)
		if r.err == nil && r.status == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("warm-up never succeeded; last: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// eventually retries f until it returns true or limit passes; it returns
// how long that took and whether it succeeded.
func eventually(limit time.Duration, f func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if f() {
			return time.Since(start), true
		}
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutines is runtime.NumGoroutine without fasthttp's idle workers:
// after a burst of concurrent connections fasthttp keeps one parked worker
// per connection for MaxIdleWorkerDuration (10 s), a pool, not a leak. A
// worker serving a connection (serveConn on its stack) is counted.
func goroutines() (int, string) {
	buf := make([]byte, 8<<20)
	dump := string(buf[:runtime.Stack(buf, true)])
	n := 0
	for _, g := range strings.Split(dump, "\n\n") {
		if strings.Contains(g, "fasthttp.(*workerPool).workerFunc") && !strings.Contains(g, "serveConn") {
			continue
		}
		n++
	}
	return n, dump
}

// checkGoroutines waits (bounded) for the goroutine count to come back to
// within slack of base, and reports a leak otherwise.
func checkGoroutines(t *testing.T, base, slack int) {
	t.Helper()
	faultClient.CloseIdleConnections()
	var n int
	var dump string
	if _, ok := eventually(10*time.Second, func() bool { n, dump = goroutines(); return n <= base+slack }); !ok {
		var created []string
		for _, line := range strings.Split(dump, "\n") {
			if strings.HasPrefix(line, "created by ") {
				created = append(created, line)
			}
		}
		t.Errorf("goroutine leak: %d goroutines, %d before the fault (slack %d); created by:\n%s", n, base, slack, strings.Join(created, "\n"))
	}
}

func baseGoroutines() int { n, _ := goroutines(); return n }

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(testenv.RequireServices) == "1" {
			t.Fatalf("%s not found but %s=1", name, testenv.RequireServices)
		}
		t.Skipf("%s not found; run the suite with test/run.sh", name)
	}
	return p
}

func faultFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// deadPort is a loopback port where connections are refused for the whole
// test: bound, never listening, so no other listener gets it. A port from
// faultFreePort is free only until the next listener asks for one: CI once
// gave it to one of TestFaultBackend's own fakes (a stalling one), and
// "down" answered 504 instead of 502.
func deadPort(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fd) // the servers the test starts must not inherit it
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
}

// ---------------------------------------------------------------------------
// A private redis-server the test can stop and restart.

type privateRedis struct {
	t    *testing.T
	bin  string
	addr string
	port string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	r := &privateRedis{t: t, bin: requireTool(t, "redis-server"), port: faultFreePort(t), dir: t.TempDir()}
	r.addr = "127.0.0.1:" + r.port
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) start() {
	r.t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port may linger a moment after a kill
		r.cmd = exec.Command(r.bin, "--port", r.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--dir", r.dir, "--loglevel", "warning")
		if err = r.cmd.Start(); err != nil {
			r.t.Fatal(err)
		}
		r.done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
		c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		_, up := eventually(5*time.Second, func() bool {
			select {
			case <-r.done:
				return true // exited: retry
			default:
			}
			return c.Ping(context.Background()).Err() == nil
		})
		c.Close()
		select {
		case <-r.done:
			time.Sleep(100 * time.Millisecond)
			continue
		default:
		}
		if up {
			return
		}
		break
	}
	r.t.Fatalf("redis-server on %s did not come up", r.addr)
}

// stop kills the server (SIGKILL: no goodbye to clients) and waits for it.
func (r *privateRedis) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

func (r *privateRedis) connectedClients() int {
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	info, err := c.Info(context.Background(), "clients").Result()
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
			n, _ := strconv.Atoi(v)
			return n - 1 // this client
		}
	}
	return -1
}

// ---------------------------------------------------------------------------
// Redis stopped and restarted.

func TestFaultRedisStoppedAndRestarted(t *testing.T) {
	const (
		cacheTTL     = time.Second
		staleIfError = 3 * time.Second
	)
	priv := startPrivateRedis(t)
	s := startStack(t, func(c *configs.Config) {
		c.Redis.Addrs = []string{priv.addr}
		c.Credentials.CacheTTL = cacheTTL
		c.Credentials.StaleIfError = staleIfError
	})
	store := storeAt(t, s, priv.addr)
	cached, uncached := demoKey(t), stackKey(t)
	putKeysSettled(t, s, store, cached, uncached)

	warmUp(t, s, cached)
	// Wait out the TTL so that the next call reads Redis: the entry is then
	// fresh until cacheTTL after that read, and may be served stale for
	// staleIfError more.
	time.Sleep(cacheTTL)
	loadStart := time.Now()
	wantOK(t, "cached key, reloaded", ec2Call(s.url, "/", cached.access, cached.secret, nil))
	loadEnd := time.Now()
	base := baseGoroutines()

	priv.stop()
	outage := time.Now()

	t.Run("cached key is served inside stale_if_error", func(t *testing.T) {
		wantOK(t, "cached key, right after the outage", ec2Call(s.url, "/", cached.access, cached.secret, nil))
		// Past its TTL, inside stale_if_error: still served, from the stale entry.
		time.Sleep(time.Until(loadEnd.Add(cacheTTL + 200*time.Millisecond)))
		staleBefore := s.metric("ec2proxy_cache_lookups_total", "cache", "credential", "result", "stale")
		callStart := time.Now()
		r := ec2Call(s.url, "/", cached.access, cached.secret, nil)
		if callStart.Sub(loadStart) < cacheTTL+staleIfError-200*time.Millisecond {
			wantOK(t, "cached key past its TTL, Redis down", r)
			if n := s.metric("ec2proxy_cache_lookups_total", "cache", "credential", "result", "stale"); n <= staleBefore {
				t.Errorf("stale lookups %v -> %v; the credential should have been served stale", staleBefore, n)
			}
		} else {
			t.Logf("machine too slow to check inside the stale window")
		}
	})
	t.Run("uncached key is 503 quickly", func(t *testing.T) {
		// Repeatedly (enough that a goroutine or connection left behind per
		// failure shows in the leak check): nothing is cached negatively.
		for i := 0; i < 50; i++ {
			wantFault(t, "uncached key, Redis down", ec2Call(s.url, "/", uncached.access, uncached.secret, nil), 503, "ServiceUnavailable", 2*time.Second)
		}
	})
	t.Run("cached key past the stale limit is 503", func(t *testing.T) {
		time.Sleep(time.Until(loadEnd.Add(cacheTTL + staleIfError + 200*time.Millisecond)))
		wantFault(t, "cached key past stale_if_error, Redis down", ec2Call(s.url, "/", cached.access, cached.secret, nil), 503, "ServiceUnavailable", 2*time.Second)
	})
	t.Logf("outage lasted %v", time.Since(outage))

	t.Run("recovery within 1s of Redis returning, same process", func(t *testing.T) {
		priv.start() // same port, empty: put the records back as an operator's sync would
		putKeys(t, store, cached, uncached)
		back := time.Now()
		// The cached key's token is still cached: only Redis is needed.
		var last ec2Result
		took, ok := eventually(5*time.Second, func() bool {
			last = ec2Call(s.url, "/", cached.access, cached.secret, nil)
			return last.status == 200
		})
		if !ok || took > time.Second {
			t.Errorf("cached key recovered after %v (ok=%v, last %s); want within 1s of Redis returning", took, ok, last)
		}
		// The uncached key also needs a token from the real Keystone.
		_, ok = eventually(s.cfg.Keystone.Timeout+5*time.Second, func() bool {
			last = ec2Call(s.url, "/", uncached.access, uncached.secret, nil)
			return last.status == 200
		})
		if !ok {
			t.Errorf("uncached key never recovered (%v since Redis returned): %s", time.Since(back), last)
		}
		t.Logf("uncached key served %v after Redis returned", time.Since(back))
	})

	t.Run("no goroutine or connection leak", func(t *testing.T) {
		checkGoroutines(t, base, 15)
		// The proxy's pool, not one connection per failed attempt.
		if n := priv.connectedClients(); n < 0 || n > 2*runtime.GOMAXPROCS(0)*10 {
			t.Errorf("Redis has %d client connections after recovery", n)
		}
	})
}

// ---------------------------------------------------------------------------
// Redis answering slowly.

// delayProxy forwards TCP to target, holding every chunk of the answer for
// delay while it is set.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds
	mu     sync.Mutex
	conns  []net.Conn
}

func startDelayProxy(t *testing.T, target string) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, target: target}
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				down.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, down, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, down); up.Close() }()
			go func() {
				defer down.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						if d := time.Duration(p.delay.Load()); d > 0 {
							time.Sleep(d)
						}
						if _, werr := down.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *delayProxy) addr() string { return p.ln.Addr().String() }

func TestFaultRedisSlow(t *testing.T) {
	real := testenv.RedisAddr(t)
	slow := startDelayProxy(t, real)
	s := startStack(t, func(c *configs.Config) {
		c.Redis.Addrs = []string{slow.addr()}
		c.Redis.ReadTimeout = 300 * time.Millisecond
		c.Redis.WriteTimeout = 300 * time.Millisecond
		c.Redis.DialTimeout = 500 * time.Millisecond
	})
	cached, uncached := demoKey(t), stackKey(t)
	putKeysSettled(t, s, s.store, cached, uncached) // s.store writes to the real Redis directly
	warmUp(t, s, cached)
	base := baseGoroutines()

	slow.delay.Store(int64(2 * time.Second))
	// A slow Redis is a 503 within redis.read_timeout + redis.dial_timeout
	// (the credential fetch bound), with a second of slack: never a hang.
	limit := s.cfg.Redis.ReadTimeout + s.cfg.Redis.DialTimeout + time.Second
	t.Run("uncached key is 503 within the Redis timeouts", func(t *testing.T) {
		wantFault(t, "uncached key, Redis slow", ec2Call(s.url, "/", uncached.access, uncached.secret, nil), 503, "ServiceUnavailable", limit)
	})
	t.Run("20 concurrent uncached requests, none hangs", func(t *testing.T) {
		results := make(chan ec2Result, 20)
		for i := 0; i < 20; i++ {
			go func() { results <- ec2Call(s.url, "/", uncached.access, uncached.secret, nil) }()
		}
		for i := 0; i < 20; i++ {
			wantFault(t, "concurrent uncached key, Redis slow", <-results, 503, "ServiceUnavailable", limit)
		}
	})
	t.Run("cached key keeps working", func(t *testing.T) {
		r := ec2Call(s.url, "/", cached.access, cached.secret, nil)
		wantOK(t, "cached key, Redis slow", r)
		if r.took > time.Second {
			t.Errorf("cached key took %v while Redis was slow", r.took)
		}
	})

	slow.delay.Store(0)
	t.Run("recovery", func(t *testing.T) {
		var last ec2Result
		// The delayed answers still in flight drain for up to 2 s; then the
		// key needs its first Keystone exchange, which can be slow here.
		if took, ok := eventually(3*time.Second+s.cfg.Keystone.Timeout, func() bool {
			last = ec2Call(s.url, "/", uncached.access, uncached.secret, nil)
			return last.status == 200
		}); !ok {
			t.Errorf("uncached key not served %v after Redis became fast again: %s", took, last)
		}
	})
	checkGoroutines(t, base, 15)
}

// ---------------------------------------------------------------------------
// Keystone down, hanging, failing.

type keystoneMode int32

const (
	ksPass keystoneMode = iota
	ksHang
	ksFail500
)

// keystoneFault is an HTTP proxy in front of the real Keystone that can
// hang, answer 500, or go away (its port closed), and counts ec2tokens calls.
type keystoneFault struct {
	t           *testing.T
	target      *url.URL
	port        string
	mode        atomic.Int32
	ec2tokens   atomic.Int64
	inflight    atomic.Int64
	maxInflight atomic.Int64
	// hold500 delays a 500 until this many client calls have started and
	// then holdFor more, so concurrent callers overlap one exchange.
	hold500   atomic.Pointer[func()]
	mu        sync.Mutex
	srv       *http.Server
	released  chan struct{}
	closeOnce sync.Once
}

func startKeystoneFault(t *testing.T, target string) *keystoneFault {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &keystoneFault{t: t, target: u, port: faultFreePort(t), released: make(chan struct{})}
	f.up()
	t.Cleanup(func() {
		f.closeOnce.Do(func() { close(f.released) })
		f.down()
	})
	return f
}

func (f *keystoneFault) url() string { return "http://127.0.0.1:" + f.port }

func (f *keystoneFault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read the body first: only then does net/http notice a client that
	// hangs up, so a hung call ends when ec2proxy gives up on it.
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	isExchange := strings.HasSuffix(r.URL.Path, "/ec2tokens")
	if isExchange {
		f.ec2tokens.Add(1)
		n := f.inflight.Add(1)
		defer f.inflight.Add(-1)
		for {
			m := f.maxInflight.Load()
			if n <= m || f.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
	}
	switch keystoneMode(f.mode.Load()) {
	case ksHang:
		select {
		case <-r.Context().Done():
		case <-f.released:
		}
		return
	case ksFail500:
		if hold := f.hold500.Load(); hold != nil && isExchange {
			(*hold)()
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"error":{"code":500,"title":"Internal Server Error","message":"injected fault"}}`)
		return
	}
	httputil.NewSingleHostReverseProxy(f.target).ServeHTTP(w, r)
}

// up listens on the fault's port (again).
func (f *keystoneFault) up() {
	f.t.Helper()
	var ln net.Listener
	if _, ok := eventually(5*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:"+f.port)
		return err == nil
	}); !ok {
		f.t.Fatalf("cannot listen on 127.0.0.1:%s again", f.port)
	}
	srv := &http.Server{Handler: f}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck
}

// down closes the port and every connection: Keystone is gone.
func (f *keystoneFault) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func TestFaultKeystone(t *testing.T) {
	ks := testenv.KeystoneEnv(t)
	fault := startKeystoneFault(t, ks.URL)
	s := startStack(t, func(c *configs.Config) { c.Keystone.AuthURL = fault.url() })
	timeout := s.cfg.Keystone.Timeout
	cached, uncached := demoKey(t), stackKey(t)
	putKeysSettled(t, s, s.store, cached, uncached)
	warmUp(t, s, cached)
	base := baseGoroutines()

	// concurrent sends n calls for k at once and returns their results.
	concurrent := func(n int, k keyPair, started *atomic.Int64) []ec2Result {
		var wg sync.WaitGroup
		results := make([]ec2Result, n)
		gate := make(chan struct{})
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				if started != nil {
					started.Add(1)
				}
				results[i] = ec2Call(s.url, "/", k.access, k.secret, nil)
			}()
		}
		close(gate)
		wg.Wait()
		return results
	}

	t.Run("hanging: 503 within keystone.timeout, one exchange for 20 waiting requests", func(t *testing.T) {
		fault.mode.Store(int32(ksHang))
		before := fault.ec2tokens.Load()
		for i, r := range concurrent(20, uncached, nil) {
			wantFault(t, fmt.Sprintf("uncached key #%d, Keystone hanging", i), r, 503, "ServiceUnavailable", timeout+1500*time.Millisecond)
			if !strings.Contains(r.body, "identity service") {
				t.Errorf("message does not name the identity service: %s", r.body)
			}
		}
		if n := fault.ec2tokens.Load() - before; n != 1 {
			t.Errorf("Keystone got %d ec2tokens calls for 20 concurrent requests with one key; want 1", n)
		}
		r := ec2Call(s.url, "/", cached.access, cached.secret, nil)
		wantOK(t, "cached token, Keystone hanging", r)
		if r.took > time.Second {
			t.Errorf("cached token took %v while Keystone hung", r.took)
		}
		// ec2proxy gave up on the hung call: its connection is closed.
		if _, ok := eventually(3*time.Second, func() bool { return fault.inflight.Load() == 0 }); !ok {
			t.Errorf("%d ec2tokens calls still open at Keystone after ec2proxy's timeout", fault.inflight.Load())
		}
	})

	t.Run("answering 500: 503, one exchange at a time per key", func(t *testing.T) {
		// The hang's failure is the uncached key's answer for a second
		// (the token cache remembers a failure with nothing to serve that
		// long): past it, a new exchange.
		time.Sleep(1100 * time.Millisecond)
		fault.mode.Store(int32(ksFail500))
		var started atomic.Int64
		// Hold the 500 until all 20 calls have been sent, and 500 ms more,
		// so that they all wait on the same exchange.
		hold := func() {
			eventually(10*time.Second, func() bool { return started.Load() >= 20 })
			time.Sleep(500 * time.Millisecond)
		}
		fault.hold500.Store(&hold)
		defer fault.hold500.Store(nil)
		before := fault.ec2tokens.Load()
		fault.maxInflight.Store(0)
		for i, r := range concurrent(20, uncached, &started) {
			wantFault(t, fmt.Sprintf("uncached key #%d, Keystone 500", i), r, 503, "ServiceUnavailable", timeout+2*time.Second)
		}
		if n := fault.ec2tokens.Load() - before; n != 1 {
			t.Errorf("Keystone got %d ec2tokens calls for 20 concurrent requests with one key; want 1", n)
		}
		if m := fault.maxInflight.Load(); m > 1 {
			t.Errorf("%d concurrent ec2tokens calls for one key; want at most 1", m)
		}
		fault.hold500.Store(nil)
		wantFault(t, "uncached key, Keystone 500", ec2Call(s.url, "/", uncached.access, uncached.secret, nil), 503, "ServiceUnavailable", timeout)
		wantOK(t, "cached token, Keystone 500", ec2Call(s.url, "/", cached.access, cached.secret, nil))
	})

	t.Run("down (port closed): 503 quickly, cached token works", func(t *testing.T) {
		fault.mode.Store(int32(ksPass))
		fault.down()
		wantFault(t, "uncached key, Keystone down", ec2Call(s.url, "/", uncached.access, uncached.secret, nil), 503, "ServiceUnavailable", timeout)
		for i, r := range concurrent(20, uncached, nil) {
			wantFault(t, fmt.Sprintf("uncached key #%d, Keystone down", i), r, 503, "ServiceUnavailable", timeout)
		}
		wantOK(t, "cached token, Keystone down", ec2Call(s.url, "/", cached.access, cached.secret, nil))
	})

	t.Run("recovery without restarting the proxy", func(t *testing.T) {
		fault.up()
		var last ec2Result
		if took, ok := eventually(2*timeout+5*time.Second, func() bool {
			last = ec2Call(s.url, "/", uncached.access, uncached.secret, nil)
			return last.status == 200
		}); !ok {
			t.Errorf("uncached key not served %v after Keystone returned: %s", took, last)
		}
	})
	checkGoroutines(t, base, 15)
}

// Keystone at a closed port from the start: no token was ever cached.
func TestFaultKeystoneNeverReachable(t *testing.T) {
	s := startStack(t, func(c *configs.Config) {
		c.Keystone.AuthURL = "http://127.0.0.1:" + deadPort(t)
		c.Keystone.Timeout = 2 * time.Second
	})
	k := demoKey(t)
	putKeys(t, s.store, k)
	for i := 0; i < 3; i++ {
		wantFault(t, "Keystone never reachable", ec2Call(s.url, "/", k.access, k.secret, nil), 503, "ServiceUnavailable", s.cfg.Keystone.Timeout)
	}
	if n := len(s.backend.Requests()); n != 0 {
		t.Errorf("backend got %d requests", n)
	}
}

// ---------------------------------------------------------------------------
// Backend down, slow, resetting, talking garbage.

// fakeBackend accepts connections and lets behave do what it likes with
// each; it counts connections and the requests behave reports reading.
type fakeBackend struct {
	ln       net.Listener
	conns    atomic.Int64
	requests atomic.Int64
	release  chan struct{}
}

func startFakeBackend(t *testing.T, behave func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader)) *fakeBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBackend{ln: ln, release: make(chan struct{})}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				behave(f, c.(*net.TCPConn), bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		close(f.release)
		ln.Close()
		wg.Wait()
	})
	return f
}

func (f *fakeBackend) url() string { return "http://" + f.ln.Addr().String() }

// readRequest reads one request and counts it.
func (f *fakeBackend) readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, req.Body)
	f.requests.Add(1)
	return true
}

// stall waits until the peer goes away or the test ends.
func (f *fakeBackend) stall(c net.Conn) {
	gone := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, c); close(gone) }()
	select {
	case <-gone:
	case <-f.release:
	}
}

func resetConn(c *net.TCPConn) {
	_ = c.SetLinger(0) // close with RST
	c.Close()
}

func TestFaultBackend(t *testing.T) {
	down := "http://127.0.0.1:" + deadPort(t)
	fakes := map[string]*fakeBackend{
		"reset-on-accept": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) { resetConn(c) }),
		"reset-after-request": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) {
			if f.readRequest(br) {
				resetConn(c)
			}
		}),
		"close-after-request": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) { f.readRequest(br) }),
		"garbage": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) {
			if f.readRequest(br) {
				io.WriteString(c, "this is not HTTP\r\n\r\n")
			}
		}),
		"never-answers": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) {
			if f.readRequest(br) {
				f.stall(c)
			}
		}),
		"never-reads": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) { f.stall(c) }),
		"stalls-after-headers": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) {
			if f.readRequest(br) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n")
				f.stall(c)
			}
		}),
		"stalls-in-body": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) {
			if f.readRequest(br) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<Describe")
				f.stall(c)
			}
		}),
		"resets-in-body": startFakeBackend(t, func(f *fakeBackend, c *net.TCPConn, br *bufio.Reader) {
			if f.readRequest(br) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<Describe")
				time.Sleep(50 * time.Millisecond)
				resetConn(c)
			}
		}),
	}
	s := startStack(t, func(c *configs.Config) {
		c.Backend.Timeout = time.Second
		c.Backend.DialTimeout = 500 * time.Millisecond
		c.Routes = append(c.Routes, configs.Route{PathPrefix: "/down/", Backend: down})
		for name, f := range fakes {
			c.Routes = append(c.Routes, configs.Route{PathPrefix: "/" + name + "/", Backend: f.url()})
		}
	})
	k := demoKey(t)
	putKeys(t, s.store, k)
	warmUp(t, s, k)
	timeout := s.cfg.Backend.Timeout
	base := baseGoroutines()

	for _, c := range []struct {
		route  string
		status int
		code   string
		limit  time.Duration
	}{
		{"down", 502, "BadGateway", s.cfg.Backend.DialTimeout + time.Second},
		{"reset-on-accept", 502, "BadGateway", timeout + time.Second},
		{"reset-after-request", 502, "BadGateway", timeout + time.Second},
		{"close-after-request", 502, "BadGateway", timeout + time.Second},
		{"garbage", 502, "BadGateway", timeout + time.Second},
		{"resets-in-body", 502, "BadGateway", timeout + time.Second},
		{"never-answers", 504, "GatewayTimeout", timeout + 1500*time.Millisecond},
		{"never-reads", 504, "GatewayTimeout", timeout + 1500*time.Millisecond},
		{"stalls-after-headers", 504, "GatewayTimeout", timeout + 1500*time.Millisecond},
		{"stalls-in-body", 504, "GatewayTimeout", timeout + 1500*time.Millisecond},
	} {
		for _, method := range []string{"POST", "GET"} {
			t.Run(c.route+" "+method, func(t *testing.T) {
				f := fakes[c.route]
				var before int64
				if f != nil {
					before = f.requests.Load()
				}
				call := ec2Call
				if method == "GET" {
					call = ec2Get
				}
				// TerminateInstances: a request that must never run twice.
				r := call(s.url, "/"+c.route+"/", k.access, k.secret, map[string]string{"Action": "TerminateInstances", "InstanceId.1": "i-1"})
				wantFault(t, c.route, r, c.status, c.code, c.limit)
				if t.Failed() {
					t.Logf("ec2proxy logged: %s", s.lastFailureCause())
				}
				if f != nil {
					if n := f.requests.Load() - before; n > 1 {
						t.Errorf("the backend read the request %d times: a failed TerminateInstances was retried", n)
					}
				}
			})
		}
	}
	t.Run("the good route still works", func(t *testing.T) {
		wantOK(t, "good route", ec2Call(s.url, "/", k.access, k.secret, nil))
	})
	checkGoroutines(t, base, 15)
}

// lastFailureCause is the error ec2proxy logged with its last 5xx.
func (s *stack) lastFailureCause() string {
	entries := s.logs.FilterMessage("request failed").All()
	if len(entries) == 0 {
		return "(nothing logged)"
	}
	return fmt.Sprint(entries[len(entries)-1].ContextMap()["error"])
}

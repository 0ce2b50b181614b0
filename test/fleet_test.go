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
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestFleetBehindHAProxy(t *testing.T) {
	haproxyBinary(t)
	f := newFleet(t)
	demo, other := demoKey(t), stackKey(t)
	putKeys(t, f.store, demo, other)
	// shutdown_delay as docs/deployment.md recommends: above the time
	// haproxy's checks below take to mark a server down (fall 2 at
	// fastinter 200ms after an inter of 300ms).
	rs := f.addReplicas(t, defaultServer+", shutdown_delay: 1500ms", "r1", "r2", "r3")
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
		killed := time.Now()
		r3.kill()
		l.dying = [2]time.Time{killed, time.Now()}
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
		// None lost: during server.shutdown_delay haproxy takes r2 out
		// while r2 still serves, so no request meets a closing connection.
		// (Closing idle keep-alive connections at SIGTERM lost up to 3.)
		l.check(t, f, "SIGTERM", demo, 0)
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

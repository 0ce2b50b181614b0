package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
)

// TestEventLoop: with server.event_loop the same requests get the same
// answers, and the backend the same headers, as from the goroutine
// server; warm requests and refusals that need no Redis are served by the
// loop itself, cache misses and first failures of a signature (the
// lockout counts them in Redis) on goroutines (the connection stays in
// the loop), and requests the loop does not parse hand their connection
// to the goroutine server.
func TestEventLoop(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	seen := map[bool]map[string]string{}
	for _, loop := range []bool{false, true} {
		t.Run(fmt.Sprint("event_loop=", loop), func(t *testing.T) {
			s := startStack(t, func(c *configs.Config) { c.Server.EventLoop, c.Log.Access = loop, true })
			k := demoKey(t)
			putKeysSettled(t, s, s.store, k) // a late change event would drop the warmed credential
			host := strings.TrimPrefix(s.url, "http://")
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			call := func(form string, extra string) (int, string) {
				t.Helper()
				fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n%sContent-Length: %d\r\n\r\n%s", host, extra, len(form), form)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("answer %d without X-Request-Id", resp.StatusCode)
				}
				return resp.StatusCode, string(body)
			}
			signed := func(action string) string {
				return encodeRFC3986(signV2("POST", host, "/", k.access, k.secret, map[string]string{"Action": action}))
			}
			spoofed := "X-Auth-Token: spoofed\r\nX-Roles: admin\r\nX-User-Id: root\r\nX-Forwarded-For: 10.6.6.6\r\nX_Roles: admin\r\nConnection: keep-alive, X-Custom\r\nX-Custom: hop\r\nX-Kept: yes\r\n"
			if code, body := call(signed("DescribeRegions"), ""); code != 200 { // cold: Redis and Keystone
				t.Fatalf("first request: %d %s", code, body)
			}
			for i := 0; i < 5; i++ { // warm, one connection
				if code, body := call(signed("DescribeInstances"), spoofed); code != 200 {
					t.Fatalf("warm request %d: %d %s", i, code, body)
				}
			}
			if entries := s.logs.FilterMessage("request").All(); len(entries) == 0 {
				t.Error("no access log entry")
			} else if f := entries[len(entries)-1].ContextMap(); f["access_key"] != k.access || f["action"] != "DescribeInstances" || f["status"] != int64(200) {
				t.Errorf("access log entry %v", f)
			}
			seen[loop] = map[string]string{}
			record := func(prefix string) {
				got, _ := s.backend.Last()
				for name, values := range got.Header {
					switch name {
					case "X-Request-Id", "X-Openstack-Request-Id", "X-Auth-Token", "Content-Length":
						seen[loop][prefix+name] = fmt.Sprint(len(values), " value(s)") // per request, or per process
					default:
						seen[loop][prefix+name] = strings.Join(values, " | ")
					}
				}
			}
			record("")
			// A GET: the signed query string, no body and no Content-Length.
			query := encodeRFC3986(signV2("GET", host, "/", k.access, k.secret, map[string]string{"Action": "DescribeInstances"}))
			fmt.Fprintf(c, "GET /?%s HTTP/1.1\r\nHost: %s\r\n%s\r\n", query, host, spoofed)
			if resp, err := http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			} else if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 {
				t.Errorf("GET: %d %s", resp.StatusCode, body)
			}
			record("GET ")
			bad := encodeRFC3986(signV2("POST", host, "/", k.access, k.secret+"x", map[string]string{"Action": "DescribeInstances"}))
			var firstRefusal string
			for i := 0; i < 2; i++ { // the retry is counted already: the loop answers it
				code, body := call(bad, "")
				if code != 403 || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") {
					t.Errorf("bad signature, try %d: %d %s", i, code, body)
				}
				body = body[:strings.Index(body, "<RequestID>")]
				if i == 0 {
					firstRefusal = body
				} else if body != firstRefusal {
					t.Errorf("the retried bad signature's answer differs:\n%s\n%s", firstRefusal, body)
				}
			}
			unsigned := "Action=DescribeInstances&AWSAccessKeyId=" + k.access
			if code, body := call(unsigned, ""); code != 400 || !strings.Contains(body, "<Code>MissingParameter</Code>") || !strings.Contains(body, "Signature") {
				t.Errorf("no signature: %d %s", code, body)
			}
			if code, body := call(signed("DescribeInstances"), ""); code != 200 {
				t.Errorf("after a refusal, on the same connection: %d %s", code, body)
			}
			// Two requests in one write: answered in order.
			a, b := signed("DescribeRegions"), signed("DescribeInstances")
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%sPOST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
				host, len(a), a, host, len(b), b)
			for _, action := range []string{"DescribeRegions", "DescribeInstances"} {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), action+"Response") {
					t.Errorf("pipelined %s: %d %s", action, resp.StatusCode, body)
				}
			}
			// A chunked body: not the loop's to parse.
			form := signed("DescribeRegions")
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", host, len(form), form)
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
				t.Errorf("chunked request: %v %v", resp, err)
			}
			// Headers over server.max_header_bytes, sent at once: refused as
			// the goroutine server refuses them.
			c2, err := net.Dial("tcp", host) // the first one is the goroutine server's now
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			big := signed("DescribeRegions")
			fmt.Fprintf(c2, "POST / HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
				host, strings.Repeat("b", s.cfg.Server.MaxHeaderBytes), len(big), big)
			if resp, err := http.ReadResponse(bufio.NewReader(c2), nil); err != nil || resp.StatusCode != 431 {
				t.Errorf("headers over the limit: %v %v; want 431", resp, err)
			}
			if !loop {
				return
			}
			served, onGoroutines, handedOff := s.metric("ec2proxy_event_loop_requests_total", "path", "loop"),
				s.metric("ec2proxy_event_loop_requests_total", "path", "goroutine"), s.metric("ec2proxy_event_loop_requests_total", "path", "handoff")
			// loop: 5 warm, the GET, the retried bad signature, the
			// unsigned one, 1 after the refusals, 2 pipelined; goroutines:
			// the cold one and the first bad signature; handed off: the
			// chunked one and the one with too large headers.
			if served != 11 || onGoroutines != 2 || handedOff != 2 {
				t.Errorf("served in the loop %v, on goroutines %v, handed off %v; want 11, 2, 2", served, onGoroutines, handedOff)
			}
			if hits := s.metric("ec2proxy_cache_lookups_total", "cache", "credential", "result", "hit"); hits < 10 {
				t.Errorf("credential cache hits %v: the loop's lookups must count", hits)
			}
		})
	}
	if len(seen) == 2 {
		var diff []string
		for name := range union(seen[false], seen[true]) {
			if seen[false][name] != seen[true][name] {
				diff = append(diff, fmt.Sprintf("%s: goroutine server %q, event loop %q", name, seen[false][name], seen[true][name]))
			}
		}
		sort.Strings(diff)
		if len(diff) > 0 {
			t.Errorf("the backend's headers differ:\n%s", strings.Join(diff, "\n"))
		}
	}
}

func union(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// The loop's answers to a client that stops reading, or never finishes its
// request, follow the server's timeouts (keep the test short: 1 s).
func TestEventLoopTimeouts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	s := startStack(t, func(c *configs.Config) {
		c.Server.EventLoop = true
		c.Server.ReadTimeout, c.Server.IdleTimeout = time.Second, time.Second
	})
	host := strings.TrimPrefix(s.url, "http://")
	for name, send := range map[string]string{
		"partial request": "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 10\r\n\r\nAct",
		"idle":            "",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, send)
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, err := io.ReadAll(c) // until ec2proxy closes
			if err != nil {
				t.Fatalf("not closed within 5s: %v", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("closed after %v", took)
			}
			if name == "partial request" && !strings.Contains(string(rest), "408") {
				t.Errorf("partial request: answer %q; want 408", rest)
			}
		})
	}
}

// server.concurrency bounds the loop's client connections: one over it is
// answered 503 ServiceUnavailable and closed, and a connection closed
// makes room again.
func TestEventLoopConcurrency(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	s := startStack(t, func(c *configs.Config) {
		c.Server.EventLoop = true
		c.Server.Concurrency = 2
	})
	host := strings.TrimPrefix(s.url, "http://")
	// roundTrip sends an unsigned request on c (the loop refuses it with
	// a 400) and returns the status line of the answer.
	roundTrip := func(c net.Conn) string {
		t.Helper()
		body := "Action=DescribeRegions"
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Status
	}
	var open []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if status := roundTrip(c); strings.HasPrefix(status, "503") {
			t.Fatalf("connection %d of 2 refused: %s", len(open)+1, status)
		}
		open = append(open, c)
	}
	over, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(over) // until ec2proxy closes it
	if err != nil {
		t.Fatalf("the third connection was not closed: %v", err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 503 ") || !strings.Contains(string(got), "<Code>ServiceUnavailable</Code>") {
		t.Fatalf("the third connection got %q; want a 503 ServiceUnavailable", got)
	}
	open[0].Close()
	var status string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		status = roundTrip(c)
		c.Close()
		if !strings.HasPrefix(status, "503") {
			return // the closed connection's place was given back
		}
	}
	t.Fatalf("after one of two connections closed, a new one still got %s", status)
}

// An https:// backend (backend.tls) works from both servers; the event
// loop's own backend connections are plain TCP, so it dispatches every
// request for such a route to the goroutine pipeline. (HostClient refused
// the forwarded request's http scheme until this test existed.)
func TestHTTPSBackend(t *testing.T) {
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Project-Id"))
	}))
	defer backend.Close()
	for _, loop := range []bool{false, true} {
		t.Run(fmt.Sprint("event_loop=", loop), func(t *testing.T) {
			s := startStack(t, func(c *configs.Config) {
				c.Server.EventLoop = loop
				c.Routes = []configs.Route{{PathPrefix: "/", Backend: backend.URL}}
				c.Backend.TLS.Insecure = true // httptest's own certificate
			})
			k := demoKey(t)
			putKeysSettled(t, s, s.store, k)
			host := strings.TrimPrefix(s.url, "http://")
			for i := range 3 {
				form := encodeRFC3986(signV2("POST", host, "/", k.access, k.secret, map[string]string{"Action": "DescribeRegions"}))
				resp, err := http.Post(s.url+"/", "application/x-www-form-urlencoded", strings.NewReader(form))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != k.project {
					t.Errorf("request %d: %d %q; want 200 and the project %s from the TLS backend (%s)", i, resp.StatusCode, body, k.project, s.lastFailureCause())
				}
			}
			if n := s.metric("ec2proxy_event_loop_requests_total", "path", "goroutine"); loop && runtime.GOOS == "linux" && n != 3 {
				t.Errorf("%v requests dispatched to goroutines; want all 3", n)
			}
		})
	}
}

// Replay protection and the fleet rate limit in Redis: the loop verifies
// a warm request, asks Redis on a goroutine and forwards it itself; only
// the cold first request runs the goroutine pipeline. A replay and a
// request over the limit are refused from the loop.
func TestEventLoopRedisGuards(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	s := startStack(t, func(c *configs.Config) {
		c.Server.EventLoop = true
		c.Protection.Replay.Enabled = true
		c.Protection.RateLimit = configs.RateLimit{RequestsPerSecond: 0.01, Burst: 5, Scope: configs.ScopeFleet}
	})
	k := demoKey(t)
	putKeysSettled(t, s, s.store, k)
	host := strings.TrimPrefix(s.url, "http://")
	sign := func(nonce string) url.Values {
		return signV2("POST", host, "/", k.access, k.secret, map[string]string{"Nonce": nonce})
	}
	// Keep-alive (ec2Post closes, and the loop hands such a connection over).
	keepAlive := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	defer keepAlive.CloseIdleConnections()
	post := func(form url.Values) ec2Result { return ec2PostWith(keepAlive, s.url, "/", form) }
	loop0 := s.metric("ec2proxy_event_loop_requests_total", "path", "loop")
	goroutines0 := s.metric("ec2proxy_event_loop_requests_total", "path", "goroutine")
	first := sign("0")
	wantOK(t, "cold", post(first))
	for i := 1; i < 5; i++ {
		wantOK(t, fmt.Sprint("warm ", i), post(sign(fmt.Sprint(i))))
	}
	wantFault(t, "a replay", post(first), 400, "RequestExpired", 5*time.Second)
	wantFault(t, "over the burst", post(sign("5")), 503, "RequestLimitExceeded", 5*time.Second)
	loop := s.metric("ec2proxy_event_loop_requests_total", "path", "loop") - loop0
	goroutines := s.metric("ec2proxy_event_loop_requests_total", "path", "goroutine") - goroutines0
	if loop != 6 || goroutines != 1 {
		t.Errorf("served in the loop %v, on goroutines %v; want 6 (4 warm, the replay, the limited one) and 1 (the cold one)", loop, goroutines)
	}
}

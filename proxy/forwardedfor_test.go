//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/guard"
	"github.com/ec2proxy/ec2proxy/internal/proxyproto"
)

// fromTrustedBalancer sends a warm request with extra headers from a
// trusted peer in mode, and returns the request the backend received.
func fromTrustedBalancer(t *testing.T, mode string, headers ...string) *http.Request {
	t.Helper()
	b := startScriptedBackend(t, answerWith("<ok/>"))
	s, good := warmServer(t, b.addr)
	s.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	resp, body, _ := askOnce(t, startMode(t, s, mode), modesForm(good, headers...))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	return onlyRequest(t, b)
}

// onlyRequest is the one request b received, parsed.
func onlyRequest(t *testing.T, b *scriptedBackend) *http.Request {
	t.Helper()
	got := b.received()
	if len(got) != 1 {
		t.Fatalf("backend got %d requests", len(got))
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(got[0])))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// haproxy's "option forwardfor" adds an X-Forwarded-For header of its own
// and leaves the client's: a request from a trusted balancer may carry
// two. Only the first was read, so the backend got the client's invented
// address and lost the one the balancer saw.
func TestForwardedForKeepsEveryHeaderOfATrustedBalancer(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			req := fromTrustedBalancer(t, mode, "X-Forwarded-For: 6.6.6.6", "X-Forwarded-For: 203.0.113.7")
			if xff := req.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "6.6.6.6, 203.0.113.7, 127.0.0.1" {
				t.Errorf("backend's X-Forwarded-For: %q; want one header, every hop in order", xff)
			}
		})
	}
}

// haproxy's "http-request add-header X-Forwarded-Proto https if { ssl_fc }"
// adds its header after any the client sent: the balancer's, the last,
// is the one that counts (found by a review: the client's was forwarded).
func TestForwardedProtoIsTheBalancers(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			req := fromTrustedBalancer(t, mode, "X-Forwarded-Proto: https", "X-Forwarded-Proto: http")
			if got := req.Header.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != "http" {
				t.Errorf("backend's X-Forwarded-Proto %q; want the balancer's, http", got)
			}
		})
	}
}

// Behind a balancer that passes the client's address in X-Forwarded-For
// only (no PROXY protocol), unknown-key guesses are counted per client,
// the last address no trusted balancer wrote, not per balancer: one
// guesser locked every client of the balancer out of trying a key, and
// the logs named the balancer. From anyone else X-Forwarded-For is the
// sender's invention and changes nothing.
func TestUnknownKeyLockoutBehindABalancer(t *testing.T) {
	lockout := func(c *configs.Config, o *Options) {
		o.Guards = Guards{Lockout: guard.NewLockout(guard.LockoutConfig{MaxFailures: 3, Window: 60e9, Duration: 900e9}, nil)}
	}
	guess := func(h *harness, i int, xff ...string) *http.Response {
		form := signed("POST", h.host(), "/", testSecret, map[string]string{"AWSAccessKeyId": fmt.Sprint("guess", i)}).Encode()
		return h.post(form, http.Header{"X-Forwarded-For": xff})
	}
	t.Run("trusted balancer", func(t *testing.T) {
		h := newHarness(t, lockout, func(c *configs.Config, _ *Options) {
			c.Server.TrustedProxies = []string{"127.0.0.0/8", "10.0.0.0/8"}
			c.Log.Access = true
		})
		// The client writes what it likes before the balancers' entries;
		// 10.1.1.1 is a second trusted balancer.
		for i := range 3 {
			wantEC2Error(t, guess(h, i, fmt.Sprint("198.51.100.", i), "203.0.113.7, 10.1.1.1"), 401, "AuthFailure", "unknown or disabled")
		}
		wantEC2Error(t, guess(h, 9, "203.0.113.7"), 403, "AuthFailure", "unknown access keys came from this address")
		wantEC2Error(t, guess(h, 9, "203.0.113.8"), 401, "AuthFailure", "unknown or disabled")
		if n := h.logs.FilterMessage("locked after too many failures").FilterField(zap.String("client", "203.0.113.7")).Len(); n != 1 {
			t.Errorf("%d lock warnings naming the client 203.0.113.7; want 1:\n%v", n, h.logs.All())
		}
		if n := h.logs.FilterMessage("request rejected").FilterField(zap.String("client", "203.0.113.8")).Len(); n != 1 {
			t.Errorf("%d rejections logged for the client 203.0.113.8; want 1", n)
		}
		if resp := h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), http.Header{"X-Forwarded-For": {"203.0.113.9"}}); resp.StatusCode != 200 {
			t.Fatalf("a known key behind the balancer: %d %s", resp.StatusCode, bodyOf(resp))
		}
		if n := h.logs.FilterMessage("request").FilterField(zap.String("client", "203.0.113.9")).Len(); n != 1 {
			t.Errorf("%d access log lines naming the client 203.0.113.9; want 1", n)
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		h := newHarness(t, lockout, func(c *configs.Config, _ *Options) { c.Server.TrustedProxies = []string{"10.0.0.0/8"} })
		for i := range 3 {
			wantEC2Error(t, guess(h, i, fmt.Sprint("198.51.100.", i)), 401, "AuthFailure", "unknown or disabled")
		}
		wantEC2Error(t, guess(h, 9, "198.51.100.77"), 403, "AuthFailure", "unknown access keys came from this address")
	})
}

// clientAddr, for trusted and untrusted peers, header by header.
func TestClientAddrFromForwardedFor(t *testing.T) {
	s := &Server{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1", []string{"203.0.113.7"}, "192.0.2.1"}, // untrusted peer: its own address
		{"127.0.0.1", nil, "127.0.0.1"},                     // a trusted peer that says nothing
		{"127.0.0.1", []string{"203.0.113.7"}, "203.0.113.7"},
		{"127.0.0.1", []string{"1.1.1.1, 203.0.113.7 , 10.2.2.2"}, "203.0.113.7"},
		{"127.0.0.1", []string{"1.1.1.1", "203.0.113.7,10.2.2.2"}, "203.0.113.7"},
		{"127.0.0.1", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},             // balancers all the way: the first
		{"127.0.0.1", []string{"1.1.1.1, unknown, 10.2.2.2"}, "10.2.2.2"},     // unreadable: the last hop that is trusted
		{"127.0.0.1", []string{"203.0.113.7:4711"}, "203.0.113.7"},            // with a port, as some balancers write it
		{"127.0.0.1", []string{"[2001:db8::7]:4711, fd00::1"}, "2001:db8::7"}, // IPv6 with a port, behind an IPv6 balancer
		{"127.0.0.1", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"127.0.0.1", []string{""}, "127.0.0.1"},
	} {
		var req fasthttp.Request
		for _, v := range c.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(c.peer), Port: 5555}, nil)
		if got := s.clientAddr(&ctx).String(); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// Behind PROXY protocol, a header that names no client (v1 UNKNOWN, v2
// LOCAL) leaves the balancer's own address as the peer: trusted, it made
// the client's own X-Forwarded-* believed (found by a review). They are
// replaced, as from any other peer; a header naming the client is used.
func TestProxyHeaderWithoutAnAddressVouchesForNothing(t *testing.T) {
	for name, c := range map[string]struct{ header, wantFor string }{
		"v1 UNKNOWN": {"PROXY UNKNOWN\r\n", "127.0.0.1"},
		"v2 LOCAL":   {"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00", "127.0.0.1"},
		"v1 TCP4":    {"PROXY TCP4 203.0.113.7 127.0.0.1 40000 8773\r\n", "203.0.113.7"},
	} {
		t.Run(name, func(t *testing.T) {
			b := startScriptedBackend(t, answerWith("<ok/>"))
			s, good := warmServer(t, b.addr)
			trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			s.trusted = trusted
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(proxyproto.NewListener(ln, trusted, proxyproto.Options{})) //nolint:errcheck
			t.Cleanup(func() { ln.Close() })
			resp, body, _ := askOnce(t, ln.Addr().String(), c.header+modesForm(good, "X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https"))
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			req := onlyRequest(t, b)
			if xff, proto := req.Header.Values("X-Forwarded-For"), req.Header.Get("X-Forwarded-Proto"); len(xff) != 1 || xff[0] != c.wantFor || proto != "http" {
				t.Errorf("backend's X-Forwarded-For %q, -Proto %q; want [%q], http", xff, proto, c.wantFor)
			}
		})
	}
}

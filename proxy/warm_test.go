package proxy

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/guard"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/metrics"
	"github.com/ec2proxy/ec2proxy/policy"
)

// warm is a server with every protection of the default configuration on,
// and a signed request it forwards.
type warm struct {
	s    *Server
	req  *fasthttp.Request
	id   *keystoneclient.Identity
	peer net.Addr
}

func newWarm(t testing.TB, version int) *warm {
	ln := fasthttputil.NewInmemoryListener()
	t.Cleanup(func() { ln.Close() })
	backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/xml")
		ctx.SetBodyString("<DescribeRegionsResponse/>")
	}}
	go backend.Serve(ln) //nolint:errcheck

	cfg := configs.Default()
	cfg.Identity.Mode = configs.ModeKeystone
	cfg.Routes = []configs.Route{{PathPrefix: "/", Backend: "http://backend.invalid"}}
	store := &memStore{records: map[string]credstore.Record{testAccess: {AccessKey: testAccess, Secret: testSecret, UserID: "u", ProjectID: "p", Enabled: true}}}
	id := keystoneclient.NewIdentity("gAAAA", time.Time{}, &keystoneclient.Subject{UserID: "u", UserName: "alice", ProjectID: "p", ProjectName: "proj",
		Roles: []string{"member", "reader"}, RolesHeader: "member,reader"})
	rules, err := policy.Parse(configs.DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Config: &cfg, Credentials: store, Identity: &fakeIdentity{id: id},
		Metrics: metrics.New(prometheus.NewRegistry(), "test"), Logger: zap.NewNop(), Now: func() time.Time { return testNow },
		Guards: Guards{ // the default lockout, and a rate limit high enough not to refuse
			Lockout:   guard.NewLockout(guard.LockoutConfig{MaxFailures: 5, Window: time.Minute, Duration: time.Minute}, nil),
			RateLimit: guard.NewRateLimit(1e9, 1e9, 1000),
		},
		Policy: staticPolicy{rules}, // the shipped policy, authorizing every request
	})
	if err != nil {
		t.Fatal(err)
	}
	s.routes[0].client.Dial = func(string) (net.Conn, error) { return ln.Dial() }

	const host = "ec2.example.com:8773"
	body := signed("POST", host, "/", testSecret, map[string]string{"Filter.1.Name": "tag:Name", "Filter.1.Value.1": "a b"}).Encode()
	var authorization, amzDate string
	if version == 4 {
		body = "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=a+b"
		authorization, amzDate = signV4(host, body, testAccess, testSecret, testNow)
	}
	req := new(fasthttp.Request)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/")
	req.Header.SetHost(host)
	req.Header.SetContentType("application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("User-Agent", "Boto/2.49.0")
	req.Header.Set("X-Roles", "admin") // spoofed: stripped on the way
	if version == 4 {
		req.Header.Set("Authorization", authorization)
		req.Header.Set("X-Amz-Date", amzDate)
	}
	req.SetBodyString(body)
	return &warm{s: s, req: req, id: id, peer: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}}
}

// cachedFake answers from its "cache" too, as the Keystone client does
// once warm: what the event loop needs to forward.
type cachedFake struct{ fakeIdentity }

func (f *cachedFake) CachedIdentity(string) (*keystoneclient.Identity, bool) { return f.id, true }
func (f *cachedFake) CountCachedHit()                                        {}

// serveTCP accepts connections on a loopback port until the test ends and
// runs handle on each (closing it after); it returns the address.
func serveTCP(t testing.TB, handle func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, handle)
}

// serveOn is serveTCP on ln.
func serveOn(t testing.TB, ln net.Listener, handle func(net.Conn)) string {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

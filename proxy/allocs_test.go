//go:build !race

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

// The warm path (credential and identity cached) allocates nothing per
// request: parse, lookup, verify, header rewrite, forward, copy back.
func TestWarmPathAllocs(t *testing.T) {
	t.Run("SigV2", func(t *testing.T) { testWarmPathAllocs(t, 2) })
	t.Run("SigV4", func(t *testing.T) { testWarmPathAllocs(t, 4) })
}

func testWarmPathAllocs(t *testing.T, version int) {
	run := warmPath(t, version)
	for i := 0; i < 10; i++ {
		run()
	}
	if n := testing.AllocsPerRun(200, run); n > 0 {
		t.Errorf("the warm path allocates %v times per request; want 0", n)
	}
}

// BenchmarkWarmPath is one request through the whole pipeline, caches warm,
// against an in-memory backend: what ec2proxy adds per request.
func BenchmarkWarmPath(b *testing.B) {
	for _, v := range []int{2, 4} {
		b.Run(map[int]string{2: "SigV2", 4: "SigV4"}[v], func(b *testing.B) {
			run := warmPath(b, v)
			b.ReportAllocs()
			for b.Loop() {
				run()
			}
		})
	}
}

// warmPath returns a function serving one signed request through a server
// whose caches are warm (credential and identity fixed, shipped policy on).
func warmPath(t testing.TB, version int) func() {
	w := newWarm(t, version)
	var ctx fasthttp.RequestCtx
	ctx.Init(w.req, w.peer, nil)
	return func() {
		ctx.Response.Reset()
		w.s.handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

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

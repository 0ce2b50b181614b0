//go:build !race

package proxy

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/internal/memtest"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/metrics"
	"github.com/ec2proxy/ec2proxy/sigv2"
)

// signingIdentity signs with the credential's key the way
// keystoneclient.Client does for its ec2tokens call, then answers one
// identity for every key (the token cache's memory is measured in
// keystoneclient).
type signingIdentity struct{ id *keystoneclient.Identity }

func (f signingIdentity) Identity(_ context.Context, accessKey string, key *sigv2.Key) (*keystoneclient.Identity, error) {
	key.Sign(sigv2.HmacSHA256, []byte(accessKey))
	return f.id, nil
}

// The credential cache's live heap per access key, filled the way the
// benchmark fills it (bench/lib/phases.sh measure_rss): random 32-character
// access keys and secrets, keystone mode, one signed request per key
// through the whole pipeline, SigV2 (HmacSHA256) and SigV4 alternating.
func TestCredentialCacheMemory(t *testing.T) {
	n := memtest.Keys(t)
	ln := fasthttputil.NewInmemoryListener()
	t.Cleanup(func() { ln.Close() })
	backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/xml")
		ctx.SetBodyString("<DescribeInstancesResponse/>")
	}}
	go backend.Serve(ln) //nolint:errcheck

	keys, secrets := make([]string, n), make([]string, n)
	store := &memStore{records: make(map[string]credstore.Record, n)}
	for i := range keys {
		keys[i], secrets[i] = memtest.RandomHex(32), memtest.RandomHex(32)
		store.records[keys[i]] = credstore.Record{AccessKey: keys[i], Secret: secrets[i], UserID: memtest.RandomHex(32), ProjectID: memtest.RandomHex(32), Enabled: true}
	}
	cfg := configs.Default()
	cfg.Identity.Mode = configs.ModeKeystone
	cfg.Credentials.MaxEntries = 4 * n
	cfg.Routes = []configs.Route{{PathPrefix: "/", Backend: "http://backend.invalid"}}
	id := keystoneclient.NewIdentity("gAAAA", time.Time{}, &keystoneclient.Subject{UserID: "u", ProjectID: "p", Roles: []string{"member"}, RolesHeader: "member"})
	s, err := New(Options{Config: &cfg, Credentials: store, Identity: signingIdentity{id},
		Metrics: metrics.New(prometheus.NewRegistry(), "test"), Logger: zap.NewNop(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	s.routes[0].client.Dial = func(string) (net.Conn, error) { return ln.Dial() }

	const host = "127.0.0.1:8788"
	const body4 = "Action=DescribeInstances&Version=2016-11-15"
	var ctx fasthttp.RequestCtx
	serve := func(i int) {
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/")
		req.Header.SetHost(host)
		req.Header.SetContentType("application/x-www-form-urlencoded; charset=utf-8")
		if i%2 == 0 {
			req.SetBodyString(signed("POST", host, "/", secrets[i], map[string]string{"AWSAccessKeyId": keys[i], "Action": "DescribeInstances"}).Encode())
		} else {
			authorization, amzDate := signV4(host, body4, keys[i], secrets[i], testNow)
			req.Header.Set("Authorization", authorization)
			req.Header.Set("X-Amz-Date", amzDate)
			req.SetBodyString(body4)
		}
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}, nil)
		s.handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("key %d: status %d: %s", i, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	serve(0) // pools, buffers and connections exist before the baseline
	serve(1)
	before := memtest.LiveHeap()
	for i := 2; i < n; i++ {
		serve(i)
	}
	after := memtest.LiveHeap()
	if got := s.CachedCredentials(); got != n {
		t.Fatalf("%d credentials cached, want %d", got, n)
	}
	runtime.KeepAlive(s)
	perKey := (float64(after) - float64(before)) / float64(n-2)
	t.Logf("%d credentials: %.0f bytes of live heap per key", n, perKey)
	if perKey > 320 {
		t.Errorf("%.0f bytes per cached credential, want at most 320", perKey)
	}
}

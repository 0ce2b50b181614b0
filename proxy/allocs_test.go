//go:build !race

package proxy

import (
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// The warm path (credential and identity cached) allocates nothing per
// request: parse, lookup, verify, header rewrite, forward, copy back.
func TestWarmPathAllocs(t *testing.T) {
	t.Run("SigV2", func(t *testing.T) { testWarmPathAllocs(t, 2) })
	t.Run("SigV4", func(t *testing.T) { testWarmPathAllocs(t, 4) })
	t.Run("SigV2 behind a balancer", func(t *testing.T) { testWarmPathAllocs(t, 2, behindBalancer) })
}

// behindBalancer makes the warm request come from a trusted balancer that
// sent X-Forwarded-For and -Proto twice (the client's, and haproxy's own).
func behindBalancer(w *warm) {
	w.s.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	w.req.Header.Add("X-Forwarded-For", "198.51.100.9")
	w.req.Header.Add("X-Forwarded-For", "203.0.113.7")
	w.req.Header.Add("X-Forwarded-Proto", "http")
	w.req.Header.Add("X-Forwarded-Proto", "https")
}

func testWarmPathAllocs(t *testing.T, version int, edit ...func(*warm)) {
	run := warmPath(t, version, edit...)
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
func warmPath(t testing.TB, version int, edit ...func(*warm)) func() {
	w := newWarm(t, version)
	for _, e := range edit {
		e(w)
	}
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

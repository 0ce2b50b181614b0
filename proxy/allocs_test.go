//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
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

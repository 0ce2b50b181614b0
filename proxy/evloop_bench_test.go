//go:build linux && !race

package proxy

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkLoopWork is what the event loop does for one warm request
// besides its system calls: parse the head, run the pipeline (verify,
// cached lookups, policy), render the backend's request, scan and relay
// the backend's answer, count it. The loop's throughput gap to a bare
// proxy is this, per request.
func BenchmarkLoopWork(b *testing.B) {
	for _, v := range []int{2, 4} {
		b.Run(map[int]string{2: "SigV2", 4: "SigV4"}[v], func(b *testing.B) {
			work := loopWork(b, v)
			b.ReportAllocs()
			for b.Loop() {
				work()
			}
		})
	}
}

func TestLoopWorkAllocs(t *testing.T) {
	for _, c := range []struct {
		name    string
		version int
		edit    []func(*warm)
	}{{"SigV2", 2, nil}, {"SigV4", 4, nil}, {"SigV2 behind a balancer", 2, []func(*warm){behindBalancer}}} {
		work := loopWork(t, c.version, c.edit...)
		for i := 0; i < 10; i++ {
			work()
		}
		if n := testing.AllocsPerRun(200, work); n > 0 {
			t.Errorf("%s: the loop's work allocates %v times per request; want 0", c.name, n)
		}
	}
}

func loopWork(t testing.TB, version int, edit ...func(*warm)) func() {
	w := newWarm(t, version)
	for _, e := range edit {
		e(w)
	}
	var fill fasthttp.RequestCtx // the goroutine pipeline fills the credential cache the loop peeks
	fill.Init(w.req, w.peer, nil)
	w.s.handle(&fill)
	s := w.s
	s.identity = &cachedFake{fakeIdentity{id: w.id}}
	s.guards.RateLimit = nil // the default: no per-key limit
	var raw bytes.Buffer
	bw := bufio.NewWriter(&raw)
	if err := w.req.Write(bw); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	const answer = "HTTP/1.1 200 OK\r\nServer: fasthttp\r\nDate: Thu, 26 Nov 2026 06:00:00 GMT\r\nContent-Type: text/xml\r\nContent-Length: 26\r\nX-Request-Id: req-abc\r\n\r\n<DescribeRegionsResponse/>"
	in, ans := raw.Bytes(), []byte(answer)
	var (
		ctx     fasthttp.RequestCtx
		st      state
		rd      bytes.Reader
		br      = bufio.NewReaderSize(&rd, 4096)
		out     = make([]byte, 0, 4096)
		relayed = make([]byte, 0, 4096)
	)
	ctx.Init2(&peerConn{remote: w.peer}, nil, false)
	return func() {
		r := &ctx.Request
		r.Reset()
		rd.Reset(in)
		br.Reset(&rd)
		if err := r.Header.Read(br); err != nil {
			t.Fatal(err)
		}
		head := len(in) - rd.Len() - br.Buffered()
		r.SetBodyRaw(in[head : head+r.Header.ContentLength()])
		st.reset()
		st.inLoop = true
		st.now = testNow
		st.requestID = appendRequestID(st.requestID)
		ctx.Response.Reset()
		if out := s.serve(&ctx, &st); out != outcomeForwarded {
			t.Fatalf("outcome %v: %s", out, ctx.Response.Body())
		}
		s.creds.CountHit()
		out = s.appendBackendRequest(out[:0], &ctx, &st)
		h, scan := scanAnswer(ans)
		if scan != answerPlain {
			t.Fatal("the answer is not relayed as bytes")
		}
		s.m.backendDone(h.status, nil, time.Millisecond)
		relayed = appendRelayed(relayed[:0], ans[:h.end], st.requestID, false)
		s.m.requestDone(outcomeForwarded, time.Millisecond)
	}
}

//go:build linux

package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ec2proxy/ec2proxy/guard"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

// scriptedAdmitter answers Admit with the next of its verdicts, from any
// goroutine, recording the calls; with gate set, each call first waits
// for a value from it (a Redis that has not answered yet).
type scriptedAdmitter struct {
	mu       sync.Mutex
	verdicts []admission
	calls    int
	gate     chan struct{}
	released []string // nonces
}

// Release records the nonce; the scripted verdicts stand.
func (a *scriptedAdmitter) Release(_ context.Context, _ []byte, _, nonce string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.released = append(a.released, nonce)
	return nil
}

func (a *scriptedAdmitter) AdmitMarked(_ context.Context, _ []byte, fp string, _ time.Duration) (guard.Admission, string, error) {
	if a.gate != nil {
		<-a.gate
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if fp == "" {
		return 0, "", errors.New("no replay marker")
	}
	if len(a.verdicts) == 0 {
		return guard.Admitted, "", nil
	}
	v := a.verdicts[0]
	a.verdicts = a.verdicts[1:]
	return v.verdict, v.nonce, v.err
}

func (a *scriptedAdmitter) called() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

// seqRequest is formRequest with an X-Seq header, which the echo backend
// answers with: the answer says which request reached it.
func seqRequest(body, seq string) string {
	return strings.Replace(formRequest(body), "\r\n\r\n", "\r\nX-Seq: "+seq+"\r\n\r\n", 1)
}

// With guards that call Redis (here an Admitter), the loop asks them on a
// goroutine and carries on itself: each verdict is answered in order with
// the requests pipelined around it, admitted ones go out on the loop's
// backend connections, and no request runs the goroutine pipeline.
func TestEventLoopAdmission(t *testing.T) {
	for _, ring := range []bool{false, true} {
		t.Run(fmt.Sprint("io_uring=", ring), func(t *testing.T) {
			s, good := loopServer(t)
			admitter := &scriptedAdmitter{verdicts: []admission{
				{verdict: guard.Admitted},
				{verdict: guard.Replayed},
				{verdict: guard.Limited},
				{err: errors.New("redis: connection refused")},
				{verdict: guard.Admitted},
			}}
			s.guards = Guards{Lockout: s.guards.Lockout, Admit: admitter}
			c, err := net.Dial("tcp", startLoop(t, s, ring))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			steps := []struct {
				status int
				want   string
			}{
				{200, "1"},
				{400, "was already used"},
				{503, "<Code>RequestLimitExceeded</Code>"},
				{503, "replay-protection store is unavailable"},
				{200, "5"},
				{400, "<Code>MissingParameter</Code>"}, // refused before the guards: not asked
			}
			var all strings.Builder
			for i := range 5 {
				all.WriteString(seqRequest(good, fmt.Sprint(i+1)))
			}
			all.WriteString(formRequest(good[:strings.Index(good, "Signature=")] + "X=1"))
			io.WriteString(c, all.String()) // pipelined: one write
			br := bufio.NewReader(c)
			for i, step := range steps {
				resp, body, err := readAnswer(br)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				if resp.StatusCode != step.status || !strings.Contains(body, step.want) {
					t.Errorf("answer %d: %d %s; want %d with %q", i, resp.StatusCode, body, step.status, step.want)
				}
			}
			if n := admitter.called(); n != 5 {
				t.Errorf("the guards were asked %d times; want 5, once per verified request", n)
			}
			if n := counterValue(s.m.loopGoroutine); n != 0 {
				t.Errorf("%v requests went to the goroutine pipeline; the loop serves all of these", n)
			}
			if n := counterValue(s.m.loopServed); n != float64(len(steps)) {
				t.Errorf("the loop served %v requests; want %d", n, len(steps))
			}
			waitIdle(t, s)
		})
	}
}

// askLoopOnce serves s in an event loop and sends it one request on a new
// connection; it returns the answer.
func askLoopOnce(t *testing.T, s *Server, request string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", startLoop(t, s, false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, request)
	resp, body, err := readAnswer(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// A request the guards admitted, whose identity is not cached, goes on on
// a goroutine without asking them again: asked twice, a replay marker
// would call the request its own replay.
func TestEventLoopAdmittedHandover(t *testing.T) {
	s, good := loopServer(t)
	admitter := &scriptedAdmitter{verdicts: []admission{{verdict: guard.Admitted}, {verdict: guard.Replayed}}}
	s.guards = Guards{Admit: admitter}
	s.identity = &s.identity.(*cachedFake).fakeIdentity // no cache: the loop hands over
	v0, l0 := verifications(s), credentialLookups(s)
	resp, body := askLoopOnce(t, s, seqRequest(good, "1"))
	if resp.StatusCode != 200 { // from the warm server's first backend, whose connection fasthttp's client keeps
		t.Errorf("answer: %d %s; want 200 from the backend", resp.StatusCode, body)
	}
	if v, l := verifications(s)-v0, credentialLookups(s)-l0; v != 1 || l != 1 {
		t.Errorf("%v verifications and %v credential lookups counted; want 1 each (the goroutine's pass verified again)", v, l)
	}
	if n := admitter.called(); n != 1 {
		t.Errorf("the guards were asked %d times; want once", n)
	}
	if n := counterValue(s.m.loopGoroutine); n != 1 {
		t.Errorf("%v requests went to the goroutine pipeline; want 1 (the identity was not cached)", n)
	}
	waitIdle(t, s)
}

// The marker's nonce goes with a request the loop admitted and handed to
// a goroutine: there the identity service fails (503: retry), and the
// marker it set is released, by its own nonce.
func TestEventLoopAdmittedHandoverReleasesItsMarker(t *testing.T) {
	s, good := loopServer(t)
	admitter := &scriptedAdmitter{verdicts: []admission{{verdict: guard.Admitted, nonce: "nonce-1"}}}
	s.guards = Guards{Admit: admitter}
	s.identity = &fakeIdentity{err: fmt.Errorf("%w: connection refused", keystoneclient.ErrUnavailable)}
	resp, body := askLoopOnce(t, s, seqRequest(good, "1"))
	if resp.StatusCode != 503 || !strings.Contains(body, "identity service") {
		t.Errorf("answer: %d %s; want 503, the identity service unavailable", resp.StatusCode, body)
	}
	waitIdle(t, s)
	admitter.mu.Lock()
	defer admitter.mu.Unlock()
	if len(admitter.released) != 1 || admitter.released[0] != "nonce-1" {
		t.Errorf("released %q; want the admitted request's marker, nonce-1", admitter.released)
	}
}

// A client that leaves while the guards are being asked costs nothing
// later: the answer is dropped, the request no longer counts as in flight,
// and the loop serves the next client.
func TestEventLoopAdmissionClientLeaves(t *testing.T) {
	s, good := loopServer(t)
	admitter := &scriptedAdmitter{gate: make(chan struct{})}
	s.guards = Guards{Admit: admitter}
	addr := startLoop(t, s, false)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, seqRequest(good, "1"))
	deadline := time.Now().Add(5 * time.Second)
	for s.inflight.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // until the loop has asked
	}
	c.Close()
	time.Sleep(20 * time.Millisecond) // the loop sees the close
	admitter.gate <- struct{}{}
	waitIdle(t, s)

	close(admitter.gate) // answer at once from now on
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, seqRequest(good, "2"))
	resp, body, err := readAnswer(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body != "2" {
		t.Errorf("next client: %d %s; want 200 from the backend", resp.StatusCode, body)
	}
}

// Guards that answer from memory (replay markers and a rate limit of this
// replica) are asked by the loop itself (TestGuardsLocal): a repeated
// request is refused as a replay there.
func TestEventLoopLocalGuards(t *testing.T) {
	s, good := loopServer(t)
	s.guards = Guards{Replay: guard.NewSeen(100), RateLimit: guard.NewRateLimit(1e6, 1e6, 100)}
	c, err := net.Dial("tcp", startLoop(t, s, false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, seqRequest(good, "1")+seqRequest(good, "2"))
	br := bufio.NewReader(c)
	for i, want := range []int{200, 400} {
		resp, body, err := readAnswer(br)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("answer %d: %d %s; want %d", i, resp.StatusCode, body, want)
		}
	}
	if n := counterValue(s.m.loopGoroutine); n != 0 {
		t.Errorf("%v requests went to the goroutine pipeline; want none", n)
	}
}

// waitIdle waits until s has no request in flight.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("%d requests still in flight: %v", s.inflight.Load(), err)
	}
}

// Only guards that answer from this process's memory are asked in the
// loop; any that may call Redis go to a goroutine.
func TestGuardsLocal(t *testing.T) {
	shared := guard.NewRedis(nil, "p")
	for _, c := range []struct {
		name  string
		g     Guards
		local bool
	}{
		{"none", Guards{}, true},
		{"replica's replay markers and rate limit", Guards{Replay: guard.NewSeen(1), RateLimit: guard.NewRateLimit(1, 1, 1)}, true},
		{"Redis replay markers", Guards{Replay: shared}, false},
		{"fleet rate limit", Guards{RateLimit: shared.NewRateLimit(1, 1, 1)}, false},
		{"both in one command", Guards{Admit: &scriptedAdmitter{}}, false},
	} {
		if got := c.g.local(); got != c.local {
			t.Errorf("%s: local() = %v; want %v", c.name, got, c.local)
		}
	}
}

// Many clients at once, the guards answering in random order: every
// client gets its own answers, in order, and nothing stays in flight
// (run under -race in CI).
func TestEventLoopAdmissionConcurrent(t *testing.T) {
	s, good := loopServer(t)
	s.guards = Guards{Admit: delayedAdmitter{}}
	addr := startLoop(t, s, false)
	const clients, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for n := 0; n < each; n += 4 { // four pipelined at a time
				var batch strings.Builder
				for i := n; i < n+4; i++ {
					batch.WriteString(seqRequest(good, fmt.Sprintf("%d-%d.", w, i))) // not ending in 7: the echo backend answers those with 3 MiB
				}
				io.WriteString(c, batch.String())
				for i := n; i < n+4; i++ {
					resp, body, err := readAnswer(br)
					if err != nil {
						errs <- err
						return
					}
					if want := fmt.Sprintf("%d-%d.", w, i); resp.StatusCode != 200 || body != want {
						errs <- fmt.Errorf("client %d request %d: %d %.200q; want 200 %q", w, i, resp.StatusCode, body, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitIdle(t, s)
	if n := counterValue(s.m.loopServed); n != clients*each {
		t.Errorf("the loop served %v requests; want %d", n, clients*each)
	}
}

// delayedAdmitter admits every request after a random pause of up to a
// millisecond, so that answers come back out of order.
type delayedAdmitter struct{}

func (delayedAdmitter) AdmitMarked(context.Context, []byte, string, time.Duration) (guard.Admission, string, error) {
	time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
	return guard.Admitted, "", nil
}

func (delayedAdmitter) Release(context.Context, []byte, string, string) error { return nil }

// Guards that answer from memory are asked in the loop; a request handed
// to a goroutine after that (its identity not cached; the loop's backend
// connections all taken) is not asked again: the replay marker it set
// would refuse it as its own replay.
func TestEventLoopLocalGuardsHandover(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Server)
	}{
		{"identity not cached", func(s *Server) { s.identity = &s.identity.(*cachedFake).fakeIdentity }},
		{"backend connections taken", func(s *Server) { s.cfg.Backend.MaxConns = 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, good := loopServer(t)
			s.guards = Guards{Replay: guard.NewSeen(100), RateLimit: guard.NewRateLimit(1e6, 1e6, 100)}
			c.edit(s)
			conn, err := net.Dial("tcp", startLoop(t, s, false))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, seqRequest(good, "1"))
			resp, body, err := readAnswer(bufio.NewReader(conn))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Errorf("answer: %d %s; want 200", resp.StatusCode, body)
			}
			if n := counterValue(s.m.loopGoroutine); n != 1 {
				t.Errorf("%v requests went to the goroutine pipeline; want 1", n)
			}
		})
	}
}

// A request resumed in the loop and handed to a goroutine counts in
// Server.inflight throughout: a reload's Wait must not see 0 between the
// two (and close the pipeline the goroutine is about to use).
func TestEventLoopInflightWithoutGap(t *testing.T) {
	s, good := loopServer(t)
	admitter := &scriptedAdmitter{gate: make(chan struct{})}
	s.guards = Guards{Admit: admitter}
	s.identity = &s.identity.(*cachedFake).fakeIdentity // resume hands over
	c, err := net.Dial("tcp", startLoop(t, s, false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	gaps := 0
	for range 100 {
		io.WriteString(c, seqRequest(good, "1"))
		for s.inflight.Load() == 0 {
			runtime.Gosched()
		}
		stop, seen := make(chan struct{}), make(chan bool)
		go func() { // watches for 1 -> 0 -> 1
			zero := false
			for {
				select {
				case <-stop:
					seen <- false
					return
				default:
				}
				switch n := s.inflight.Load(); {
				case n == 0:
					zero = true
				case zero:
					<-stop
					seen <- true
					return
				}
			}
		}()
		admitter.gate <- struct{}{}
		if _, _, err := readAnswer(br); err != nil {
			t.Fatal(err)
		}
		close(stop)
		if <-seen {
			gaps++
		}
	}
	if gaps > 0 {
		t.Errorf("inflight went to 0 and back in %d of 100 hand-overs", gaps)
	}
}

// Shutdown waits for the guards' answer to a paused request whose client
// closed (a close reads as a half-close: the request goes on, as on the
// goroutine server, and its answer meets a closed socket), and the
// answer's wake-up never goes to a closed eventfd. Going on, the request
// opened a backend connection during shutdown, which got the closed
// listener's descriptor number: the loop took its events for accepts and
// spun (found with the half-close change).
func TestEventLoopShutdownWhilePaused(t *testing.T) {
	s, good := loopServer(t)
	admitter := &scriptedAdmitter{gate: make(chan struct{})}
	s.guards = Guards{Admit: admitter}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	loops, err := NewEventLoops(1, ln, func() *Server { return s }, func(c net.Conn) error { return c.Close() }, zap.NewNop(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	l := loops[0]
	go func() { runtime.LockOSThread(); _ = l.Run() }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, seqRequest(good, "1"))
	for s.inflight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	time.Sleep(20 * time.Millisecond) // the loop sees the close
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- l.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("the loop stopped (%v) with the guards' answer still to come", err)
	case <-time.After(50 * time.Millisecond):
	}
	admitter.gate <- struct{}{}
	if err := <-stopped; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitIdle(t, s)
}

// holdingCore holds the loop 150 ms on its first refusal log line: events
// pile up meanwhile and are handled in one batch.
type holdingCore struct {
	zapcore.Core
	held atomic.Bool
}

func (h *holdingCore) Enabled(zapcore.Level) bool        { return true }
func (h *holdingCore) With([]zapcore.Field) zapcore.Core { return h }
func (h *holdingCore) Check(e zapcore.Entry, _ *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == "request rejected" && h.held.CompareAndSwap(false, true) {
		time.Sleep(150 * time.Millisecond)
	}
	return nil
}

// When the guards' answer and an idle backend connection's close arrive
// in one batch, the resumed request does not pick the closed connection
// (it would fail 502 without reaching the backend, its replay marker
// spent): the loop reads idle backends first and collects answers last.
func TestEventLoopResumeSkipsClosedBackend(t *testing.T) {
	for _, ring := range []bool{false, true} {
		t.Run(fmt.Sprint("io_uring=", ring), func(t *testing.T) {
			s, good := loopServer(t)
			s.log = zap.New(&holdingCore{Core: zapcore.NewNopCore()})
			// A backend that closes each connection 40 ms after one answer.
			s.routes[0].client.Addr = serveTCP(t, func(c net.Conn) {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				seq := req.Header.Get("X-Seq")
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nDate: "+time.Now().UTC().Format(http.TimeFormat)+
					"\r\nContent-Length: "+strconv.Itoa(len(seq))+"\r\n\r\n"+seq)
				time.Sleep(40 * time.Millisecond)
			})
			admitter := &scriptedAdmitter{gate: make(chan struct{})}
			s.guards = Guards{Admit: admitter}
			addr := startLoop(t, s, ring)
			a, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			a.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(a)
			go func() { admitter.gate <- struct{}{} }()
			io.WriteString(a, seqRequest(good, "1"))
			if resp, body, err := readAnswer(br); err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: %v %v %s", err, resp, body)
			}
			io.WriteString(a, seqRequest(good, "2")) // paused on the guards
			for s.inflight.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			// Another client's refusal holds the loop 150 ms; meanwhile the
			// guards answer and the backend closes its idle connection.
			b, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			io.WriteString(b, formRequest(good[:strings.Index(good, "Signature=")]+"X=1"))
			time.Sleep(10 * time.Millisecond)
			admitter.gate <- struct{}{}
			resp, body, err := readAnswer(br)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || body != "2" {
				t.Errorf("resumed request: %d %.200s; want 200 from a fresh backend connection", resp.StatusCode, body)
			}
		})
	}
}

// clockTurningAdmitter moves the server's clock past the request's
// timestamp window while it is asked: Redis answering late.
type clockTurningAdmitter struct {
	scriptedAdmitter
	late *atomic.Bool
}

func (a *clockTurningAdmitter) AdmitMarked(ctx context.Context, ak []byte, fp string, ttl time.Duration) (guard.Admission, string, error) {
	a.late.Store(true)
	return a.scriptedAdmitter.AdmitMarked(ctx, ak, fp, ttl)
}

// A request the loop verified and admitted is judged at the time it was
// verified when it goes on on a goroutine (its identity not cached): the
// goroutine used its own clock, so a request verified just inside its
// window could be refused RequestExpired after the guards' round trip
// (found by a review).
func TestEventLoopAdmittedHandoverKeepsRequestTime(t *testing.T) {
	s, good := loopServer(t)
	late := new(atomic.Bool)
	s.now = func() time.Time {
		if late.Load() {
			return testNow.Add(time.Hour)
		}
		return testNow
	}
	s.guards = Guards{Admit: &clockTurningAdmitter{late: late}}
	s.identity = &s.identity.(*cachedFake).fakeIdentity // no cache: the loop hands over
	resp, body := askLoopOnce(t, s, seqRequest(good, "1"))
	if resp.StatusCode != 200 {
		t.Errorf("answer: %d %s; want 200, judged when it was verified", resp.StatusCode, body)
	}
	if !late.Load() {
		t.Error("the guards were not asked: the test did not reach the handover")
	}
	if n := counterValue(s.m.loopGoroutine); n != 1 {
		t.Errorf("%v requests went to the goroutine pipeline; want 1 (the identity was not cached)", n)
	}
	waitIdle(t, s)
}

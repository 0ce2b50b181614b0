//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fakeResolver answers the loop's lookups with *ip (none: an error), after
// waiting for a token from *gate if it is set, and counts them.
type fakeResolver struct {
	ip      atomic.Pointer[netip.Addr]
	gate    atomic.Pointer[chan struct{}]
	asked   atomic.Int32
	done    atomic.Int32 // lookups that have read their answer
	started chan string  // each lookup's host, if set (buffered)
}

func (f *fakeResolver) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	f.asked.Add(1)
	if f.started != nil {
		f.started <- host
	}
	if gate := f.gate.Load(); gate != nil {
		select {
		case <-*gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer f.done.Add(1)
	if ip := f.ip.Load(); ip != nil {
		return []netip.Addr{*ip}, nil
	}
	return nil, errors.New("fake DNS: no such host")
}

func (f *fakeResolver) answer(ip string) {
	a := netip.MustParseAddr(ip)
	f.ip.Store(&a)
}

// gated makes the lookups wait for a token from the channel it returns.
func (f *fakeResolver) gated() chan struct{} {
	gate := make(chan struct{})
	f.gate.Store(&gate)
	return gate
}

// waitAsked waits until the resolver has been asked n times.
func (f *fakeResolver) waitAsked(t *testing.T, n int32) {
	t.Helper()
	waitCount(t, &f.asked, n, "lookups asked")
}

// waitDone waits until n lookups have read their answer: changing it
// before then could change what an earlier lookup answers.
func (f *fakeResolver) waitDone(t *testing.T, n int32) {
	t.Helper()
	waitCount(t, &f.done, n, "lookups answered")
}

// waitCount waits up to 2 s for c to reach n.
func waitCount(t *testing.T, c *atomic.Int32, n int32, what string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); c.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d; want %d", what, c.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitLookup waits until addr's lookup has left its result.
func waitLookup(t *testing.T, p *backendPool, addr string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); p.addrs[addr].found.Load() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the lookup did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

func newTestPool(f *fakeResolver) *backendPool {
	p := new(backendPool)
	p.init()
	p.resolve = f.resolve
	return p
}

// The pool's addresses on a fake clock: an IP address is never looked up;
// a name is looked up once at a time, used for addrTTL from its lookup,
// then looked up again while the old address is used; a failure is held
// for failedHold.
func TestLoopBackendAddress(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	t.Run("IP address", func(t *testing.T) {
		f := &fakeResolver{}
		p := newTestPool(f)
		for _, at := range []time.Duration{0, time.Hour, 100 * time.Hour} {
			sa, err := p.address("127.0.0.1:8788", t0.Add(at))
			if err != nil || sa.Addr != [4]byte{127, 0, 0, 1} || sa.Port != 8788 {
				t.Fatalf("127.0.0.1:8788: %v %v", sa, err)
			}
			if _, err := p.address("[::1]:8788", t0.Add(at)); err == nil {
				t.Fatal("[::1]:8788: the loop dials IPv4 only: want an error (the goroutine pipeline dials it)")
			}
			if sa, err := p.address("[::ffff:10.0.0.1]:80", t0.Add(at)); err != nil || sa.Addr != [4]byte{10, 0, 0, 1} {
				t.Fatalf("[::ffff:10.0.0.1]:80: %v %v", sa, err)
			}
		}
		if n := f.asked.Load(); n != 0 {
			t.Errorf("the resolver was asked %d times for IP addresses; want 0", n)
		}
	})
	t.Run("name", func(t *testing.T) {
		f := &fakeResolver{}
		gate := f.gated()
		f.answer("10.0.0.1")
		p := newTestPool(f)
		const addr = "nova.example:8788"
		for i := range 5 { // while the lookup is under way: no address, no second lookup
			if _, err := p.address(addr, t0.Add(time.Duration(i)*time.Second)); err == nil {
				t.Fatal("an address before the lookup answered")
			}
		}
		gate <- struct{}{}
		waitLookup(t, p, addr)
		sa, err := p.address(addr, t0.Add(5*time.Second))
		if err != nil || sa.Addr != [4]byte{10, 0, 0, 1} || sa.Port != 8788 {
			t.Fatalf("after the lookup: %v %v", sa, err)
		}
		f.answer("10.0.0.2") // the name moves
		if sa, _ := p.address(addr, t0.Add(59*time.Second)); sa.Addr != [4]byte{10, 0, 0, 1} || f.asked.Load() != 1 {
			t.Fatalf("within addrTTL: %v, %d lookups; want 10.0.0.1, 1", sa, f.asked.Load())
		}
		// Due: looked up again, and the old address used meanwhile.
		for i := range 3 {
			if sa, _ := p.address(addr, t0.Add(61*time.Second+time.Duration(i))); sa == nil || sa.Addr != [4]byte{10, 0, 0, 1} {
				t.Fatalf("while the name is looked up again: %v; want the old address", sa)
			}
		}
		f.waitAsked(t, 2)
		gate <- struct{}{}
		waitLookup(t, p, addr)
		if sa, _ := p.address(addr, t0.Add(62*time.Second)); sa.Addr != [4]byte{10, 0, 0, 2} {
			t.Fatalf("after the second lookup: %v; want 10.0.0.2", sa)
		}
		// That lookup failing keeps the address, and holds the next one.
		f.ip.Store(nil)
		p.address(addr, t0.Add(122*time.Second))
		gate <- struct{}{}
		waitLookup(t, p, addr)
		for _, at := range []time.Duration{122, 124, 126} {
			if sa, _ := p.address(addr, t0.Add(at*time.Second)); sa == nil || sa.Addr != [4]byte{10, 0, 0, 2} {
				t.Fatalf("after a failed lookup: %v; want the address known", sa)
			}
		}
		if n := f.asked.Load(); n != 3 {
			t.Errorf("%d lookups within failedHold of a failure; want 3", n)
		}
		p.address(addr, t0.Add(128*time.Second))
		f.waitAsked(t, 4)
		gate <- struct{}{} // let it end
	})
	t.Run("failure", func(t *testing.T) {
		f := &fakeResolver{}
		p := newTestPool(f)
		const addr = "nova.example:8788"
		p.address(addr, t0)
		waitLookup(t, p, addr)
		for i := range 50 {
			if _, err := p.address(addr, t0.Add(time.Duration(i)*90*time.Millisecond)); err == nil {
				t.Fatal("an address from a failed lookup")
			}
		}
		if n := f.asked.Load(); n != 1 {
			t.Fatalf("%d lookups within failedHold; want 1", n)
		}
		f.answer("10.0.0.3")
		p.address(addr, t0.Add(10*time.Second)) // the hold (5 s from the failure's arrival at 0 s) is over
		waitLookup(t, p, addr)
		if sa, err := p.address(addr, t0.Add(10*time.Second)); err != nil || sa.Addr != [4]byte{10, 0, 0, 3} {
			t.Fatalf("after the hold: %v %v", sa, err)
		}
	})
}

// Dialing a known address allocates nothing in address.
func TestLoopBackendAddressAllocs(t *testing.T) {
	f := &fakeResolver{}
	f.answer("10.0.0.1")
	p := newTestPool(f)
	now := time.Now()
	p.address("nova.example:8788", now)
	waitLookup(t, p, "nova.example:8788")
	if n := testing.AllocsPerRun(100, func() {
		p.address("127.0.0.1:8788", now)
		p.address("nova.example:8788", now)
	}); n > 0 {
		t.Errorf("address allocates %v times; want 0", n)
	}
}

// startModeResolving is startMode for a loop whose backend lookups go to
// resolve.
func startModeResolving(t *testing.T, s *Server, mode string, resolve func(context.Context, string) ([]netip.Addr, error)) string {
	return startModeWith(t, s, mode, func(l *EventLoop) {
		l.pool.resolve = resolve
		l.pool.addrTTL, l.pool.failedHold = 300*time.Millisecond, time.Minute
	})
}

// A backend named by a host name ("localhost": the goroutine pipeline
// resolves it from /etc/hosts). The loop looked names up on its own
// thread: a lookup answering after 500 ms held every connection of the
// loop (found by a review: an unrelated 400 took 401 ms). The request now
// goes to the goroutine pipeline meanwhile, and the loop serves on.
func TestLoopBackendLookupDoesNotWait(t *testing.T) {
	for _, mode := range frontEnds[1:] {
		t.Run(mode, func(t *testing.T) {
			f := &fakeResolver{started: make(chan string, 10)}
			f.answer("127.0.0.1")
			slow := func(ctx context.Context, host string) ([]netip.Addr, error) {
				defer time.Sleep(500 * time.Millisecond) // after the count and the start
				return f.resolve(ctx, host)
			}
			backend := startScriptedBackend(t, answerWith("<ok/>"))
			_, port, _ := net.SplitHostPort(backend.addr)
			s, form := warmServer(t, "localhost:"+port)
			addr := startModeResolving(t, s, mode, slow)
			first := make(chan string, 1)
			go func() { got, _ := askTimed(addr, modesForm(form)); first <- got }()
			select {
			case <-f.started:
			case <-time.After(2 * time.Second):
				t.Fatal("no lookup")
			}
			got, took := askTimed(addr, "GET /nowhere HTTP/1.1\r\nHost: "+modesHost+"\r\n\r\n")
			if !strings.HasPrefix(got, "HTTP/1.1 4") || took > 250*time.Millisecond {
				t.Errorf("another connection, during the lookup: %.20q after %v; want its 4xx at once", got, took)
			}
			if got := <-first; !strings.Contains(got, "<ok/>") {
				t.Errorf("the request whose backend was looked up: %q; want the backend's answer", statusLines(got))
			}
		})
	}
}

// A failed lookup (an error, or a name with no IPv4 address) is held: the
// requests meanwhile go to the goroutine pipeline, which answers them,
// without a lookup each.
func TestLoopBackendFailedLookupHeld(t *testing.T) {
	for _, mode := range frontEnds[1:] {
		for _, failure := range []string{"error", "no IPv4 address"} {
			t.Run(mode+"/"+failure, func(t *testing.T) {
				f := &fakeResolver{}
				if failure != "error" {
					f.answer("::1")
				}
				backend := startScriptedBackend(t, answerWith("<ok/>"))
				_, port, _ := net.SplitHostPort(backend.addr)
				s, form := warmServer(t, "localhost:"+port)
				addr := startModeResolving(t, s, mode, f.resolve)
				const n = 20
				for range 2 { // pipelined on one connection, then on another
					if got := askMany(t, addr, modesForm(form), n, "<ok/>"); strings.Count(got, "<ok/>") != n {
						t.Errorf("%d of %d requests answered: %q", strings.Count(got, "<ok/>"), n, statusLines(got))
					}
				}
				if k := f.asked.Load(); k != 1 {
					t.Errorf("the resolver was asked %d times; want once", k)
				}
			})
		}
	}
}

// Once an address has served addrTTL, the name is looked up again in the
// background, the old address serving meanwhile, and new backend
// connections go to the new one (the loop kept the first address for
// the life of the process).
func TestLoopBackendAddressMoves(t *testing.T) {
	for _, mode := range frontEnds[1:] {
		t.Run(mode, func(t *testing.T) {
			answer := func(name string) func(c net.Conn, req *http.Request, raw []byte) bool {
				return func(c net.Conn, _ *http.Request, _ []byte) bool {
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s", len(name), name)
					return false
				}
			}
			old := startScriptedBackend(t, answer("<old/>"))
			_, port, _ := net.SplitHostPort(old.addr)
			ln, err := net.Listen("tcp", "127.0.0.2:"+port)
			if err != nil {
				t.Skipf("a second backend at 127.0.0.2:%s: %v", port, err)
			}
			serveOn(t, ln, func(c net.Conn) {
				buf := make([]byte, 64<<10)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, _ := c.Read(buf); n > 0 {
					answer("<new/>")(c, nil, nil)
				}
			})
			f := &fakeResolver{started: make(chan string, 10)}
			f.answer("127.0.0.1")
			s, form := warmServer(t, "localhost:"+port)
			addr := startModeResolving(t, s, mode, f.resolve)
			ask := func() string {
				got, _ := askTimed(addr, modesForm(form))
				return got
			}
			for range 3 {
				if got := ask(); !strings.Contains(got, "<old/>") {
					t.Fatalf("before the move: %q", got)
				}
			}
			<-f.started
			f.waitDone(t, 1) // on a busy machine the first lookup could read the new answer
			f.answer("127.0.0.2")
			gate := f.gated() // the next lookup waits
			time.Sleep(350 * time.Millisecond)
			start := time.Now()
			if got := ask(); !strings.Contains(got, "<old/>") || time.Since(start) > 250*time.Millisecond {
				t.Fatalf("after addrTTL, the lookup pending: %q after %v; want the old backend at once", got, time.Since(start))
			}
			select {
			case <-f.started:
			case <-time.After(2 * time.Second):
				t.Fatal("no second lookup")
			}
			close(gate)
			for deadline := time.Now().Add(3 * time.Second); ; {
				got := ask()
				if strings.Contains(got, "<new/>") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the new address is not used: %q", got)
				}
			}
		})
	}
}

// askMany sends request n times on one connection, and reads until n
// answers contain mark (or 5 s pass).
func askMany(t *testing.T, addr, request string, n int, mark string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(strings.Repeat(request, n))); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 64<<10)
	for strings.Count(string(got), mark) < n {
		k, err := c.Read(buf)
		got = append(got, buf[:k]...)
		if err != nil {
			break
		}
	}
	return string(got)
}

// askTimed sends one request on a new connection and returns what the
// first read brings (within 10 s), and when.
func askTimed(addr, request string) (string, time.Duration) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", 0
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(request))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	return string(buf[:n]), time.Since(start)
}

// A name with several IPv4 addresses: new connections take them in turn,
// and one a connection failed to is passed over for failedDialHold while
// another is not (the loop dialled only a name's first address).
func TestLoopBackendAddressesInTurn(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	p := new(backendPool)
	p.init()
	p.resolve = func(context.Context, string) ([]netip.Addr, error) {
		return append(ips, netip.MustParseAddr("::1")), nil
	}
	const addr = "nova.example:8788"
	t0 := time.Now()
	p.address(addr, t0)
	waitLookup(t, p, addr)
	picks := func(n int, at time.Time) string {
		var b strings.Builder
		for range n {
			sa, err := p.address(addr, at)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d ", sa.Addr[3])
		}
		return b.String()
	}
	if got := picks(4, t0); got != "1 2 3 1 " {
		t.Errorf("in turn: %s; want 1 2 3 1 (IPv6 left out)", got)
	}
	if others, newly := p.markDown(addr, [4]byte{10, 0, 0, 2}, t0); !others || !newly {
		t.Errorf("markDown: others %v, newly %v; want 10.0.0.1 and 10.0.0.3 left, 10.0.0.2 newly down", others, newly)
	}
	if got := picks(4, t0.Add(time.Second)); got != "3 1 3 1 " {
		t.Errorf("10.0.0.2 failed: %s; want it passed over", got)
	}
	p.markDown(addr, [4]byte{10, 0, 0, 1}, t0)
	if others, _ := p.markDown(addr, [4]byte{10, 0, 0, 3}, t0); others {
		t.Error("markDown: another address; want none left")
	}
	if _, newly := p.markDown(addr, [4]byte{10, 0, 0, 3}, t0); newly {
		t.Error("markDown of an address passed over already: newly down; want not (it is logged once)")
	}
	if got := picks(3, t0.Add(time.Second)); len(got) != 6 {
		t.Errorf("all failed: %q; want them dialled in turn all the same", got)
	}
	if got := picks(3, t0.Add(failedDialHold)); got != "3 1 2 " && got != "1 2 3 " && got != "2 3 1 " {
		t.Errorf("after failedDialHold: %s; want all three again", got)
	}
}

// A backend connection that fails to connect sends its request to the
// name's next address, in the loop: here the first two addresses refuse
// connections (fasthttp's dialer tries each address in turn; the loop
// answered 502; and with io_uring a read of the second connection took
// the first one's refusal, found by a review).
func TestLoopBackendNextAddressAfterAFailedConnect(t *testing.T) {
	for _, mode := range frontEnds[1:] {
		t.Run(mode, func(t *testing.T) {
			backend := startScriptedBackend(t, answerWith("<ok/>")) // on 127.0.0.1 only
			_, port, _ := net.SplitHostPort(backend.addr)
			s, form := warmServer(t, "localhost:"+port)
			addr, logs := startModeAddresses(t, s, mode, form, "127.0.0.2", "127.0.0.3", "127.0.0.1")
			before := counterValue(s.m.loopGoroutine)
			const n = 10
			for range 3 { // new client connections: the loop's backend connections, new or idle
				if got := askMany(t, addr, modesForm(form), n, "<ok/>"); strings.Count(got, "<ok/>") != n {
					t.Errorf("%d of %d requests answered: %q", strings.Count(got, "<ok/>"), n, statusLines(got))
				}
			}
			if k := counterValue(s.m.loopGoroutine) - before; k != 0 {
				t.Errorf("%v requests went to the goroutine pipeline; want all served by the loop", k)
			}
			// Each refusing address said so once, though no request failed.
			var failed []string
			for _, e := range logs.FilterMessageSnippet("a backend address failed a connection").All() {
				failed = append(failed, e.ContextMap()["address"].(string))
			}
			if len(failed) != 2 || failed[0] != "127.0.0.2" || failed[1] != "127.0.0.3" {
				t.Errorf("logged failed addresses %q; want 127.0.0.2, then 127.0.0.3, once each", failed)
			}
			// Every failed connection is counted, logged or not.
			if n := counterValue(s.m.backendConnects.WithLabelValues("localhost:" + port)); n < 2 {
				t.Errorf("ec2proxy_backend_connect_failures_total = %v; want at least 2, one per refusing address", n)
			}
		})
	}
}

// An address that does not connect within backend.dial_timeout (here a
// listener whose accept queue is full: the kernel drops further SYNs) is
// passed over too: one request waits the timeout and is answered 504, as
// the goroutine pipeline answers it; the next ones go to the other
// address.
func TestLoopBackendAddressThatDoesNotConnect(t *testing.T) {
	for _, mode := range frontEnds[1:] {
		t.Run(mode, func(t *testing.T) {
			backend := startScriptedBackend(t, answerWith("<ok/>")) // on 127.0.0.1 only
			_, port, _ := net.SplitHostPort(backend.addr)
			stuck := fullListener(t, "127.0.0.2", port)
			s, form := warmServer(t, "localhost:"+port)
			s.cfg.Backend.DialTimeout = 300 * time.Millisecond
			addr, logs := startModeAddresses(t, s, mode, form, "127.0.0.2", "127.0.0.1")
			got := askMany(t, addr, modesForm(form), 1, "HTTP/1.1 ")
			if !strings.Contains(got, "504") {
				t.Fatalf("the request sent to %s: %q; want 504 after backend.dial_timeout", stuck, statusLines(got))
			}
			const n = 10
			if got := askMany(t, addr, modesForm(form), n, "<ok/>"); strings.Count(got, "<ok/>") != n {
				t.Errorf("after the timeout, %d of %d requests answered: %q; want all from 127.0.0.1", strings.Count(got, "<ok/>"), n, statusLines(got))
			}
			if k := logs.FilterMessageSnippet("a backend address failed a connection").Len(); k != 1 {
				t.Errorf("%d warnings; want 1, for 127.0.0.2", k)
			}
		})
	}
}

// fullListener listens on host:port (port "0": any) with an accept queue
// that is full and never served, and returns its address: connections to
// it are not refused, they hang.
func fullListener(t *testing.T, host, port string) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	p, _ := strconv.Atoi(port)
	ip := netip.MustParseAddr(host).As4()
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: p, Addr: ip}); err != nil {
		t.Skipf("binding %s:%s: %v", host, port, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd) // port "0": the one given
	addr := net.JoinHostPort(host, strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 3 { // fill the queue; a connect that hangs means it is full
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the accept queue did not fill: connections to it do not hang")
	return addr
}

// startModeAddresses serves s in mode, its backend's name looked up as ips
// in that order, the loop's warnings kept in logs; it sends the request
// whose lookup starts (served by the goroutine pipeline) before returning.
func startModeAddresses(t *testing.T, s *Server, mode, form string, ips ...string) (string, *observer.ObservedLogs) {
	t.Helper()
	addrs := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		addrs[i] = netip.MustParseAddr(ip)
	}
	core, logs := observer.New(zap.WarnLevel)
	looked := make(chan struct{}, 8) // one per loop's lookup
	addr := startModeWith(t, s, mode, func(l *EventLoop) {
		l.pool.resolve = func(context.Context, string) ([]netip.Addr, error) { return addrs, nil }
		l.pool.addrTTL, l.pool.failedHold = time.Minute, time.Minute
		l.pool.looked = func() { looked <- struct{}{} }
		l.log = zap.New(core)
	})
	askMany(t, addr, modesForm(form), 1, "<ok/>")
	// The next dial must find the addresses: on a busy machine the lookup's
	// goroutine finished after the test's next request had gone to the
	// goroutine pipeline (CI, stop 29).
	select {
	case <-looked:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend name's lookup did not finish")
	}
	return addr, logs
}

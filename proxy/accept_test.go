//go:build linux

package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// faultyListener returns its errs, in order, then its conns, then (once
// closed) net.ErrClosed, as a TCP listener's Accept would.
type faultyListener struct {
	mu       sync.Mutex
	errs     []error
	accepts  int
	conns    chan net.Conn
	closed   chan struct{}
	closeOne sync.Once
}

func newFaultyListener(errs ...error) *faultyListener {
	return &faultyListener{errs: errs, conns: make(chan net.Conn, 4), closed: make(chan struct{})}
}

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

func (f *faultyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	f.accepts++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}
	}
}

func (f *faultyListener) Close() error {
	f.closeOne.Do(func() { close(f.closed) })
	return nil
}

func (f *faultyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8773} }

func (f *faultyListener) acceptCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepts
}

// tcpPair is a connected loopback pair: the server's end and the client's.
func tcpPair(t *testing.T) (server, client net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// The goroutine server's listener out of file descriptors: Accept waits
// (5 ms, 10, 20, ...) and tries again, warns once for the episode, and
// hands over the connection that comes next.
func TestRetryAcceptWaitsOutEMFILE(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	fl := newFaultyListener(acceptErr(syscall.EMFILE), acceptErr(syscall.ENFILE), acceptErr(syscall.ECONNABORTED), acceptErr(syscall.EMFILE))
	srv, _ := tcpPair(t)
	fl.conns <- srv
	ln := RetryAccept(fl, zap.New(core))
	start := time.Now()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		got <- c
	}()
	select {
	case c := <-got:
		if c != srv {
			t.Fatalf("Accept returned %v, not the listener's connection", c)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Accept still waiting after 3 s")
	}
	if d := time.Since(start); d < (5+10+20+40)*time.Millisecond {
		t.Errorf("four failures retried in %v: no backoff", d)
	}
	if n := fl.acceptCalls(); n != 5 {
		t.Errorf("inner Accept called %d times, want 5", n)
	}
	warns := logs.FilterMessageSnippet("out of file descriptors").All()
	if len(warns) != 1 || warns[0].Level != zapcore.WarnLevel {
		t.Fatalf("want one warning for the episode, got %v", logs.All())
	}
	if f := warns[0].ContextMap(); f["open_files_limit"] == nil {
		t.Errorf("the warning does not give the limit: %v", f)
	}

	// Closing the listener ends a backoff at once, with the close error.
	fl2 := newFaultyListener()
	for range 20 {
		fl2.errs = append(fl2.errs, acceptErr(syscall.EMFILE))
	}
	ln2 := RetryAccept(fl2, zap.NewNop())
	done := make(chan error, 1)
	go func() { _, err := ln2.Accept(); done <- err }()
	time.Sleep(50 * time.Millisecond)
	fl2.mu.Lock()
	fl2.errs = fl2.errs[:0] // the next Accept waits for a connection, or the close
	fl2.mu.Unlock()
	ln2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Accept still backing off after Close")
	}
}

// Server.Serve (fasthttp's, which takes EMFILE from Accept as the end of
// the listener and returns it, stopping the process) keeps serving
// through a shortage.
func TestServeSurvivesEMFILE(t *testing.T) {
	b := startScriptedBackend(t, answerWith("<ok/>"))
	s, good := warmServer(t, b.addr)
	fl := newFaultyListener(acceptErr(syscall.EMFILE), acceptErr(syscall.EMFILE), acceptErr(syscall.ENOBUFS))
	srv, client := tcpPair(t)
	fl.conns <- srv
	served := make(chan error, 1)
	go func() { served <- s.Serve(fl) }()
	t.Cleanup(func() {
		fl.Close()
		select {
		case <-served:
		case <-time.After(3 * time.Second):
			t.Error("Serve did not return after its listener closed")
		}
	})
	if _, err := io.WriteString(client, modesForm(good)); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, body, err := readAnswer(bufio.NewReader(client))
	if err != nil {
		select {
		case serr := <-served:
			served <- serr // for the cleanup
			t.Fatalf("Serve returned %v; the connection after it was never served", serr)
		default:
		}
		t.Fatalf("no answer: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
}

// highestFD is the highest descriptor open in the process.
func highestFD(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	high := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			high = max(high, n)
		}
	}
	return high
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// askOn sends req on c and reads one answer, within wait.
func askOn(c net.Conn, br *bufio.Reader, req string, wait time.Duration) (int, error) {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, err
	}
	resp, _, err := readAnswer(br)
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// The process out of file descriptors (RLIMIT_NOFILE lowered to what is
// open, clients waiting in the listen queue): each front end keeps
// serving the connections it has, does not spin on the listener (the
// event loops would, level-triggered, at a full core), does not stop
// accepting for good (the goroutine server would: fasthttp's Serve
// returns), and accepts again once descriptors are freed. The limit is the
// whole process's: the test runs alone (no t.Parallel in this package) and
// restores it at once.
func TestFrontEndsOutOfFileDescriptors(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			b := startScriptedBackend(t, answerWith("<ok/>"))
			s, good := warmServer(t, b.addr)
			addr := startMode(t, s, mode)
			req := modesForm(good)

			keep, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer keep.Close()
			kr := bufio.NewReader(keep)
			if code, err := askOn(keep, kr, req, 3*time.Second); code != 200 {
				t.Fatalf("before: %d %v", code, err)
			}

			release := exhaustDescriptors(t, addr, 4)

			time.Sleep(150 * time.Millisecond) // accept has failed by now
			cpu0, t0 := cpuTime(), time.Now()
			time.Sleep(500 * time.Millisecond)
			burnt, over := cpuTime()-cpu0, time.Since(t0)
			t.Logf("CPU while out of descriptors: %v in %v", burnt.Round(time.Millisecond), over.Round(time.Millisecond))
			if burnt > over/4 {
				t.Errorf("CPU %v in %v while out of descriptors: spinning on the listener", burnt, over)
			}
			if code, err := askOn(keep, kr, req, 3*time.Second); code != 200 {
				t.Errorf("an open connection while out of descriptors: %d %v", code, err)
			}

			release()
			fresh, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			if code, err := askOn(fresh, bufio.NewReader(fresh), req, 3*time.Second); code != 200 {
				t.Fatalf("a new connection once descriptors are freed: %d %v", code, err)
			}
		})
	}
}

// A request the event loop hands to the goroutine server (here one with
// Connection: close) while the process is out of descriptors: the hand-over
// needs one more (net.FileConn dups the socket). The client gets a 503 that
// says why, and the shortage is logged, where the connection used to be
// closed without an answer or a word in the log.
func TestLoopHandoffOutOfFileDescriptors(t *testing.T) {
	for _, mode := range frontEnds[1:] {
		t.Run(mode, func(t *testing.T) {
			b := startScriptedBackend(t, answerWith("<ok/>"))
			s, good := warmServer(t, b.addr)
			core, logs := observer.New(zap.WarnLevel)
			s.log = zap.New(core)
			addr := startMode(t, s, mode)
			keep, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer keep.Close()
			kr := bufio.NewReader(keep)
			if code, err := askOn(keep, kr, modesForm(good), 3*time.Second); code != 200 {
				t.Fatalf("before: %d %v", code, err)
			}

			// Another test's connection closing late frees a descriptor the
			// hand-over then takes (CI, once): served, the request is sent
			// again on a fresh connection with the descriptors refilled.
			var resp *http.Response
			var body string
			var werr, rerr error
			for try := 0; ; try++ {
				release := exhaustDescriptors(t, addr, 0)
				_ = keep.SetDeadline(time.Now().Add(3 * time.Second))
				_, werr = io.WriteString(keep, modesForm(good, "Connection: close"))
				resp, body, rerr = readAnswer(kr)
				release()
				if try == 2 || werr != nil || rerr != nil || resp.StatusCode != 200 {
					break
				}
				keep.Close()
				if keep, err = net.DialTimeout("tcp", addr, 2*time.Second); err != nil {
					t.Fatal(err)
				}
				kr = bufio.NewReader(keep)
				if code, err := askOn(keep, kr, modesForm(good), 3*time.Second); code != 200 {
					t.Fatalf("before, again: %d %v", code, err)
				}
			}
			if werr != nil || rerr != nil {
				t.Fatalf("hand-over out of descriptors: no answer (write %v, read %v)", werr, rerr)
			}
			if resp.StatusCode != 503 || !strings.Contains(body, "<Code>ServiceUnavailable</Code>") || !strings.Contains(body, "file descriptors") {
				t.Errorf("hand-over out of descriptors: %d %s", resp.StatusCode, body)
			}
			if logs.FilterMessageSnippet("out of file descriptors").Len() == 0 {
				t.Error("the failed hand-over was not logged")
			}
		})
	}
}

// exhaustDescriptors leaves the process no free file descriptor
// (RLIMIT_NOFILE lowered to the highest one open, the free ones below it
// taken) and clients connections waiting in addr's listen queue; release
// (also run at cleanup) frees them all and restores the limit.
func exhaustDescriptors(t *testing.T, addr string, clients int) (release func()) {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// The clients' sockets are made now: connecting them takes no
	// descriptor.
	var waiting, fillers []int
	for range clients {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, fd)
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
		for _, fd := range append(fillers, waiting...) {
			syscall.Close(fd)
		}
		devNull.Close()
	}
	t.Cleanup(release)

	lim := syscall.Rlimit{Cur: uint64(highestFD(t) + 1), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	for range 10000 { // the free descriptors below the limit
		fd, err := syscall.Dup(int(devNull.Fd()))
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				release()
				t.Fatalf("filling descriptors: %v", err)
			}
			break
		}
		fillers = append(fillers, fd)
	}
	sa := &syscall.SockaddrInet4{Port: tcp.Port}
	copy(sa.Addr[:], tcp.IP.To4())
	for _, fd := range waiting {
		if err := syscall.Connect(fd, sa); err != nil && err != syscall.EINPROGRESS {
			release()
			t.Fatalf("connecting: %v", err)
		}
	}
	return release
}

// An event loop whose listener is out of the epoll set (out of
// descriptors) still stops: Shutdown returns, and the listener is not put
// back.
func TestLoopShutdownWhileAcceptPaused(t *testing.T) {
	b := startScriptedBackend(t, answerWith("<ok/>"))
	s, _ := warmServer(t, b.addr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	loops, err := NewEventLoops(1, ln, func() *Server { return s }, s.http.ServeConn, zap.NewNop(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	l := loops[0]
	ran := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ran <- l.Run()
	}()
	release := exhaustDescriptors(t, ln.Addr().String(), 2)
	time.Sleep(150 * time.Millisecond) // paused, or about to pause again
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = l.Shutdown(ctx)
	release()
	if err != nil {
		t.Fatalf("Shutdown while out of descriptors: %v", err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return")
	}
}

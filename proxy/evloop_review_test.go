//go:build linux

package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// Found by a review of this session's changes: a chunked backend answer
// whose read ends inside a chunk size line ("...\r\n1" | "0\r\n...") is
// fasthttp's ErrBrokenChunk, which does not unwrap to io.EOF: answer() took
// it for a malformed answer and answered 502 at once, where it must wait
// for the rest.
func TestFrontEndsChunkedAnswerSplitInChunkSize(t *testing.T) {
	const first = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<ok/>\r\n1"
	const rest = "0\r\n0123456789abcdef\r\n0\r\n\r\n"
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
				io.WriteString(c, first)
				time.Sleep(100 * time.Millisecond)
				io.WriteString(c, rest)
				return true
			})
			s, form := warmServer(t, backend.addr)
			addr := startMode(t, s, mode)
			resp, body, _ := askOnce(t, addr, modesForm(form))
			if resp.StatusCode != 200 || string(body) != "<ok/>0123456789abcdef" {
				t.Errorf("got %s %q; want 200 <ok/>0123456789abcdef", resp.Status, body)
			}
		})
	}
}

// Found by a review of this session's changes: readBuffer pauses a busy
// client that sent more than maxBuffered by dropping EPOLLIN, but EPOLLHUP/EPOLLERR cannot be masked.
// A client that resets the connection meanwhile wakes the loop on every
// wait, and readBuffer returns without reading: the loop spins a core
// until the request in flight is answered (up to backend.timeout).
func TestLoopPausedClientResetDoesNotSpin(t *testing.T) {
	for _, mode := range []string{"epoll", "uring"} {
		t.Run(mode, func(t *testing.T) {
			backend := startScriptedBackend(t, func(c net.Conn, r *http.Request, raw []byte) bool {
				time.Sleep(1500 * time.Millisecond)
				return answerWith("<ok/>")(c, r, raw)
			})
			s, form := warmServer(t, backend.addr)
			s.cfg.Server.MaxBodyBytes = 1024
			s.routes[0].timeout = 5 * time.Second
			addr := startMode(t, s, mode)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			big := strings.Repeat("x", s.cfg.Server.MaxHeaderBytes+s.cfg.Server.MaxBodyBytes+64<<10)
			if _, err := io.WriteString(conn, modesForm(form)+big); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond) // the loop reads past maxBuffered and pauses
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close() // RST: EPOLLHUP|EPOLLERR on the paused socket
			time.Sleep(50 * time.Millisecond)
			before := cpuTime()
			time.Sleep(500 * time.Millisecond)
			if used := cpuTime() - before; used > 150*time.Millisecond {
				t.Errorf("the loop used %v of CPU in 500 ms with one reset, paused client", used)
			}
		})
	}
}

// Found by a review of this session's changes: closeDelimited runs on
// every read of every answer that is not relayed as bytes (chunked, no Date, a Connection header...),
// and bytes.Split allocates each time.
func TestCloseDelimitedAllocatesNothing(t *testing.T) {
	in := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<ok/>\r\n")
	if n := testing.AllocsPerRun(100, func() { closeDelimited(in) }); n != 0 {
		t.Errorf("closeDelimited: %v allocations per call", n)
	}
}

// Found by a review of this session's changes: a round reads every ready
// socket first, then handles the results. If a backend's answer is handled
// before the client's read of the same round and serving the client's next
// request hands the connection over (here: Connection: close), the bytes
// that read took are dropped (round skips a connection no longer in
// l.conns): the goroutine server never gets them and waits.
func TestUringHandoffKeepsRoundRead(t *testing.T) {
	for _, mode := range []string{"epoll", "uring"} {
		t.Run(mode, func(t *testing.T) {
			release := make(chan struct{})
			backend := startScriptedBackend(t, func(c net.Conn, r *http.Request, raw []byte) bool {
				<-release
				return answerWith("<ok/>")(c, r, raw)
			})
			s, form := warmServer(t, backend.addr)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var stall atomic.Bool
			current := func() *Server {
				if stall.CompareAndSwap(true, false) {
					time.Sleep(400 * time.Millisecond) // the loop is busy: what arrives meanwhile comes in one wait
				}
				return s
			}
			loops, err := NewEventLoops(1, ln, current, s.http.ServeConn, zap.NewNop(), false, mode == "uring")
			if err != nil {
				t.Fatal(err)
			}
			l := loops[0]
			if mode == "uring" && l.ring == nil {
				t.Skip("io_uring unavailable")
			}
			go func() { runtime.LockOSThread(); _ = l.Run() }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				_ = l.Shutdown(ctx)
			}()
			addr := ln.Addr().String()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			second := modesForm(form, "Connection: close")
			head := second[:strings.Index(second, "\r\n\r\n")+4]
			io.WriteString(c, modesForm(form)+head) // request 1, and request 2's head
			time.Sleep(100 * time.Millisecond)
			d, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			stall.Store(true)
			io.WriteString(d, "G") // the loop stalls on it
			time.Sleep(50 * time.Millisecond)
			close(release) // the backend answers request 1 ...
			time.Sleep(50 * time.Millisecond)
			io.WriteString(c, form) // ... then request 2's body arrives
			got, _ := readAll(c, 2*time.Second)
			if n := strings.Count(got, "HTTP/1.1 "); n != 2 {
				t.Errorf("%d answers in 2 s; want 2 (request 2's body was lost): %q", n, got)
			}
		})
	}
}

//go:build linux

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
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

// Found by a review: an answer saying Connection: close (the backend's, a
// close-delimited one, which fasthttp marks so) was written with what the
// socket took at once, and the connection closed: the client got the head
// and a cut-off body. 8 MiB is more than loopback buffers hold.
func TestFrontEndsLargeClosingAnswerWhole(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 1<<19)
	for name, raw := range map[string]string{
		"Connection: close": fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body),
		"close-delimited":   "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n" + body,
	} {
		for _, mode := range frontEnds {
			t.Run(name+"/"+mode, func(t *testing.T) {
				backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
					io.WriteString(c, raw)
					return false
				})
				s, form := warmServer(t, backend.addr)
				conn, err := net.Dial("tcp", startMode(t, s, mode))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(20 * time.Second))
				io.WriteString(conn, modesForm(form))
				time.Sleep(300 * time.Millisecond) // the client is busy: the socket fills
				resp, got, err := readAnswer(bufio.NewReader(conn))
				if err != nil || resp.StatusCode != 200 || got != body {
					t.Errorf("%d of %d body bytes, err %v", len(got), len(body), err)
				}
			})
		}
	}
}

// Found by a review: after an answer saying Connection: close, the loop
// still served the next request a half-closed client had pipelined: it
// reached the backend, whose answer no one read (the connection closed),
// and a client retrying what it never got an answer for runs it twice.
func TestFrontEndsNothingServedAfterClosingAnswer(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			var n atomic.Int32
			backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
				switch k := n.Add(1); {
				case k <= 2: // warming up: two pooled backend connections
					time.Sleep(200 * time.Millisecond)
				case k == 3:
					time.Sleep(100 * time.Millisecond) // the loop reads the client's EOF meanwhile
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\nContent-Length: 5\r\n\r\n<ok/>")
					return false
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\n<ok/>")
				return true
			})
			s, form := warmServer(t, backend.addr)
			addr, req := startMode(t, s, mode), modesForm(form)
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					if c, err := net.Dial("tcp", addr); err == nil {
						defer c.Close()
						io.WriteString(c, req)
						readAnswer(bufio.NewReader(c))
					}
				})
			}
			wg.Wait()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, req+req)
			c.(*net.TCPConn).CloseWrite()
			got, closed := readAll(c, 2*time.Second)
			time.Sleep(300 * time.Millisecond) // a request sent on would reach the backend meanwhile
			if lines := statusLines(got); len(lines) != 1 || !closed {
				t.Errorf("client got %q (closed: %v); want one answer, then the connection closed", lines, closed)
			}
			if k := n.Load(); k != 3 {
				t.Errorf("the backend received %d requests; want 3 (two warming up, then the first of the pipelined pair)", k)
			}
		})
	}
}

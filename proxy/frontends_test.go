//go:build linux

package proxy

// Three front ends, one warm pipeline served by each of the three
// front ends (goroutine server, epoll loop, io_uring loop), a scripted raw
// backend, and raw-TCP helpers.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ec2proxy/ec2proxy/configs"
)

var frontEnds = []string{"goroutine", "epoll", "uring"}

// scriptedBackend is a raw TCP backend: each request's raw bytes are recorded,
// and answer writes the answer (or does anything else to the connection).
type scriptedBackend struct {
	addr   string
	mu     sync.Mutex
	reqs   []string                                             // raw request bytes as received (head and body)
	answer func(c net.Conn, req *http.Request, raw []byte) bool // false: stop serving this connection
}

type teeReader struct {
	r   io.Reader
	buf *bytes.Buffer
}

func (t teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf.Write(p[:n])
	return n, err
}

func startScriptedBackend(t testing.TB, answer func(c net.Conn, req *http.Request, raw []byte) bool) *scriptedBackend {
	b := &scriptedBackend{answer: answer}
	b.addr = serveTCP(t, func(c net.Conn) {
		var raw bytes.Buffer
		br := bufio.NewReader(teeReader{c, &raw})
		for {
			raw.Reset()
			// the bufio reader reads ahead: raw holds at least this request
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			_ = body
			b.mu.Lock()
			b.reqs = append(b.reqs, raw.String())
			b.mu.Unlock()
			if !b.answer(c, req, raw.Bytes()) {
				return
			}
		}
	})
	return b
}

func (b *scriptedBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.reqs...)
}

func answerWith(body string) func(c net.Conn, req *http.Request, raw []byte) bool {
	return func(c net.Conn, req *http.Request, raw []byte) bool {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nDate: %s\r\nContent-Length: %d\r\n\r\n%s",
			time.Now().UTC().Format(http.TimeFormat), len(body), body)
		return true
	}
}

// warmServer is a warm server (credential and identity cached) forwarding to
// backend; it returns the server and a signed form body.
func warmServer(t testing.TB, backend string) (*Server, string) {
	w := newWarm(t, 2)
	var fill fasthttp.RequestCtx
	fill.Init(w.req, w.peer, nil)
	w.s.handle(&fill)
	if fill.Response.StatusCode() != 200 {
		t.Fatalf("warming: %d %s", fill.Response.StatusCode(), fill.Response.Body())
	}
	w.s.identity = &cachedFake{fakeIdentity{id: w.id}}
	w.s.guards.RateLimit = nil
	rt, err := newRoute(configs.Route{PathPrefix: "/", Backend: "http://" + backend}, &w.s.cfg.Backend, false, w.s.m.connectFailed)
	if err != nil {
		t.Fatal(err)
	}
	w.s.routes[0] = rt // a fresh HostClient: the warm-up's idle connection goes to the in-memory backend
	return w.s, string(w.req.Body())
}

// startMode serves s in mode; the loops hand connections to s's own
// goroutine server, as the Runner does.
func startMode(t testing.TB, s *Server, mode string) string {
	return startModeWith(t, s, mode, nil)
}

// startModeWith is startMode with setUp run on a loop before it runs.
func startModeWith(t testing.TB, s *Server, mode string, setUp func(*EventLoop)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if mode == "goroutine" {
		go s.Serve(ln) //nolint:errcheck
		t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
		return ln.Addr().String()
	}
	loops, err := NewEventLoops(1, ln, func() *Server { return s }, s.http.ServeConn, s.log, false, mode == "uring")
	if err != nil {
		t.Fatal(err)
	}
	l := loops[0]
	if mode == "uring" && l.ring == nil {
		t.Skip("io_uring unavailable")
	}
	if setUp != nil {
		setUp(l)
	}
	go func() {
		runtime.LockOSThread()
		_ = l.Run()
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = l.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// rawTalk writes each piece (pausing between), then reads until the server
// closes or wait passes with nothing new; it returns all bytes read.
func rawTalk(t *testing.T, addr string, wait time.Duration, pieces ...string) (string, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := io.WriteString(c, p); err != nil {
			break
		}
	}
	return readAll(c, wait)
}

func readAll(c net.Conn, wait time.Duration) (string, bool) {
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return out.String(), false
			}
			return out.String(), true // closed
		}
	}
}

func statusLines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\r\n") {
		if strings.HasPrefix(line, "HTTP/1.") {
			out = append(out, line)
		}
	}
	return out
}

const modesHost = "ec2.example.com:8773"

func modesForm(body string, extra ...string) string {
	return formPost(modesHost, "/", body, extra...)
}

// askOnce sends one request on a new connection and reads its answer
// (within 4 s), with the time it took.
func askOnce(t *testing.T, addr, request string) (resp *http.Response, body []byte, took time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(4 * time.Second))
	start := time.Now()
	io.WriteString(conn, request)
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, body, time.Since(start)
}

//go:build linux

package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// Clients that send requests ahead, cut at random places, against a
// backend that answers after random pauses (some answers megabytes, read
// late, so writes fall short): every answer must reach its own client in
// order, whole, with or without io_uring. With it, a backend's
// answer and a client's next bytes often land in one round, and the
// answer moves that client's buffered bytes before its new read is
// handled (see safeReceived).
func TestEventLoopPipelinedUnderLoad(t *testing.T) {
	for _, ring := range []bool{false, true} {
		t.Run(fmt.Sprint("io_uring=", ring), func(t *testing.T) { testPipelined(t, ring) })
	}
}

func testPipelined(t *testing.T, ring bool) {
	backend := startEchoBackend(t)
	w := newWarm(t, 2)
	var fill fasthttp.RequestCtx
	fill.Init(w.req, w.peer, nil)
	w.s.handle(&fill) // fills the credential cache the loop peeks
	s := w.s
	s.identity = &cachedFake{fakeIdentity{id: w.id}}
	s.guards.RateLimit = nil
	s.routes[0].client.Addr, s.routes[0].client.Dial = backend, nil

	addr := startLoop(t, s, ring)

	body := w.req.Body()
	const clients, requests, ahead = 8, 100, 3
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pipelinedClient(addr, body, i, requests, ahead); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// startLoop serves s from one event loop on a loopback port until the
// test ends; a connection handed to the goroutine server fails the test.
func startLoop(t *testing.T, s *Server, ring bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	loops, err := NewEventLoops(1, ln, func() *Server { return s }, func(c net.Conn) error {
		t.Error("a connection was handed to the goroutine server")
		return c.Close()
	}, zap.NewNop(), false, ring)
	if err != nil {
		t.Fatal(err)
	}
	l := loops[0]
	if ring && l.ring == nil {
		t.Skip("io_uring is unavailable here")
	}
	go func() {
		runtime.LockOSThread()
		if err := l.Run(); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("event loop shutdown: %v", err)
		}
	})
	return ln.Addr().String()
}

// pipelinedClient sends n requests tagged client.seq, at most ahead
// unanswered, each written in random pieces, and checks the answers.
func pipelinedClient(addr string, body []byte, client, n, ahead int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	window := make(chan struct{}, ahead)
	errs := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(uint64(client), 1))
		for seq := range n {
			window <- struct{}{}
			req := fmt.Sprintf("POST / HTTP/1.1\r\nHost: ec2.example.com:8773\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nX-Seq: %d.%d\r\nContent-Length: %d\r\n\r\n%s", client, seq, len(body), body)
			for len(req) > 0 {
				cut := min(len(req), 1+rng.IntN(len(req)))
				if _, err := io.WriteString(c, req[:cut]); err != nil {
					errs <- err
					return
				}
				req = req[cut:]
				if rng.IntN(3) == 0 {
					time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
				}
			}
		}
		errs <- nil
	}()
	br := bufio.NewReader(c)
	for seq := range n {
		if seq%7 == 0 {
			time.Sleep(5 * time.Millisecond) // answers pile up: the loop's writes fall short
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("client %d, answer %d: %w", client, seq, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tag, padding, _ := strings.Cut(string(got), "\n")
		if want := fmt.Sprintf("%d.%d", client, seq); resp.StatusCode != 200 || tag != want || strings.Trim(padding, "x") != "" {
			return fmt.Errorf("client %d, answer %d: %d %q, want 200 %q", client, seq, resp.StatusCode, tag, want)
		}
		<-window
	}
	return <-errs
}

// startEchoBackend answers each request with its X-Seq header, after a
// pause of up to 300 microseconds.
func startEchoBackend(t *testing.T) string {
	return serveTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			answer := req.Header.Get("X-Seq")
			if strings.HasSuffix(answer, "7") { // larger than the sockets take at once
				answer += "\n" + strings.Repeat("x", 3<<20)
			}
			var b strings.Builder
			b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nDate: ")
			b.WriteString(time.Now().UTC().Format(http.TimeFormat))
			b.WriteString("\r\nContent-Length: " + strconv.Itoa(len(answer)) + "\r\n\r\n" + answer)
			if _, err := io.WriteString(c, b.String()); err != nil {
				return
			}
		}
	})
}

// A drained buffer grown past keptSize is given back; anything smaller, or
// holding bytes, is kept.
func TestShrunk(t *testing.T) {
	big := make([]byte, 0, 1<<20)
	if b := shrunk(big, readSize); cap(b) != readSize || len(b) != 0 {
		t.Errorf("an empty 1 MiB buffer: cap %d, want %d", cap(b), readSize)
	}
	if b := shrunk(big, 0); b != nil {
		t.Errorf("an empty 1 MiB output buffer: cap %d, want nil", cap(b))
	}
	if b := shrunk(big[:1], readSize); cap(b) != 1<<20 {
		t.Error("a buffer holding a byte was replaced")
	}
	if b := shrunk(make([]byte, 0, keptSize), readSize); cap(b) != keptSize {
		t.Error("a buffer of keptSize was replaced")
	}
}

//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
)

// loopServer is a warm server, its credential and identity cached, for an
// event loop; it returns the server and the signed request's form body.
func loopServer(t *testing.T) (*Server, string) {
	w := newWarm(t, 2)
	var fill fasthttp.RequestCtx
	fill.Init(w.req, w.peer, nil)
	w.s.handle(&fill) // fills the credential cache the loop peeks
	if fill.Response.StatusCode() != 200 {
		t.Fatalf("warming: %d %s", fill.Response.StatusCode(), fill.Response.Body())
	}
	w.s.identity = &cachedFake{fakeIdentity{id: w.id}}
	w.s.guards.RateLimit = nil // the default: no per-key limit
	w.s.routes[0].client.Addr, w.s.routes[0].client.Dial = startEchoBackend(t), nil
	return w.s, string(w.req.Body())
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// readAnswer reads the next answer on a client connection, body and all.
func readAnswer(br *bufio.Reader) (*http.Response, string, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body), err
}

func formRequest(body string) string {
	return fmt.Sprintf("POST / HTTP/1.1\r\nHost: ec2.example.com:8773\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// Refusals that need no Redis are answered by the loop itself, in order
// with the requests it forwards on the same connection: a bad signature
// (the lockout is this replica's, as it is without Redis), a request with
// no signature, and, after five distinct bad signatures, the locked key.
func TestEventLoopRefusals(t *testing.T) {
	for _, ring := range []bool{false, true} {
		t.Run(fmt.Sprint("io_uring=", ring), func(t *testing.T) {
			s, good := loopServer(t)
			c, err := net.Dial("tcp", startLoop(t, s, ring))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			bad := func(i int) string { // a well-formed signature, not the right one
				start := strings.Index(good, "Signature=") + len("Signature=")
				end := start + strings.IndexByte(good[start:]+"&", '&')
				sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, 32))
				return good[:start] + url.QueryEscape(sig) + good[end:]
			}
			unsigned := good[:strings.Index(good, "Signature=")] + "X=1"
			steps := []struct {
				body, want string
				status     int
			}{
				{good, "", 200},
				{bad(0), "<Code>SignatureDoesNotMatch</Code>", 403},
				{bad(0), "<Code>SignatureDoesNotMatch</Code>", 403}, // a retry: counted once
				{unsigned, "<Code>MissingParameter</Code>", 400},
				{good, "", 200},
				{bad(1), "<Code>SignatureDoesNotMatch</Code>", 403},
				{bad(2), "<Code>SignatureDoesNotMatch</Code>", 403},
				{bad(3), "<Code>SignatureDoesNotMatch</Code>", 403},
				{bad(4), "<Code>SignatureDoesNotMatch</Code>", 403}, // the fifth: the key locks
				{good, "is locked until", 403},
			}
			var all strings.Builder
			for _, step := range steps {
				all.WriteString(formRequest(step.body))
			}
			io.WriteString(c, all.String()) // pipelined: one write
			br := bufio.NewReader(c)
			for i, step := range steps {
				resp, body, err := readAnswer(br)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				if resp.StatusCode != step.status || !strings.Contains(body, step.want) || resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("answer %d: %d %s; want %d with %q and an X-Request-Id", i, resp.StatusCode, body, step.status, step.want)
				}
			}
			if n := counterValue(s.m.loopGoroutine); n != 0 {
				t.Errorf("%v requests went to goroutines; the loop can answer all of these", n)
			}
			if n := counterValue(s.m.loopServed); n != float64(len(steps)) {
				t.Errorf("the loop served %v requests; want %d", n, len(steps))
			}
		})
	}
}

// A client that sends requests ahead and does not read its answers stalls:
// the loop stops reading from it once maxUnsent of answers wait, instead
// of answering without end into memory, and goes on when the client reads.
func TestEventLoopStall(t *testing.T) {
	for _, ring := range []bool{false, true} {
		t.Run(fmt.Sprint("io_uring=", ring), func(t *testing.T) {
			s, good := loopServer(t)
			req := formRequest(good[:strings.Index(good, "Signature=")] + "X=1") // refused: MissingParameter
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { // a small window, set before connecting: no autotuning
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				})
			}}
			c, err := d.Dial("tcp", startLoop(t, s, ring))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Write requests until the proxy stops taking them.
			batch := strings.Repeat(req, 64)
			written := 0
			for written < 200<<20 {
				c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond)) // blocked that long: stopped
				n, err := io.WriteString(c, batch)
				written += n
				if err != nil {
					break
				}
			}
			served := counterValue(s.m.loopServed)
			t.Logf("wrote %d requests (%d KiB) before the proxy stopped reading; it answered %v", written/len(req), written>>10, served)
			if written >= 200<<20 {
				t.Fatalf("the proxy took %d MiB of requests whose answers the client never read", written>>20)
			}
			// What the answers already queued may take: the kernel's buffers
			// (a few hundred KiB here) and maxUnsent.
			if answered := served * float64(len(refusalAnswer(t, s, req))); answered > 8<<20 {
				t.Errorf("%v requests answered into unread buffers (%.0f KiB)", served, answered/1024)
			}
			// Reading resumes it: every whole request gets its answer.
			c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			for i := range written / len(req) {
				resp, body, err := readAnswer(br)
				if err != nil {
					t.Fatalf("answer %d of %d: %v", i, written/len(req), err)
				}
				if resp.StatusCode != 400 || !strings.Contains(body, "<Code>MissingParameter</Code>") {
					t.Fatalf("answer %d: %d %s", i, resp.StatusCode, body)
				}
			}
			if rest := written % len(req); rest > 0 { // the request the deadline cut: finish it
				io.WriteString(c, req[rest:])
				if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 400 {
					t.Fatalf("the last request: %v %v", resp, err)
				}
			}
		})
	}
}

// refusalAnswer is the answer the goroutine pipeline gives req.
func refusalAnswer(t *testing.T, s *Server, raw string) []byte {
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	s.handle(&ctx)
	return []byte(ctx.Response.String())
}

// A partial write moves an offset; the rest is moved to the front only
// once the written part is the larger (then about once per answer).
func TestWrote(t *testing.T) {
	answer := bytes.Repeat([]byte("0123456789"), 100)
	c := &loopConn{out: append([]byte(nil), answer...)}
	c.wrote(100)
	if c.sent != 100 || len(c.out) != 1000 || !bytes.Equal(c.out[c.sent:], answer[100:]) {
		t.Fatalf("after 100 of 1000: sent %d, len %d", c.sent, len(c.out))
	}
	c.out = append(c.out, "more"...) // an answer queued behind
	c.wrote(500)
	want := append(append([]byte(nil), answer[600:]...), "more"...)
	if c.sent != 0 || !bytes.Equal(c.out, want) {
		t.Fatalf("after 600 of 1004: sent %d, unsent %q", c.sent, c.out[c.sent:])
	}
	c.wrote(len(want))
	if c.sent != 0 || len(c.out) != 0 {
		t.Fatalf("all written: sent %d, len %d", c.sent, len(c.out))
	}
}

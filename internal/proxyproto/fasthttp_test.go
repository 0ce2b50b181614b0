package proxyproto

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// recorder collects what fasthttp logs and hands to its ErrorHandler.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) Printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// serve runs a fasthttp server on ln whose handler answers with
// ctx.RemoteAddr(), ctx.LocalAddr() and ctx.RemoteIP().
func serve(t *testing.T, ln net.Listener) *recorder {
	t.Helper()
	rec := &recorder{}
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			fmt.Fprintf(ctx, "%s %s %s", ctx.RemoteAddr(), ctx.LocalAddr(), ctx.RemoteIP())
		},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			rec.Printf("ErrorHandler: %v", err)
			ctx.Error("bad request", fasthttp.StatusBadRequest)
		},
		Logger:      rec,
		ReadTimeout: 5 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Shutdown()
		if err := <-served; err != nil {
			t.Errorf("Serve() = %v", err)
		}
	})
	return rec
}

// roundTrip sends a GET on c and returns the response.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader) (int, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(br); err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	return resp.StatusCode(), string(resp.Body())
}

func TestFasthttpServer(t *testing.T) {
	ln, errs := listen(t, loopback, Options{})
	rec := serve(t, ln)

	t.Run("v1, two requests", func(t *testing.T) {
		c := dial(t, ln, v1Line4)
		br := bufio.NewReader(c)
		for range 2 {
			if status, body := roundTrip(t, c, br); status != 200 || body != "192.0.2.1:56324 198.51.100.2:443 192.0.2.1" {
				t.Errorf("got %d %q; want the PROXY line's addresses", status, body)
			}
		}
	})
	t.Run("v2", func(t *testing.T) {
		c := dial(t, ln, string(v2(0x21, 0x21, inet6("2001:db8::7", "2001:db8::1", 40000, 8773))))
		if status, body := roundTrip(t, c, bufio.NewReader(c)); status != 200 || body != "[2001:db8::7]:40000 [2001:db8::1]:8773 2001:db8::7" {
			t.Errorf("got %d %q; want the v2 header's addresses", status, body)
		}
	})
	t.Run("v2 local", func(t *testing.T) {
		c := dial(t, ln, string(v2(0x20, 0x00)))
		want := fmt.Sprintf("%s %s 127.0.0.1", c.LocalAddr(), c.RemoteAddr())
		if status, body := roundTrip(t, c, bufio.NewReader(c)); status != 200 || body != want {
			t.Errorf("got %d %q; want %q", status, body, want)
		}
	})
	t.Run("missing header", func(t *testing.T) {
		c := dial(t, ln, request)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(c); len(b) != 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
			t.Errorf("client read %q, %v; want the connection closed without an answer", b, err)
		}
		if r := <-errs; !errors.Is(r.err, ErrNoHeader) {
			t.Errorf("OnError(%v, %v); want ErrNoHeader", r.remote, r.err)
		}
	})
	t.Run("still serving", func(t *testing.T) {
		c := dial(t, ln, v1Line4)
		if status, _ := roundTrip(t, c, bufio.NewReader(c)); status != 200 {
			t.Errorf("got %d after a bad peer; want 200", status)
		}
	})
	noReport(t, errs)
	// The failed header was reported once, through OnError: fasthttp took
	// the closed connection's error as its own doing.
	time.Sleep(50 * time.Millisecond) // the worker logs after the connection ends
	if lines := rec.get(); len(lines) > 0 {
		t.Errorf("fasthttp logged or answered %q; want nothing", lines)
	}
}

// The PROXY line of an untrusted peer reaches fasthttp as HTTP, and fails.
func TestFasthttpUntrusted(t *testing.T) {
	ln, errs := listen(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Options{})
	serve(t, ln)
	c := dial(t, ln, v1Line4)
	status, body := roundTrip(t, c, bufio.NewReader(c))
	if status != fasthttp.StatusBadRequest || strings.Contains(body, "192.0.2.1") {
		t.Errorf("got %d %q; want 400 for a PROXY line from an untrusted peer", status, body)
	}
	noReport(t, errs)
}

// Under TLS the header comes first, in the clear; the TLS connection
// reports the addresses it names.
func TestFasthttpTLS(t *testing.T) {
	ln, errs := listen(t, loopback, Options{})
	rec := serve(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}))
	raw := dial(t, ln, v1Line4)
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	if status, body := roundTrip(t, c, bufio.NewReader(c)); status != 200 || body != "192.0.2.1:56324 198.51.100.2:443 192.0.2.1" {
		t.Errorf("got %d %q; want the PROXY line's addresses", status, body)
	}
	noReport(t, errs)

	// A ClientHello without the header: closed, reported once.
	c = tls.Client(dial(t, ln), &tls.Config{InsecureSkipVerify: true})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.Handshake(); err == nil {
		t.Error("the handshake succeeded without a PROXY header")
	}
	if r := <-errs; !errors.Is(r.err, ErrNoHeader) {
		t.Errorf("OnError(%v, %v); want ErrNoHeader", r.remote, r.err)
	}
	time.Sleep(50 * time.Millisecond)
	if lines := rec.get(); len(lines) > 0 {
		t.Errorf("fasthttp logged or answered %q; want nothing", lines)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

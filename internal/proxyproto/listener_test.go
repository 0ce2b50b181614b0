package proxyproto

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

type reported struct {
	remote net.Addr
	err    error
}

// listen wraps a loopback listener; OnError reports go to the channel.
func listen(t *testing.T, trusted []netip.Prefix, opts Options) (net.Listener, <-chan reported) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan reported, 10)
	opts.OnError = func(remote net.Addr, err error) { errs <- reported{remote, err} }
	ln := NewListener(inner, trusted, opts)
	t.Cleanup(func() { ln.Close() })
	return ln, errs
}

// dial connects to ln and writes each of chunks in its own write, a pause
// apart so that they arrive in separate segments. The first is written
// before dial returns, the others in the background.
func dial(t *testing.T, ln net.Listener, chunks ...string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(chunks) == 0 {
		return c
	}
	if _, err := io.WriteString(c, chunks[0]); err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, chunk := range chunks[1:] {
			time.Sleep(20 * time.Millisecond)
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	}()
	return c
}

func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readN reads exactly n bytes from c under a deadline.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v (got %q)", err, b)
	}
	return string(b)
}

func noReport(t *testing.T, errs <-chan reported) {
	t.Helper()
	select {
	case r := <-errs:
		t.Errorf("OnError(%v, %v); want no call", r.remote, r.err)
	default:
	}
}

const request = "GET / HTTP/1.1\r\nHost: ec2\r\n\r\n"

func TestTrustedPeer(t *testing.T) {
	tcp4 := inet4("192.0.2.1", "198.51.100.2", 56324, 8773)
	tests := []struct {
		name       string
		chunks     []string
		remote     string // "": the real peer
		local      string
		addrsFirst bool // call RemoteAddr before the first Read
	}{
		{name: "v1", chunks: []string{v1Line4 + request}, remote: "192.0.2.1:56324", local: "198.51.100.2:443"},
		{name: "v1 tcp6", chunks: []string{"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n" + request}, remote: "[2001:db8::1]:1", local: "[2001:db8::2]:2"},
		{name: "v1 unknown", chunks: []string{"PROXY UNKNOWN\r\n" + request}},
		{name: "v2", chunks: []string{string(v2(0x21, 0x11, tcp4)) + request}, remote: "192.0.2.1:56324", local: "198.51.100.2:8773"},
		{name: "v2 tcp6", chunks: []string{string(v2(0x21, 0x21, inet6("2001:db8::1", "2001:db8::2", 1, 2))) + request}, remote: "[2001:db8::1]:1", local: "[2001:db8::2]:2"},
		{name: "v2 local", chunks: []string{string(v2(0x20, 0x00)) + request}},
		{name: "v2 unix", chunks: []string{string(v2(0x21, 0x31, make([]byte, 216))) + request}},
		{name: "v2 with a large TLV", chunks: []string{string(v2(0x21, 0x11, tcp4, tlv(0xE0, strings.Repeat("c", 3000)))) + request}, remote: "192.0.2.1:56324", local: "198.51.100.2:8773"},
		{name: "v1 split", chunks: []string{"PRO", "XY TCP4 192.0.2.1 198", ".51.100.2 56324 443\r", "\n", request}, remote: "192.0.2.1:56324", local: "198.51.100.2:443"},
		{name: "v2 split", chunks: []string{string(v2(0x21, 0x11, tcp4)[:7]), string(v2(0x21, 0x11, tcp4)[7:15]), string(v2(0x21, 0x11, tcp4)[15:20]), string(v2(0x21, 0x11, tcp4)[20:]), request}, remote: "192.0.2.1:56324", local: "198.51.100.2:8773"},
		{name: "v1, addresses first", chunks: []string{v1Line4, request}, remote: "192.0.2.1:56324", local: "198.51.100.2:443", addrsFirst: true},
		{name: "v2, addresses first", chunks: []string{string(v2(0x21, 0x11, tcp4)) + request}, remote: "192.0.2.1:56324", local: "198.51.100.2:8773", addrsFirst: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, errs := listen(t, loopback, Options{})
			client := dial(t, ln, tt.chunks...)
			c := accept(t, ln)
			remote, local := tt.remote, tt.local
			if remote == "" {
				remote, local = client.LocalAddr().String(), client.RemoteAddr().String()
			}
			if tt.addrsFirst {
				if got := c.RemoteAddr().String(); got != remote {
					t.Errorf("RemoteAddr() = %s; want %s", got, remote)
				}
			}
			if got := readN(t, c, len(request)); got != request {
				t.Errorf("read %q; want %q", got, request)
			}
			if got := c.RemoteAddr().String(); got != remote {
				t.Errorf("RemoteAddr() = %s; want %s", got, remote)
			}
			if got := c.LocalAddr().String(); got != local {
				t.Errorf("LocalAddr() = %s; want %s", got, local)
			}
			if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
				t.Errorf("RemoteAddr() is a %T; want *net.TCPAddr", c.RemoteAddr())
			}
			// A header naming no client: the real peer, flagged (the
			// proxy then vouches for none of the client's X-Forwarded-*).
			if got, want := c.(interface{ Unaddressed() bool }).Unaddressed(), tt.remote == ""; got != want {
				t.Errorf("Unaddressed() = %v; want %v", got, want)
			}
			// The connection still works both ways.
			io.WriteString(client, "more")
			if got := readN(t, c, 4); got != "more" {
				t.Errorf("read %q; want %q", got, "more")
			}
			io.WriteString(c, "answer")
			if got := readN(t, client, 6); got != "answer" {
				t.Errorf("client read %q; want %q", got, "answer")
			}
			noReport(t, errs)
		})
	}
}

func TestBadHeader(t *testing.T) {
	tests := []struct {
		name       string
		give       string
		addrsFirst bool
		wantErr    error
	}{
		{name: "missing", give: request, wantErr: ErrNoHeader},
		{name: "tls", give: "\x16\x03\x01\x02\x00\x01", wantErr: ErrNoHeader},
		{name: "v1 malformed", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1 080\r\n" + request, wantErr: ErrInvalid},
		{name: "v1 too long", give: "PROXY UNKNOWN " + strings.Repeat("x", 200), wantErr: ErrInvalid},
		{name: "v2 malformed", give: string(v2(0x21, 0x11, []byte("short"))), wantErr: ErrInvalid},
		{name: "v2 too long", give: "\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", wantErr: ErrInvalid},
		{name: "truncated", give: "PROXY TCP4 192.0.2.1", wantErr: io.ErrUnexpectedEOF},
		{name: "missing, addresses first", give: request, addrsFirst: true, wantErr: ErrNoHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, errs := listen(t, loopback, Options{})
			client := dial(t, ln, tt.give)
			if tt.wantErr == io.ErrUnexpectedEOF {
				time.Sleep(50 * time.Millisecond)
				client.(*net.TCPConn).CloseWrite()
			}
			c := accept(t, ln)
			if tt.addrsFirst {
				// The header fails here; the real peer is reported.
				if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
					t.Errorf("RemoteAddr() = %s; want %s", got, want)
				}
			}
			n, err := c.Read(make([]byte, 100))
			if n != 0 || !errors.Is(err, tt.wantErr) || !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read() = %d, %v; want 0, an error wrapping %v and net.ErrClosed", n, err, tt.wantErr)
			}
			if _, err2 := c.Read(make([]byte, 100)); err2 != err {
				t.Errorf("second Read() error = %v; want %v again", err2, err)
			}
			select {
			case r := <-errs:
				if !errors.Is(r.err, tt.wantErr) || r.remote.String() != client.LocalAddr().String() {
					t.Errorf("OnError(%v, %v); want (%v, %v)", r.remote, r.err, client.LocalAddr(), tt.wantErr)
				}
			default:
				t.Error("OnError was not called")
			}
			noReport(t, errs)
			// The client sees the connection closed, with no byte sent.
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if b, err := io.ReadAll(client); len(b) != 0 || (err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset")) {
				t.Errorf("client read %q, %v; want the connection closed", b, err)
			}
		})
	}
}

func TestUntrustedPeerIsPassedThrough(t *testing.T) {
	ln, errs := listen(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("::1/128")}, Options{})
	give := v1Line4 + request
	client := dial(t, ln, give)
	c := accept(t, ln)
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("Accept() = %T; want the *net.TCPConn itself", c)
	}
	if got := readN(t, c, len(give)); got != give {
		t.Errorf("read %q; want %q unchanged", got, give)
	}
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr() = %s; want %s", got, want)
	}
	noReport(t, errs)
}

func TestTrustedPrefixes(t *testing.T) {
	ln := NewListener(nil, []netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/8"), // masked
		netip.MustParsePrefix("2001:db8::/32"),
		{}, // invalid: ignored
	}, Options{}).(*listener)
	tests := []struct {
		give net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.200.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.200.0.1"), Port: 1}, true}, // dual-stack socket
		{&net.TCPAddr{IP: net.ParseIP("11.0.0.1"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::5"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db9::5"), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("0.0.0.0"), Port: 1}, false},
		{&net.UnixAddr{Name: "/run/sock", Net: "unix"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := ln.isTrusted(tt.give); got != tt.want {
			t.Errorf("isTrusted(%v) = %v; want %v", tt.give, got, tt.want)
		}
	}
}

func TestSlowPeerDoesNotBlockAccept(t *testing.T) {
	const timeout = 200 * time.Millisecond
	ln, errs := listen(t, loopback, Options{HeaderTimeout: timeout})

	slow := dial(t, ln, "PROXY TCP4 ") // and nothing more
	slowConn := accept(t, ln)
	start := time.Now()
	slowRead := make(chan error, 1)
	go func() {
		_, err := slowConn.Read(make([]byte, 10))
		slowRead <- err
	}()
	// A second peer gets through while the first still owes its header.
	dial(t, ln, v1Line4+request)
	fast := accept(t, ln)
	if got := readN(t, fast, len(request)); got != request {
		t.Errorf("read %q; want %q", got, request)
	}
	if got := fast.RemoteAddr().String(); got != "192.0.2.1:56324" {
		t.Errorf("RemoteAddr() = %s; want 192.0.2.1:56324", got)
	}

	err := <-slowRead
	if elapsed := time.Since(start); elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("the slow header failed after %v; want about %v", elapsed, timeout)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read() error = %v; want a deadline error and net.ErrClosed", err)
	}
	r := <-errs
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Errorf("OnError(%v, %v); want a deadline error", r.remote, r.err)
	}
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := slow.Read(make([]byte, 1)); err == nil {
		t.Error("the slow peer's connection is still open")
	}
}

// The header deadline gives way to the caller's: an earlier one applies
// during the header read, and whatever the caller set is in force after it.
func TestDeadlines(t *testing.T) {
	t.Run("caller's deadline restored", func(t *testing.T) {
		ln, errs := listen(t, loopback, Options{HeaderTimeout: 5 * time.Second})
		dial(t, ln, v1Line4) // then silence
		c := accept(t, ln)
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if got := c.RemoteAddr().String(); got != "192.0.2.1:56324" {
			t.Fatalf("RemoteAddr() = %s", got)
		}
		start := time.Now()
		_, err := c.Read(make([]byte, 10))
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Errorf("Read() = %v after %v; want the caller's deadline to fire", err, time.Since(start))
		}
		noReport(t, errs)
	})
	t.Run("header deadline lifted", func(t *testing.T) {
		ln, errs := listen(t, loopback, Options{HeaderTimeout: 100 * time.Millisecond})
		client := dial(t, ln, v1Line4)
		c := accept(t, ln)
		c.RemoteAddr()
		go func() {
			time.Sleep(300 * time.Millisecond)
			io.WriteString(client, request)
		}()
		b := make([]byte, len(request))
		if _, err := io.ReadFull(c, b); err != nil || string(b) != request {
			t.Errorf("read %q, %v; want %q", b, err, request)
		}
		noReport(t, errs)
	})
	t.Run("earlier caller's deadline during the header", func(t *testing.T) {
		ln, errs := listen(t, loopback, Options{HeaderTimeout: 5 * time.Second})
		dial(t, ln, "PROXY")
		c := accept(t, ln)
		c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		start := time.Now()
		_, err := c.Read(make([]byte, 10))
		if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Errorf("Read() = %v after %v; want the caller's deadline to fire", err, time.Since(start))
		}
		if r := <-errs; !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Errorf("OnError(%v, %v); want a deadline error", r.remote, r.err)
		}
	})
	t.Run("deadline set during the header read", func(t *testing.T) {
		ln, errs := listen(t, loopback, Options{HeaderTimeout: 5 * time.Second})
		dial(t, ln, "PROXY")
		c := accept(t, ln)
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 10))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		c.SetReadDeadline(time.Now()) // interrupt, as fasthttp's Shutdown does
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read() = %v; want a deadline error", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("SetReadDeadline did not interrupt the header read")
		}
		<-errs
	})
}

func TestOptional(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		proxy  bool
	}{
		{name: "no header", chunks: []string{request}},
		{name: "no header, one byte at a time", chunks: []string{"P", "O", "ST / HTTP/1.1\r\n\r\n"}},
		{name: "no header, v2 look-alike", chunks: []string{"\r\n", "\r\nGET"}},
		{name: "header", chunks: []string{v1Line4 + request}, proxy: true},
		{name: "v2 header", chunks: []string{string(v2(0x21, 0x11, inet4("192.0.2.1", "198.51.100.2", 56324, 443))), request}, proxy: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, errs := listen(t, loopback, Options{Optional: true})
			client := dial(t, ln, tt.chunks...)
			c := accept(t, ln)
			want := strings.Join(tt.chunks, "")
			remote := client.LocalAddr().String()
			if tt.proxy {
				want, remote = request, "192.0.2.1:56324"
			}
			if got := readN(t, c, len(want)); got != want {
				t.Errorf("read %q; want %q", got, want)
			}
			if got := c.RemoteAddr().String(); got != remote {
				t.Errorf("RemoteAddr() = %s; want %s", got, remote)
			}
			noReport(t, errs)
		})
	}
	t.Run("malformed header", func(t *testing.T) {
		ln, errs := listen(t, loopback, Options{Optional: true})
		dial(t, ln, "PROXY TCP4 1.2.3.4\r\n"+request)
		c := accept(t, ln)
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Read() error = %v; want ErrInvalid", err)
		}
		if r := <-errs; !errors.Is(r.err, ErrInvalid) {
			t.Errorf("OnError(%v, %v); want ErrInvalid", r.remote, r.err)
		}
	})
}

// A peer that connects and closes without a byte (a TCP health check) is
// not an error worth a report.
func TestEmptyConnection(t *testing.T) {
	ln, errs := listen(t, loopback, Options{})
	client := dial(t, ln)
	client.Close()
	c := accept(t, ln)
	if _, err := c.Read(make([]byte, 10)); err != io.EOF {
		t.Errorf("Read() error = %v; want io.EOF", err)
	}
	noReport(t, errs)
}

// Closing the connection while its header is awaited, as a server's
// shutdown does, is not reported either.
func TestCloseDuringHeader(t *testing.T) {
	ln, errs := listen(t, loopback, Options{})
	dial(t, ln, "PRO")
	c := accept(t, ln)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read() error = %v; want net.ErrClosed", err)
	}
	noReport(t, errs)
	// Addresses after the failure are the real ones, without blocking.
	if c.RemoteAddr() == nil || c.LocalAddr() == nil {
		t.Error("nil address after a failed header")
	}
}

func TestConcurrentAddrAndRead(t *testing.T) {
	ln, errs := listen(t, loopback, Options{})
	dial(t, ln, v1Line4[:10], v1Line4[10:]+request)
	c := accept(t, ln)
	addrs := make(chan string, 4)
	for range 4 {
		go func() { addrs <- c.RemoteAddr().String() }()
	}
	if got := readN(t, c, len(request)); got != request {
		t.Errorf("read %q; want %q", got, request)
	}
	for range 4 {
		if got := <-addrs; got != "192.0.2.1:56324" {
			t.Errorf("RemoteAddr() = %s; want 192.0.2.1:56324", got)
		}
	}
	noReport(t, errs)
}

func TestPassThroughMethods(t *testing.T) {
	ln, _ := listen(t, loopback, Options{})
	client := dial(t, ln, v1Line4)
	c := accept(t, ln)
	if nc := c.(interface{ NetConn() net.Conn }).NetConn(); nc.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("NetConn().RemoteAddr() = %v; want the real peer %v", nc.RemoteAddr(), client.LocalAddr())
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite() = %v", err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(client); err != nil || len(b) != 0 {
		t.Errorf("client read %q, %v after CloseWrite; want EOF", b, err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
}

// readHeader gives the same header whatever the reads return, the whole
// input at once or one byte at a time, and loses no byte after it.
func TestReadHeaderChunking(t *testing.T) {
	tcp4 := inet4("192.0.2.1", "198.51.100.2", 56324, 8773)
	inputs := []string{
		v1Line4 + request,
		"PROXY UNKNOWN\r\n",
		string(v2(0x21, 0x11, tcp4)) + request,
		string(v2(0x21, 0x11, tcp4, tlv(0xE0, strings.Repeat("x", 1000)))) + request,
		string(v2(0x21, 0x11, tcp4, tlv(0xE0, strings.Repeat("x", headerBufSize-16-12-3)))) + request, // exactly fills the buffer
	}
	for _, in := range inputs {
		var hs [2]Header
		var lens [2]int // of the header: what is neither rest nor left unread
		for i, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
			h, rest, err := readHeader(r, false)
			after, _ := io.ReadAll(r)
			lens[i] = len(in) - len(rest) - len(after)
			if err != nil || !strings.HasSuffix(in, string(rest)+string(after)) {
				t.Errorf("readHeader(%.40q) = %+v, %q, %v, then %q", in, h, rest, err, after)
			}
			hs[i] = h
		}
		if hs[0] != hs[1] || lens[0] != lens[1] {
			t.Errorf("readHeader(%.40q) = %+v (%d bytes) at once, %+v (%d bytes) byte by byte", in, hs[0], lens[0], hs[1], lens[1])
		}
	}
}

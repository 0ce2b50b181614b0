package proxyproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultHeaderTimeout is the time a trusted peer has to send its header
// (the specification asks for at least 3 s, to cover a TCP retransmit).
const DefaultHeaderTimeout = 5 * time.Second

// Options configure NewListener.
type Options struct {
	// HeaderTimeout bounds the header read; 0 means DefaultHeaderTimeout.
	// A read deadline the caller set before the header is read (fasthttp's
	// ReadTimeout) applies too when it is earlier, and is restored after.
	HeaderTimeout time.Duration
	// Optional also accepts trusted connections that start without a header
	// (told apart by the first bytes), for a health checker that connects
	// directly; they keep their real addresses. The specification forbids
	// guessing, and for a reason: a load balancer that relays without
	// sending the header (a send-proxy left out) then lets its clients send
	// their own PROXY line and choose their address. Prefer health checks
	// that send the header: haproxy's check-send-proxy, or a LOCAL v2 header.
	Optional bool
	// OnError is told about each trusted connection closed because its
	// header is missing, malformed or late (remote is the peer's real
	// address), for a log line or a metric. It is not told about a peer
	// that closes before sending a byte (a TCP health check), nor about a
	// connection closed locally during the read. It runs on the goroutine
	// that reads the header, so it must be quick and safe for concurrent
	// use. May be nil.
	OnError func(remote net.Addr, err error)
}

// NewListener wraps inner so that connections from peers inside trusted
// read a PROXY protocol header (v1 or v2, told apart by their signatures)
// and report the endpoints it names as RemoteAddr and LocalAddr.
//
// Connections from other peers are returned as inner accepted them, with
// no byte read: anyone who can reach the port could otherwise send a PROXY
// line and pick the address that rate limits, lockouts and logs see. A
// PROXY line from them reaches the HTTP parser, which refuses it.
//
// Accept never reads: the header is read, under HeaderTimeout, by the first
// Read, RemoteAddr or LocalAddr call, so a slow peer holds up only its own
// connection. A connection whose header fails is closed and reported to
// OnError; its Read returns an error that wraps both the cause and
// net.ErrClosed, and its deadline setters do nothing, so that fasthttp
// takes it for a connection it closed itself and neither answers nor logs
// it again. Accept only returns inner's errors, since an error there ends
// fasthttp.Server.Serve.
//
// Use it under TLS (tls.NewListener(NewListener(tcp, ...), cfg)): the
// header precedes the ClientHello. With fasthttp, leave
// Server.MaxConnsPerIP at 0 and do not call RemoteAddr from a ConnState
// hook: both run in the accept loop, where the header read would wait for
// the peer. The wrapped connections are not *net.TCPConn, so fasthttp
// sends a response larger than its write buffer in two writes rather than
// one writev.
func NewListener(inner net.Listener, trusted []netip.Prefix, opts Options) net.Listener {
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	l := &listener{Listener: inner, opts: opts}
	for _, p := range trusted {
		if p.IsValid() {
			l.trusted = append(l.trusted, p.Masked())
		}
	}
	return l
}

type listener struct {
	net.Listener
	trusted []netip.Prefix
	opts    Options
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || !l.isTrusted(c.RemoteAddr()) {
		return c, err
	}
	return &conn{Conn: c, opts: &l.opts}, nil
}

func (l *listener) isTrusted(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	// An IPv4 peer of a dual-stack socket comes as ::ffff:a.b.c.d.
	a := ta.AddrPort().Addr().Unmap()
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// conn is a trusted peer's connection. Read, RemoteAddr and LocalAddr read
// the header first; the deadline setters keep the caller's read deadline
// apart from the header's; Write and Close pass through.
type conn struct {
	net.Conn
	opts *Options

	once          sync.Once
	err           error    // why the header failed; Read returns it
	remote, local net.Addr // from the header, or the real ones
	// unaddressed: the header named no client (v1 UNKNOWN, v2 LOCAL, a
	// UNIX or UDP one; or, Optional, there was none): remote is the
	// balancer's own address, which the proxy must not take for a
	// balancer vouching for the headers the client wrote (found by a
	// review).
	unaddressed bool
	rest        []byte // bytes read past the header, returned first by Read

	mu           sync.Mutex // guards the fields below
	headerDone   bool
	failed       bool      // the header failed and the connection is closed
	headerEnd    time.Time // deadline of the header read, while it runs
	readDeadline time.Time // the caller's, applied once the header is read
}

func (c *conn) Read(b []byte) (int, error) {
	c.once.Do(c.readHeader)
	if c.err != nil {
		return 0, c.err
	}
	if len(c.rest) > 0 {
		n := copy(b, c.rest)
		c.rest = c.rest[n:]
		if len(c.rest) == 0 {
			c.rest = nil // let the header buffer go
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *conn) RemoteAddr() net.Addr {
	c.once.Do(c.readHeader)
	return c.remote
}

func (c *conn) LocalAddr() net.Addr {
	c.once.Do(c.readHeader)
	return c.local
}

// Unaddressed reports a PROXY header that named no client address: the
// connection's addresses are then the balancer's and this host's, as the
// specification says, but nothing the client sent is vouched for.
func (c *conn) Unaddressed() bool {
	c.once.Do(c.readHeader)
	return c.unaddressed
}

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline records t while the header is pending: the header read
// sets its own deadline (the earlier of the two) and then restores t.
//
// Once the header has failed, the deadline setters do nothing: the
// connection is closed and Read says why. A server that sets a deadline
// before its first Read, as fasthttp does after a TLS handshake (which met
// the failure), would otherwise get an error of its own to log.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.failed:
		return nil
	case !c.headerDone:
		c.readDeadline = t
		t = earlier(c.headerEnd, t)
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// NetConn returns the underlying connection, whose addresses are the load
// balancer's.
func (c *conn) NetConn() net.Conn {
	return c.Conn
}

func (c *conn) readHeader() {
	c.remote, c.local = c.Conn.RemoteAddr(), c.Conn.LocalAddr()

	c.mu.Lock()
	c.headerEnd = time.Now().Add(c.opts.HeaderTimeout)
	err := c.Conn.SetReadDeadline(earlier(c.headerEnd, c.readDeadline))
	c.mu.Unlock()
	var h Header
	if err == nil {
		h, c.rest, err = readHeader(c.Conn, c.opts.Optional)
	}
	c.mu.Lock()
	c.headerDone = true
	if derr := c.Conn.SetReadDeadline(c.readDeadline); err == nil {
		err = derr
	}
	c.mu.Unlock()

	if err != nil {
		c.fail(err)
		return
	}
	if h.Source.IsValid() {
		c.remote = net.TCPAddrFromAddrPort(h.Source)
		c.local = net.TCPAddrFromAddrPort(h.Destination)
	} else {
		c.unaddressed = true
	}
}

func (c *conn) fail(err error) {
	c.rest = nil
	c.mu.Lock()
	c.failed = true
	c.mu.Unlock()
	if err == io.EOF || errors.Is(err, net.ErrClosed) {
		// Closed by the peer before a byte (a TCP health check), or by us.
		_ = c.Conn.Close()
		c.err = err
		return
	}
	// Reported before the close: a peer that sees its connection closed
	// finds the error counted (CI once read the metric first).
	if c.opts.OnError != nil {
		c.opts.OnError(c.remote, err)
	}
	_ = c.Conn.Close()
	c.err = fmt.Errorf("%w (%w)", err, net.ErrClosed)
}

// headerBufSize holds any v1 line and a v2 header with the largest address
// block (AF_UNIX, 216 bytes) and a few TLVs; longer v2 headers grow it.
const headerBufSize = 256

// readHeader reads from r until it holds a whole header, and returns it
// with the bytes that came after it in the same reads. Without a header,
// it returns ErrNoHeader, or with optional the bytes read and no error.
// A peer that closes before sending anything gets io.EOF.
func readHeader(r io.Reader, optional bool) (h Header, rest []byte, err error) {
	buf := make([]byte, 0, headerBufSize)
	for {
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]

		var hn int
		switch sniff(buf) {
		case 0:
			if optional {
				return Header{}, buf, nil
			}
			return Header{}, nil, ErrNoHeader
		case 1:
			h, hn, err = ParseV1(buf)
		case 2:
			h, hn, err = ParseV2(buf)
		default:
			err = ErrIncomplete
		}
		switch {
		case err == nil:
			if hn == len(buf) {
				return h, nil, nil
			}
			return h, buf[hn:], nil
		case err != ErrIncomplete:
			return Header{}, nil, err
		}

		if rerr != nil {
			switch {
			case rerr == io.EOF && len(buf) == 0:
				return Header{}, nil, io.EOF
			case rerr == io.EOF:
				rerr = io.ErrUnexpectedEOF
			}
			return Header{}, nil, fmt.Errorf("proxyproto: reading the header: %w", rerr)
		}
		if len(buf) == cap(buf) {
			// Only a v2 header with TLVs gets here, its length known and
			// within MaxV2Len (ParseV2 checked both).
			grown := make([]byte, len(buf), v2FixedLen+int(binary.BigEndian.Uint16(buf[14:16])))
			copy(grown, buf)
			buf = grown
		}
	}
}

// earlier returns the earlier of two deadlines, the zero time being none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

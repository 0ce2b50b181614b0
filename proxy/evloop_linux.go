//go:build linux

package proxy

// PROTOTYPE (branch proto/evloop): the warm path on one epoll loop. Not
// production code: no timeouts, blocking backend connect, no shutdown.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/internal/rawsock"
)

// EventLoop serves warm requests on one epoll loop of raw system calls and
// hands every other connection to the goroutine server.
type EventLoop struct {
	current  func() *Server
	serve    func(net.Conn) error // the goroutine server's ServeConn
	log      *zap.Logger
	epfd     int
	lfd      int
	lfile    *os.File // owns lfd: its finalizer would close it
	conns    []*loopConn
	rd       bytes.Reader
	br       *bufio.Reader
	bw       *bufio.Writer
	w        appendWriter
	backends map[string]*syscall.SockaddrInet4
	rawIO    bool

	// Requests that need I/O run on goroutines and come back here.
	efd    int // eventfd: a finished goroutine request wakes the loop
	mu     sync.Mutex
	done   []*dispatched
	served, sent, handedOff atomic.Int64

	stop     atomic.Bool   // Shutdown asked
	stopping bool          // the loop has stopped accepting
	stopped  chan struct{} // closed when Run returns
}

// dispatched is a request the loop could not serve without blocking,
// served by the normal pipeline on a goroutine.
type dispatched struct {
	c   *loopConn
	ctx *fasthttp.RequestCtx
}

type loopConn struct {
	fd        int
	isBackend bool
	client    *loopConn // of a backend connection
	backend   *loopConn // of a client connection, once dialled
	in, out   []byte
	events    uint32

	ctx   fasthttp.RequestCtx
	st    state
	peer  peerConn
	srv   *Server
	busy  bool
	away  bool // busy on a goroutine (dispatched), not at a loop backend
	start time.Time
	sent  time.Time
}

// peerConn gives the RequestCtx its connection's addresses; nothing reads
// or writes through it.
type peerConn struct {
	net.Conn
	local, remote net.Addr
}

func (p *peerConn) LocalAddr() net.Addr  { return p.local }
func (p *peerConn) RemoteAddr() net.Addr { return p.remote }

type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// NewEventLoop takes over ln's accepting.
func NewEventLoop(ln net.Listener, current func() *Server, serve func(net.Conn) error, log *zap.Logger, rawIO bool) (*EventLoop, error) {
	for {
		if rl, ok := ln.(rawsock.Listener); ok {
			ln = rl.Listener
			continue
		}
		break
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("event loop: listener %T is not TCP", ln)
	}
	f, err := tl.File()
	if err != nil {
		return nil, err
	}
	l := &EventLoop{current: current, serve: serve, log: log, lfd: int(f.Fd()), lfile: f, backends: map[string]*syscall.SockaddrInet4{}, rawIO: rawIO}
	if err := syscall.SetNonblock(l.lfd, true); err != nil {
		return nil, err
	}
	l.stopped = make(chan struct{})
	l.br = bufio.NewReaderSize(&l.rd, 64<<10)
	l.bw = bufio.NewWriterSize(l.w, 16<<10)
	if l.epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	efd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return nil, errno
	}
	l.efd = int(efd)
	for _, fd := range []int{l.lfd, l.efd} {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Stats: requests served in the loop, sent to goroutines, and connections
// handed to the goroutine server.
func (l *EventLoop) Stats() (served, sent, handedOff int64) {
	return l.served.Load(), l.sent.Load(), l.handedOff.Load()
}

// Run serves until an epoll error; call it on a goroutine of its own,
// locked to its thread.
func (l *EventLoop) Run() error {
	defer close(l.stopped)
	events := make([]syscall.EpollEvent, 256)
	for {
		if l.stop.Load() && l.drained() {
			for _, c := range l.conns {
				if c != nil && !c.isBackend {
					l.close(c)
				}
			}
			syscall.Close(l.epfd)
			return nil
		}
		n, err := syscall.EpollWait(l.epfd, events, 100)
		if err == syscall.EINTR {
			continue
		} else if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == l.lfd {
				l.accept()
				continue
			}
			if fd == l.efd {
				l.collect()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			ev := events[i].Events
			if ev&syscall.EPOLLOUT != 0 && !l.flush(c) {
				continue
			}
			if ev&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				l.readable(c)
			}
		}
	}
}

func (l *EventLoop) add(c *loopConn) error {
	for len(l.conns) <= c.fd {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	c.events = syscall.EPOLLIN
	ev := syscall.EpollEvent{Events: c.events, Fd: int32(c.fd)}
	return syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev)
}

func (l *EventLoop) want(c *loopConn, events uint32) {
	if c.events == events {
		return
	}
	c.events = events
	ev := syscall.EpollEvent{Events: events, Fd: int32(c.fd)}
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
}

func (l *EventLoop) accept() {
	for {
		fd, sa, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		c := &loopConn{fd: fd, in: make([]byte, 0, 4<<10)}
		c.peer.remote = tcpAddr(sa)
		if lsa, err := syscall.Getsockname(fd); err == nil {
			c.peer.local = tcpAddr(lsa)
		}
		c.ctx.Init2(&c.peer, nil, false)
		if l.add(c) != nil {
			syscall.Close(fd)
		}
	}
}

func tcpAddr(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return &net.TCPAddr{}
}

// forget removes c (and its backend connection) from the loop, without
// closing c itself.
func (l *EventLoop) forget(c *loopConn) {
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	l.conns[c.fd] = nil
	if b := c.backend; b != nil {
		l.conns[b.fd] = nil
		syscall.Close(b.fd)
		c.backend = nil
	}
}

func (l *EventLoop) close(c *loopConn) {
	if c.isBackend {
		c = c.client
	}
	if l.conns[c.fd] != c {
		return
	}
	if c.busy && !c.away {
		c.srv.inflight.Add(-1)
	}
	c.busy = false
	l.forget(c)
	syscall.Close(c.fd)
}

func (l *EventLoop) readable(c *loopConn) {
	if len(c.in) == cap(c.in) {
		c.in = append(c.in, 0)[:len(c.in)]
	}
	n, err := rawRead(c.fd, c.in[len(c.in):cap(c.in)])
	if err == syscall.EAGAIN {
		return
	}
	if err != nil || n == 0 {
		if c.isBackend && c.client.busy {
			l.finish(c.client, errors.New("backend closed the connection"))
		}
		l.close(c)
		return
	}
	c.in = c.in[:len(c.in)+n]
	if c.isBackend {
		l.answer(c)
	} else {
		l.request(c)
	}
}

var crlf2 = []byte("\r\n\r\n")

// request serves the client's buffered requests in turn; any it cannot
// serve without blocking hands the connection over.
func (l *EventLoop) request(c *loopConn) {
	for !c.busy && len(c.in) > 0 {
		s := l.current()
		if bytes.Index(c.in, crlf2) < 0 {
			if len(c.in) > s.cfg.Server.MaxHeaderBytes {
				l.handoff(c)
			}
			return
		}
		req := &c.ctx.Request
		req.Reset()
		l.rd.Reset(c.in)
		l.br.Reset(&l.rd)
		if err := req.Header.Read(l.br); err != nil {
			l.handoff(c)
			return
		}
		cl := req.Header.ContentLength()
		if cl < 0 || cl > s.cfg.Server.MaxBodyBytes || req.Header.ConnectionClose() || !req.Header.IsHTTP11() {
			l.handoff(c)
			return
		}
		head := len(c.in) - l.rd.Len() - l.br.Buffered()
		if head+cl > len(c.in) {
			return // the body is on its way
		}
		req.SetBodyRaw(c.in[head : head+cl])
		out := l.run(s, c)
		if out == outcomeHandoff {
			l.dispatch(c, s, head+cl)
			return
		}
		l.served.Add(1)
		b, err := l.backendOf(c, c.st.route)
		if err != nil {
			c.st.inLoop = false
			s.forwarded(&c.ctx, &c.st, c.st.route, err, 0)
			l.respond(c, s)
			c.in = c.in[:copy(c.in, c.in[head+cl:])]
			continue
		}
		b.out = s.appendBackendRequest(b.out, &c.ctx, &c.st)
		c.in = c.in[:copy(c.in, c.in[head+cl:])]
		c.busy, c.srv, c.sent = true, s, time.Now()
		s.inflight.Add(1)
		l.flush(b)
	}
}

// run is the pipeline in loop mode; a panic hands the connection over
// (the goroutine server then answers, or recovers, as it always does).
func (l *EventLoop) run(s *Server, c *loopConn) (out outcome) {
	defer func() {
		if p := recover(); p != nil {
			out = outcomeHandoff
		}
	}()
	st := &c.st
	st.reset()
	st.inLoop = true
	st.requestID = appendRequestID(st.requestID)
	c.start = time.Now()
	c.ctx.Response.Reset()
	return s.serve(&c.ctx, st)
}

func (l *EventLoop) backendOf(c *loopConn, rt *route) (*loopConn, error) {
	if c.backend != nil {
		return c.backend, nil
	}
	sa, ok := l.backends[rt.client.Addr]
	if !ok {
		a, err := net.ResolveTCPAddr("tcp4", rt.client.Addr)
		if err != nil {
			return nil, err
		}
		sa = &syscall.SockaddrInet4{Port: a.Port}
		copy(sa.Addr[:], a.IP.To4())
		l.backends[rt.client.Addr] = sa
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	_ = syscall.SetNonblock(fd, true)
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	b := &loopConn{fd: fd, isBackend: true, client: c, in: make([]byte, 0, 4<<10)}
	if err := l.add(b); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	c.backend = b
	return b, nil
}

// answer reads the backend's answer once complete.
func (l *EventLoop) answer(b *loopConn) {
	c := b.client
	if !c.busy {
		l.close(b)
		return
	}
	l.rd.Reset(b.in)
	l.br.Reset(&l.rd)
	resp := &c.ctx.Response
	resp.Reset()
	if err := resp.ReadLimitBody(l.br, 64<<20); err != nil {
		return // incomplete (a malformed answer waits for the backend to close)
	}
	used := len(b.in) - l.rd.Len() - l.br.Buffered()
	b.in = b.in[:copy(b.in, b.in[used:])]
	l.finish(c, nil)
}

func (l *EventLoop) finish(c *loopConn, err error) {
	s := c.srv
	c.st.inLoop = false
	out := s.forwarded(&c.ctx, &c.st, c.st.route, err, time.Since(c.sent))
	s.m.requestDone(out, time.Since(c.start))
	c.busy = false
	s.inflight.Add(-1)
	l.respond(c, s)
	if len(c.in) > 0 {
		l.request(c)
	}
}

func (l *EventLoop) respond(c *loopConn, s *Server) {
	l.w.b = &c.out
	l.bw.Reset(l.w)
	_ = c.ctx.Response.Write(l.bw)
	_ = l.bw.Flush()
	l.flush(c)
}

// handoff gives the connection, with what it has sent so far, to the
// goroutine server, which keeps it.
func (l *EventLoop) handoff(c *loopConn) {
	l.handedOff.Add(1)
	l.forget(c)
	f := os.NewFile(uintptr(c.fd), "ec2-client")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return
	}
	if l.rawIO {
		nc = rawsock.Wrap(nc)
	}
	var conn net.Conn = nc
	if len(c.in) > 0 {
		conn = &replayConn{Conn: nc, pending: append([]byte(nil), c.in...)}
	}
	go func() { _ = l.serve(conn) }()
}

// replayConn returns what the loop read before the rest of the stream.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

func (l *EventLoop) flush(c *loopConn) bool {
	for len(c.out) > 0 {
		n, err := rawWrite(c.fd, c.out)
		if err == syscall.EAGAIN {
			l.want(c, syscall.EPOLLIN|syscall.EPOLLOUT)
			return true
		}
		if err != nil || n <= 0 {
			l.close(c)
			return false
		}
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	l.want(c, syscall.EPOLLIN)
	return true
}

func rawRead(fd int, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func rawWrite(fd int, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// appendBackendRequest renders the backend's request as bytes: the
// client's parsed headers (whose values fasthttp's parser has checked)
// without the dropped ones, then ours. No fasthttp header object is built.
func (s *Server) appendBackendRequest(dst []byte, ctx *fasthttp.RequestCtx, st *state) []byte {
	h := &ctx.Request.Header
	dst = append(dst, h.Method()...)
	dst = append(dst, ' ')
	dst = append(dst, h.RequestURI()...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	connection := h.Peek(fasthttp.HeaderConnection)
	for name, value := range h.All() {
		if isHopByHop(name) || isListedIn(connection, name) || isSpoofable(name) || bytes.IndexByte(name, '_') >= 0 ||
			bytes.EqualFold(name, []byte("content-length")) {
			continue
		}
		dst = appendHeader(dst, name, value)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	dst = remoteAddr(ctx).AppendTo(dst)
	dst = append(dst, "\r\nX-Forwarded-Proto: http\r\nX-Identity-Status: Confirmed\r\n"...)
	id := st.identity
	if st.scratch = id.AppendToken(st.scratch[:0]); len(st.scratch) > 0 {
		dst = appendHeader(dst, []byte("X-Auth-Token"), st.scratch)
	}
	for _, kv := range [...][2]string{
		{"X-User-Id", id.UserID}, {"X-User-Name", id.UserName}, {"X-User-Domain-Id", id.UserDomainID},
		{"X-User-Domain-Name", id.UserDomainName}, {"X-Project-Id", id.ProjectID}, {"X-Project-Name", id.ProjectName},
		{"X-Project-Domain-Id", id.ProjectDomainID}, {"X-Project-Domain-Name", id.ProjectDomainName},
		{"X-Tenant-Id", id.ProjectID}, {"X-Tenant-Name", id.ProjectName}, {"X-Roles", id.RolesHeader},
		{"X-Trust-Id", id.TrustID}, {"X-Trustor-Id", id.TrustorID}, {"X-Trustee-Id", id.TrusteeID},
	} {
		if kv[1] != "" && strings.IndexAny(kv[1], "\r\n") < 0 {
			dst = append(dst, kv[0]...)
			dst = append(dst, ": "...)
			dst = append(dst, kv[1]...)
			dst = append(dst, "\r\n"...)
		}
	}
	dst = append(dst, "X-Request-Id: "...)
	dst = append(dst, st.requestID...)
	dst = append(dst, "\r\nX-OpenStack-Request-ID: "...)
	dst = append(dst, st.requestID...)
	body := ctx.Request.Body()
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}

func appendHeader(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// dispatch serves the request in c.in[:size] with the normal pipeline on a
// goroutine (it may call Redis or Keystone, or answer an error); collect
// writes the answer when it is done.
func (l *EventLoop) dispatch(c *loopConn, s *Server, size int) {
	l.sent.Add(1)
	ctx := new(fasthttp.RequestCtx)
	ctx.Init2(&c.peer, nil, false)
	c.ctx.Request.CopyTo(&ctx.Request) // it aliases c.in, which moves on
	c.in = c.in[:copy(c.in, c.in[size:])]
	c.busy, c.away = true, true
	go func() {
		s.ServeRequest(ctx)
		l.mu.Lock()
		l.done = append(l.done, &dispatched{c: c, ctx: ctx})
		l.mu.Unlock()
		one := [8]byte{1}
		_, _ = rawWrite(l.efd, one[:])
	}()
}

// collect writes the answers of requests served on goroutines.
func (l *EventLoop) collect() {
	var counter [8]byte
	_, _ = rawRead(l.efd, counter[:])
	l.mu.Lock()
	done := l.done
	l.done = nil
	l.mu.Unlock()
	for _, d := range done {
		c := d.c
		if c.fd >= len(l.conns) || l.conns[c.fd] != c {
			continue // the client left meanwhile
		}
		c.busy, c.away = false, false
		l.w.b = &c.out
		l.bw.Reset(l.w)
		_ = d.ctx.Response.Write(l.bw)
		_ = l.bw.Flush()
		if d.ctx.Response.ConnectionClose() {
			l.flush(c)
			l.close(c)
			continue
		}
		if l.flush(c) && len(c.in) > 0 {
			l.request(c)
		}
	}
}

// Shutdown stops accepting and returns once every request the loop holds
// has been answered (idle connections are closed), or with ctx's error.
func (l *EventLoop) Shutdown(ctx context.Context) error {
	l.stop.Store(true)
	one := [8]byte{1}
	_, _ = rawWrite(l.efd, one[:])
	select {
	case <-l.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drained stops accepting (once) and reports whether no request is in
// the loop's hands; idle connections are closed on the way.
func (l *EventLoop) drained() bool {
	if !l.stopping {
		l.stopping = true
		_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, l.lfd, nil)
		l.lfile.Close()
	}
	busy := false
	for _, c := range l.conns {
		switch {
		case c == nil || c.isBackend:
		case c.busy || len(c.out) > 0:
			busy = true
		default:
			l.close(c)
		}
	}
	return !busy
}

//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/internal/rawsock"
	"github.com/ec2proxy/ec2proxy/internal/uring"
)

// EventLoop (server.event_loop) serves the EC2 listener from one epoll
// loop of raw system calls on a locked thread, the way nginx serves: a
// warm request (credential and token cached, no Redis-backed protection)
// is parsed, verified, forwarded and answered without a goroutine or a
// fasthttp object on the backend side. A request that needs Redis or
// Keystone, or is refused, runs the normal pipeline on a goroutine and its
// answer comes back to the loop; a connection whose request the loop does
// not parse (chunked, HTTP/1.0, Connection: close, too large) is handed to
// the goroutine server for good. Every connection is plain TCP.
type EventLoop struct {
	current func() *Server       // the pipeline of the moment (reloads swap it)
	serve   func(net.Conn) error // the goroutine server's ServeConn
	log     *zap.Logger
	rawIO   bool

	epfd, lfd, efd int           // epoll, listener, eventfd (goroutine answers)
	clients        *atomic.Int64 // client connections open in the loops (server.concurrency bounds them)
	lfile          *os.File      // owns lfd: its finalizer would close it
	conns          []*loopConn
	rd             bytes.Reader
	br             *bufio.Reader
	bw             *bufio.Writer
	w              appendWriter
	pool           backendPool
	lastSweep      time.Time
	now            time.Time // read once per clockEvery events: ~100 ns a read on a virtual machine

	// Out of file descriptors (see pauseAccept), the listener is out of
	// the epoll set until resumeAt.
	acceptPaused bool
	resumeAt     time.Time
	shortage     *acceptShortage // shared by the listener's loops

	// With io_uring (server.io_uring), each round's reads go to the
	// kernel in one system call and its writes in another (see round).
	ring             *uring.Ring
	reading          []*loopConn
	writing, written []*loopConn

	mu    sync.Mutex // guards done and asked
	done  []dispatched
	asked []asked
	// pending counts the goroutines started for requests (dispatch,
	// admit) whose results collect has not taken: the loop runs, and its
	// eventfd stays open for their wake-ups, until there are none.
	pending int
	spare   []*fasthttp.RequestCtx // of dispatched requests, answered (see recycle)

	stop    atomic.Bool // Shutdown was called
	closing atomic.Bool // Quiesce or Shutdown was called: every answer closes its connection
	// handedOff counts connections handed to the goroutine server whose
	// ServeConn has not returned (see HandedOff).
	handedOff atomic.Int64
	stopping  bool          // the loop no longer accepts
	stopped   chan struct{} // closed when Run returns
}

type loopConn struct {
	fd        int
	isBackend bool
	in, out   []byte
	sent      int // c.out[:sent] is written already (see wrote)
	events    uint32
	active    time.Time // last read, or the start of what is awaited

	// a client connection:
	backend *loopConn // the backend connection of the request in flight
	ctx     fasthttp.RequestCtx
	st      state
	peer    peerConn
	srv     *Server // the pipeline serving the request in flight
	busy    bool    // a request is in flight
	away    bool    // ... on a goroutine
	held    int     // bytes of c.in the request at a loop backend still uses
	serving bool    // in request
	stalled bool    // not served until it takes its answers (maxUnsent)
	readEOF bool    // it half-closed: what it sent is answered, then it is closed
	closing bool    // its last answer said Connection: close: closed once written
	start   time.Time

	// io_uring rounds:
	queued   bool  // in l.writing
	readRes  int32 // the round's read: bytes, or a negated errno
	readAt   int   // where in c.in the read went: len(c.in) then
	idleRead bool  // the read was of an idle backend connection

	// a backend connection:
	client     *loopConn // while it carries a request
	addr       string
	dialed     [4]byte // the address of addr it was dialled at
	redials    int8    // the addresses of addr tried before it, for its request
	connecting bool
	walked     answerWalk // see answerPending
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

// NewEventLoops builds n loops that take over ln's accepting, each woken
// in turn for new connections (EPOLLEXCLUSIVE), with one bound on their
// client connections; ln must be a TCP listener (or rawsock's wrapper of
// one). Run each on a thread of its own.
func NewEventLoops(n int, ln net.Listener, current func() *Server, serve func(net.Conn) error, log *zap.Logger, rawIO, ioUring bool) ([]*EventLoop, error) {
	clients := new(atomic.Int64)
	shortage := &acceptShortage{log: log}
	loops := make([]*EventLoop, 0, n)
	for range max(n, 1) {
		l, err := newEventLoop(ln, current, serve, log, rawIO, clients, shortage)
		if err != nil {
			for _, l := range loops {
				l.close()
			}
			return nil, err
		}
		loops = append(loops, l)
	}
	if ioUring {
		startRings(loops, log)
	}
	return loops, nil
}

// epollExclusive (EPOLLEXCLUSIVE, Linux 4.5) wakes one of the loops
// waiting on the listener, not all of them; package syscall lacks it.
const epollExclusive = 1 << 28

// listenerEvents are what the loops wait for on the listener.
const listenerEvents = syscall.EPOLLIN | epollExclusive

func newEventLoop(ln net.Listener, current func() *Server, serve func(net.Conn) error, log *zap.Logger, rawIO bool, clients *atomic.Int64, shortage *acceptShortage) (*EventLoop, error) {
	if rl, ok := ln.(rawsock.Listener); ok {
		ln = rl.Listener
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("event loop: the listener is %T, not plain TCP", ln)
	}
	f, err := tl.File() // a copy of the socket, in blocking mode
	if err != nil {
		return nil, err
	}
	l := &EventLoop{current: current, serve: serve, log: log, rawIO: rawIO, lfd: int(f.Fd()), lfile: f,
		stopped: make(chan struct{}), lastSweep: time.Now(), clients: clients, shortage: shortage, epfd: -1, efd: -1}
	l.pool.init()
	l.br = bufio.NewReaderSize(&l.rd, 64<<10)
	l.bw = bufio.NewWriterSize(l.w, 16<<10)
	if err := l.init(); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *EventLoop) init() error {
	if err := syscall.SetNonblock(l.lfd, true); err != nil {
		return err
	}
	efd, _, errno := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		return errno
	}
	l.efd = int(efd)
	var err error
	if l.epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		return err
	}
	for fd, events := range map[int]uint32{l.lfd: listenerEvents, l.efd: syscall.EPOLLIN} {
		ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return err
		}
	}
	return nil
}

// close releases a loop that never ran.
func (l *EventLoop) close() {
	if l.ring != nil {
		l.ring.Close()
	}
	for _, fd := range []int{l.epfd, l.efd} {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
	l.lfile.Close()
}

// clockEvery bounds how many events share one clock reading: timeouts and
// the durations in metrics and logs are then exact to within the handling
// of that many events (a few hundred microseconds at most under load).
const clockEvery = 8

// sweepEvery is how often timeouts are checked (and the longest the loop
// sleeps).
const sweepEvery = 100 * time.Millisecond

// Run serves until Shutdown (nil) or an epoll failure. Call it on a
// goroutine of its own, locked to its thread.
func (l *EventLoop) Run() error {
	defer close(l.stopped)
	events := make([]syscall.EpollEvent, 256)
	for {
		if l.stop.Load() && l.drained() {
			for _, c := range l.conns {
				if c != nil {
					l.closeOne(c)
				}
			}
			syscall.Close(l.epfd)
			syscall.Close(l.efd)
			if l.ring != nil {
				l.ring.Close()
			}
			return nil
		}
		n, err := l.wait(events)
		if err == syscall.EINTR {
			continue
		} else if err != nil {
			return err
		}
		l.now = time.Now()
		if l.ring != nil {
			l.round(events[:n])
		} else {
			l.events(events[:n])
		}
		if l.acceptPaused && !l.now.Before(l.resumeAt) {
			l.resumeAccept()
		}
		if l.now.Sub(l.lastSweep) >= sweepEvery {
			l.lastSweep = l.now
			l.sweep(l.now)
			if l.ring != nil {
				l.submitWrites() // the answers the timeouts gave
			}
		}
	}
}

// events handles one wait's events without io_uring, in round's order:
// idle backend connections first (what they said, usually EOF, closes
// them before a request could pick one), the goroutines' answers last
// (a resumed request then picks a backend after those closed).
func (l *EventLoop) events(events []syscall.EpollEvent) {
	handled, woken := 0, false
	for pass := 0; pass < 2; pass++ {
		for i := range events {
			fd := int(events[i].Fd)
			if fd == l.efd {
				woken = true
				continue
			}
			if events[i].Events == 0 || pass == 0 && !l.idleBackend(fd) {
				continue
			}
			if handled++; handled%clockEvery == 0 {
				l.now = time.Now()
			}
			l.safeEvent(fd, events[i].Events)
			events[i].Events = 0 // handled: the other pass skips it
		}
	}
	if woken {
		l.safeEvent(l.efd, syscall.EPOLLIN)
	}
}

func (l *EventLoop) idleBackend(fd int) bool {
	if fd < 0 || fd >= len(l.conns) {
		return false
	}
	c := l.conns[fd]
	return c != nil && c.isBackend && c.client == nil && !c.connecting
}

// wait returns the ready events. Under load some are ready at once: a
// raw poll that finds them skips the runtime's system-call bookkeeping,
// which could hand the loop's processor to a goroutine and leave the loop
// waiting for it to come back.
func (l *EventLoop) wait(events []syscall.EpollEvent) (int, error) {
	if n, e := rawsock.EpollPoll(l.epfd, events); e == 0 && n > 0 {
		return n, nil
	}
	timeout := sweepEvery
	if l.acceptPaused {
		timeout = min(timeout, max(time.Until(l.resumeAt), time.Millisecond))
	}
	return syscall.EpollWait(l.epfd, events, int(timeout/time.Millisecond))
}

// safeEvent handles one event; a bug costs that connection, not the loop
// (fasthttp's server does not recover from handler panics either, but the
// pipeline does, and the loop must not die with one connection).
func (l *EventLoop) safeEvent(fd int, ev uint32) {
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("event loop: panic; closing the connection", zap.Any("panic", p))
			if fd < len(l.conns) && l.conns[fd] != nil {
				c := l.conns[fd]
				if c.isBackend && c.client != nil {
					l.closeOne(c.client)
				}
				l.closeOne(c)
			}
		}
	}()
	l.event(fd, ev)
}

func (l *EventLoop) event(fd int, ev uint32) {
	switch {
	case fd == l.lfd:
		if !l.acceptPaused { // paused by an earlier event of this wait
			l.accept()
		}
		return
	case fd == l.efd:
		l.collect()
		return
	}
	c := l.conns[fd]
	if c == nil {
		return
	}
	if ev&syscall.EPOLLOUT != 0 {
		if c.connecting && !l.connected(c) {
			return
		}
		if !l.flush(c) {
			return
		}
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		l.readable(c)
	}
}

func (l *EventLoop) add(c *loopConn, events uint32) error {
	for len(l.conns) <= c.fd {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	c.events = events
	ev := syscall.EpollEvent{Events: events, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		l.conns[c.fd] = nil // the caller closes the descriptor
		return err
	}
	return nil
}

func (l *EventLoop) want(c *loopConn, events uint32) {
	if c.readEOF || c.closing {
		events &^= syscall.EPOLLIN // nothing more to read: EOF would wake the loop for ever
	}
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
			if outOfResources(err) {
				l.pauseAccept(err)
			}
			return // EAGAIN: none left (or the listener is closing)
		}
		l.shortage.recovered()
		if l.clients.Load() >= int64(l.current().cfg.Server.Concurrency) {
			l.refuse(fd)
			continue
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		c := &loopConn{fd: fd, in: make([]byte, 0, readSize), active: l.now}
		c.peer.remote = tcpAddr(sa)
		if lsa, err := syscall.Getsockname(fd); err == nil {
			c.peer.local = tcpAddr(lsa)
		}
		c.ctx.Init2(&c.peer, nil, false)
		if l.add(c, syscall.EPOLLIN) != nil {
			syscall.Close(fd)
			continue
		}
		l.clients.Add(1)
	}
}

// acceptPause is how long the loop stops accepting when out of file
// descriptors or socket memory.
const acceptPause = 100 * time.Millisecond

// pauseAccept takes the listener out of the epoll set for acceptPause
// (Run puts it back): the connection accept could not take stays queued,
// so the level-triggered listener would wake the loop again at once and
// it would spin a core until descriptors are freed. The loop's
// connections are served meanwhile, and some closing frees descriptors.
func (l *EventLoop) pauseAccept(err error) {
	l.shortage.failed(err, "the event loop stops accepting for 100 ms at a time, new connections wait in the listen queue")
	if syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, l.lfd, nil) != nil {
		return // not paused: the next wake-up tries again
	}
	l.acceptPaused = true
	l.resumeAt = time.Now().Add(acceptPause)
}

// resumeAccept puts the listener back in the epoll set, unless the loop
// is stopping (drained closed it); a failure tries again after another
// pause.
func (l *EventLoop) resumeAccept() {
	if l.stopping {
		return
	}
	ev := syscall.EpollEvent{Events: listenerEvents, Fd: int32(l.lfd)}
	if syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, l.lfd, &ev) != nil {
		l.resumeAt = time.Now().Add(acceptPause)
		return
	}
	l.acceptPaused = false
}

// refuse answers a connection over server.concurrency with a 503 EC2
// error, as far as the socket takes it at once, and closes it: the
// goroutine server refuses such connections too, and each one the loop
// kept would hold its buffers.
func (l *EventLoop) refuse(fd int) {
	l.current().m.loopRefused.Inc()
	_, _ = rawsock.Write(fd, tooManyConnections)
	syscall.Close(fd)
}

var tooManyConnections = closingError(errServiceUnavailable, "Too many concurrent connections to this replica (server.concurrency); retry shortly.")

// closingError is a whole EC2 error answer that closes the connection,
// for the loop to write on a connection it gives up.
func closingError(code errorCode, message string) []byte {
	e := errorTable[code]
	body := appendErrorXML(nil, e, message, nil)
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n", e.status, http.StatusText(e.status), len(body))
	return append([]byte(head), body...)
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

// closeOne closes one connection. A client's request in flight at a loop
// backend is given up (that backend connection too); one on a goroutine
// finishes there and its answer is dropped.
func (l *EventLoop) closeOne(c *loopConn) {
	if c.fd >= len(l.conns) || l.conns[c.fd] != c {
		return
	}
	l.conns[c.fd] = nil
	syscall.Close(c.fd) // leaves the epoll set with it
	if !c.isBackend {
		l.clients.Add(-1)
	}
	switch {
	case c.isBackend:
		l.pool.remove(c)
		if cl := c.client; cl != nil && cl.backend == c {
			cl.backend = nil
		}
	case c.busy && !c.away:
		c.srv.inflight.Add(-1)
		if b := c.backend; b != nil {
			c.backend, b.client = nil, nil
			l.closeOne(b)
		}
	}
	c.busy = false
}

func (l *EventLoop) readable(c *loopConn) {
	buf, ok := l.readBuffer(c)
	if !ok {
		return
	}
	n, err := rawsock.Read(c.fd, buf)
	l.received(c, n, err)
}

// readBuffer returns the room c's next read goes to, or false when c was
// closed instead (a client that sent more than a request ahead).
func (l *EventLoop) readBuffer(c *loopConn) ([]byte, bool) {
	if !c.isBackend && len(c.in) > l.maxBuffered() {
		if c.busy { // a whole next request while one is in flight: read on after its answer (afterWrite)
			// EPOLLHUP and EPOLLERR cannot be masked: a reset client would
			// wake the loop on every wait until the answer.
			if soErr, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || soErr != 0 {
				l.closeOne(c)
				return nil, false
			}
			l.want(c, c.events&^syscall.EPOLLIN)
			return nil, false
		}
		l.closeOne(c) // no request can be this large
		return nil, false
	}
	if c.in = shrunk(c.in, readSize); len(c.in) == cap(c.in) {
		// Double: append grows a large slice by a quarter, which copied a
		// 4 MiB answer about four times over as it arrived.
		c.in = slices.Grow(c.in, max(cap(c.in), readSize))
	}
	return c.in[len(c.in):cap(c.in)], true
}

// readSize is a connection's first read buffer; keptSize the most an empty
// buffer keeps: one grown for a large answer or request is given back
// once drained (shrunk), so that an idle keep-alive connection does not
// hold megabytes.
const (
	readSize = 4 << 10
	keptSize = 64 << 10
)

// shrunk returns b, or a fresh buffer of size capacity (nil for 0) if b
// is empty and larger than keptSize. A client's read buffer is only
// shrunk as its next read is prepared: during an io_uring round a read
// may be pending into the old one.
func shrunk(b []byte, size int) []byte {
	if len(b) > 0 || cap(b) <= keptSize {
		return b
	}
	if size == 0 {
		return nil
	}
	return make([]byte, 0, size)
}

// received handles what a read into readBuffer(c) returned.
func (l *EventLoop) received(c *loopConn, n int, err error) {
	if err == syscall.EAGAIN {
		return
	}
	if c.closing { // a read of this round's, or EPOLLHUP/EPOLLERR (not maskable)
		if err != nil {
			l.closeOne(c) // reset: nothing more can be written
		}
		return // what it sent is not served; an EOF changes nothing
	}
	if err == nil && n == 0 && !c.isBackend && !c.readEOF && (c.busy || len(c.in) > 0 || len(c.out) > 0) {
		// Half-closed after sending (shutdown(SHUT_WR), or HTTP/1.0
		// habits): what it sent is answered, then the connection closes.
		c.readEOF = true
		l.want(c, c.events)
		l.request(c)
		l.closeIfDone(c)
		return
	}
	if err != nil || n == 0 {
		if c.isBackend && c.client != nil {
			if err == nil && len(c.in) > 0 {
				l.answer(c, true) // a close-delimited answer ends here; anything else is cut short
			}
			if c.client != nil { // not answered
				l.finish(c.client, fmt.Errorf("the backend closed the connection: %w", errOr(err)))
			}
		}
		l.closeOne(c)
		return
	}
	c.in = c.in[:len(c.in)+n]
	if c.isBackend {
		l.answer(c, false)
		return
	}
	if len(c.in) == n && !c.busy {
		c.active = l.now // the first bytes of a request: its read timeout starts
	}
	l.request(c)
}

// maxBuffered bounds what a client connection may have sent ahead: one
// request of the largest size allowed, and change.
func (l *EventLoop) maxBuffered() int {
	cfg := &l.current().cfg.Server
	return cfg.MaxHeaderBytes + cfg.MaxBodyBytes + 4096
}

func errOr(err error) error {
	if err == nil {
		return fmt.Errorf("EOF")
	}
	return err
}

// flush writes c.out; what the socket does not take waits for EPOLLOUT.
// It reports false when the connection was closed. With io_uring the
// write waits for the round's end (see round), and flush reports true.
func (l *EventLoop) flush(c *loopConn) bool {
	if c.connecting {
		return true // connected() flushes
	}
	if l.ring != nil {
		if !c.queued && len(c.out) > 0 {
			c.queued = true
			l.writing = append(l.writing, c)
		}
		return true
	}
	return l.flushNow(c)
}

// flushNow writes c.out at once, with write system calls.
func (l *EventLoop) flushNow(c *loopConn) bool {
	for len(c.out) > 0 {
		n, err := rawsock.Write(c.fd, c.out[c.sent:])
		if err == syscall.EAGAIN {
			break
		}
		if err != nil || n <= 0 {
			l.writeFailed(c, err)
			return false
		}
		c.wrote(n)
	}
	l.afterWrite(c)
	return true
}

// wrote takes n written bytes off the front of c.out by moving an offset:
// the rest moves to the front only once the written part outgrows it, so
// a multi-megabyte answer written in many short pieces is copied about
// once, not once per piece.
func (c *loopConn) wrote(n int) {
	c.sent += n
	switch unsent := len(c.out) - c.sent; {
	case unsent == 0:
		c.out, c.sent = c.out[:0], 0
	case c.sent > unsent:
		c.out, c.sent = c.out[:copy(c.out, c.out[c.sent:])], 0
	}
}

// afterWrite sets c's interest once its socket took what it could: the
// rest waits for EPOLLOUT; a drained buffer a large answer grew is given
// back.
func (l *EventLoop) afterWrite(c *loopConn) {
	resume := c.stalled && len(c.out)-c.sent < maxUnsent
	if resume {
		c.stalled = false
	}
	switch {
	case c.stalled:
		l.want(c, syscall.EPOLLOUT) // no reads until the client takes its answers
	case len(c.out) > 0:
		l.want(c, syscall.EPOLLIN|syscall.EPOLLOUT)
	default:
		c.out = shrunk(c.out, 0)
		l.want(c, syscall.EPOLLIN)
	}
	if resume {
		l.request(c) // what it sent meanwhile waits in c.in
	}
	if len(c.in) > 0 && l.answeredAfterEOF(c) {
		l.request(c) // the rest it sent before closing; request closes it after
	} else {
		l.closeIfDone(c)
	}
}

// closeIfDone closes a client that half-closed once everything it sent
// is answered and written; request calls it, so what is left in c.in is
// an incomplete request that will never be completed.
func (l *EventLoop) closeIfDone(c *loopConn) {
	if l.answeredAfterEOF(c) {
		l.closeOne(c)
	}
}

// answeredAfterEOF reports a half-closed (or closing) client with nothing
// in flight or unwritten, still the loop's.
func (l *EventLoop) answeredAfterEOF(c *loopConn) bool {
	return (c.readEOF || c.closing) && !c.busy && !c.serving && len(c.out) == 0 && c.fd < len(l.conns) && l.conns[c.fd] == c
}

// writeFailed closes c, whose socket refused a write; a backend's client
// gets the error.
func (l *EventLoop) writeFailed(c *loopConn, err error) {
	if c.isBackend && c.client != nil {
		l.finish(c.client, fmt.Errorf("writing to the backend: %w", errOr(err)))
	}
	l.closeOne(c)
}

// sweep applies the timeouts: a backend connection not set up in
// backend.dial_timeout fails its request with 504; a request the backend
// has not answered in backend.timeout fails with 504; a request not read whole in
// server.read_timeout is answered 408 and closed (as the goroutine server
// does; handed to it, the request would get a second read_timeout); an
// idle connection past server.idle_timeout, or one whose answer the client
// has not taken in server.write_timeout, is closed.
func (l *EventLoop) sweep(now time.Time) {
	cfg := &l.current().cfg.Server
	for _, c := range l.conns {
		if c == nil || c.isBackend {
			continue
		}
		idle := now.Sub(c.active)
		switch {
		case c.busy && !c.away:
			if b := c.backend; b != nil && b.connecting && now.Sub(b.active) > l.current().cfg.Backend.DialTimeout {
				err := fmt.Errorf("not connected within backend.dial_timeout: %w", fasthttp.ErrTimeout)
				l.addressFailed(b.addr, b.dialed, err) // an address that drops connections: the others, while there are
				l.finish(c, err)                       // 504, as the goroutine pipeline
			} else if idle > c.st.route.timeout {
				l.finish(c, fasthttp.ErrTimeout)
			}
		case c.busy:
		case len(c.out) > 0:
			if idle > cfg.WriteTimeout {
				l.closeOne(c)
			}
		case len(c.in) > 0:
			if idle > cfg.ReadTimeout {
				l.readTimedOut(c)
			}
		case idle > cfg.IdleTimeout:
			l.closeOne(c)
		}
	}
	l.pool.closeIdle(now, l)
}

// readTimedOut answers a client whose request did not arrive whole in
// server.read_timeout, as the goroutine server does, and closes it.
func (l *EventLoop) readTimedOut(c *loopConn) {
	c.ctx.Response.Reset()
	l.current().handleTransportError(&c.ctx, os.ErrDeadlineExceeded) // 408, Connection: close
	l.render(c, &c.ctx.Response)
}

// Shutdown stops accepting and returns once every request the loop holds
// has been answered (idle connections are closed), or with ctx's error.
func (l *EventLoop) Shutdown(ctx context.Context) error {
	// Answers written while draining close their connections, as the
	// goroutine server's do (CloseOnShutdown): one closed after an answer
	// that kept it alive races the client's next request (a review).
	l.closing.Store(true)
	l.stop.Store(true)
	l.wake()
	select {
	case <-l.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HandedOff is the number of connections handed to the goroutine server
// that it has not finished serving. One just handed over may not be open
// there yet (its unsent answers are written first): the goroutine
// server's shutdown must wait for it too (see Runner.Stop).
func (l *EventLoop) HandedOff() int64 { return l.handedOff.Load() }

// Quiesce makes every answer from now on say Connection: close, and close
// its connection once written; the loop still accepts and serves (see
// server.shutdown_delay).
func (l *EventLoop) Quiesce() { l.closing.Store(true) }

// drained stops accepting (once) and reports whether no request is in the
// loop's hands; idle connections are closed on the way.
func (l *EventLoop) drained() bool {
	if !l.stopping {
		l.stopping = true
		_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, l.lfd, nil) // ENOENT if paused
		l.acceptPaused = false
		l.lfile.Close()
		l.lfd = -1 // its number is free: a new backend connection may get it
	}
	busy := l.pending > 0
	for _, c := range l.conns {
		switch {
		case c == nil || c.isBackend:
		case c.busy || len(c.out) > 0 || len(c.in) > 0:
			// A request on its way counts too (server.read_timeout
			// bounds it), as for the goroutine server: closing it cut a
			// client still sending its body (a review).
			busy = true
		default:
			l.closeOne(c)
		}
	}
	return !busy
}

func (l *EventLoop) wake() {
	one := [8]byte{1}
	_, _ = rawsock.Write(l.efd, one[:])
}

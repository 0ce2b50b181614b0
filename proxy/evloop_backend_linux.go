//go:build linux

package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// backendPool keeps the loop's keep-alive connections to each backend
// address: idle ones to reuse, and a count of all, bounded by
// backend.max_conns as the goroutine pipeline's HostClient is; and where
// each address is (see address).
type backendPool struct {
	idle  map[string][]*loopConn
	open  map[string]int
	addrs map[string]*backendAddr
	// resolve looks a backend's host name up, off the loop's thread
	// (resolveIPv4; tests set their own).
	resolve             func(ctx context.Context, host string) ([]netip.Addr, error)
	addrTTL, failedHold time.Duration // addrTTL, failedLookupHold
	expired             []*loopConn   // closeIdle's, kept for the next sweep
	// looked, if set, is called by a lookup's goroutine once its result is
	// there for the loop's next dial (tests wait for it; nil in service).
	looked func()
}

func (p *backendPool) init() {
	p.idle, p.open, p.addrs = map[string][]*loopConn{}, map[string]int{}, map[string]*backendAddr{}
	p.resolve, p.addrTTL, p.failedHold = resolveIPv4, addrTTL, failedLookupHold
}

var errPoolFull = errors.New("event loop: backend.max_conns reached")

// get returns an idle connection to addr, or a new one whose non-blocking
// connect is under way (requests queue in its out buffer until then). It
// fails while addr's host name has no address yet (see address).
func (p *backendPool) get(maxConns int, addr string, l *EventLoop) (*loopConn, error) {
	if list := p.idle[addr]; len(list) > 0 {
		b := list[len(list)-1]
		p.idle[addr] = list[:len(list)-1]
		return b, nil
	}
	return p.dial(maxConns, addr, l)
}

// dial starts a new connection to addr (see get).
func (p *backendPool) dial(maxConns int, addr string, l *EventLoop) (*loopConn, error) {
	if p.open[addr] >= maxConns {
		return nil, errPoolFull
	}
	sa, err := p.address(addr, l.now)
	if err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	b := &loopConn{fd: fd, isBackend: true, addr: addr, dialed: sa.Addr, in: make([]byte, 0, readSize), active: l.now}
	events := uint32(syscall.EPOLLIN)
	switch err := syscall.Connect(fd, sa); err {
	case nil:
	case syscall.EINPROGRESS:
		b.connecting = true
		events |= syscall.EPOLLOUT
	default:
		syscall.Close(fd)
		if backendRefused(err) {
			l.addressFailed(addr, sa.Addr, err) // the address's fault, not this host's (no local port left, say)
		}
		return nil, err
	}
	if err := l.add(b, events); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	p.open[addr]++
	return b, nil
}

// connected ends a non-blocking connect, and sends what waited for it. It
// reports false when the connect failed: the request then goes to the
// backend's next address, if it has one not tried yet, or fails with 502.
func (l *EventLoop) connected(b *loopConn) bool {
	b.connecting = false
	if soErr, err := syscall.GetsockoptInt(b.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || soErr != 0 {
		if err == nil {
			err = syscall.Errno(soErr)
		}
		others := l.addressFailed(b.addr, b.dialed, err)
		if c := b.client; c != nil && !(others && l.redial(b, c)) {
			l.finish(c, &net.OpError{Op: "dial", Net: "tcp", Err: err})
		}
		l.closeOne(b)
		return false
	}
	return true
}

// redial moves the request c was sending on b, whose connect failed, to a
// connection to another of the backend's addresses (fasthttp's dialer
// tries each in turn too). Nothing of it reached the backend. It reports
// false if there is none to try, or no connection could be started.
func (l *EventLoop) redial(b, c *loopConn) bool {
	if int(b.redials)+1 >= len(l.pool.addrs[b.addr].ips) {
		return false // each address tried once
	}
	pending := b.out[b.sent:]
	c.backend, b.client, b.out = nil, nil, nil
	l.closeOne(b) // before dial: it counts against backend.max_conns
	// A new connection, not an idle one: with io_uring this round's
	// reads, which may find an idle one closed, come after this.
	nb, err := l.pool.dial(c.srv.cfg.Backend.MaxConns, b.addr, l)
	if err != nil {
		return false
	}
	nb.redials = b.redials + 1
	nb.out = append(nb.out, pending...)
	nb.client, c.backend = c, nb
	l.flush(nb)
	return true
}

// put keeps b for the next request to its address.
func (p *backendPool) put(b *loopConn, now time.Time) {
	b.active = now
	p.idle[b.addr] = append(p.idle[b.addr], b)
}

// remove forgets a closed connection.
func (p *backendPool) remove(b *loopConn) {
	p.open[b.addr]--
	list := p.idle[b.addr]
	for i, x := range list {
		if x == b {
			p.idle[b.addr] = append(list[:i], list[i+1:]...)
			return
		}
	}
}

// closeIdle closes connections idle for longer than backend.idle_timeout,
// every one at once: one a sweep (every 100 ms) kept the connections of a
// burst open for seconds more (found by a review).
func (p *backendPool) closeIdle(now time.Time, l *EventLoop) {
	limit := l.current().cfg.Backend.IdleTimeout
	expired := p.expired[:0]
	for _, list := range p.idle {
		for _, b := range list {
			if now.Sub(b.active) > limit {
				expired = append(expired, b) // closeOne changes list: close after
			}
		}
	}
	for i, b := range expired {
		l.closeOne(b)
		expired[i] = nil
	}
	p.expired = expired[:0]
}

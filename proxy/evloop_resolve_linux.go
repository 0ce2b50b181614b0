//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// The loop never looks a backend's host name up on its own thread: a slow
// DNS server would hold every connection of the loop meanwhile. An IP
// address is parsed once and kept; a name is looked up by a goroutine (one
// at a time per name and loop), and until it has an IPv4 address the
// loop's requests for it go to the goroutine pipeline, whose fasthttp
// client dials (and resolves) on its own. Like fasthttp's dialer
// (DNSCacheDuration), the loop uses an address for addrTTL after its
// lookup began, then looks the name up again while it goes on using the
// old one; a failed lookup is not retried for failedLookupHold (the
// pool's addrTTL and failedHold: tests shorten them). A name with several
// IPv4 addresses has new connections take them in turn, as fasthttp's
// dialer does, and an address a connection to it failed is passed over for
// failedDialHold while another one is not (the failed request is sent to
// the next one). The goroutine leaves
// its result in an atomic pointer that the loop reads at its next dial to
// the address: no wake-up, so nothing to undo if the loop has stopped.
const (
	addrTTL          = time.Minute
	failedLookupHold = 5 * time.Second
	failedDialHold   = 5 * time.Second
	lookupTimeout    = 10 * time.Second
)

// resolveIPv4 is the loop's default resolver: net.DefaultResolver, read at
// each lookup.
func resolveIPv4(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
}

// errLookingUp sends a request to the goroutine pipeline while the first
// lookup of its backend's name is under way.
var errLookingUp = errors.New("event loop: the backend's host name is being looked up")

// backendAddr is what a loop knows of a backend address (host:port). Only
// found is shared, with the lookup's goroutine.
type backendAddr struct {
	host    string
	ips     []dialAddr // to dial, in turn, if known
	next    int        // the one the next connection tries first
	port    int
	fixed   bool      // an IP address (or an address the loop cannot dial): never looked up
	err     error     // why there is no address to dial
	until   time.Time // when the next lookup may start
	looking bool      // a lookup is under way, since asked; its result comes in found
	asked   time.Time
	found   atomic.Pointer[lookupResult]
}

type lookupResult struct {
	ips []netip.Addr // IPv4 only
	err error
}

// dialAddr is one of a backend's addresses, and until when it is passed
// over after a failed connection.
type dialAddr struct {
	sa        syscall.SockaddrInet4
	downUntil time.Time
}

// address returns where to dial addr at now, or why not (the request
// then goes to the goroutine pipeline). It takes the result of a finished
// lookup, and starts one when the address is due; it never waits.
func (p *backendPool) address(addr string, now time.Time) (*syscall.SockaddrInet4, error) {
	a := p.addrs[addr]
	if a == nil {
		a = parseBackendAddr(addr)
		p.addrs[addr] = a
	}
	if !a.fixed {
		if a.looking {
			if r := a.found.Swap(nil); r != nil {
				a.looking = false
				p.learn(a, r, now)
			}
		}
		if !a.looking && !now.Before(a.until) {
			p.lookUp(a, now)
		}
	}
	if len(a.ips) == 0 {
		return nil, a.err
	}
	return a.pick(now), nil
}

// pick returns the next address in turn that is not passed over at now,
// or, if all are, the next in turn.
func (a *backendAddr) pick(now time.Time) *syscall.SockaddrInet4 {
	n := len(a.ips)
	for i := range n {
		d := &a.ips[(a.next+i)%n]
		if !now.Before(d.downUntil) {
			a.next = (a.next + i + 1) % n
			return &d.sa
		}
	}
	d := &a.ips[a.next%n]
	a.next = (a.next + 1) % n
	return &d.sa
}

// markDown passes ip over, for addr's new connections, until failedDialHold
// from now; it reports whether addr has another address to try, and
// whether ip was in use until now (not passed over already).
func (p *backendPool) markDown(addr string, ip [4]byte, now time.Time) (others, newly bool) {
	a := p.addrs[addr]
	if a == nil {
		return false, false
	}
	for i := range a.ips {
		if a.ips[i].sa.Addr == ip {
			newly = !now.Before(a.ips[i].downUntil)
			a.ips[i].downUntil = now.Add(failedDialHold)
		} else if !now.Before(a.ips[i].downUntil) {
			others = true
		}
	}
	return others, newly
}

// addressFailed passes the address of addr a connection failed to over
// (markDown) and, when the others take its connections from now on, says
// so once: the requests that went on to another address show no error.
func (l *EventLoop) addressFailed(addr string, ip [4]byte, err error) (others bool) {
	l.current().m.connectFailed(addr)
	others, newly := l.pool.markDown(addr, ip, l.now)
	if others && newly {
		l.log.Warn("event loop: a backend address failed a connection; new connections go to the name's other addresses for a while",
			zap.String("backend", addr), zap.String("address", netip.AddrFrom4(ip).String()), zap.Duration("for", failedDialHold), zap.Error(err))
	}
	return others
}

// parseBackendAddr parses host:port; only a host name is left to look up.
func parseBackendAddr(addr string) *backendAddr {
	a := &backendAddr{fixed: true}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		a.err = err
		return a
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		a.err = fmt.Errorf("event loop: backend port %q: %w", portText, err)
		return a
	}
	a.port = int(port)
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip = ip.Unmap(); ip.Is4() {
			a.ips = []dialAddr{{sa: syscall.SockaddrInet4{Port: a.port, Addr: ip.As4()}}}
		} else {
			a.err = fmt.Errorf("event loop: backend %s is not an IPv4 address", addr) // the goroutine pipeline dials it
		}
		return a
	}
	a.fixed, a.host, a.err = false, host, errLookingUp
	return a
}

// learn takes a finished lookup's result. An address counts from when its
// lookup began; after a failure an address known before is used on.
func (p *backendPool) learn(a *backendAddr, r *lookupResult, now time.Time) {
	if r.err != nil {
		a.err, a.until = r.err, now.Add(p.failedHold)
		return
	}
	ips := make([]dialAddr, len(r.ips))
	for i, ip := range r.ips {
		ips[i].sa = syscall.SockaddrInet4{Port: a.port, Addr: ip.As4()}
		for _, old := range a.ips { // a failure stays known across the lookup
			if old.sa.Addr == ips[i].sa.Addr {
				ips[i].downUntil = old.downUntil
			}
		}
	}
	a.ips, a.next, a.err = ips, 0, nil
	a.until = a.asked.Add(p.addrTTL)
}

// lookUp starts a's lookup on a goroutine, which leaves its result in
// a.found for the loop to take at its next dial to a.
func (p *backendPool) lookUp(a *backendAddr, now time.Time) {
	a.looking, a.asked = true, now
	resolve, host, looked := p.resolve, a.host, p.looked
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		defer cancel()
		ips, err := resolve(ctx, host)
		r := &lookupResult{err: err}
		if err == nil {
			for _, ip := range ips {
				if ip = ip.Unmap(); ip.Is4() {
					r.ips = append(r.ips, ip)
				}
			}
			if len(r.ips) == 0 {
				r.err = fmt.Errorf("event loop: backend host %s has no IPv4 address", host)
			}
		}
		a.found.Store(r)
		if looked != nil {
			looked()
		}
	}()
}

//go:build linux

package proxy

import (
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/internal/uring"
)

// ringEntries bounds the reads or writes one system call carries; more
// take another.
const ringEntries = 256

// startRings gives each loop an io_uring, or leaves them on plain system
// calls where there is none (old kernels, io_uring_disabled, Docker's
// default seccomp profile, race-detector builds); either is logged once.
func startRings(loops []*EventLoop, log *zap.Logger) {
	for _, l := range loops {
		r, err := uring.New(ringEntries)
		if err != nil {
			log.Info("event loop: io_uring unavailable; one system call per socket read and write", zap.Error(err))
			return
		}
		l.ring = r
	}
	log.Info("event loop: io_uring on; each round's reads and writes take one system call each", zap.Int("loops", len(loops)))
}

// round handles one wait's events with io_uring. A system call costs
// about a microsecond on virtual machines that trap them, and a loudly
// busy loop makes a dozen reads and as many writes per wait: they go to
// the kernel in two calls instead.
//
//  1. Accepts and writable sockets are handled in turn (their writes
//     queue).
//  2. Every readable socket's read is submitted in one call.
//  3. The reads are handled: idle backend connections first (what they
//     said, usually EOF, closes them before a request could pick one),
//     then the rest in order. A connection closed meanwhile is skipped:
//     its result is dropped, and a new connection on the same descriptor
//     is a different loopConn.
//  4. Goroutines' answers are collected: a resumed request (see admit)
//     takes a backend connection only after this round's reads closed
//     the idle ones that had ended.
//  5. Every queued write is submitted in one call (more if handling the
//     results queues more, as a failed backend write answers its client).
func (l *EventLoop) round(events []syscall.EpollEvent) {
	woken := false
	for i := range events {
		switch fd, ev := int(events[i].Fd), events[i].Events; {
		case fd == l.efd:
			woken = true
		case fd == l.lfd:
			l.safeEvent(fd, ev)
		case ev&syscall.EPOLLOUT != 0:
			l.safeEvent(fd, syscall.EPOLLOUT) // the read, if any, comes with the others
		}
	}
	l.reading = l.reading[:0]
	for i := range events {
		fd := int(events[i].Fd)
		if events[i].Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 || fd == l.lfd || fd == l.efd || fd >= len(l.conns) {
			continue
		}
		c := l.conns[fd]
		// A connecting socket has nothing to read; and one here may be a
		// new connection on the descriptor of one this round closed (a
		// redial), whose event this is not (found by a review: the read
		// took the old connection's refusal as the new one's, 502).
		if c == nil || c.readRes == readQueued || c.connecting {
			continue
		}
		buf, ok := l.readBuffer(c)
		if !ok {
			continue
		}
		if !l.ring.Recv(fd, buf, uint64(len(l.reading))) { // full
			if l.submitReads(); l.ring == nil {
				break
			}
			l.ring.Recv(fd, buf, uint64(len(l.reading)))
		}
		c.readRes, c.readAt, c.idleRead = readQueued, len(c.in), c.isBackend && c.client == nil
		l.reading = append(l.reading, c)
	}
	if l.ring != nil {
		l.submitReads()
	}
	handled := 0
	for pass := 0; pass < 2; pass++ { // idle backends first
		for _, c := range l.reading {
			if c.idleRead != (pass == 0) || c.readRes == readHandled {
				continue
			}
			res := c.readRes
			c.readRes = readHandled
			if l.conns[c.fd] != c {
				continue
			}
			if handled++; handled%clockEvery == 0 {
				l.now = time.Now()
			}
			l.safeReceived(c, res)
		}
	}
	for _, c := range l.reading {
		c.readRes = 0
	}
	if woken {
		l.safeEvent(l.efd, syscall.EPOLLIN)
	}
	l.submitWrites()
}

// readQueued and readHandled mark a connection's place in a round; a read
// result is never either (at most a negated errno, or the bytes read).
const (
	readQueued  = -1 << 30
	readHandled = readQueued + 1
)

// submitReads sends the prepared reads to the kernel and records each
// result on its connection.
func (l *EventLoop) submitReads() {
	err := l.ring.Submit(func(tag uint64, res int32) { l.reading[tag].readRes = res })
	if err != nil {
		l.ringFailed(err)
		for _, c := range l.reading {
			if c.readRes == readQueued { // not read: epoll, level-triggered, reports it again
				c.readRes = -int32(syscall.EAGAIN)
			}
		}
	}
}

// safeReceived handles a read's result as safeEvent does an event: a panic
// costs the connection, not the loop.
func (l *EventLoop) safeReceived(c *loopConn, res int32) {
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("event loop: panic; closing the connection", zap.Any("panic", p))
			if c.isBackend && c.client != nil {
				l.closeOne(c.client)
			}
			l.closeOne(c)
		}
	}()
	if res < 0 {
		l.received(c, 0, syscall.Errno(-res))
		return
	}
	if len(c.in) != c.readAt {
		// Handling another read meanwhile took bytes off the front of c.in
		// (a backend's answer settled a request of this client's, which
		// had sent its next one ahead): the new bytes follow what is left.
		copy(c.in[len(c.in):cap(c.in)], c.in[c.readAt:c.readAt+int(res)])
	}
	l.received(c, int(res), nil)
}

// submitWrites sends every queued write, in as many calls as the ring
// needs; what a socket does not take waits for EPOLLOUT.
func (l *EventLoop) submitWrites() {
	for len(l.writing) > 0 {
		batch := l.writing
		l.writing = l.written[:0] // writes queued while results are handled
		for start := 0; start < len(batch); start += ringEntries {
			chunk := batch[start:min(start+ringEntries, len(batch))]
			if l.ring == nil {
				for _, c := range chunk {
					if c.queued = false; l.conns[c.fd] == c {
						l.flushNow(c)
					}
				}
				continue
			}
			for i, c := range chunk {
				c.queued = false
				if l.conns[c.fd] == c && len(c.out) > 0 && !c.connecting {
					l.ring.Send(c.fd, c.out[c.sent:], uint64(i))
				}
			}
			if err := l.ring.Submit(func(tag uint64, res int32) { l.sent(chunk[tag], res) }); err != nil {
				l.ringFailed(err)
				for _, c := range chunk { // what was sent is off c.out; the rest goes now
					if l.conns[c.fd] == c {
						l.flushNow(c)
					}
				}
			}
		}
		l.written = batch[:0]
	}
}

// sent handles a write's result.
func (l *EventLoop) sent(c *loopConn, res int32) {
	switch {
	case res == -int32(syscall.EAGAIN):
	case res <= 0:
		l.writeFailed(c, syscall.Errno(-res))
		return
	default:
		c.wrote(int(res))
	}
	l.afterWrite(c)
}

// ringFailed is io_uring_enter failing, which a working ring does not do:
// the loop goes on with plain system calls.
func (l *EventLoop) ringFailed(err error) {
	l.log.Error("event loop: io_uring failed; back to one system call per read and write", zap.Error(err))
	l.ring.Close()
	l.ring = nil
}

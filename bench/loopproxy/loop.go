//go:build linux

package main

import (
	"fmt"
	"net"
	"syscall"

	"github.com/ec2proxy/ec2proxy/internal/rawsock"
)

// maxMessage bounds a buffered request or answer: past it the connection
// is closed (a measuring stick needs no more).
const maxMessage = 1 << 20

type conn struct {
	fd      int
	peer    *conn // the client's backend connection, or the backend's client
	backend bool
	waiting bool // client: its request is at the backend
	in, out []byte
	events  uint32
}

type loop struct {
	epfd, lfd int
	conns     []*conn // by file descriptor
	backend   syscall.SockaddrInet4
	// verify, when set, turns each request into the backend's request, or
	// refuses it (false: answered 403).
	verify func(req, out []byte) ([]byte, bool)
}

func newLoop(listen, backend string) (*loop, error) {
	l := &loop{}
	var err error
	if l.backend, err = sockaddr(backend); err != nil {
		return nil, err
	}
	la, err := sockaddr(listen)
	if err != nil {
		return nil, err
	}
	if l.lfd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0); err != nil {
		return nil, err
	}
	_ = syscall.SetsockoptInt(l.lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(l.lfd, &la); err != nil {
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	if err := syscall.Listen(l.lfd, 4096); err != nil {
		return nil, err
	}
	if l.epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	return l, l.add(&conn{fd: l.lfd}, syscall.EPOLLIN)
}

// addr is the address the loop listens on (port 0 picks one).
func (l *loop) addr() string {
	sa, err := syscall.Getsockname(l.lfd)
	if err != nil {
		return ""
	}
	a := sa.(*syscall.SockaddrInet4)
	return fmt.Sprintf("%d.%d.%d.%d:%d", a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3], a.Port)
}

func sockaddr(hostport string) (syscall.SockaddrInet4, error) {
	var sa syscall.SockaddrInet4
	a, err := net.ResolveTCPAddr("tcp4", hostport)
	if err != nil {
		return sa, err
	}
	copy(sa.Addr[:], a.IP.To4())
	sa.Port = a.Port
	return sa, nil
}

// run serves until an epoll error. Level-triggered: one read per readiness
// event, as nginx does, so no read ends in EAGAIN on the way.
func (l *loop) run() error {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.epfd, events, -1)
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

func (l *loop) add(c *conn, events uint32) error {
	for len(l.conns) <= c.fd {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	c.events = events
	ev := syscall.EpollEvent{Events: events, Fd: int32(c.fd)}
	return syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev)
}

func (l *loop) want(c *conn, events uint32) {
	if c.events == events {
		return
	}
	c.events = events
	ev := syscall.EpollEvent{Events: events, Fd: int32(c.fd)}
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
}

// accept takes every pending connection and pairs each with a backend
// connection (a blocking connect: on loopback it does not wait).
func (l *loop) accept() {
	for {
		fd, _, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: none left
		}
		bfd, err := l.dialBackend()
		if err != nil {
			syscall.Close(fd)
			continue
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		c := &conn{fd: fd, in: make([]byte, 0, 8<<10)}
		b := &conn{fd: bfd, backend: true, peer: c, in: make([]byte, 0, 8<<10)}
		c.peer = b
		if l.add(c, syscall.EPOLLIN) != nil || l.add(b, syscall.EPOLLIN) != nil {
			l.close(c)
		}
	}
}

func (l *loop) dialBackend() (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Connect(fd, &l.backend); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	_ = syscall.SetNonblock(fd, true)
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	return fd, nil
}

// close closes a connection and its peer: a client without its backend
// connection (or the reverse) is of no use.
func (l *loop) close(c *conn) {
	for _, x := range []*conn{c, c.peer} {
		if x != nil && x.fd < len(l.conns) && l.conns[x.fd] == x {
			l.conns[x.fd] = nil
			syscall.Close(x.fd) // leaves the epoll set with it
		}
	}
}

// readable makes one read and acts on every complete message buffered.
func (l *loop) readable(c *conn) {
	if len(c.in) == cap(c.in) {
		if len(c.in) >= maxMessage {
			l.close(c)
			return
		}
		c.in = append(c.in, 0)[:len(c.in)] // grow
	}
	n, err := rawsock.Read(c.fd, c.in[len(c.in):cap(c.in)])
	if err == syscall.EAGAIN {
		return
	}
	if err != nil || n == 0 {
		l.close(c)
		return
	}
	c.in = c.in[:len(c.in)+n]
	if c.backend {
		l.answer(c)
	} else {
		l.request(c)
	}
}

var forbidden = []byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

// request sends the client's next complete request to the backend, unless
// one is there already (pipelined requests wait their turn).
func (l *loop) request(c *conn) {
	for !c.waiting {
		size, ok := message(c.in)
		if !ok {
			l.close(c)
			return
		}
		if size == 0 {
			return
		}
		msg, b := c.in[:size], c.peer
		if l.verify == nil {
			b.out = rewrite(msg, b.out)
		} else if b.out, ok = l.verify(msg, b.out); !ok {
			c.out = append(c.out, forbidden...)
			c.in = c.in[:copy(c.in, c.in[size:])]
			if !l.flush(c) {
				return
			}
			continue
		}
		c.in = c.in[:copy(c.in, c.in[size:])]
		c.waiting = true
		l.flush(b)
	}
}

// answer relays the backend's complete answer to its client.
func (l *loop) answer(b *conn) {
	size, ok := message(b.in)
	if size == 0 && ok {
		return
	}
	c := b.peer
	if !ok || !c.waiting {
		l.close(b)
		return
	}
	c.out = append(c.out, b.in[:size]...)
	b.in = b.in[:copy(b.in, b.in[size:])]
	c.waiting = false
	if l.flush(c) && len(c.in) > 0 {
		l.request(c)
	}
}

// flush writes c.out; what the socket does not take waits for EPOLLOUT.
// It reports false when the connection was closed.
func (l *loop) flush(c *conn) bool {
	for len(c.out) > 0 {
		n, err := rawsock.Write(c.fd, c.out)
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

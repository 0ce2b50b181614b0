package rawsock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write make raw system calls; the
// netpoller still waits for readiness and enforces deadlines (syscall
// RawConn), and every other method is the TCPConn's.
//
// The callbacks RawConn runs are made once, in Wrap, and pass their
// arguments and results through the Conn: a closure per call would escape
// and cost allocations on every read and write (several per proxied
// request, and the garbage collections they bring). One read and one
// write may run at once, as on a net.Conn; concurrent reads (or writes)
// wait for each other, which RawConn would make them do anyway.
type Conn struct {
	*net.TCPConn
	raw syscall.RawConn

	readMu    sync.Mutex
	readFn    func(fd uintptr) bool
	readBuf   []byte
	readN     int
	readErrno syscall.Errno

	writeMu    sync.Mutex
	writeFn    func(fd uintptr) bool
	writeBuf   []byte
	written    int
	writeErrno syscall.Errno
}

// Wrap returns c as a Conn if it is a *net.TCPConn, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rc := &Conn{TCPConn: tc, raw: raw}
	rc.readFn, rc.writeFn = rc.readOnce, rc.writeAll
	return rc
}

// Read reads as net.Conn does: io.EOF when the peer has closed, errors in a
// *net.OpError.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	c.readBuf, c.readN, c.readErrno = p, 0, 0
	err := c.raw.Read(c.readFn)
	n, errno := c.readN, c.readErrno
	c.readBuf = nil // not kept past the call
	c.readMu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) readOnce(fd uintptr) bool {
	for {
		r, e := sysRead(fd, c.readBuf)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the netpoller waits for data, or the deadline
		}
		c.readN, c.readErrno = int(r), e
		return true
	}
}

// Write writes all of p, waiting for the socket to drain as needed, unless
// an error or the deadline comes first.
func (c *Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	c.writeBuf, c.written, c.writeErrno = p, 0, 0
	err := c.raw.Write(c.writeFn)
	written, errno := c.written, c.writeErrno
	c.writeBuf = nil
	c.writeMu.Unlock()
	switch {
	case err != nil:
		return written, c.opError("write", err)
	case errno != 0:
		return written, c.opError("write", os.NewSyscallError("write", errno))
	}
	return written, nil
}

func (c *Conn) writeAll(fd uintptr) bool {
	for c.written < len(c.writeBuf) {
		r, e := sysWrite(fd, c.writeBuf[c.written:])
		switch e {
		case 0:
			c.written += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // the netpoller waits for room, or the deadline
		default:
			c.writeErrno = e
			return true
		}
	}
	return true
}

// opError reports err as net.Conn's Read and Write do (RawConn's own
// errors name the operation "raw-read" or "raw-write").
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read is one read(2) on a non-blocking descriptor, unknown to the
// scheduler (under the race detector, through package syscall so that the
// detector sees the exchange). For event loops that own their descriptors:
// the error is the syscall.Errno (EAGAIN: nothing to read yet), n is -1
// with it.
func Read(fd int, p []byte) (int, error) { return result(sysRead(uintptr(fd), p)) }

// Write is one write(2), as Read.
func Write(fd int, p []byte) (int, error) { return result(sysWrite(uintptr(fd), p)) }

func result(n int, e syscall.Errno) (int, error) {
	if e != 0 {
		return -1, e
	}
	return n, nil
}

// EpollPoll is epoll_wait(2) with a zero timeout, unknown to the
// scheduler: it never blocks, so the caller keeps its processor.
func EpollPoll(epfd int, events []syscall.EpollEvent) (int, syscall.Errno) {
	if len(events) == 0 {
		return 0, 0
	}
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(r), e
}

// Package rawsock reads and writes TCP sockets with raw system calls: ones
// the Go scheduler is not told about.
//
// Go's net package wraps every read(2) and write(2) in the scheduler's
// system-call protocol, so that a blocking call cannot hold a processor
// (P). ec2proxy's sockets are non-blocking: the calls return at once, or
// with EAGAIN, and then the netpoller waits. But when the proxy shares a
// core with its backend, the kernel often switches to the backend on the way
// out of a write that woke it; to the runtime the write then looks slow, so
// its monitor thread (sysmon) wakes every 20 µs, takes the P away, and wakes
// another thread to run it, and the writer must park its thread when it
// returns. Measured on a 2-core VM, proxy and backend on one core: sysmon
// and those hand-offs were about a fifth of the proxy's CPU; with raw calls
// they are under 1%.
//
// The price is that a goroutine in a raw read or write keeps its P for the
// call's duration, as it would for the same time spent computing: the kernel
// work of one non-blocking call on a socket (copying at most a socket
// buffer), never a wait.
package rawsock

import "net"

// Listener wraps the connections a TCP listener accepts (see Wrap).
type Listener struct{ net.Listener }

// Accept wraps the next connection.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

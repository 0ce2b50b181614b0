//go:build !race

package proxyproto

import (
	"net"
	"testing"
	"time"
)

// fakeConn sends a header, then 'x' forever.
type fakeConn struct {
	net.Conn // nil: only the methods below are called
	header   []byte
}

func (c *fakeConn) Read(p []byte) (int, error) {
	if len(c.header) > 0 {
		n := copy(p, c.header)
		c.header = c.header[n:]
		return n, nil
	}
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func (c *fakeConn) SetReadDeadline(time.Time) error { return nil }
func (c *fakeConn) RemoteAddr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1} }
func (c *fakeConn) LocalAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 2} }

// Once the header is read, Read, RemoteAddr and the deadline setters
// allocate nothing.
func TestReadAllocs(t *testing.T) {
	c := &conn{Conn: &fakeConn{header: []byte(v1Line4 + request)}, opts: &Options{HeaderTimeout: time.Second}}
	buf := make([]byte, 10)
	for range 5 { // the header, then the buffered remainder and beyond
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	allocs := testing.AllocsPerRun(100, func() {
		c.SetReadDeadline(deadline)
		c.Read(buf)
		c.RemoteAddr()
	})
	if allocs != 0 {
		t.Errorf("Read after the header: %v allocations; want 0", allocs)
	}
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"
)

// conn is one keep-alive HTTP/1.1 connection with one request in flight,
// as a browser-less API client has. It writes pre-built request bytes and
// reads the answer into a fixed buffer: no allocation per request, and no
// HTTP library whose own cost would show in the numbers.
type conn struct {
	addr string
	c    net.Conn
	buf  []byte
	// sample holds the first answer whose status was unexpected, for the
	// operator to see why.
	sample []byte
}

func newConn(addr string) *conn { return &conn{addr: addr, buf: make([]byte, 64<<10)} }

var (
	errNoLength  = errors.New("answer has no Content-Length (chunked answers are not supported)")
	errMalformed = errors.New("malformed HTTP answer")
)

// roundTrip sends req and reads one answer. On error the connection is
// closed and the next call dials again.
func (c *conn) roundTrip(req []byte) (status int, err error) {
	if c.c == nil {
		if c.c, err = net.DialTimeout("tcp", c.addr, 3*time.Second); err != nil {
			c.c = nil
			return 0, err
		}
	}
	status, closeAfter, err := c.exchange(req)
	if err != nil || closeAfter {
		c.c.Close()
		c.c = nil
	}
	return status, err
}

func (c *conn) exchange(req []byte) (status int, closeAfter bool, err error) {
	if _, err := c.c.Write(req); err != nil {
		return 0, false, err
	}
	n, end := 0, -1
	for end < 0 {
		if n == len(c.buf) {
			return 0, false, fmt.Errorf("answer headers larger than %d bytes", len(c.buf))
		}
		m, err := c.c.Read(c.buf[n:])
		if m == 0 && err != nil {
			return 0, false, err
		}
		from := max(n-3, 0)
		n += m
		if i := bytes.Index(c.buf[from:n], crlfcrlf); i >= 0 {
			end = from + i + len(crlfcrlf)
		}
	}
	head := c.buf[:end]
	status, length, closeAfter, ok := parseHead(head)
	if !ok {
		return 0, false, errMalformed
	}
	if length < 0 {
		return status, false, errNoLength
	}
	// Read (and drop) the rest of the body.
	for remaining := end + length - n; remaining > 0; {
		m, err := c.c.Read(c.buf[:min(remaining, len(c.buf))])
		if m == 0 && err != nil {
			return status, false, err
		}
		remaining -= m
	}
	return status, closeAfter, nil
}

// keep copies the first answer with an unexpected status (headers and the
// start of the body still in the buffer).
func (c *conn) keep() {
	if c.sample == nil {
		c.sample = bytes.Clone(c.buf[:min(len(c.buf), 1024)])
	}
}

var (
	crlfcrlf      = []byte("\r\n\r\n")
	contentLength = []byte("content-length:")
	connection    = []byte("connection:")
	closeToken    = []byte("close")
)

// parseHead reads the status, Content-Length (-1 if absent) and whether the
// server closes the connection.
func parseHead(head []byte) (status, length int, closeAfter, ok bool) {
	line, rest, found := bytes.Cut(head, []byte("\r\n"))
	if !found || len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, false, false
	}
	status, ok = atoi(line[9:12])
	if !ok {
		return 0, 0, false, false
	}
	length = -1
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		switch {
		case hasPrefixFold(line, contentLength):
			if length, ok = atoi(bytes.TrimSpace(line[len(contentLength):])); !ok {
				return 0, 0, false, false
			}
		case hasPrefixFold(line, connection):
			closeAfter = bytes.EqualFold(bytes.TrimSpace(line[len(connection):]), closeToken)
		}
	}
	return status, length, closeAfter, true
}

func hasPrefixFold(s, prefix []byte) bool {
	return len(s) >= len(prefix) && bytes.EqualFold(s[:len(prefix)], prefix)
}

func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

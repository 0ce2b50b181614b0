package rawsock

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// pair is a connected TCP pair on loopback: the accepted end wrapped by a
// Listener, the dialled end wrapped by Wrap.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listener{inner}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client = Wrap(d)
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

func TestWrapOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if w := Wrap(a); w != a {
		t.Errorf("Wrap(net.Pipe end) = %T, want it unchanged", w)
	}
}

// More than the socket buffers hold, both ways at once: writes must wait
// for room (EAGAIN, then the netpoller) and resume where they stopped.
func TestLargeTransfersBothWays(t *testing.T) {
	s, c := pair(t)
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	errs := make(chan error, 4)
	send := func(w net.Conn) {
		n, err := w.Write(payload)
		if err == nil && n != len(payload) {
			err = errors.New("short write without an error")
		}
		errs <- err
	}
	recv := func(r net.Conn) {
		got := make([]byte, len(payload))
		_, err := io.ReadFull(r, got)
		if err == nil && !bytes.Equal(got, payload) {
			err = errors.New("received bytes differ from those sent")
		}
		errs <- err
	}
	go send(c)
	go send(s)
	go recv(s)
	go recv(c)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestEOFAfterPeerCloses(t *testing.T) {
	s, c := pair(t)
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "last words" {
		t.Fatalf("ReadAll = %q, %v; want the bytes, then EOF", got, err)
	}
	if n, err := s.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

// Deadlines still come from the netpoller: a read with nothing to read and
// a write to a peer that never reads end at the deadline, as timeouts.
func TestDeadlines(t *testing.T) {
	s, c := pair(t)
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := s.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past its deadline: %v; want a timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Read returned after %v", took)
	}

	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Write(make([]byte, 64<<20)) // s never reads
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Write past its deadline: %d bytes, %v; want a timeout", n, err)
	}
	if n <= 0 || n >= 64<<20 {
		t.Errorf("Write reported %d bytes written; want what fitted in the buffers", n)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Errorf("error %#v; want a *net.OpError for write", err)
	}
}

func TestClosedAndReset(t *testing.T) {
	s, c := pair(t)
	s.Close()
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read on a closed conn: %v; want net.ErrClosed", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write on a closed conn: %v; want net.ErrClosed", err)
	}

	s2, c2 := pair(t)
	_ = c
	// Linger 0: close sends a reset, which the peer's read reports.
	if err := c2.(interface{ SetLinger(int) error }).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	time.Sleep(50 * time.Millisecond)
	_, err := s2.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("Read after the peer reset: %v; want ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("error %#v; want a *net.OpError for read", err)
	}
}

// A read and a write on a Conn allocate nothing: they run for every
// request the proxy serves.
func TestReadWriteAllocateNothing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("raw system calls are made on Linux only")
	}
	s, c := pair(t)
	msg, buf := []byte("ping"), make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a Write and a Read allocate %.1f times; want 0", allocs)
	}
}

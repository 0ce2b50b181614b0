//go:build linux

package proxy

import (
	"bytes"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// A connection handed to the goroutine server while the loop still holds
// answer bytes its client has not taken (a slow reader) keeps them: they
// go out first, then the goroutine server's answer. The loop wrote once
// and dropped the rest, so the next answer landed inside the previous
// one's body (found by a review).
func TestHandoffKeepsUnsentAnswer(t *testing.T) {
	s, _ := warmServer(t, startScriptedBackend(t, answerWith("<ok/>")).addr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	serve := func(c net.Conn) error {
		defer close(served)
		_, err := c.Write([]byte("AFTER"))
		c.Close()
		return err
	}
	loops, err := NewEventLoops(1, ln, func() *Server { return s }, serve, zap.NewNop(), false, false)
	if err != nil {
		t.Fatal(err)
	}
	l := loops[0]
	defer l.close()

	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	defer peer.Close()
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	c := &loopConn{fd: fds[0], active: time.Now()}
	for len(l.conns) <= c.fd {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	l.clients.Add(1)
	if err := l.add(c, syscall.EPOLLIN); err != nil {
		t.Fatal(err)
	}
	answer := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the socket takes
	c.out = append(c.out, answer...)

	l.handoff(c)
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	<-served
	if want := append(answer, "AFTER"...); !bytes.Equal(got, want) {
		t.Errorf("the client read %d bytes (ending %q); want the %d-byte answer whole, then the goroutine server's", len(got), got[max(0, len(got)-8):], len(answer))
	}
}

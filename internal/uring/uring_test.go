//go:build linux

package uring

import (
	"errors"
	"syscall"
	"testing"
)

func socketPair(t testing.TB) (a, b int) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return fds[0], fds[1]
}

func newRing(t testing.TB, n uint32) *Ring {
	r, err := New(n)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestSendRecvBatch(t *testing.T) {
	r := newRing(t, 8)
	a1, b1 := socketPair(t)
	a2, b2 := socketPair(t)
	r.Send(a1, []byte("hello"), 1)
	r.Send(a2, []byte("world!"), 2)
	got := map[uint64]int32{}
	if err := r.Submit(func(tag uint64, res int32) { got[tag] = res }); err != nil {
		t.Fatal(err)
	}
	if got[1] != 5 || got[2] != 6 {
		t.Fatalf("sends: %v", got)
	}
	buf1, buf2, buf3 := make([]byte, 16), make([]byte, 16), make([]byte, 16)
	r.Recv(b1, buf1, 1)
	r.Recv(b2, buf2, 2)
	r.Recv(a1, buf3, 3) // nothing to read: EAGAIN, not a wait
	clear(got)
	if err := r.Submit(func(tag uint64, res int32) { got[tag] = res }); err != nil {
		t.Fatal(err)
	}
	if got[1] != 5 || string(buf1[:5]) != "hello" || got[2] != 6 || string(buf2[:6]) != "world!" {
		t.Fatalf("receives: %v %q %q", got, buf1, buf2)
	}
	if got[3] != -int32(syscall.EAGAIN) {
		t.Fatalf("receive with nothing there: %d, want -EAGAIN", got[3])
	}
}

func TestFullSocketAndClosedPeer(t *testing.T) {
	r := newRing(t, 4)
	a, b := socketPair(t)
	big := make([]byte, 1<<20)
	r.Send(a, big, 1)
	var res int32
	if err := r.Submit(func(_ uint64, n int32) { res = n }); err != nil {
		t.Fatal(err)
	}
	if res <= 0 || int(res) >= len(big) {
		t.Fatalf("a send larger than the socket buffer: %d, want a short count", res)
	}
	r.Send(a, big, 1)
	if err := r.Submit(func(_ uint64, n int32) { res = n }); err != nil {
		t.Fatal(err)
	}
	if res != -int32(syscall.EAGAIN) {
		t.Fatalf("a send to a full socket: %d, want -EAGAIN", res)
	}
	syscall.Close(b)
	r.Send(a, []byte("x"), 1)
	if err := r.Submit(func(_ uint64, n int32) { res = n }); err != nil {
		t.Fatal(err)
	}
	if res != -int32(syscall.EPIPE) && res != -int32(syscall.ECONNRESET) {
		t.Fatalf("a send to a closed peer: %d, want -EPIPE (and no SIGPIPE)", res)
	}
	buf := make([]byte, 8)
	r.Recv(a, buf, 1)
	if err := r.Submit(func(_ uint64, n int32) { res = n }); err != nil {
		t.Fatal(err)
	}
	if res > 0 {
		t.Fatalf("a receive from a closed peer: %d", res)
	}
}

func TestRingFull(t *testing.T) {
	r := newRing(t, 2)
	a, _ := socketPair(t)
	n := 0
	for r.Send(a, []byte("x"), uint64(n)) {
		n++
	}
	if n != r.Cap() {
		t.Fatalf("prepared %d, want %d", n, r.Cap())
	}
	count := 0
	if err := r.Submit(func(uint64, int32) { count++ }); err != nil || count != n {
		t.Fatalf("submit: %v, %d completions", err, count)
	}
	if !r.Send(a, []byte("x"), 0) {
		t.Fatal("the ring is not reusable after Submit")
	}
}

// Sixteen 64-byte sends: one system call each, or one for all.
func BenchmarkSend16(b *testing.B) {
	var fds [16][2]int
	for i := range fds {
		fds[i][0], fds[i][1] = socketPair(b)
	}
	msg, sink := make([]byte, 64), make([]byte, 64)
	drain := func() {
		for i := range fds {
			syscall.Read(fds[i][1], sink)
		}
	}
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			for i := range fds {
				syscall.Write(fds[i][0], msg)
			}
			b.StopTimer()
			drain()
			b.StartTimer()
		}
	})
	b.Run("uring", func(b *testing.B) {
		r := newRing(b, 32)
		for b.Loop() {
			for i := range fds {
				r.Send(fds[i][0], msg, uint64(i))
			}
			r.Submit(func(uint64, int32) {})
			b.StopTimer()
			drain()
			b.StartTimer()
		}
	})
}

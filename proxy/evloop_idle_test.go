//go:build linux

package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Backend connections idle past backend.idle_timeout are all closed at the
// next sweep: it closed one per sweep (every 100 ms), so the 64 a burst
// opened stayed open for 6 s more (found by a review).
func TestEventLoopClosesEveryIdleBackendConnection(t *testing.T) {
	const conns = 32
	var open atomic.Int64
	release := make(chan struct{})
	backend := serveTCP(t, func(c net.Conn) {
		open.Add(1)
		defer open.Add(-1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			<-release // every request waits: the loop opens a connection for each
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n<a/>")
		}
	})
	s, form := warmServer(t, backend)
	s.cfg.Backend.IdleTimeout = 300 * time.Millisecond
	addr := startLoop(t, s, false)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, formRequest(form))
			if resp, _, err := readAnswer(bufio.NewReader(c)); err != nil || resp.StatusCode != 200 {
				t.Errorf("answer: %v %v", resp, err)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() < conns && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n < conns {
		t.Fatalf("%d backend connections open; want %d, one per waiting request", n, conns)
	}
	close(release)
	wg.Wait()
	idleSince := time.Now()
	for open.Load() > 0 && time.Since(idleSince) < 5*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	// idle_timeout, then a sweep or two: not one connection a sweep.
	if n, took := open.Load(), time.Since(idleSince); n > 0 || took > time.Second {
		t.Errorf("%d backend connections still open %v after the last answer; want all closed within 1s (idle_timeout 300ms)", n, took.Round(time.Millisecond))
	}
}

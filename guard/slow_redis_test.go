package guard

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// slowOnce sits between a client and the test Redis and, once armed,
// holds the next answer back for delay: a Redis slower than the client's
// read timeout for one command (a fork, a long script elsewhere), without
// stalling the Redis that other tests share.
type slowOnce struct {
	addr  string
	armed atomic.Bool
}

func startSlowOnce(t *testing.T, delay time.Duration) *slowOnce {
	t.Helper()
	target := testenv.RedisAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &slowOnce{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(r, c); r.Close() }()
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := r.Read(buf)
					if n > 0 && p.armed.CompareAndSwap(true, false) {
						time.Sleep(delay)
					}
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// client is a client through p with the settings internal/app gives the
// proxy's: a 500 ms read timeout, one retry.
func (p *slowOnce) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: p.addr, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		DialTimeout: time.Second, MaxRetries: 1, DialerRetries: 1, DialerRetryTimeout: 50 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// A first use whose answer is late is not a replay of itself: go-redis
// sends the command again after its read timeout, and the first try has
// run (found by a review: a slow Redis made first uses 400 RequestExpired).
func TestSlowRedisFirstUseIsNotItsOwnReplay(t *testing.T) {
	_, prefix := testRedis(t, "slow-first-use")
	p := startSlowOnce(t, 800*time.Millisecond)
	shared := NewRedis(p.client(t), prefix)
	adm := shared.NewAdmission(shared.NewRateLimit(100, 10, 100))
	ctx := context.Background()
	// load the scripts first, as a running proxy has
	if first, err := shared.FirstUse(ctx, []byte("AK"), "warm", time.Minute); !first || err != nil {
		t.Fatalf("warm-up: %v %v", first, err)
	}
	if v, err := adm.Admit(ctx, []byte("AK"), "warm-admit", time.Minute); v != Admitted || err != nil {
		t.Fatalf("warm-up: %v %v", v, err)
	}

	p.armed.Store(true)
	if first, err := shared.FirstUse(ctx, []byte("AK"), "late", time.Minute); err == nil && !first {
		t.Error("FirstUse: a first use whose answer was late is reported as a replay")
	}
	if first, err := shared.FirstUse(ctx, []byte("AK"), "late", time.Minute); err != nil || first {
		t.Errorf("FirstUse again: first=%v err=%v; want a replay", first, err)
	}
	p.armed.Store(true)
	if v, err := adm.Admit(ctx, []byte("AK"), "late-admit", time.Minute); err == nil && v == Replayed {
		t.Error("Admit: a first use whose answer was late is reported as a replay")
	}
	if v, err := adm.Admit(ctx, []byte("AK"), "late-admit", time.Minute); err != nil || v != Replayed {
		t.Errorf("Admit again: %v err=%v; want Replayed", v, err)
	}
}

// The fleet rate limit alone (no replay protection) sends the bare bucket
// script; go-redis sent the batch again when the answer came after the read
// timeout, the first try having run: one request spent two tokens (found
// by a review). The late call now fails (its answer comes from the local
// bucket) and the bucket is charged once.
func TestSlowRedisRateLimitChargesOnce(t *testing.T) {
	_, prefix := testRedis(t, "gcra-retry")
	p := startSlowOnce(t, 800*time.Millisecond)
	shared := NewRedis(p.client(t), prefix)
	rl := shared.NewRateLimit(0.001, 2, 100) // a burst of two, then one per 1000 s
	ctx := context.Background()
	if ok, err := rl.Take(ctx, []byte("WARM"), time.Now()); !ok || err != nil { // loads the script
		t.Fatalf("warm-up: %v %v", ok, err)
	}
	p.armed.Store(true)
	ok, err := rl.Take(ctx, []byte("AK"), time.Now()) // AK's first request; its answer is late
	t.Logf("first (late answer): allowed=%v err=%v", ok, err)
	if ok, err := rl.Take(ctx, []byte("AK"), time.Now()); !ok || err != nil {
		t.Errorf("second request of a burst of 2: allowed=%v err=%v; the late first request was charged twice", ok, err)
	}
}

package flightcache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock() *clock               { c := &clock{}; c.t.Store(time.Unix(1e9, 0).UnixNano()); return c }
func get(t *testing.T, c *Cache[int, int], key string) int {
	t.Helper()
	v, err := c.Get(context.Background(), []byte(key), 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A load that read the backend before an invalidation must not cache what
// it read: the invalidation says the value changed after that read.
func TestInvalidateDuringLoadIsNotCached(t *testing.T) {
	clk := newClock()
	var version atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	var loads atomic.Int64
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		v := int(version.Load())
		if loads.Add(1) == 1 {
			close(started)
			<-release
		}
		return v, clk.now().Add(time.Hour), nil
	}, Options{Now: clk.now})

	done := make(chan int)
	go func() { v, _ := c.Get(context.Background(), []byte("k"), 0); done <- v }()
	<-started
	version.Store(1) // the value changes, and the change is announced
	c.Invalidate("k")
	close(release)
	if v := <-done; v != 0 {
		t.Fatalf("the load in flight answered %d, want the value it read (0)", v)
	}
	if v := get(t, c, "k"); v != 1 {
		t.Fatalf("after the invalidation Get = %d, want 1 (the stale load was cached)", v)
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestExpireWithin(t *testing.T) {
	clk := newClock()
	var loads atomic.Int64
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		return int(loads.Add(1)), clk.now().Add(time.Hour), nil
	}, Options{Now: clk.now, StaleIfError: time.Hour})
	get(t, c, "a")
	c.ExpireWithin(time.Second)
	clk.add(500 * time.Millisecond)
	if v := get(t, c, "a"); v != 1 {
		t.Fatalf("within the shortened freshness Get = %d, want the cached 1", v)
	}
	clk.add(600 * time.Millisecond)
	if v := get(t, c, "a"); v != 2 {
		t.Fatalf("past the shortened freshness Get = %d, want a reload (2)", v)
	}
	c.ExpireWithin(2 * time.Hour) // longer than what is left: no change
	clk.add(2 * time.Minute)
	if v := get(t, c, "a"); v != 2 {
		t.Fatalf("ExpireWithin lengthened nothing, Get = %d, want 2", v)
	}
}

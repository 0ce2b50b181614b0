package flightcache

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
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

// InvalidateIf forgets only the value the caller found stale: one loaded
// since is kept, and so is a remembered failure.
func TestInvalidateIfKeepsANewerValue(t *testing.T) {
	clk := newClock()
	var loads atomic.Int64
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		return int(loads.Add(1)), clk.now().Add(time.Hour), nil
	}, Options{Now: clk.now})
	is := func(v int) func(int) bool { return func(got int) bool { return got == v } }
	if c.InvalidateIf("k", is(1)) {
		t.Fatal("InvalidateIf forgot a key that was never cached")
	}
	get(t, c, "k")
	if c.InvalidateIf("k", is(2)) {
		t.Fatal("InvalidateIf forgot a value its test said is current")
	}
	if v := get(t, c, "k"); v != 1 {
		t.Fatalf("Get = %d after a refused InvalidateIf, want the cached 1", v)
	}
	if !c.InvalidateIf("k", is(1)) {
		t.Fatal("InvalidateIf kept the stale value")
	}
	if v := get(t, c, "k"); v != 2 {
		t.Fatalf("Get = %d after InvalidateIf, want a reload (2)", v)
	}
	if c.InvalidateIf("k", is(1)) {
		t.Fatal("a second InvalidateIf of the old value forgot the new one")
	}
	if v := get(t, c, "k"); v != 2 {
		t.Fatalf("Get = %d, want the value loaded since (2)", v)
	}
}

// Invalidating one key leaves the loads of the others under way alone,
// in its shard too (found by a review: a shard-wide count of
// invalidations threw them away, and each cost a second load).
func TestInvalidateSparesOtherKeysLoads(t *testing.T) {
	clk := newClock()
	started, release := make(chan struct{}), make(chan struct{})
	var loads atomic.Int64
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		if key == "b" && loads.Add(1) == 1 {
			close(started)
			<-release
		}
		return 1, clk.now().Add(time.Hour), nil
	}, Options{Now: clk.now})
	other := ""
	for i := 0; other == ""; i++ { // a key in b's shard
		if k := "a" + strconv.Itoa(i); c.shardString(k) == c.shardString("b") {
			other = k
		}
	}
	done := make(chan struct{})
	go func() { get(t, c, "b"); close(done) }()
	<-started
	c.Invalidate(other)
	c.InvalidateIf(other, func(int) bool { return true })
	close(release)
	<-done
	get(t, c, "b")
	if n := loads.Load(); n != 1 {
		t.Errorf("b loaded %d times, want 1: its load was not cached after %s was invalidated", n, other)
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

// An entry holding a pointer is one 24-byte allocation: the credential and
// token caches keep one per access key.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry[*int]{}); n != 24 {
		t.Errorf("entry[*int] is %d bytes, want 24", n)
	}
}

// A remembered failure answers its error until NegativeTTL, is never served
// stale, and leaves nothing behind once replaced, invalidated or swept.
func TestRememberedFailures(t *testing.T) {
	clk := newClock()
	errUnknown, errDown := errors.New("unknown"), errors.New("down")
	var fail atomic.Pointer[error]
	var loads atomic.Int64
	c := New(func(_ context.Context, key string, _ int) (int, time.Time, error) {
		loads.Add(1)
		if e := fail.Load(); e != nil {
			return 0, time.Time{}, *e
		}
		return 7, clk.now().Add(time.Minute), nil
	}, Options{Now: clk.now, NegativeTTL: time.Minute, StaleIfError: time.Hour,
		IsNegative: func(err error) bool { return errors.Is(err, errUnknown) }})
	ctx := context.Background()
	fail.Store(&errUnknown)
	for range 2 {
		if _, err := c.Get(ctx, []byte("k"), 0); err != errUnknown {
			t.Fatalf("Get = %v, want the remembered %v", err, errUnknown)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads, want 1 (the failure remembered)", n)
	}
	// Replaced by a value, which a later outage serves stale.
	fail.Store(nil)
	clk.add(2 * time.Minute)
	if v := get(t, c, "k"); v != 7 {
		t.Fatalf("Get = %d, want 7", v)
	}
	s := c.shard([]byte("k"))
	if len(s.failures) != 0 {
		t.Errorf("%d failures kept after the value replaced it", len(s.failures))
	}
	clk.add(2 * time.Minute)
	fail.Store(&errDown)
	if v, err := c.Get(ctx, []byte("k"), 0); v != 7 || err != nil {
		t.Errorf("during an outage Get = %d, %v; want 7 served stale", v, err)
	}
	// A failure is never served stale, and Invalidate forgets it.
	fail.Store(&errUnknown)
	c.Invalidate("k")
	if _, err := c.Get(ctx, []byte("k"), 0); err != errUnknown {
		t.Fatalf("Get = %v, want %v", err, errUnknown)
	}
	clk.add(2 * time.Minute)
	fail.Store(&errDown)
	if _, err := c.Get(ctx, []byte("k"), 0); err != errDown {
		t.Errorf("Get = %v, want %v (a failure is not served stale)", err, errDown)
	}
	c.Invalidate("k")
	if len(s.entries) != 0 || len(s.failures) != 0 {
		t.Errorf("after Invalidate: %d entries, %d failures", len(s.entries), len(s.failures))
	}
}

// Deadlines far in the future (or the past) saturate instead of wrapping
// around, and the stale window added to one does too.
func TestFarDeadlines(t *testing.T) {
	clk := newClock()
	var loads atomic.Int64
	until := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		loads.Add(1)
		if key == "past" {
			return 0, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), nil
		}
		return 0, until, nil
	}, Options{Now: clk.now, StaleIfError: time.Hour})
	get(t, c, "future")
	get(t, c, "past")
	clk.add(100 * 365 * 24 * time.Hour)
	get(t, c, "future")
	get(t, c, "past")
	if n := loads.Load(); n != 3 {
		t.Errorf("%d loads, want 3 (the far future cached, the far past not)", n)
	}
}

// A deadline without a monotonic clock reading (a token's expiry from
// Keystone) is kept as what it had left when it was stored, and one from
// now().Add(ttl) too, whatever the clock: both expire on time.
func TestDeadlinesOfRealClock(t *testing.T) {
	now := time.Now()
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		if key == "wall" {
			return 0, now.Add(time.Hour).Round(0), nil // no monotonic reading
		}
		return 0, now.Add(time.Hour), nil
	}, Options{Now: func() time.Time { return now }})
	for _, key := range []string{"wall", "mono"} {
		get(t, c, key)
		s := c.shard([]byte(key))
		e := s.entries[key]
		if want := c.since(now) + int64(time.Hour); e.fresh < want-int64(time.Millisecond) || e.fresh > want+int64(time.Millisecond) {
			t.Errorf("%s: fresh until %d, want %d", key, e.fresh, want)
		}
	}
}

// GetString and Get find the same entries, a GetString miss keeps the
// caller's string as the key, and neither allocates on a hit.
func TestGetStringSharesKey(t *testing.T) {
	clk := newClock()
	var loads atomic.Int64
	var loadedKey string
	c := New(func(_ context.Context, key string, _ int) (int, time.Time, error) {
		loads.Add(1)
		loadedKey = key
		return len(key), clk.now().Add(time.Hour), nil
	}, Options{Now: clk.now})
	ctx := context.Background()
	key := "AKIAEXAMPLEKEY0001"
	if v, err := c.GetString(ctx, key, 0); err != nil || v != len(key) {
		t.Fatalf("GetString = %d, %v", v, err)
	}
	if unsafe.StringData(loadedKey) != unsafe.StringData(key) {
		t.Error("a GetString miss copied the key")
	}
	if v := get(t, c, key); v != len(key) || loads.Load() != 1 {
		t.Errorf("Get after GetString = %d after %d loads, want a hit", v, loads.Load())
	}
	if _, err := c.GetString(ctx, "other", 0); err != nil || loads.Load() != 2 {
		t.Errorf("another key: %v after %d loads, want 2", err, loads.Load())
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = c.GetString(ctx, key, 0) }); n != 0 {
		t.Errorf("GetString hit: %v allocations, want 0", n)
	}
}

// A load that panics (a bug) ends its flight: the caller gets the panic,
// and later Gets of the key load again instead of waiting for ever (the
// proxy's requests have no deadline; shutdown would never drain).
func TestPanickingLoadEndsItsFlight(t *testing.T) {
	var loads atomic.Int64
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		if loads.Add(1) == 1 {
			panic("a bug")
		}
		return 7, time.Now().Add(time.Hour), nil
	}, Options{LoadTimeout: 100 * time.Millisecond})
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the first Get did not panic")
			}
		}()
		_, _ = c.Get(context.Background(), []byte("k"), 0)
	}()
	done := make(chan int, 1)
	go func() {
		v, _ := c.Get(context.Background(), []byte("k"), 0)
		done <- v
	}()
	select {
	case v := <-done:
		if v != 7 {
			t.Errorf("second Get = %d; want 7 from a new load", v)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the second Get still waits on the panicked load")
	}
}

// A Get that starts after Invalidate is not answered by a load that began
// before it: that load may have read what the invalidation says changed.
func TestGetAfterInvalidateLoadsAgain(t *testing.T) {
	var version, loads atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		v := int(version.Load())
		if loads.Add(1) == 1 {
			close(started)
			<-release
		}
		return v, time.Now().Add(time.Hour), nil
	}, Options{})
	first := make(chan int, 1)
	go func() { v, _ := c.Get(context.Background(), []byte("k"), 0); first <- v }()
	<-started
	version.Store(1) // the credential changed (disabled, rotated)
	c.Invalidate("k")
	after := make(chan int, 1)
	go func() { v, _ := c.Get(context.Background(), []byte("k"), 0); after <- v }()
	select {
	case v := <-after:
		if v != 1 {
			t.Errorf("Get after Invalidate = %d; want 1, the value after the change", v)
		}
		close(release)
	case <-time.After(time.Second):
		close(release)
		t.Errorf("Get after Invalidate waits for the load that began before it (answered %d)", <-after)
	}
	if v := <-first; v != 0 {
		t.Errorf("the Get before Invalidate = %d; want 0, its own load's", v)
	}
	if v, _ := c.Get(context.Background(), []byte("k"), 0); v != 1 {
		t.Errorf("cached after both loads: %d; want 1 (the older load must not be cached)", v)
	}
}

var errDown = errors.New("dependency down")

// Once a renewal failed, the old entry is served without loading for
// RetryAfter: callers do not each wait out the failing dependency (found
// by a review: with Redis or Keystone stalled, every request past an
// entry's freshness waited a full timeout before the stale value).
func TestRetryAfterServesOldWithoutLoading(t *testing.T) {
	clk := newClock()
	var loads atomic.Int64
	var down atomic.Bool
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		n := int(loads.Add(1))
		if down.Load() {
			return 0, time.Time{}, errDown
		}
		return n, clk.now().Add(time.Minute), nil
	}, Options{Now: clk.now, StaleIfError: time.Hour, RetryAfter: time.Second})
	get(t, c, "k")
	down.Store(true)
	clk.add(2 * time.Minute)
	for range 5 {
		if v := get(t, c, "k"); v != 1 {
			t.Fatalf("Get = %d, want the old 1", v)
		}
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: one that failed, then none for RetryAfter", n)
	}
	clk.add(1100 * time.Millisecond)
	get(t, c, "k")
	if n := loads.Load(); n != 3 {
		t.Fatalf("%d loads after RetryAfter, want 3", n)
	}
	down.Store(false)
	clk.add(1100 * time.Millisecond)
	if v := get(t, c, "k"); v != 4 {
		t.Fatalf("Get = %d once the dependency is back, want 4", v)
	}
	// Never past what may be served stale.
	down.Store(true)
	clk.add(time.Minute + time.Hour - 500*time.Millisecond) // 0.5 s of StaleIfError left
	get(t, c, "k")
	clk.add(600 * time.Millisecond)
	if _, err := c.Get(context.Background(), []byte("k"), 0); !errors.Is(err, errDown) {
		t.Fatalf("past StaleIfError: %v, want the load's error", err)
	}
}

// With RefreshAhead an entry past its freshness is served at once while
// one load renews it in the background.
func TestRefreshAheadServesWhileLoading(t *testing.T) {
	clk := newClock()
	var loads atomic.Int64
	release := make(chan struct{})
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		n := int(loads.Add(1))
		if n > 1 {
			<-release
		}
		return n, clk.now().Add(time.Minute), nil
	}, Options{Now: clk.now, StaleIfError: time.Hour, RefreshAhead: true})
	get(t, c, "k")
	clk.add(2 * time.Minute)
	for range 5 {
		if v := get(t, c, "k"); v != 1 {
			t.Fatalf("Get = %d while the renewal runs, want the old 1", v)
		}
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for get(t, c, "k") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the background renewal was never stored")
		}
		time.Sleep(time.Millisecond)
	}
	if n := loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: one renewal however many Gets", n)
	}
	// Past StaleIfError it is an ordinary miss, which waits.
	clk.add(2 * time.Hour)
	if v := get(t, c, "k"); v != 3 {
		t.Fatalf("Get = %d past StaleIfError, want a load (3)", v)
	}
}

// StaleLimit bounds stale serving by the value: a token is not served
// once it expired, whatever StaleIfError allows (found by a review: a
// token whose lifetime was within the renewal margin was served past its
// expiry while Keystone was down).
func TestStaleLimit(t *testing.T) {
	clk := newClock()
	expires := clk.now().Add(90 * time.Second)
	var down atomic.Bool
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		if down.Load() {
			return 0, time.Time{}, errDown
		}
		return 1, clk.now().Add(time.Minute), nil
	}, Options{Now: clk.now, StaleIfError: time.Hour, StaleLimit: func(any) time.Time { return expires }})
	get(t, c, "k")
	down.Store(true)
	clk.add(80 * time.Second) // stale, before the limit
	if v := get(t, c, "k"); v != 1 {
		t.Fatalf("Get = %d, want the stale 1", v)
	}
	clk.add(20 * time.Second) // past the limit
	if _, err := c.Get(context.Background(), []byte("k"), 0); !errors.Is(err, errDown) {
		t.Fatalf("past StaleLimit: %v, want the load's error", err)
	}
}

// A key with nothing to serve has its failure remembered for RetryAfter:
// callers get it at once rather than each asking the failing dependency.
func TestRetryAfterRemembersAColdFailure(t *testing.T) {
	clk := newClock()
	var loads atomic.Int64
	var down atomic.Bool
	down.Store(true)
	c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
		loads.Add(1)
		if down.Load() {
			return 0, time.Time{}, errDown
		}
		return 7, clk.now().Add(time.Minute), nil
	}, Options{Now: clk.now, RetryAfter: time.Second})
	for range 5 {
		if _, err := c.Get(context.Background(), []byte("k"), 0); !errors.Is(err, errDown) {
			t.Fatalf("Get = %v; want the failure", err)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads within RetryAfter of a failure; want 1", n)
	}
	down.Store(false)
	clk.add(1100 * time.Millisecond)
	if v := get(t, c, "k"); v != 7 {
		t.Fatalf("Get = %d after RetryAfter; want a load (7)", v)
	}
}

// MaxEntries holds for the cache, not per shard rounded down or up: each
// shard's share used to be MaxEntries/64 (at least 1), so 100 cached at
// most 64 keys and 10 cached 64 (found by a review).
func TestMaxEntriesIsTheCachesBound(t *testing.T) {
	for _, limit := range []int{100, 1000, 6400} {
		clk := newClock()
		c := New(func(ctx context.Context, key string, _ int) (int, time.Time, error) {
			return 1, clk.now().Add(time.Hour), nil
		}, Options{Now: clk.now, MaxEntries: limit})
		for i := range 50 * limit { // enough to fill every shard's share
			get(t, c, strconv.Itoa(i))
		}
		if n := c.Len(); n != limit {
			t.Errorf("MaxEntries %d: %d keys cached after %d distinct loads; want %d", limit, n, 50*limit, limit)
		}
	}
}

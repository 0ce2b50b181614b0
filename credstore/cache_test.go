package credstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/internal/flightcache"
)

type countingBackend struct {
	mu      sync.Mutex
	records map[string]Record
	err     error
	delay   time.Duration
	calls   atomic.Int64
}

func (b *countingBackend) Get(_ context.Context, key string) (Record, error) {
	b.calls.Add(1)
	time.Sleep(b.delay)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return Record{}, b.err
	}
	r, ok := b.records[key]
	if !ok {
		return Record{}, ErrNotFound
	}
	return r, nil
}

func (b *countingBackend) set(err error) { b.mu.Lock(); b.err = err; b.mu.Unlock() }

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func newTestCache(b Backend, c *clock, outcomes *[flightcache.NumOutcomes]atomic.Int64) *Cache[string] {
	return NewCache(b, func(r Record) string { return r.Secret }, CacheOptions{
		TTL: time.Minute, NegativeTTL: 10 * time.Second, StaleIfError: 5 * time.Minute, MaxEntries: 1000,
		Now:     c.now,
		Observe: func(o Outcome) { outcomes[o].Add(1) },
	})
}

func TestCacheTTLAndNegative(t *testing.T) {
	b := &countingBackend{records: map[string]Record{"AK": {Secret: "S"}}}
	var c clock
	var outcomes [flightcache.NumOutcomes]atomic.Int64
	cache := newTestCache(b, &c, &outcomes)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if v, err := cache.Get(ctx, []byte("AK")); err != nil || v != "S" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("backend read %d times; want 1", n)
	}
	c.advance(61 * time.Second)
	cache.Get(ctx, []byte("AK"))
	if n := b.calls.Load(); n != 2 {
		t.Errorf("after TTL: backend read %d times; want 2", n)
	}
	for i := 0; i < 3; i++ {
		if _, err := cache.Get(ctx, []byte("unknown")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(unknown) = %v", err)
		}
	}
	if n := b.calls.Load(); n != 3 {
		t.Errorf("unknown key read %d times; want 1 (negative cache)", n-2)
	}
	c.advance(11 * time.Second)
	cache.Get(ctx, []byte("unknown"))
	if n := b.calls.Load(); n != 4 {
		t.Errorf("after negative TTL: %d reads; want 4", n)
	}
	if outcomes[flightcache.Hit].Load() != 2 || outcomes[flightcache.NegativeHit].Load() != 2 || outcomes[flightcache.Miss].Load() != 4 {
		t.Errorf("outcomes hit=%d neg=%d miss=%d", outcomes[flightcache.Hit].Load(), outcomes[flightcache.NegativeHit].Load(), outcomes[flightcache.Miss].Load())
	}
}

func TestCacheOneLoadPerKeyUnderConcurrency(t *testing.T) {
	b := &countingBackend{records: map[string]Record{"AK": {Secret: "S"}}, delay: 50 * time.Millisecond}
	var c clock
	var outcomes [flightcache.NumOutcomes]atomic.Int64
	cache := newTestCache(b, &c, &outcomes)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := cache.Get(context.Background(), []byte("AK")); err != nil || v != "S" {
				t.Errorf("Get = %q, %v", v, err)
			}
		}()
	}
	wg.Wait()
	if n := b.calls.Load(); n != 1 {
		t.Errorf("100 concurrent misses caused %d backend reads; want 1", n)
	}
}

func TestCacheStaleIfError(t *testing.T) {
	b := &countingBackend{records: map[string]Record{"AK": {Secret: "S"}}}
	var c clock
	var outcomes [flightcache.NumOutcomes]atomic.Int64
	cache := newTestCache(b, &c, &outcomes)
	ctx := context.Background()
	cache.Get(ctx, []byte("AK"))
	b.set(fmt.Errorf("%w: connection refused", ErrUnavailable))
	c.advance(2 * time.Minute) // past TTL, within TTL+StaleIfError
	if v, err := cache.Get(ctx, []byte("AK")); err != nil || v != "S" {
		t.Errorf("stale Get = %q, %v; want the stale record", v, err)
	}
	if outcomes[flightcache.Stale].Load() != 1 {
		t.Errorf("stale outcomes = %d", outcomes[flightcache.Stale].Load())
	}
	// For a second the failure stands: the store is not asked again for
	// each request, each waiting out the same failure (found by a review).
	calls := b.calls.Load()
	for range 3 {
		if v, err := cache.Get(ctx, []byte("AK")); err != nil || v != "S" {
			t.Errorf("Get after the failure = %q, %v", v, err)
		}
	}
	if n := b.calls.Load() - calls; n != 0 {
		t.Errorf("%d reads of a failing store within a second of its failure; want 0", n)
	}
	c.advance(1100 * time.Millisecond)
	cache.Get(ctx, []byte("AK"))
	if n := b.calls.Load() - calls; n != 1 {
		t.Errorf("%d reads a second after the failure; want 1", n)
	}
	if _, err := cache.Get(ctx, []byte("never-seen")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unknown key while down = %v; want ErrUnavailable (503), not not-found", err)
	}
	c.advance(10 * time.Minute) // beyond the stale allowance
	if _, err := cache.Get(ctx, []byte("AK")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("too stale = %v; want ErrUnavailable", err)
	}
	b.set(nil)
	// With nothing left to serve, the failure was the answer for a second.
	if _, err := cache.Get(ctx, []byte("AK")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("within a second of the failure = %v; want it remembered", err)
	}
	c.advance(1100 * time.Millisecond)
	if v, err := cache.Get(ctx, []byte("AK")); err != nil || v != "S" {
		t.Errorf("after recovery = %q, %v", v, err)
	}
}

func TestCacheDeletedKeyIsNotServedStale(t *testing.T) {
	b := &countingBackend{records: map[string]Record{"AK": {Secret: "S"}}}
	var c clock
	var outcomes [flightcache.NumOutcomes]atomic.Int64
	cache := newTestCache(b, &c, &outcomes)
	cache.Get(context.Background(), []byte("AK"))
	b.mu.Lock()
	delete(b.records, "AK")
	b.mu.Unlock()
	c.advance(2 * time.Minute)
	if _, err := cache.Get(context.Background(), []byte("AK")); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted key = %v; want ErrNotFound", err)
	}
}

func TestCacheBounded(t *testing.T) {
	b := &countingBackend{records: map[string]Record{}}
	var c clock
	var outcomes [flightcache.NumOutcomes]atomic.Int64
	cache := NewCache(b, func(r Record) string { return r.Secret }, CacheOptions{TTL: time.Minute, NegativeTTL: time.Minute, MaxEntries: 640, Now: c.now,
		Observe: func(o Outcome) { outcomes[o].Add(1) }})
	for i := 0; i < 5000; i++ {
		cache.Get(context.Background(), []byte(fmt.Sprint("random-", i)))
	}
	if n := cache.Len(); n > 640 {
		t.Errorf("cache holds %d entries; bound is 640", n)
	}
}

func TestCacheInvalidate(t *testing.T) {
	b := &countingBackend{records: map[string]Record{"AK": {Secret: "S"}}}
	var c clock
	var outcomes [flightcache.NumOutcomes]atomic.Int64
	cache := newTestCache(b, &c, &outcomes)
	cache.Get(context.Background(), []byte("AK"))
	b.mu.Lock()
	b.records["AK"] = Record{Secret: "S2"}
	b.mu.Unlock()
	cache.Invalidate("AK")
	if v, _ := cache.Get(context.Background(), []byte("AK")); v != "S2" {
		t.Errorf("after Invalidate = %q; want S2", v)
	}
}

// A flood of random unknown keys must not grow the cache beyond what is
// still live: expired negative entries are swept as the map grows.
func TestCacheSweepsExpiredEntries(t *testing.T) {
	b := &countingBackend{records: map[string]Record{}}
	var c clock
	cache := NewCache(b, func(r Record) string { return r.Secret }, CacheOptions{TTL: time.Minute, NegativeTTL: time.Second, MaxEntries: 1 << 20, Now: c.now})
	for i := 0; i < 100_000; i++ {
		c.advance(100 * time.Microsecond) // 10,000 keys a second: about 10,000 live at a time
		cache.Get(context.Background(), []byte(fmt.Sprint("random-", i)))
	}
	if n := cache.Len(); n > 3*10_000 {
		t.Errorf("cache holds %d entries after 100,000 unknown keys with ~10,000 live; expired ones are not swept", n)
	}
}

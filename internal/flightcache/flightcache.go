// Package flightcache is a sharded in-memory cache with per-entry expiry,
// remembered failures, stale-if-error and one load per key at a time. The
// credential cache and the Keystone token cache are both built on it.
package flightcache

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Outcome says how one Get was answered, for metrics.
type Outcome uint8

const (
	Hit         Outcome = iota // fresh entry
	NegativeHit                // a remembered failure
	Miss                       // loaded
	Stale                      // past its freshness, an entry was served: the load failed, or runs in the background (RefreshAhead)
	NumOutcomes
)

func (o Outcome) String() string {
	return [...]string{"hit", "negative_hit", "miss", "stale"}[o]
}

// Loader loads the value for key, given the caller's argument, and says
// until when it is fresh.
type Loader[A, V any] func(ctx context.Context, key string, arg A) (value V, freshUntil time.Time, err error)

// Options configure a Cache.
type Options struct {
	// IsNegative picks load errors to remember for NegativeTTL (such as
	// "unknown key"); other errors are not cached.
	IsNegative  func(error) bool
	NegativeTTL time.Duration
	// StaleIfError serves an entry this long past its freshness when a
	// load fails with an error IsNegative does not pick; 0 disables.
	StaleIfError time.Duration
	// StaleLimit, if set, bounds that for each value: it is not served
	// after StaleLimit(value) (a token, after it expires).
	StaleLimit func(value any) time.Time
	// RetryAfter: once such a load failed, the entry it could not renew is
	// served as fresh for this long (within StaleIfError), so that callers
	// do not each wait out a failing dependency, and it is not asked again
	// for every request; a key with nothing to serve has the failure
	// remembered as long. 0: every Get past freshness loads.
	RetryAfter time.Duration
	// RefreshAhead serves an entry past its freshness but within
	// StaleIfError at once, and loads it again in the background, one load
	// per key: for values still good then (a token renewed before it
	// expires), so that no caller waits for its renewal.
	RefreshAhead bool
	// MaxEntries bounds the cached keys (at least one per shard, 64); past
	// a shard's share, an arbitrary one of its keys is evicted.
	MaxEntries  int
	LoadTimeout time.Duration // per load, detached from the caller
	Now         func() time.Time
	Observe     func(Outcome) // called once per Get; may be nil
	// WaitError is returned to a caller whose context ends while it waits
	// for another caller's load.
	WaitError error
}

// Cache maps keys to values of type V loaded with an argument of type A.
type Cache[A, V any] struct {
	load   Loader[A, V]
	opts   Options
	seed   maphash.Seed
	epoch  time.Time // origin of the entries' times (see entry)
	shards [64]shard[V]
}

type shard[V any] struct {
	mu      sync.RWMutex
	entries map[string]*entry[V]
	// failures holds the error of every remembered failure (an entry
	// marked failed), apart so that entries need no field for it.
	failures map[string]error
	inflight map[string]*flight[V]
	sweepAt  int // sweep expired entries when the map reaches this size
	limit    int // this shard's share of MaxEntries
}

// minSweep is the shard size below which expired entries are left alone.
const minSweep = 64

// entry is one cached key. Memory per entry matters (the credential and
// token caches hold one per access key, 100,000 and more): with V a
// pointer, an entry is 24 bytes, one allocation of the smallest size class
// that fits, where time.Time fields and an error made it 80 (and a pointer
// to the error 32: a remembered failure's error is in shard.failures).
//
// Times are nanoseconds since the cache's epoch, on the clock of
// Options.Now: since(now) for a reading of it, and a deadline t the loader
// gives is placed at since(now) + t.Sub(now) when it is stored. t.Sub(now)
// measures with the monotonic clock when t has a reading of it (a TTL:
// now().Add(ttl)), and with the wall clock otherwise (a token's expiry from
// Keystone): what t's comparisons with now measured. What a deadline has
// left is thus fixed when it is stored; a later step of the wall clock no
// longer moves it (time.Now's monotonic reading does not jump).
type entry[V any] struct {
	value   V
	fresh   int64 // served without loading until
	staleBy int64 // served when a load fails until; failed for a failure
}

// failed marks a remembered failure: it is never served stale.
const failed = math.MinInt64

func (e *entry[V]) failed() bool { return e.staleBy == failed }

type flight[V any] struct {
	done  chan struct{}
	value V
	err   error
}

// New returns a cache that loads with load.
func New[A, V any](load Loader[A, V], opts Options) *Cache[A, V] {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 1 << 20
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 5 * time.Second
	}
	if opts.IsNegative == nil {
		opts.IsNegative = func(error) bool { return false }
	}
	if opts.WaitError == nil {
		opts.WaitError = errors.New("flightcache: gave up waiting for a load")
	}
	c := &Cache[A, V]{load: load, opts: opts, seed: maphash.MakeSeed(), epoch: opts.Now()}
	for i := range c.shards {
		// The shares add up to MaxEntries: each shard's quotient, and one
		// more for as many as the remainder (a quotient of at least 1 for
		// every shard made 64 of any smaller bound; a review).
		c.shards[i].limit = max(1, opts.MaxEntries/len(c.shards))
		if opts.MaxEntries >= len(c.shards) && i < opts.MaxEntries%len(c.shards) {
			c.shards[i].limit++
		}
		c.shards[i].entries = map[string]*entry[V]{}
		c.shards[i].failures = map[string]error{}
		c.shards[i].inflight = map[string]*flight[V]{}
	}
	return c
}

func (c *Cache[A, V]) shard(key []byte) *shard[V] {
	return &c.shards[maphash.Bytes(c.seed, key)%uint64(len(c.shards))]
}

// shardString is shard for a string key (maphash hashes equal bytes and
// strings alike).
func (c *Cache[A, V]) shardString(key string) *shard[V] {
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// since is t on the entries' time axis (see entry).
func (c *Cache[A, V]) since(t time.Time) int64 { return int64(t.Sub(c.epoch)) }

// deadline places t on the entries' time axis from now, which is at
// nowAt on it (see entry).
func deadline(nowAt int64, now, t time.Time) int64 {
	d := int64(t.Sub(now)) // saturated at ±292 years
	if d > 0 && nowAt > math.MaxInt64-d {
		return math.MaxInt64
	}
	if d < 0 && nowAt < math.MinInt64-d {
		return math.MinInt64
	}
	return nowAt + d
}

// later is the saturated sum a + d.
func later(a int64, d time.Duration) int64 {
	if d > 0 && a > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return a + int64(d)
}

// Get returns the value for key, loading it with arg if it is not fresh. A
// fresh hit takes a read lock and allocates nothing.
func (c *Cache[A, V]) Get(ctx context.Context, key []byte, arg A) (V, error) {
	s := c.shard(key)
	now := c.opts.Now()
	nowAt := c.since(now)
	s.mu.RLock()
	e := s.entries[string(key)]
	if e != nil && nowAt < e.fresh {
		var failure error
		if e.failed() {
			failure = s.failures[string(key)]
		}
		s.mu.RUnlock()
		return c.hit(e, failure)
	}
	s.mu.RUnlock()
	if c.servableAhead(e, nowAt) {
		return c.refresh(s, string(key), arg, e, now, nowAt)
	}
	return c.miss(ctx, s, string(key), arg, e, now, nowAt)
}

// GetString is Get for a key the caller holds as a string already: a miss
// keeps key itself rather than a copy, so that two caches of the same keys
// can share one (the token cache keys by the credential cache's copy of an
// access key: 32 bytes less per key at 100,000 keys).
func (c *Cache[A, V]) GetString(ctx context.Context, key string, arg A) (V, error) {
	s := c.shardString(key)
	now := c.opts.Now()
	nowAt := c.since(now)
	s.mu.RLock()
	e := s.entries[key]
	if e != nil && nowAt < e.fresh {
		var failure error
		if e.failed() {
			failure = s.failures[key]
		}
		s.mu.RUnlock()
		return c.hit(e, failure)
	}
	s.mu.RUnlock()
	if c.servableAhead(e, nowAt) {
		return c.refresh(s, key, arg, e, now, nowAt)
	}
	return c.miss(ctx, s, key, arg, e, now, nowAt)
}

// Peek returns key's value if it is cached, fresh and not a failure,
// without loading or waiting: for callers that must not block. It counts
// nothing: a caller that goes on to Get after a miss would count twice.
func (c *Cache[A, V]) Peek(key []byte) (V, bool) {
	s := c.shard(key)
	s.mu.RLock()
	e := s.entries[string(key)] // no allocation: the compiler looks up in place
	s.mu.RUnlock()
	return c.peeked(e)
}

// PeekString is Peek for a key held as a string.
func (c *Cache[A, V]) PeekString(key string) (V, bool) {
	s := c.shardString(key)
	s.mu.RLock()
	e := s.entries[key]
	s.mu.RUnlock()
	return c.peeked(e)
}

// CountHit counts a hit, for a caller whose Peek served a request.
func (c *Cache[A, V]) CountHit() { c.observe(Hit) }

func (c *Cache[A, V]) peeked(e *entry[V]) (V, bool) {
	if e == nil || c.since(c.opts.Now()) >= e.fresh || e.failed() {
		var zero V
		return zero, false
	}
	return e.value, true
}

// hit serves a fresh entry, whose failure (if it is one) is failure.
func (c *Cache[A, V]) hit(e *entry[V], failure error) (V, error) {
	if e.failed() {
		c.observe(NegativeHit)
		return e.value, failure
	}
	c.observe(Hit)
	return e.value, nil
}

func (c *Cache[A, V]) miss(ctx context.Context, s *shard[V], key string, arg A, old *entry[V], now time.Time, nowAt int64) (V, error) {
	f, waiting := s.join(key)
	if waiting {
		select {
		case <-f.done:
			return c.answer(f, old, nowAt)
		case <-ctx.Done():
			var zero V
			return zero, c.opts.WaitError
		}
	}
	c.fly(ctx, s, key, arg, f, old, now, nowAt)
	return c.answer(f, old, nowAt)
}

// servableAhead reports an entry RefreshAhead serves while it is renewed.
func (c *Cache[A, V]) servableAhead(e *entry[V], nowAt int64) bool {
	return c.opts.RefreshAhead && e != nil && !e.failed() && nowAt < e.staleBy
}

// refresh serves old, which is past its freshness, and loads key again in
// the background unless a load is under way.
func (c *Cache[A, V]) refresh(s *shard[V], key string, arg A, old *entry[V], now time.Time, nowAt int64) (V, error) {
	if f, waiting := s.join(key); !waiting {
		go func() {
			defer func() { _ = recover() }() // fly ended the flight; the caller got old
			// Not ctx, even detached: a request's context (fasthttp's
			// RequestCtx) is reused once it is answered, which is now.
			c.fly(context.Background(), s, key, arg, f, old, now, nowAt)
		}()
	}
	c.observe(Stale)
	return old.value, nil
}

// join returns key's flight under way (waiting), or a new one the caller
// must fly.
func (s *shard[V]) join(key string) (f *flight[V], waiting bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, waiting = s.inflight[key]
	if !waiting {
		f = &flight[V]{done: make(chan struct{})}
		s.inflight[key] = f
	}
	return f, waiting
}

// fly loads key for flight f and stores the result, unless key was
// invalidated since f started (Invalidate ends f's place in inflight);
// old is the entry the load renews, if any.
func (c *Cache[A, V]) fly(ctx context.Context, s *shard[V], key string, arg A, f *flight[V], old *entry[V], now time.Time, nowAt int64) {
	// A panicking load (a bug) must still end the flight: its waiters, and
	// every later Get of key, would wait on done for ever. The panic goes
	// on to the caller.
	finished := false
	defer func() {
		if !finished {
			f.err = errLoadPanicked
			s.mu.Lock()
			if s.inflight[key] == f {
				delete(s.inflight, key)
			}
			s.mu.Unlock()
			close(f.done)
		}
	}()
	// Detached from the caller: the result serves every waiter, so one
	// impatient client must not cancel it.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LoadTimeout)
	value, fresh, err := c.load(lctx, key, arg)
	cancel()
	var e *entry[V]
	switch {
	case err == nil:
		at := deadline(nowAt, now, fresh)
		staleBy := later(at, c.opts.StaleIfError)
		if c.opts.StaleLimit != nil {
			if limit := c.opts.StaleLimit(value); !limit.IsZero() {
				staleBy = min(staleBy, deadline(nowAt, now, limit))
			}
		}
		// Never failed, even for a deadline saturated in the far past.
		e = &entry[V]{value: value, fresh: at, staleBy: max(staleBy, failed+1)}
	case c.opts.IsNegative(err):
		e = &entry[V]{fresh: later(nowAt, c.opts.NegativeTTL), staleBy: failed}
	case c.opts.RetryAfter > 0 && (old == nil || old.failed() || nowAt >= old.staleBy):
		// Nothing to serve instead: the failure is the answer for a while,
		// not a new wait on the failing dependency for every request.
		e = &entry[V]{fresh: later(c.since(c.opts.Now()), c.opts.RetryAfter), staleBy: failed}
	}
	f.value, f.err = value, err

	s.mu.Lock()
	// Per key: a shard-wide count of invalidations also threw away other
	// keys' loads (found by a review).
	current := s.inflight[key] == f
	if e != nil && current {
		if _, present := s.entries[key]; !present {
			if len(s.entries) >= max(s.sweepAt, minSweep) {
				// Amortised O(1): the map doubles between sweeps. Without
				// this, expired entries (say, a flood of random unknown keys)
				// would only leave at MaxEntries.
				s.sweep(nowAt)
			}
			if len(s.entries) >= s.limit {
				for k := range s.entries { // map order is arbitrary enough
					s.delete(k)
					break
				}
			}
		}
		s.entries[key] = e
		if e.failed() {
			s.failures[key] = err
		} else if len(s.failures) > 0 {
			delete(s.failures, key)
		}
	} else if e == nil && c.opts.RetryAfter > 0 && old != nil && current && s.entries[key] == old {
		// The dependency failed: old is served, as fresh, for RetryAfter
		// (within what it may be served stale), instead of every caller
		// loading it again and waiting for the same failure.
		if endAt := c.since(c.opts.Now()); endAt < old.staleBy {
			retry := *old // a copy: readers use entries outside the lock
			retry.fresh = min(later(endAt, c.opts.RetryAfter), old.staleBy)
			s.entries[key] = &retry
		}
	}
	if current { // else Invalidate let a newer load start
		delete(s.inflight, key)
	}
	s.mu.Unlock()
	finished = true
	close(f.done)
}

var errLoadPanicked = errors.New("flightcache: the load panicked")

// sweep deletes entries that can no longer be served, fresh or stale; with
// the shard's lock held.
func (s *shard[V]) sweep(now int64) {
	for k, e := range s.entries {
		if (e.failed() && now >= e.fresh) || (!e.failed() && now >= e.staleBy) {
			s.delete(k)
		}
	}
	s.sweepAt = max(minSweep, 2*len(s.entries))
}

// delete forgets key's entry and failure; with the shard's lock held.
func (s *shard[V]) delete(key string) {
	delete(s.entries, key)
	delete(s.failures, key)
}

// answer serves a load's result, or the old entry while it may be served
// stale and the load failed for a reason worth riding out.
func (c *Cache[A, V]) answer(f *flight[V], old *entry[V], now int64) (V, error) {
	if f.err != nil && !c.opts.IsNegative(f.err) && old != nil && !old.failed() && now < old.staleBy {
		c.observe(Stale)
		return old.value, nil
	}
	c.observe(Miss)
	return f.value, f.err
}

func (c *Cache[A, V]) observe(o Outcome) {
	if c.opts.Observe != nil {
		c.opts.Observe(o)
	}
}

// Invalidate forgets key, so the next Get loads it. A load already under
// way still answers the callers waiting for it but is not cached, and a
// Get after Invalidate does not join it: it may have read the old value.
func (c *Cache[A, V]) Invalidate(key string) {
	s := c.shard([]byte(key))
	s.mu.Lock()
	s.delete(key)
	delete(s.inflight, key)
	s.mu.Unlock()
}

// InvalidateIf forgets key as Invalidate does, but only if the value
// cached for it is one stale says is out of date: a value loaded since the
// caller saw the stale one is kept. It reports whether key was forgotten.
func (c *Cache[A, V]) InvalidateIf(key string, stale func(V) bool) bool {
	s := c.shard([]byte(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok || e.failed() || !stale(e.value) {
		return false
	}
	s.delete(key)
	delete(s.inflight, key)
	return true
}

// ExpireWithin shortens every entry's freshness to at most d from now, so
// that each is loaded again within d. Entries stay servable stale (on load
// errors) as before: this is for "the cache may be out of date", not for
// "this key changed".
func (c *Cache[A, V]) ExpireWithin(d time.Duration) {
	limit := later(c.since(c.opts.Now()), d)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.entries {
			if e.fresh > limit {
				short := *e // a copy: readers use entries outside the lock
				short.fresh = limit
				s.entries[k] = &short
			}
		}
		// Loads under way are not ended: they compute their freshness when they
		// finish (the credential cache reads its TTL then), and they must
		// still be cached, or a key being loaded at this moment would not
		// be kept at all (and could not be served stale later).
		s.mu.Unlock()
	}
}

// Len is the number of cached keys.
func (c *Cache[A, V]) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].entries)
		c.shards[i].mu.RUnlock()
	}
	return n
}

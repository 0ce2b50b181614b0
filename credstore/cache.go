package credstore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/ec2proxy/ec2proxy/internal/flightcache"
)

// Outcome says how the cache answered one lookup (hit, negative_hit, miss,
// stale), for metrics.
type Outcome = flightcache.Outcome

// CacheOptions configure a Cache.
type CacheOptions struct {
	TTL         time.Duration // how long a record is served without reading the backend
	NegativeTTL time.Duration // how long an unknown key is remembered as unknown
	// StaleIfError serves a record this long past its TTL while the
	// backend is unavailable; 0 disables.
	StaleIfError time.Duration
	MaxEntries   int           // bound on cached keys, known and unknown
	FetchTimeout time.Duration // per backend read
	Now          func() time.Time
	Observe      func(Outcome) // called once per Get; may be nil
}

// Cache keeps prepared credentials in memory in front of a Backend. V is
// what the consumer derives from a Record once (e.g. a pre-keyed HMAC), so
// that work is not repeated per request. Concurrent misses for one key cause
// one backend read; unknown keys are remembered for NegativeTTL.
type Cache[V any] struct {
	c   *flightcache.Cache[struct{}, V]
	ttl atomic.Int64 // time.Duration; SetTTL changes it
}

// NewCache wraps backend. prepare turns a record into the cached value;
// the record's AccessKey is the cache's own copy of the key it was looked up
// by (whatever the backend put there), so a value may keep it at no cost.
func NewCache[V any](backend Backend, prepare func(Record) V, opts CacheOptions) *Cache[V] {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	cache := &Cache[V]{}
	cache.ttl.Store(int64(opts.TTL))
	load := func(ctx context.Context, key string, _ struct{}) (V, time.Time, error) {
		// The shorter of the TTLs at the start and at the end: a record
		// read while changes could not be heard (unsubscribed_ttl) stays
		// short-lived if the subscription is back by the time the read
		// ends, since a change made meanwhile was announced to no one
		// (found by a review: it was kept for cache_ttl).
		ttl := cache.ttl.Load()
		rec, err := backend.Get(ctx, key)
		if err != nil {
			var zero V
			return zero, time.Time{}, err
		}
		rec.AccessKey = key
		return prepare(rec), now().Add(time.Duration(min(ttl, cache.ttl.Load()))), nil
	}
	cache.c = flightcache.New(load, flightcache.Options{
		IsNegative:   func(err error) bool { return errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) },
		NegativeTTL:  opts.NegativeTTL,
		StaleIfError: opts.StaleIfError,
		RetryAfter:   retryAfter,
		MaxEntries:   opts.MaxEntries,
		LoadTimeout:  opts.FetchTimeout,
		Now:          now,
		Observe:      opts.Observe,
		WaitError:    ErrUnavailable,
	})
	return cache
}

// Get returns the prepared value for accessKey, ErrNotFound, ErrCorrupt, or an error
// wrapping ErrUnavailable. A fresh hit allocates nothing.
func (c *Cache[V]) Get(ctx context.Context, accessKey []byte) (V, error) {
	return c.c.Get(ctx, accessKey, struct{}{})
}

// Peek returns accessKey's prepared value only if it is cached and fresh;
// it never reads the backend.
// It counts nothing (see CountHit).
func (c *Cache[V]) Peek(accessKey []byte) (V, bool) { return c.c.Peek(accessKey) }

// CountHit counts a cache hit, once a value from Peek has served.
func (c *Cache[V]) CountHit() { c.c.CountHit() }

// Invalidate forgets accessKey, so the next Get reads the backend.
func (c *Cache[V]) Invalidate(accessKey string) { c.c.Invalidate(accessKey) }

// SetTTL changes how long records loaded from now on stay fresh, and
// shortens the freshness of those already cached to at most ttl. Replicas
// use a short TTL while they cannot hear about changes (see Redis.Watch).
func (c *Cache[V]) SetTTL(ttl time.Duration) {
	c.ttl.Store(int64(ttl))
	c.c.ExpireWithin(ttl)
}

// Len is the number of cached keys.
func (c *Cache[V]) Len() int { return c.c.Len() }

// retryAfter is how long, after the store failed to renew an entry, the
// entry is served as it is before the store is asked again.
const retryAfter = time.Second

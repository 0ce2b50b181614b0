package guard

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// RateLimit is a token bucket per access key: Rate requests a second on
// average, Burst at once. Per replica: with N replicas behind a balancer a
// key gets up to N times Rate (SharedRateLimit is one bucket for the fleet).
type RateLimit struct {
	rate, burst float64
	seed        maphash.Seed
	shards      [32]rateShard
	maxKeys     int
}

type rateShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimit returns a limiter; rate <= 0 disables it (Allow is always
// true).
func NewRateLimit(rate float64, burst int, maxKeys int) *RateLimit {
	r := &RateLimit{rate: rate, burst: float64(max(burst, 1)), seed: maphash.MakeSeed(), maxKeys: max(maxKeys, 1024)}
	for i := range r.shards {
		r.shards[i].buckets = map[string]*bucket{}
	}
	return r
}

// Take is Allow in the form the proxy calls limiters (a local bucket cannot
// fail).
func (r *RateLimit) Take(_ context.Context, key []byte, now time.Time) (bool, error) {
	return r.Allow(key, now), nil
}

// Enabled reports whether requests are limited at all.
func (r *RateLimit) Enabled() bool { return r.rate > 0 }

// Allow takes a token for key at now. It allocates only for a key it has
// not seen.
func (r *RateLimit) Allow(key []byte, now time.Time) bool {
	if r.rate <= 0 {
		return true
	}
	s := &r.shards[maphash.Bytes(r.seed, key)%uint64(len(r.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[string(key)]
	if b == nil {
		if len(s.buckets) >= r.maxKeys/len(r.shards) {
			for k, old := range s.buckets { // forget full buckets first: they hold no state
				if old.tokens+now.Sub(old.last).Seconds()*r.rate >= r.burst {
					delete(s.buckets, k)
				}
			}
		}
		b = &bucket{tokens: r.burst, last: now}
		s.buckets[string(key)] = b
	}
	b.tokens = min(r.burst, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

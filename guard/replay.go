package guard

import (
	"context"
	"sync"
	"time"
)

// Seen remembers request signatures in this process, for replay protection
// without Redis (a single replica). Safe for concurrent use.
type Seen struct {
	mu      sync.Mutex
	expires map[string]int64 // Unix nanoseconds
	queue   expiryQueue      // the same markers, soonest to expire first
	max     int
	now     func() time.Time
}

// NewSeen keeps at most max signatures (the soonest to expire evicted
// first when full; a replay of an evicted one would pass, so size it above
// the requests expected within the timestamp window).
func NewSeen(max int) *Seen {
	return &Seen{expires: map[string]int64{}, max: max, now: time.Now}
}

// FirstUse records signatureHash for ttl and reports whether it was new
// (the hash covers the whole signature: the access key adds nothing here).
// It costs O(log n), full or not.
func (s *Seen) FirstUse(_ context.Context, _ []byte, signatureHash string, ttl time.Duration) (bool, error) {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.expires[signatureHash]; ok && now < exp {
		return false, nil
	}
	// Expired markers leave as they surface; then the soonest to expire
	// makes room.
	s.queue.expire(now, s.stale, s.forget)
	for len(s.expires) >= s.max && s.queue.len() > 0 {
		s.forget(s.queue.pop())
	}
	exp := now + int64(ttl)
	s.expires[signatureHash] = exp
	s.queue.push(signatureHash, exp)
	s.queue.compact(len(s.expires), func(it expiryItem) bool { return !s.stale(it) })
	return true, nil
}

// Release forgets signatureHash: its request was not used after all (see
// proxy.Replayer). Its queue item is left to go stale.
func (s *Seen) Release(_ context.Context, _ []byte, signatureHash string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.expires, signatureHash)
	return nil
}

// stale reports a queue item whose marker has since been set again, or left.
func (s *Seen) stale(it expiryItem) bool {
	exp, ok := s.expires[it.key]
	return !ok || exp != it.at
}

// forget deletes the marker of a popped item, unless it is stale.
func (s *Seen) forget(it expiryItem) {
	if !s.stale(it) {
		delete(s.expires, it.key)
	}
}
